# Owns the system stage: refreshes the system view (bms.system) the inverter
# service reports, every cycle after the pack's own limits. A single pack is
# its own system; the parallel-packs issue aggregates the packs it reaches.
from bms.system import SystemView, from_pack


class System:
    def __init__(self, state, params):
        self.state = state
        self.params = params
        self.view = SystemView()

    def tick(self, now_ms):
        from_pack(self.view, self.state, self.params)
