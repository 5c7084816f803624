# Owns the pack's wall clock for stored records: time since boot kept from the
# wrapping ticks (advance() must be called at least every few days; the
# persist service calls it every second), and Unix time once the clock is set
# (by the PC tool, or from a board RTC that still holds a valid time). Before
# that, stamp() returns seconds since boot with the BOOT_TIME flag.
from defs.const import const
from defs.ticks import ticks_diff

BOOT_TIME = const(2)  # flag: the stamp counts from boot (same bit as store.eventlog.F_BOOT_TIME)
VALID_AFTER_S = 1704067200  # 2024-01-01: an RTC before this was never set


class Clock:
    def __init__(self, rtc=None):
        self.rtc = rtc  # object with now_s() -> Unix s or None, set_s(s); or None
        self.up_s = 0  # whole seconds since boot
        self._up_ms = 0  # and the milliseconds beyond
        self._last = None  # tick of the last advance
        self.base_s = -1  # Unix time at boot, -1 while unknown
        if rtc is not None:
            s = rtc.now_s()
            if s is not None and s >= VALID_AFTER_S:
                self.base_s = s

    def advance(self, now_ms):
        if self._last is not None:
            d = ticks_diff(now_ms, self._last)
            if d > 0:
                self._up_ms += d
                if self._up_ms >= 1000:
                    self.up_s += self._up_ms // 1000
                    self._up_ms %= 1000
        self._last = now_ms

    def is_set(self):
        return self.base_s >= 0

    def set_unix(self, unix_s, now_ms=None):
        """Set the clock (PC tool); the board RTC too when there is one."""
        if now_ms is not None:
            self.advance(now_ms)
        self.base_s = unix_s - self.up_s
        if self.rtc is not None:
            self.rtc.set_s(unix_s)

    def now(self):
        """(t_s, flags) of the current instant."""
        if self.base_s >= 0:
            return self.base_s + self.up_s, 0
        return self.up_s, BOOT_TIME

    def stamp(self, t_ms, now_ms):
        """(t_s, flags) of something that happened at tick t_ms (in the last
        few days), seen at tick now_ms."""
        age = ticks_diff(now_ms, t_ms)
        if self._last is not None:
            age += ticks_diff(self._last, now_ms)  # now_ms may be ahead of the last advance
        up = self.up_s - (age - self._up_ms + 999) // 1000 if age > self._up_ms else self.up_s
        if up < 0:
            up = 0
        if self.base_s >= 0:
            return self.base_s + up, 0
        return up, BOOT_TIME

