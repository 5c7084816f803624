# Owns the protect stage: runs bms.protect on each cycle between acquire and
# control, and turns manual interventions into a protection reset: a button
# press classified as reset (st.button_action, seen once per st.button_count)
# or a PC command (st.protect_reset_req incremented). The FET decisions are
# made by the control stage from the masks this stage leaves in the state.
from bms.protect import Protection
from bms import button


class Protect:
    def __init__(self, state, params):
        self.state = state
        self.prot = Protection(params, state)
        self._button_count = state.button_count
        self._reset_req = state.protect_reset_req

    def reset(self, now_ms):
        self.prot.reset(now_ms)

    def tick(self, now_ms):
        st = self.state
        if st.button_count != self._button_count:
            self._button_count = st.button_count
            if st.button_action == button.RESET:
                self.prot.reset(now_ms)
        if st.protect_reset_req != self._reset_req:
            self._reset_req = st.protect_reset_req
            self.prot.reset(now_ms)
        self.prot.update(now_ms)
