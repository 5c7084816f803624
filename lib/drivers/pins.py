# Owns the adapters that give the real boards' parts the face the drivers and
# the firmware expect: an expander bit, a PWM buzzer and a switch that reads
# OFF with machine.Pin's value().
# Nothing here imports `machine`: the board module makes the machine objects.


class ExpanderPin:
    """One expander bit with machine.Pin's value(): an output writes, an
    input reads (an input read that fails raises OSError)."""

    def __init__(self, exp, bit):
        self.exp = exp
        self.bit = bit

    def value(self, v=None):
        if v is None:
            if self.exp.out_mask & (1 << self.bit):
                return (self.exp._out >> self.bit) & 1
            return (self.exp.read() >> self.bit) & 1
        self.exp.set_bit(self.bit, v)
        return None


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


class OffPin:
    """A switch that reads OFF (1): the DIP when the expander does not answer."""

    def value(self, v=None):
        return 1
