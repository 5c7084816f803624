# Owns the protect stage: runs bms.protect on each cycle between acquire and
# control, and turns manual interventions into a protection reset: a button
# press classified as reset (st.button_action, seen once per st.button_count)
# or a PC command (st.protect_reset_req incremented by app.hostctl), both alike. It is the one consumer
# of the button presses in the cycle (the first stage to see them) and passes
# them on to control as counters: st.reset_presses (a new pre-charge try,
# awake, the reset sequence) and st.sleep_wake_presses. The FET decisions are
# made by the control stage from the masks this stage leaves in the state.
from bms.protect import Protection
from bms import button
from store import counters as C


class Protect:
    def __init__(self, state, params):
        self.state = state
        self.prot = Protection(params, state)
        self._button_count = state.button_count
        self._reset_req = state.protect_reset_req

    def save(self, v):
        """The lock-out and latched fault bits into the counters array v."""
        v[C.LOCKOUT] = self.prot.lockout
        v[C.LATCHED_FAULTS] = self.prot.latched

    def restore(self, v):
        self.prot.lockout = v[C.LOCKOUT]
        self.prot.latched = v[C.LATCHED_FAULTS]

    def tick(self, now_ms):
        st = self.state
        if st.button_count != self._button_count:
            self._button_count = st.button_count
            if st.button_action == button.RESET:
                self.prot.reset(now_ms)
                st.reset_presses += 1
            elif st.button_action == button.SLEEP_WAKE:
                st.sleep_wake_presses += 1
        if st.protect_reset_req != self._reset_req:
            self._reset_req = st.protect_reset_req
            self.prot.reset(now_ms)
            st.reset_presses += 1  # the button's path on: a new pre-charge try, awake, the sequence
        self.prot.update(now_ms)
