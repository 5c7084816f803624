# Owns the estimate stage: SOC by coulomb counting on each new good
# measurement, started from the open-circuit voltage at the first one.
from bms.soc import Soc
from bms.ocv import soc_pct_from_mv
from bms.params import RATED_CAPACITY_MAH


class Estimate:
    def __init__(self, state, params):
        self.state = state
        self.soc = Soc(params.v[RATED_CAPACITY_MAH])
        self._seen = 0

    def tick(self, now_ms):
        st = self.state
        snap = st.snap
        if snap.reads == self._seen:
            return
        self._seen = snap.reads
        if not st.soc_valid:
            self.soc.set_pct(soc_pct_from_mv(snap.stack_mv // len(snap.cell_mv)))
            st.soc_valid = True
        else:
            self.soc.count(st.current_ma, snap.dt_ms)
        st.soc_pct = self.soc.pct()
