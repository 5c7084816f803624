# Owns the estimate stage: on each new good measurement, the SOC, SOH and
# lifetime counters (bms.soc: coulomb counting over the measured interval,
# OCV correction on the steep ends after a rest, 100 % at charge end, 0 % at
# CUVP, the last SOC restored after a reset) and then the limits told to the
# inverter (bms.limits: CVL, CCL, DCL, DVL, force-charge requests). Its part
# of the counters file (lib/store/counters) goes through save()/restore().
from bms.soc import SocEstimator
from bms.limits import Limits
from store import counters as C


class Estimate:
    def __init__(self, state, params):
        self.state = state
        self.est = SocEstimator(params.v)
        self.limits = Limits(params.v)
        self._seen = 0
        self.limits.start(state)

    def tick(self, now_ms):
        st = self.state
        if st.cal_req != st.cal_done:  # the PC tool's calibration (app.hostctl)
            self.est.set_by_host(st, st.cal_what, st.cal_value)
            st.cal_done = st.cal_req
        snap = st.snap
        if snap.reads == self._seen:
            return
        self._seen = snap.reads
        self.est.update(st, snap.current_raw_ma, snap.dt_ms)  # the offset: the estimator's
        st.soc_valid = True
        self.limits.update(st, snap.dt_ms)

    def save(self, v):
        """Into the counters array v: a SOC still unknown keeps the stored
        value (or -1)."""
        st = self.state
        if st.soc_valid:
            v[C.SOC_PPM] = st.soc_ppm
        v[C.SOC_FULL] = 1 if st.soc_full else 0
        v[C.FCC_MAH] = st.fcc_mah
        v[C.CYCLES] = st.cycles
        v[C.CHG_AH] = st.chg_ah
        v[C.DSG_AH] = st.dsg_ah
        v[C.CHG_WH] = st.chg_wh
        v[C.DSG_WH] = st.dsg_wh
        v[C.I_OFFSET_MA] = st.i_offset_ma

    def restore(self, v):
        self.est.restore(self.state, v[C.SOC_PPM], v[C.SOC_FULL], v[C.FCC_MAH], v[C.CYCLES], v[C.CHG_AH],
                         v[C.DSG_AH], v[C.CHG_WH], v[C.DSG_WH], v[C.I_OFFSET_MA])
