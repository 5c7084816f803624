# Owns the balance stage: on each new good measurement, the cells to bleed
# (bms.balance) and, only when the mask changes, the AFE's balancing switches.
# Balancing stops (mask 0) while asleep, with any fault or a failed read; the
# balancer is told (its charge accounting counts only the time a cell was bled)
# and gets the measured time between reads (snap.dt_ms).
from bms.balance import Balancer


class Balance:
    def __init__(self, afe, state, params):
        self.afe = afe
        self.state = state
        self.bal = Balancer(params.v)
        self._seen = 0

    def tick(self, now_ms):
        st = self.state
        snap = st.snap
        if snap.reads != self._seen and snap.ok:
            self._seen = snap.reads
            allowed = st.faults == 0 and st.sleep_reason == 0
            mask = self.bal.update(snap.cell_mv, snap.temp_dc, st.current_ma, allowed, snap.dt_ms)
        elif not snap.ok or st.faults or st.sleep_reason:
            mask = 0
            self.bal.stop()
        else:
            return
        if mask != st.balance_mask:
            st.balance_mask = mask
            self.afe.set_balance(mask)
