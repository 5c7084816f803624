# Owns the board runner: one asyncio task per service, paced by ticks_ms and
# sleep_ms, and one global exception handler; a failure puts the pack in its
# safe state and stops the loop (app.supervise; the watchdog or main.py then
# resets the board).
import asyncio

from app.supervise import Failure

try:
    from time import ticks_ms, ticks_diff, ticks_add
except ImportError:  # CPython tests pass their own clock
    ticks_ms = ticks_diff = ticks_add = None


class Runner:
    def __init__(self, app, clock=None):
        self.app = app
        c = clock
        self.ticks_ms = c.ticks_ms if c else ticks_ms
        self.ticks_diff = c.ticks_diff if c else ticks_diff
        self.ticks_add = c.ticks_add if c else ticks_add
        self.sleep_ms = c.sleep_ms if c else asyncio.sleep_ms
        self._failure = None

    async def _task(self, svc):
        try:
            due = self.ticks_ms()
            failure = self._failure
            while failure.failed is None:  # after a failure no service ticks again: the
                # tasks ready before run() cancels them would undo the safe state (control
                # closing the FETs it opened)
                svc.tick(due)
                due = self.ticks_add(due, svc.period_ms)
                wait = self.ticks_diff(due, self.ticks_ms())
                if wait < 0:  # overran: skip the missed slots, do not burst
                    due = self.ticks_ms()
                    wait = 0
                await self.sleep_ms(wait)
        except Exception as e:  # noqa: any service failure makes the pack safe
            self._failure.fail(svc.name, e)

    def start(self, stop):
        """One task per service, queued (they run once the loop does); a
        failure calls stop(). Returns the tasks."""
        self._failure = Failure(self.app, stop)
        return [asyncio.create_task(self._task(s)) for s in self.app.services]

    async def run(self):
        """Run until a service fails; returns (service name, exception)."""
        stop = asyncio.Event()
        loop = asyncio.get_event_loop()
        loop.set_exception_handler(lambda lp, ctx: self._failure.fail("loop", ctx.get("exception")))
        tasks = self.start(stop.set)
        await stop.wait()
        for t in tasks:
            t.cancel()
        return self._failure.failed
