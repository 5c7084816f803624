# Owns the button service: samples the reset button (board.button, pulled up,
# pressed = 0) every 50 ms, classifies each press on release (bms.button) and
# publishes it in the pack state: button_action and a growing button_count.
# It only reports; control decides what sleep/wake and reset do.
from bms import button, params as P
from app.service import Service


class Button(Service):
    name = "button"
    period_ms = 50

    def __init__(self, state, pin, params=None):
        self.state = state
        self.pin = pin
        self.params = params
        self.classifier = button.Classifier()

    def tick(self, now_ms):
        c = self.classifier
        pressed = self.pin.value() == 0
        # thresholds from the parameter table, re-read whenever a sample can
        # end a press (it differs from the debounced level) so a change from
        # the PC tool applies at once; without params the bms.button defaults
        if self.params is not None and pressed != c.pressed:
            v = self.params.v
            c.sleep_ms = v[P.BUTTON_SLEEP_MS]
            c.reset_min_ms = v[P.BUTTON_RESET_MIN_MS]
            c.reset_max_ms = v[P.BUTTON_RESET_MAX_MS]
        action = c.sample(pressed, now_ms)
        if action != button.NONE:
            st = self.state
            st.button_action = action
            st.button_count += 1
