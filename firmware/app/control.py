# Owns the control stage: mode from the measurement, the FET commands and the
# AFE's latched hardware alerts. Protection rules arrive with their own issue;
# until then the FETs close once the first good measurement is in.
from bms import modes
from bms.params import CURRENT_DEADBAND_MA


class Control:
    def __init__(self, afe, state, params):
        self.afe = afe
        self.state = state
        self.params = params

    def tick(self, now_ms):
        st = self.state
        st.hw_alerts = self.afe.read_alerts()
        snap = st.snap
        if not snap.reads:
            return
        deadband = self.params.v[CURRENT_DEADBAND_MA]
        i_ma = snap.current_ma
        st.current_ma = i_ma if (i_ma >= deadband or i_ma <= -deadband) else 0
        st.mode = modes.mode_from_current(i_ma, deadband)
        if not (st.chg_fet and st.dsg_fet):
            st.chg_fet = True
            st.dsg_fet = True
            self.afe.set_fets(True, True, False)
