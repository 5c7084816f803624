# Owns the adapters that give the real boards' parts the face the drivers and
# the firmware expect: an expander bit, a PWM buzzer and a switch that reads
# OFF with machine.Pin's value(), an RS485 port with machine.UART's shape.
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


class Rs485Uart:
    """An RS485 port with machine.UART's shape (write, read, readinto, any), what the
    firmware's link and inverter services take as board.link_in/link_out:
    write() goes through drivers.rs485 (DE high, then low once the last
    byte is out); read()/any() are the UART's. The framing driver itself is
    `rs485` (its idle-gap read_frame() is for a port that reads frames, not
    bytes: use one or the other)."""

    def __init__(self, rs485):
        self.rs485 = rs485
        self.uart = rs485.uart

    def write(self, data):
        return self.rs485.write(data)

    def any(self):
        return self.uart.any()

    def read(self, n=-1):
        if n is None or n < 0:
            return self.uart.read()
        return self.uart.read(n)

    def readinto(self, buf):
        return self.uart.readinto(buf)  # app.link: no allocation per read


class OffPin:
    """A switch that reads OFF (1): the DIP when the expander does not answer."""

    def value(self, v=None):
        return 1
