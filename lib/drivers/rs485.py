# Owns one RS485 port: a UART (machine.UART-like: write, readinto, any, and
# flush/txdone where the port has them) and its transceiver's driver-enable pin
# (DE high while transmitting, low once the last stop bit has left), idle-gap
# framing (a frame ends after >= 3.5 character times of silence at the baud
# rate, as Modbus RTU), a timeout on every wait, one preallocated frame buffer
# and counters. The pack has two ports: Link IN (bus 1) and Link OUT (bus 2),
# two instances. UART, pin and clock are passed in.
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
    """bus: LINK_IN or LINK_OUT (a label for logs). frame_size: longest frame
    kept; longer ones are cut there and counted in `overflows` (0 for a port
    whose bytes are read from the UART, drivers.pins.Rs485Uart)."""

    def __init__(self, uart, de_pin, baud, bus=LINK_IN, frame_size=256,
                 ticks_us=None, sleep_us=None, de_active_high=True):
        self.uart = uart
        self.de = de_pin
        self.bus = bus
        self._on = 1 if de_active_high else 0
        self._ticks = ticks_us or _ticks_us
        self._sleep = sleep_us or _sleep_us
        self.buf = bytearray(frame_size)
        self.frame = memoryview(self.buf)
        self._one = bytearray(16)
        self.set_baud(baud)
        self.de.value(1 - self._on)
        self._n = 0          # bytes of the frame being received
        self._last = 0       # time of the last byte seen
        self._cut = False    # the frame being received overflowed
        # counters (only grow)
        self.frames = 0
        self.overflows = 0
        self.timeouts = 0       # reads that ended with no frame
        self.tx_timeouts = 0    # transmissions that did not finish in time
        self.tx_bytes = 0
        self.rx_bytes = 0

    def set_baud(self, baud):
        """Character and gap times from the baud rate (the UART itself is
        configured by the board: uart.init(baud) at start, per the DIP)."""
        self.baud = baud
        self.char_us = (_BITS_PER_CHAR * 1000000 + baud - 1) // baud
        self.gap_us = (35 * self.char_us + 9) // 10   # 3.5 character times
        # a byte is only seen once its stop bit is in: after 3.5 characters of
        # silence the next byte of the same frame would have shown up within
        # one more character time, so the frame is closed gap + 1 character
        # after the last byte was seen
        self.end_us = self.gap_us + self.char_us

    # ---- transmit ---------------------------------------------------------------
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

    # ---- receive ----------------------------------------------------------------
    def poll(self):
        """Non-blocking: take what the UART holds; the length of a complete
        frame (in self.frame[:n]) once the line has been silent for 3.5
        characters after it (end_us after its last byte was seen), else 0.
        Call it more often than a character time for exact framing;
        frames closer together than the polling interval merge."""
        now = self._ticks()
        got = self._take()
        if got:
            self._last = now
            return 0
        if self._n and ticks_diff(now, self._last) >= self.end_us:
            return self._finish()
        return 0

    def read_frame(self, timeout_ms):
        """Blocking: wait up to timeout_ms for a frame to start, then until
        it ends (gap), bounded by timeout_ms + the time a full buffer takes.
        Returns its length (data in self.frame[:n]) or 0 on timeout."""
        t0 = self._ticks()
        limit = timeout_ms * 1000
        step = self.char_us // 2 or 1
        while True:
            n = self.poll()
            if n:
                return n
            now = self._ticks()
            waited = ticks_diff(now, t0)
            if self._n == 0 and waited >= limit:
                self.timeouts = (self.timeouts + 1) & _WRAP
                return 0
            if waited >= limit + len(self.buf) * self.char_us + self.gap_us:
                # the line never went quiet (noise, a babbling node)
                self.timeouts = (self.timeouts + 1) & _WRAP
                self._n = 0
                self._cut = False
                return 0
            self._sleep(step)

    def _take(self):
        u = self.uart
        total = 0
        while u.any():
            k = u.readinto(self._one)
            if not k:
                break
            total += k
            room = len(self.buf) - self._n
            if k > room:
                self._cut = True
                k = room
            i = 0
            while i < k:
                self.buf[self._n + i] = self._one[i]
                i += 1
            self._n += k
        self.rx_bytes += total
        return total

    def _finish(self):
        n = self._n
        self._n = 0
        if self._cut:
            self._cut = False
            self.overflows = (self.overflows + 1) & _WRAP
        self.frames = (self.frames + 1) & _WRAP
        return n

    def discard(self):
        """Drop whatever is buffered (before sending a request)."""
        while self.uart.any():
            self.uart.readinto(self._one)
        self._n = 0
        self._cut = False
