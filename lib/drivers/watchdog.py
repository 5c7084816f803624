# Owns the hardware watchdog: wraps machine.WDT (passed in: the board creates
# it, e.g. machine.WDT(timeout=8000)) and feeds it only when every registered
# service has checked in (alive(i)) since the last feed, so one hung service
# lets the board reset. It is itself a service (name, period_ms, tick); its
# period must be well below the WDT timeout and above the slowest service's
# period. watch() wraps the services so each checks in while it keeps ticking:
# the Watchdog's tick marks alive each one that ran within its limit.

TYPE_CHECKING = False
if TYPE_CHECKING:  # the type checker's names only; never runs on a board
    from typing import Any


class Watchdog:
    name = "watchdog"
    # set by watch() (declared for the type checker, host_tests/test_typecheck.py;
    # MicroPython ignores annotations)
    watched: "Any"
    _diff: "Any"

    def __init__(self, wdt, period_ms=1000):
        self.wdt = wdt
        self.period_ms = period_ms
        self.names = []
        self._all = 0
        self._seen = 0
        self.feeds = 0
        self.missed = 0      # ticks where some service had not checked in
        self.last_missing = 0
        # set by watch(): the Watched services, from index _first on
        self.watched = ()
        self._first = 0
        self._diff = None
        self.start = None

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

    def tick(self, now_ms):
        """Marks alive each watched service that ran within its limit (twice
        its period plus slack), then feeds the WDT only if every registered
        service is alive. A service that hangs (its task stops, or the loop
        is stuck in it) stops the feeding and the WDT resets the board."""
        if self.start is None:
            self.start = now_ms
        i = self._first
        for w in self.watched:
            t = w.last if w.last is not None else self.start
            if self._diff(now_ms, t) <= w.limit_ms:
                self._seen |= 1 << i
            i += 1
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
        """The services that have not checked in since the last feed."""
        m = self._all & ~self._seen
        return [self.names[i] for i in range(len(self.names)) if m & (1 << i)]


# ---- the service watch (used by firmware/main.py) ------------------------------

class Watched:
    """A service wrapped so the watchdog knows it is alive: tick() runs the
    service and records when it last ran. Four attributes: an instance's
    member table holds four without growing (one per service)."""

    def __init__(self, svc, slack_ms):
        self.svc = svc
        self.period_ms = svc.period_ms
        self.last = None
        self.limit_ms = 2 * svc.period_ms + slack_ms

    @property
    def name(self):
        return self.svc.name

    def tick(self, now_ms):
        self.svc.tick(now_ms)
        self.last = now_ms
        # a service may shorten its period while busy (app.hostport while a host
        # exchange is under way: its idle period is the one the limit above was
        # computed from)
        self.period_ms = self.svc.period_ms


def watch(services, wd, ticks_diff, slack_ms=None):
    """(watched services, wd): run these instead of `services`, wd (the
    Watchdog, a service) beside them. slack_ms defaults to the watchdog's
    period."""
    slack = wd.period_ms if slack_ms is None else slack_ms
    watched = [Watched(s, slack) for s in services]
    wd._first = len(wd.names)  # the watched services' indexes: in order from here
    for w in watched:
        wd.register(w.svc.name)
    wd.watched = watched
    wd._diff = ticks_diff
    return watched, wd
