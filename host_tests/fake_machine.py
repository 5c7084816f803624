# A fake `machine` module for the real-board modules (boards/esp32_bq.py,
# boards/rp2040_bq.py): Pin, I2C, SPI, UART, ADC, PWM, WDT, RTC and the sleep
# calls, backed by whatever the test wires in before board.build():
#   I2C_DEVICES  {7-bit address: device}  (readfrom_mem_into / writeto_mem:
#                 host_tests/sim_bq76952.SimBQ76952, Pca9555Model below)
#   SPI_DEVICE   the SPI face of a chip (host_tests/sim_mcp2515 Mcp2515.spi)
#   WIRES        {pin id: object with value() (and irq())}: the chip's CS and
#                INT pins, a pressed button...
#   ADC_VALUES   {pin id: u16}
# Output edges of unwired pins are logged in LOG as (pin, value). Runs on
# CPython (installed as sys.modules["machine"]) and in MicroPython (the gate
# writes this source to /lib/machine.py), so: no f-strings, no dataclasses.
# FAKE_ESP32 is the source of a fake `esp32` module (wake_on_ext0/ext1).

I2C_DEVICES = {}
SPI_DEVICE = None
WIRES = {}
ADC_VALUES = {}
LOG = []
CALLS = []  # ("lightsleep", ms), ("deepsleep", ms), ("reset",)
WDTS = []
IDLE = 1
SLEEP = 2
DEEPSLEEP = 4


def reset_fakes():
    global SPI_DEVICE
    I2C_DEVICES.clear()
    SPI_DEVICE = None
    WIRES.clear()
    ADC_VALUES.clear()
    del LOG[:]
    del CALLS[:]
    del WDTS[:]


class DeepSleep(Exception):
    """machine.deepsleep() does not return: the fake raises this."""


class Reset(Exception):
    pass


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, value=None, drive=None, alt=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self.wire = WIRES.get(id)
        self.handler = None
        self.trigger = 0
        self.wake = None
        if value is not None:
            self.v = 1 if value else 0
            if self.wire is not None:
                self.wire.value(self.v)
        else:
            self.v = 1 if pull == Pin.PULL_UP else 0

    def value(self, v=None):
        if v is None:
            if self.wire is not None:
                return self.wire.value()
            return self.v
        v = 1 if v else 0
        if self.wire is not None:
            self.wire.value(v)
        elif v != self.v:
            LOG.append((self.id, v))
        self.v = v
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, priority=1, wake=None, hard=False):
        self.handler = handler
        self.trigger = trigger
        self.wake = wake
        if self.wire is not None and hasattr(self.wire, "irq"):
            self.wire.irq(handler=handler, trigger=trigger)
        return None


class I2C:
    def __init__(self, id=0, scl=None, sda=None, freq=400000, timeout=50000):
        self.id = id
        self.freq = freq

    def _dev(self, addr):
        d = I2C_DEVICES.get(addr)
        if d is None:
            raise OSError(19)  # ENODEV: no ACK
        return d

    def readfrom_mem_into(self, addr, reg, buf, addrsize=8):
        self._dev(addr).readfrom_mem_into(addr, reg, buf)

    def writeto_mem(self, addr, reg, buf, addrsize=8):
        self._dev(addr).writeto_mem(addr, reg, buf)

    def scan(self):
        return sorted(I2C_DEVICES)


class SPI:
    def __init__(self, id=0, baudrate=1000000, polarity=0, phase=0, bits=8, firstbit=0,
                 sck=None, mosi=None, miso=None):
        self.id = id
        self.baudrate = baudrate

    def _dev(self):
        if SPI_DEVICE is None:
            raise OSError(5)
        return SPI_DEVICE

    def write(self, buf):
        self._dev().write(buf)

    def readinto(self, buf, write=0):
        self._dev().readinto(buf, write)

    def write_readinto(self, wbuf, rbuf):
        self._dev().write_readinto(wbuf, rbuf)


class UART:
    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, tx=None, rx=None,
                 txbuf=None, rxbuf=None, timeout=None, timeout_char=None, invert=None):
        self.id = id
        self.baudrate = baudrate
        self.sent = bytearray()
        self.rx = bytearray()

    def init(self, baudrate=9600, bits=8, parity=None, stop=1, **kw):
        self.baudrate = baudrate

    def write(self, data):
        self.sent.extend(data)
        return len(data)

    def any(self):
        return len(self.rx)

    def readinto(self, buf, nbytes=None):
        n = min(len(buf), len(self.rx)) if nbytes is None else min(nbytes, len(buf), len(self.rx))
        if n == 0:
            return None
        for i in range(n):
            buf[i] = self.rx[i]
        self.rx = self.rx[n:]
        return n

    def read(self, n=-1):
        if not self.rx:
            return None
        if n is None or n < 0 or n > len(self.rx):
            n = len(self.rx)
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out

    def flush(self):
        pass

    def txdone(self):
        return True


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.id = pin.id if isinstance(pin, Pin) else pin

    def read_u16(self):
        return ADC_VALUES.get(self.id, 32768)


class PWM:
    def __init__(self, dest, freq=None, duty_u16=None, duty_ns=None):
        self.pin = dest
        self._freq = freq or 0
        self._duty = duty_u16 or 0
        self.duties = []

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        if d != self._duty:
            self.duties.append(d)
        self._duty = d

    def deinit(self):
        pass


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        WDTS.append(self)

    def feed(self):
        self.feeds += 1


class RTC:
    _dt = (2025, 1, 1, 2, 0, 0, 0, 0)

    def __init__(self, id=0):
        pass

    def datetime(self, dt=None):
        if dt is None:
            return RTC._dt
        RTC._dt = tuple(dt)


def lightsleep(ms=None):
    CALLS.append(("lightsleep", ms))


def deepsleep(ms=None):
    CALLS.append(("deepsleep", ms))
    raise DeepSleep()


def reset():
    CALLS.append(("reset",))
    raise Reset()


def unique_id():
    return b"\x01\x02\x03\x04\x05\x06"


def freq(hz=None):
    return 240000000


class Pca9555Model:
    """NXP PCA9555 at the register level: 0/1 input ports (read-only; an
    output bit reads its output latch), 2/3 outputs, 4/5 polarity, 6/7
    configuration (1 = input, power-on 0xFF); pins default high (the chip's
    pull-ups); `levels` are the external levels of the input pins."""

    def __init__(self, addr=0x20):
        self.addr = addr
        self.regs = bytearray([0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0xFF, 0xFF])
        self.levels = 0xFFFF
        self.silent = False
        self.writes = 0

    def outputs(self):
        """The driven level of each output bit (16 bits; inputs read 1)."""
        cfg = self.regs[6] | self.regs[7] << 8
        out = self.regs[2] | self.regs[3] << 8
        return (out & ~cfg) | cfg

    def readfrom_mem_into(self, addr, reg, buf):
        if self.silent:
            raise OSError(110)
        cfg = self.regs[6] | self.regs[7] << 8
        val = (self.levels & cfg) | (self.outputs() & ~cfg)
        img = bytearray(self.regs)
        img[0] = val & 0xFF
        img[1] = (val >> 8) & 0xFF
        for i in range(len(buf)):
            buf[i] = img[(reg + i) & 7] if (reg + i) & 7 > 1 else img[(reg + i) & 1]

    def writeto_mem(self, addr, reg, buf):
        if self.silent:
            raise OSError(110)
        self.writes += 1
        for i in range(len(buf)):
            r = (reg & 6) | ((reg + i) & 1)  # pairs: auto-increment within a register pair
            if r > 1:
                self.regs[r] = buf[i]


FAKE_ESP32 = '''
WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True
WAKE = []
def wake_on_ext0(pin, level):
    WAKE.append(("ext0", pin.id if pin is not None else None, level))
def wake_on_ext1(pins, level):
    WAKE.append(("ext1", tuple(p.id for p in pins) if pins else (), level))
'''
