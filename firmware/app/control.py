# Owns the control stage: mode from the measurement, the FET commands and the
# AFE's latched hardware alerts. The FETs follow bms.protect's masks (set by
# the protect stage just before): each is on unless a protection or fault that
# blocks it is set (bms.codes.CHG_BLOCK / DSG_BLOCK); AFE alerts the protect
# stage marks in st.hw_clear are cleared here (this stage owns AFE writes).
from bms import modes, codes
from bms.params import CURRENT_DEADBAND_MA


class Control:
    def __init__(self, afe, state, params):
        self.afe = afe
        self.state = state
        self.params = params

    def tick(self, now_ms):
        st = self.state
        if st.hw_clear:
            # protect: the firmware's release rule of these AFE alerts holds
            self.afe.clear_alerts(st.hw_clear)
            st.hw_clear = 0
        st.hw_alerts = self.afe.read_alerts()
        snap = st.snap
        if not snap.reads:
            return
        deadband = self.params.v[CURRENT_DEADBAND_MA]
        i_ma = snap.current_ma
        st.current_ma = i_ma if (i_ma >= deadband or i_ma <= -deadband) else 0
        st.mode = modes.mode_from_current(i_ma, deadband)
        # protect: each FET follows the protections/faults that block it
        if st.faults:
            st.mode = modes.FAILURE
        elif st.protections:
            st.mode = modes.PROTECTION
        chg = codes.chg_allowed(st)
        dsg = codes.dsg_allowed(st)
        if chg != st.chg_fet or dsg != st.dsg_fet:
            st.chg_fet = chg
            st.dsg_fet = dsg
            self.afe.set_fets(chg, dsg, st.pchg_fet)
