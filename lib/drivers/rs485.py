# Owns one RS485 port: a UART (machine.UART-like: write, read, readinto, any,
# and flush/txdone where the port has them) and its transceiver's
# driver-enable pin (DE high while transmitting, low once the last stop bit
# has left, with a timeout on the wait), with machine.UART's face (write,
# read, readinto, any), what the firmware's link and inverter services take
# as board.link_in / board.link_out. The pack has two ports: Link IN (bus 1)
# and Link OUT (bus 2), two instances. UART, pin and clock are passed in.
# The services find their frames in the bytes themselves (app.router).
import time

from defs.const import const

_WRAP = const(0x3FFFFFFF)  # event counters wrap below 2**30: small ints on the board

# time.ticks_us wraps at 2**30 as ticks_ms does: the same signed difference
from defs.ticks import ticks_diff

LINK_IN = const(1)
LINK_OUT = const(2)
_BITS_PER_CHAR = const(10)  # 8N1: start + 8 data + stop


def _ticks_us():
    return time.ticks_us() if hasattr(time, "ticks_us") else int(time.time() * 1000000) & 0x3FFFFFFF


def _sleep_us(us):
    if hasattr(time, "sleep_us"):
        time.sleep_us(us)
    else:
        time.sleep(us / 1000000)


class RS485:
    """bus: LINK_IN or LINK_OUT (a label for logs)."""

    def __init__(self, uart, de_pin, baud, bus=LINK_IN, ticks_us=None, sleep_us=None, de_active_high=True):
        self.uart = uart
        self.de = de_pin
        self.bus = bus
        self._on = 1 if de_active_high else 0
        self._ticks = ticks_us or _ticks_us
        self._sleep = sleep_us or _sleep_us
        self.set_baud(baud)
        self.de.value(1 - self._on)
        # counters (only grow)
        self.tx_timeouts = 0    # transmissions that did not finish in time
        self.tx_bytes = 0

    def set_baud(self, baud):
        """The character time from the baud rate (the UART itself is
        configured by the board: uart.init(baud) at start, per the DIP)."""
        self.baud = baud
        self.char_us = (_BITS_PER_CHAR * 1000000 + baud - 1) // baud

    def write(self, data):
        """Send data with DE high, drop DE once the last byte is out: the
        UART's txdone() where it exists (polled, at most the transmission time
        + 2 characters), else flush() + one character time for the shift
        register, else the transmission time at the baud rate. DE always
        goes low, even on a timeout (counted in tx_timeouts)."""
        n = len(data)
        self.de.value(self._on)
        try:
            self.uart.write(data)
            limit = (n + 2) * self.char_us
            u = self.uart
            if hasattr(u, "txdone"):
                t0 = self._ticks()
                while not u.txdone():
                    if ticks_diff(self._ticks(), t0) > limit:
                        self.tx_timeouts = (self.tx_timeouts + 1) & _WRAP
                        break
                    self._sleep(self.char_us)
            elif hasattr(u, "flush"):
                u.flush()
                self._sleep(self.char_us)
            else:
                self._sleep(n * self.char_us + self.char_us)
        finally:
            self.de.value(1 - self._on)
        self.tx_bytes += n
        return n

    # ---- receive: the UART's bytes --------------------------------------------------
    def any(self):
        return self.uart.any()

    def read(self, n=-1):
        if n is None or n < 0:
            return self.uart.read()
        return self.uart.read(n)

    def readinto(self, buf):
        return self.uart.readinto(buf)  # app.link: no allocation per read
