# Owns the panel outputs: the LEDs (RUN, ALM, SOC, M/S in bms.indicate order)
# and the buzzer, each on a pin object with value(); pins are passed in by the board.


class Leds:
    def __init__(self, pins, active_low=False):
        self.pins = pins
        self._inv = 1 if active_low else 0

    def set(self, index, lit):
        self.pins[index].value((1 if lit else 0) ^ self._inv)


class Buzzer:
    """An on/off buzzer (an active buzzer on a pin); a PWM tone comes later."""

    def __init__(self, pin, active_low=False):
        self.pin = pin
        self._inv = 1 if active_low else 0

    def set(self, on):
        self.pin.value((1 if on else 0) ^ self._inv)
