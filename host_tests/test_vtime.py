"""The virtual-time runner: periods, tie order, wrap, error handling."""
from defs.ticks import TICKS_MASK
from sim.vtime import VirtualRunner


class Rec:
    def __init__(self, name, period_ms, log):
        self.name, self.period_ms, self.log = name, period_ms, log

    def tick(self, now_ms):
        self.log.append((self.name, now_ms))


def test_periods_and_tie_order_are_deterministic():
    log = []
    r = VirtualRunner()
    r.add(Rec("a", 100, log))
    r.add(Rec("b", 50, log))
    r.run_until(200)
    assert log == [("a", 0), ("b", 0), ("b", 50), ("a", 100), ("b", 100), ("b", 150)]
    assert r.now_ms == 200


def test_services_see_wrapped_ticks():
    log = []
    r = VirtualRunner(start_ms=TICKS_MASK - 99)
    r.add(Rec("a", 100, log))
    r.run_until(TICKS_MASK - 99 + 300)
    assert [t for _, t in log] == [TICKS_MASK - 99, 0, 100]


def test_failing_service_is_dropped_and_reported():
    log, errs = [], []

    class Boom:
        name, period_ms = "boom", 100

        def tick(self, now_ms):
            if now_ms == 200:
                raise RuntimeError("x")
            log.append(now_ms)

    r = VirtualRunner()
    r.add(Boom(), 0, lambda svc, e: errs.append((svc.name, str(e), r.now_ms)))
    r.run_until(1000)
    assert log == [0, 100] and errs == [("boom", "x", 200)]
