# Owns the button service: samples the reset button (board.button, pulled up,
# pressed = 0) every 50 ms, classifies each press on release (bms.button) and
# publishes it in the pack state: button_action and a growing button_count.
# It only reports; control decides what sleep/wake and reset do.
from bms import button
from app.service import Service
from app.indicate import param_index


class Button(Service):
    name = "button"
    period_ms = 50

    def __init__(self, state, pin, params=None):
        self.state = state
        self.pin = pin
        self.params = params
        self.classifier = button.Classifier()
        # thresholds from the parameter table (re-read every tick so a change
        # from the PC tool applies at once); rows it does not have yet keep
        # the bms.button defaults
        has = params is not None
        self._i_sleep = param_index("button_sleep_ms") if has else -1
        self._i_min = param_index("button_reset_min_ms") if has else -1
        self._i_max = param_index("button_reset_max_ms") if has else -1

    def tick(self, now_ms):
        c = self.classifier
        if self._i_sleep >= 0:
            c.sleep_ms = self.params.v[self._i_sleep]
        if self._i_min >= 0:
            c.reset_min_ms = self.params.v[self._i_min]
        if self._i_max >= 0:
            c.reset_max_ms = self.params.v[self._i_max]
        action = c.sample(self.pin.value() == 0, now_ms)
        if action != button.NONE:
            st = self.state
            st.button_action = action
            st.button_count += 1
