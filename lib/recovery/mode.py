# Owns the start's choice between the firmware and the forced-update /
# recovery mode (issue 15; the mode itself is recovery.serve): imported at
# every boot by the ROMFS install's main.py stub (tools/deploy.MAIN_STUB) and
# by firmware/main.py, so it holds only that choice and all_fets_off (both
# use it); recovery.serve is imported only when recovery runs. Recovery runs
# when the boot part found no valid image slot (update.boot.RUNNING is
# update.slots.RECOVERY) or the forced-update jumper is fitted and the button
# held at boot.

JUMPER_AND_BUTTON = "the forced-update jumper fitted and the button held at boot"
NO_SLOT = "no valid image slot"


def all_fets_off(afe):
    """Every FET off, by each means the AFE has; True when one of them
    worked; never raises."""
    ok = False
    for off in (getattr(afe, "all_fets_off", None), lambda: afe.set_fets(False, False, False)):
        if off is not None:
            try:
                off()
                ok = True
            except Exception as e:  # noqa: try the next way
                print("bms: FETs off failed:", e)
    return ok


def forced(mod, machine):
    """The forced-update jumper fitted and the button held (both pulled up:
    0), read from board module mod's pins (PINS "jumper", "button"); False on
    a board without them."""
    pins = getattr(mod, "PINS", None)
    if pins is None or "jumper" not in pins or "button" not in pins:
        return False
    Pin = machine.Pin
    return Pin(pins["jumper"], Pin.IN, Pin.PULL_UP).value() == 0 and Pin(pins["button"], Pin.IN, Pin.PULL_UP).value() == 0


def board_module():
    """The frozen copy of the board module (tools/frozen.py), else the
    deployed one (a .mpy install: the same files the firmware runs)."""
    try:
        from recovery import board
    except ImportError:
        import board
    return board


def main(run_firmware, running=None):
    """The firmware's start (main.py, the ROMFS main stub): recovery when the
    boot part chose it or the jumper and the button are held, else
    run_firmware(). running: update.boot.RUNNING (default: the boot part's)."""
    if running is None:
        from update import boot
        running = boot.RUNNING
    from update import slots
    reason = NO_SLOT if running == slots.RECOVERY else None
    mod = None
    if reason is None:
        try:
            import machine
            mod = board_module()
            reason = JUMPER_AND_BUTTON if forced(mod, machine) else None
        except Exception as e:  # noqa: no board module: the firmware's start says what failed
            print("bms: recovery check:", e)
    if reason is None:
        return run_firmware()
    from recovery.serve import run
    return run(reason, mod)
