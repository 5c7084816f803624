"""The board runner (asyncio): one task per service paced by its period, and
a service failure puts the pack in its safe state and stops the loop."""
import asyncio

from app.runner import Runner


class FakeClock:
    """ticks in ms; sleeping advances virtual time, so the test is instant."""

    def __init__(self):
        self.t = 0
        self.wakes = []

    def ticks_ms(self):
        return self.t

    @staticmethod
    def ticks_add(a, b):
        return a + b

    @staticmethod
    def ticks_diff(a, b):
        return a - b

    async def sleep_ms(self, ms):
        # every other task is asleep or about to sleep when this one runs, so
        # the earliest wake-up is the next instant anything happens
        wake = self.t + ms
        self.wakes.append(wake)
        while self.t < wake:
            await asyncio.sleep(0)
            self.t = max(self.t, min(self.wakes))
        self.wakes.remove(wake)


class Svc:
    def __init__(self, name, period_ms, log, fail_at=None):
        self.name, self.period_ms, self.log, self.fail_at = name, period_ms, log, fail_at

    def tick(self, now_ms):
        if self.fail_at is not None and now_ms >= self.fail_at:
            raise ValueError("sensor table corrupt")
        self.log.append((self.name, now_ms))


class FakeApp:
    def __init__(self, services):
        self.services = services
        self.safe = []

    def safe_state(self, reason):
        self.safe.append(reason)


def test_failure_makes_pack_safe_and_stops():
    log = []
    app = FakeApp([Svc("cycle", 100, log), Svc("indicate", 50, log, fail_at=300)])
    where, exc = asyncio.run(Runner(app, FakeClock()).run())
    assert where == "indicate" and isinstance(exc, ValueError)
    assert app.safe == ["indicate"]
    cycle_ticks = [t for n, t in log if n == "cycle"]
    indicate_ticks = [t for n, t in log if n == "indicate"]
    assert indicate_ticks == [0, 50, 100, 150, 200, 250]
    assert cycle_ticks[:3] == [0, 100, 200]


def test_no_service_ticks_after_the_failure_has_made_the_pack_safe():
    # a service due in the same instant as the failing one (here: control after
    # the cycle) must not run a tick once the safe state is in: it would act on
    # the pack again (control closing the FETs the safe state opened)
    events = []

    class App(FakeApp):
        def safe_state(self, reason):
            events.append(("SAFE", reason))

    log = events
    app = App([Svc("cycle", 100, log, fail_at=300), Svc("control", 100, log), Svc("link", 50, log)])
    where, _ = asyncio.run(Runner(app, FakeClock()).run())
    assert where == "cycle"
    i = events.index(("SAFE", "cycle"))
    assert events[i + 1:] == []
    assert ("control", 200) in events[:i]
