# Owns the system stage: refreshes the system view (bms.system) the inverter
# service reports, every cycle after the pack's own limits. A single pack (or
# a slave) is its own view; the master aggregates the packs the link service
# (app.link) hears, its own row included (bms.system.aggregate).
from bms import parallel
from bms.system import SystemView, from_pack, aggregate


class System:
    def __init__(self, state, params, link=None):
        self.state = state
        self.params = params
        self.link = link
        self.view = SystemView()

    def tick(self, now_ms):
        st = self.state
        lk = self.link
        if lk is None or st.link_role != parallel.MASTER or not st.snap.reads:
            from_pack(self.view, st, self.params)
            self.view.parallel_failure = False
            return
        t = lk.table
        v = self.view
        aggregate(v, t, st, parallel.N)
        v.parallel_failure = v.packs_offline > 0 or st.link_conflict != 0
        v.generation = lk.roles.gen
