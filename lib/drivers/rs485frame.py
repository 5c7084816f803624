# Owns idle-gap framing on an RS485 port (drivers.rs485), for a port that
# reads frames, not bytes: a frame ends after >= 3.5 character times of
# silence at the baud rate (as Modbus RTU), one preallocated frame buffer, a
# timeout on every wait, counters. The firmware's services read bytes
# (drivers.rs485.RS485 itself): the board does not import this module.
from defs.const import const
from defs.ticks import ticks_diff
from drivers.rs485 import RS485, LINK_IN

_WRAP = const(0x3FFFFFFF)  # event counters wrap below 2**30: small ints on the board


class FramedRS485(RS485):
    """frame_size: longest frame kept; longer ones are cut there and counted
    in `overflows`. Use its frames (poll, read_frame) or the UART's bytes
    (read, readinto, any), not both."""

    def __init__(self, uart, de_pin, baud, bus=LINK_IN, frame_size=256,
                 ticks_us=None, sleep_us=None, de_active_high=True):
        RS485.__init__(self, uart, de_pin, baud, bus, ticks_us, sleep_us, de_active_high)
        self.buf = bytearray(frame_size)
        self.frame = memoryview(self.buf)
        self._one = bytearray(16)
        self._n = 0          # bytes of the frame being received
        self._last = 0       # time of the last byte seen
        self._cut = False    # the frame being received overflowed
        # counters (only grow)
        self.frames = 0
        self.overflows = 0
        self.timeouts = 0       # reads that ended with no frame
        self.rx_bytes = 0

    def set_baud(self, baud):
        """Character and gap times from the baud rate."""
        RS485.set_baud(self, baud)
        self.gap_us = (35 * self.char_us + 9) // 10   # 3.5 character times
        # a byte is only seen once its stop bit is in: after 3.5 characters of
        # silence the next byte of the same frame would have shown up within
        # one more character time, so the frame is closed gap + 1 character
        # after the last byte was seen
        self.end_us = self.gap_us + self.char_us

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
