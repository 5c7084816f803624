# Owns the panel outputs: the LEDs (RUN, ALM, SOC, M/S in bms.indicate order)
# and the buzzer, each on a pin object with value(); pins are passed in by the
# board (a passive buzzer's PWM as a pin: PwmPin). Nothing here imports
# `machine`.


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


class PwmPin:
    """A passive buzzer on a machine.PWM, with a pin's value(): 1 = tone
    (50 % duty at the PWM's frequency), 0 = silent."""

    def __init__(self, pwm, duty_u16=32768):
        self.pwm = pwm
        self.duty = duty_u16
        self.level = 0
        pwm.duty_u16(0)

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0
        self.pwm.duty_u16(self.duty if v else 0)
        return None
