# Owns the estimate stage: on each new good measurement, the SOC, SOH and
# lifetime counters (bms.soc: coulomb counting over the measured interval,
# OCV correction on the steep ends after a rest, 100 % at charge end, 0 % at
# CUVP, the last SOC restored after a reset) and then the limits told to the
# inverter (bms.limits: CVL, CCL, DCL, DVL, force-charge requests).
from bms.soc import SocEstimator
from bms.limits import Limits
from bms import params as P


class Estimate:
    def __init__(self, state, params):
        self.state = state
        self.est = SocEstimator(params.v)
        self.soc = self.est.soc  # the coulomb counter (tools read it)
        self.limits = Limits(params.v)
        self._seen = 0
        state.cvl_mv = params.v[P.CHARGE_MV]  # never 0, even before the first read
        state.dvl_mv = params.v[P.LOW_CUTOFF_MV]

    def tick(self, now_ms):
        st = self.state
        snap = st.snap
        if snap.reads == self._seen:
            return
        self._seen = snap.reads
        self.est.update(st, snap.current_ma, snap.dt_ms)
        st.soc_valid = True
        self.limits.update(st, snap.dt_ms)
