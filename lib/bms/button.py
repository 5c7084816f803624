# Owns the reset button's meaning (SPEC 6, `000` E, `003` 5.3): a press is
# classified when it is released, by how long it was held. Pure: callers pass
# the pin level (pressed or not) and the time; nothing here reads a clock.
from defs.const import const
from defs.ticks import ticks_diff

NONE = const(0)
SLEEP_WAKE = const(1)  # held 3 s (`000` E: "sleep(3s)/awake(3s)")
RESET = const(2)  # held 6-10 s and released (`003` 5.3: "press the reset key (6 ~ 10s) and release it")

# Defaults of the parameters button_sleep_ms, button_reset_min_ms,
# button_reset_max_ms (used while the parameter table lacks them).
SLEEP_MS = const(3000)
RESET_MIN_MS = const(6000)
RESET_MAX_MS = const(10000)
# A level must be stable this long to count: contact bounce of a push button
# lasts a few ms; 50 ms is one sample of the 50 ms button service, so an edge
# counts when two samples in a row agree.
DEBOUNCE_MS = const(50)


def classify(held_ms, sleep_ms=SLEEP_MS, reset_min_ms=RESET_MIN_MS, reset_max_ms=RESET_MAX_MS):
    """The action of a press held held_ms. Shorter than sleep_ms: nothing (a
    brush against the button). Between sleep_ms and reset_min_ms: sleep/wake.
    reset_min_ms..reset_max_ms inclusive: reset. Longer than reset_max_ms:
    nothing, because a button stuck down (or something leaning on it) must
    never act on its own when it finally comes free."""
    if held_ms < sleep_ms:
        return NONE
    if held_ms < reset_min_ms:
        return SLEEP_WAKE
    if held_ms <= reset_max_ms:
        return RESET
    return NONE


class Classifier:
    """Debounces pin samples and classifies each press on its release.
    The held time runs from the first sample that saw the press to the first
    sample that saw the release, so the debounce delay cancels out."""

    def __init__(self, sleep_ms=SLEEP_MS, reset_min_ms=RESET_MIN_MS, reset_max_ms=RESET_MAX_MS,
                 debounce_ms=DEBOUNCE_MS):
        self.sleep_ms = sleep_ms
        self.reset_min_ms = reset_min_ms
        self.reset_max_ms = reset_max_ms
        self.debounce_ms = debounce_ms
        self.pressed = False  # debounced level
        self._raw = False
        self._raw_since = 0
        self._press_ms = 0
        self.held_ms = 0  # length of the last press

    def sample(self, pressed, now_ms):
        """Feed one sample; returns the action when a press ends (NONE otherwise)."""
        pressed = bool(pressed)
        if pressed != self._raw:
            self._raw = pressed
            self._raw_since = now_ms
        if pressed == self.pressed or ticks_diff(now_ms, self._raw_since) < self.debounce_ms:
            return NONE
        self.pressed = pressed
        if pressed:
            self._press_ms = self._raw_since
            return NONE
        self.held_ms = ticks_diff(self._raw_since, self._press_ms)
        return classify(self.held_ms, self.sleep_ms, self.reset_min_ms, self.reset_max_ms)
