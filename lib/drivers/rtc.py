# Owns the port's real-time clock as bms.clock.Clock takes it: now_s() and
# set_s() in Unix seconds. The one place that reads time.time() and writes
# machine.RTC, so the clock logic in lib/bms stays pure.
class TimeRtc:
    """The port's RTC (time.time(), machine.RTC) in Unix seconds, whatever the
    port's epoch (1970 or 2000)."""

    def __init__(self):
        import time
        self._time = time
        self._off = 0 if time.gmtime(0)[0] == 1970 else 946684800

    def now_s(self):
        return int(self._time.time()) + self._off

    def set_s(self, unix_s):
        import machine
        t = self._time.gmtime(unix_s - self._off)
        machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
