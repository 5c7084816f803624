# Builds the board (the deployed /board module: build() returns an object
# with afe, leds and ticks_us) and runs the pack's services until one fails.
# A failure leaves the pack in its safe state (FETs open, ALM on) and the
# board at the REPL: the watchdog or the reset button restarts it.
import asyncio
import sys

import board
from app.app import App
from app.runner import Runner


def _store():
    """The pack's storage on the board's filesystem (/data); None (the pack
    runs without it) if the filesystem itself fails."""
    try:
        from store.fs import OsFs
        from store.store import Store
        return Store(OsFs("/data"))
    except Exception as e:  # noqa: never keep the pack from running
        print("bms: no storage:", e)
        return None


def main():
    from bms.clock import Clock, TimeRtc
    try:
        clock = Clock(TimeRtc())
    except Exception:  # noqa: a port without machine.RTC / gmtime
        clock = Clock()
    app = App(board.build(), store=_store(), clock=clock)
    failed = asyncio.run(Runner(app).run())
    if failed:
        print("bms: stopped in safe state after a failure in", failed[0])
        sys.print_exception(failed[1])


if __name__ == "__main__":
    main()
