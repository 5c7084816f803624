# Owns the hardware watchdog: wraps machine.WDT (passed in: the board creates
# it, e.g. machine.WDT(timeout=8000)) and feeds it only when every registered
# service has checked in (alive(i)) since the last feed, so one hung service
# lets the board reset. It is itself a service (name, period_ms, tick); its
# period must be well below the WDT timeout and above the slowest service's
# period.


class Watchdog:
    name = "watchdog"

    def __init__(self, wdt, period_ms=1000):
        self.wdt = wdt
        self.period_ms = period_ms
        self.names = []
        self._all = 0
        self._seen = 0
        self.feeds = 0
        self.missed = 0      # ticks where some service had not checked in
        self.last_missing = 0

    def register(self, name):
        """Index for alive(); at most 30 services (a small-int bit mask)."""
        i = len(self.names)
        if i >= 30:
            raise ValueError("too many services")
        self.names.append(name)
        self._all |= 1 << i
        return i

    def alive(self, i):
        self._seen |= 1 << i

    def missing(self):
        """Bit mask of services that have not checked in since the last feed."""
        return self._all & ~self._seen

    def tick(self, now_ms):
        m = self._all & ~self._seen
        if m:
            self.missed += 1
            self.last_missing = m
            return False
        self.wdt.feed()
        self.feeds += 1
        self._seen = 0
        return True

    def missing_names(self):
        m = self.missing()
        return [self.names[i] for i in range(len(self.names)) if m & (1 << i)]
