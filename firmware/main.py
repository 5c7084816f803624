# Builds the board (the deployed /board module: build() returns an object
# with afe, leds, ticks_us, services; optionally buzzer, button, contacts,
# jumper, make_wdt), has app.compose build the pack's firmware on it, and runs
# the services until one fails.
#
# Watchdog: on a board with make_wdt() (the real boards) every service runs
# wrapped (drivers.watchdog.watch, handed to app.compose from here: app may not
# import drivers) and a supervisor service feeds machine.WDT
# every WD_PERIOD_MS only while each service has ticked within twice its
# period (plus one watchdog period): a hung service or a stuck loop resets the
# board.
#
# Sleep: on a board with deep_sleep(ms) the MCU sleeps while the pack does
# (app.sleeper); a wake is a reset on the ESP32.
#
# Failure: a service that raises leaves the pack in its safe state (FETs and
# pre-charge open, ALM on) and stops the loop; the WDT, no longer fed, then
# resets the board. If the board or the firmware cannot start at all (e.g. the
# BQ76952 does not answer) the FETs are commanded off (ALL_FETS_OFF, through a
# board built without configuring the AFE when the full build failed); after
# RETRY_S the board resets and tries again; Ctrl-C in that time leaves you at
# the REPL. Starts that keep failing are caught by the boot-loop guard
# (app.app: held safe until the button).
#
# Forced-update jumper fitted at boot: maintenance mode (app.compose, which says
# so: both FETs held open, RUN and ALM blinking together, commissioning with the
# button held; no MCU sleep). Jumper fitted and the button held at boot, or no valid image
# slot (update.boot): the forced-update / recovery mode (recovery.mode chooses
# it, recovery.serve runs it; frozen into the custom firmware): FETs off, RUN
# and ALM blinking, the UDS update session; the firmware does not start. The
# ROMFS install's main.py stub makes the same choice before it imports this
# module (tools/deploy.MAIN_STUB).
import asyncio
import sys

from recovery.mode import all_fets_off

WD_PERIOD_MS = 1000
RETRY_S = 30


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


def _clock():
    from bms.clock import Clock
    from drivers.rtc import TimeRtc
    try:
        return Clock(TimeRtc())
    except Exception:  # noqa: a port without machine.RTC / gmtime
        return Clock()


def start(b, store=None, clock=None, wd_period_ms=WD_PERIOD_MS):
    """(app, supervisor or None): the firmware on board b (app.compose), its
    services wrapped for the watchdog when the board has one (the WDT starts
    once they are built). app.compose is set-up code: dropped once it has
    run (what the pack runs holds nothing of it)."""
    from app.compose import start as compose
    from defs import drop
    make_wdt = getattr(b, "make_wdt", None)
    try:
        return compose(b, store, clock, None if make_wdt is None else _watcher(make_wdt, wd_period_ms))
    finally:
        drop("app.compose")


def _watcher(make_wdt, period_ms):
    """services -> (watched services, supervisor): the board's watchdog
    (drivers.watchdog) around them; machine.WDT starts when it is called."""
    def watch(services):
        from defs.ticks import ticks_diff
        from drivers.watchdog import Watchdog, watch as wrap
        return wrap(services, Watchdog(make_wdt(), period_ms), ticks_diff)
    return watch


def _retry_later():
    import time
    print("bms: restarting in %d s (Ctrl-C for the REPL)" % RETRY_S)
    time.sleep(RETRY_S)
    import machine
    machine.reset()


def _fets_off_after_failed_build(board):
    """The full build failed: build again without configuring the AFE (only
    the buses and chips) to command the FETs off."""
    try:
        b = board.build(configure=False)
    except Exception as e:  # noqa: a bench board (no configure) or no bus at all
        print("bms: no AFE to switch off:", e)
        return
    all_fets_off(b.afe)


def main():
    from app.runner import Runner
    try:
        import board
        b = board.build()
    except Exception as e:  # noqa: FETs off; try again later
        print("bms: board failed to start:")
        sys.print_exception(e)
        if "board" in sys.modules:
            _fets_off_after_failed_build(sys.modules["board"])
        _retry_later()
        return
    try:
        app, _ = start(b, store=_store(), clock=_clock())
    except Exception as e:  # noqa
        print("bms: firmware failed to start:")
        sys.print_exception(e)
        try:
            all_fets_off(b.afe)
        finally:
            _retry_later()
        return
    import machine
    app.restart = machine.reset  # the boot-loop guard's release (app.held.Held)
    failed = asyncio.run(Runner(app).run())
    if failed:
        print("bms: stopped in safe state after a failure in", failed[0])
        sys.print_exception(failed[1])


if __name__ == "__main__":
    from recovery.mode import main as start_or_recover
    start_or_recover(main)
