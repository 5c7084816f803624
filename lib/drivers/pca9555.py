# Owns the NXP PCA9555 16-bit I2C I/O expander (I2C 0x20 on the AFE's bus)
# that carries the DIP switch and the secondary outputs of the real boards,
# and its bits as pins (machine.Pin's value()).
from defs.const import const

PCA9555_ADDR = const(0x20)
_IN0 = const(0)   # input port 0, 1
_OUT0 = const(2)  # output port 0, 1
_CFG0 = const(6)  # configuration port 0, 1: 1 = input (power-on default)


class Pca9555:
    """NXP PCA9555 16-bit I2C I/O expander (bits 0-7 port 0, 8-15 port 1).
    out_mask: the bits driven as outputs (all start low). Output writes keep
    a shadow and go out only on a change; a failed write is counted in
    `errors` and sent again with the next change or flush() (an LED or a
    contact never stops the pack). Reads raise OSError (the caller decides)."""

    def __init__(self, i2c, addr=PCA9555_ADDR, out_mask=0xFF00):
        self.i2c = i2c
        self.addr = addr
        self.out_mask = out_mask
        self.errors = 0
        self._out = 0
        self._dirty = True
        self._b2 = bytearray(2)  # writes (each fills it from _out) and reads
        b = self._b2
        b[0] = 0
        b[1] = 0
        i2c.writeto_mem(addr, _OUT0, b)   # outputs low before they are driven
        b[0] = ~out_mask & 0xFF
        b[1] = (~out_mask >> 8) & 0xFF
        i2c.writeto_mem(addr, _CFG0, b)
        self._dirty = False

    def read(self):
        """Both input ports as 16 bits (raises OSError)."""
        r = self._b2
        self.i2c.readfrom_mem_into(self.addr, _IN0, r)
        return r[0] | r[1] << 8

    def set_bit(self, bit, v):
        m = 1 << bit
        new = (self._out | m) if v else (self._out & ~m)
        if new != self._out or self._dirty:
            self._out = new
            self.flush()

    def flush(self):
        b = self._b2
        b[0] = self._out & 0xFF
        b[1] = self._out >> 8
        try:
            self.i2c.writeto_mem(self.addr, _OUT0, b)
            self._dirty = False
        except OSError:
            self.errors += 1
            self._dirty = True

    def pin(self, bit):
        return ExpanderPin(self, bit)


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
