# Runs first at every start: reserves the buffer MicroPython needs to report
# an exception raised inside an interrupt handler, then the boot part
# (update.boot, frozen into the custom firmware) picks the image slot from the
# slot record in /data, saves it and mounts that slot at /rom before main.py
# imports the firmware from there. On a port without ROMFS it says so and
# does nothing. With no valid slot main.py (its stub) runs the frozen
# recovery mode (recovery.mode) instead of the firmware.
import micropython

micropython.alloc_emergency_exception_buf(100)


def slots():
    import sys
    import vfs
    from store.fs import OsFs
    from store.slotstore import SlotStore
    from update import boot
    try:
        return boot.start(vfs, lambda: SlotStore(OsFs("/data")), sys.path)
    except Exception as e:  # noqa: never keep main.py from running (it keeps the pack safe)
        print("boot: slot choice failed:")
        sys.print_exception(e)
        return None


slots()
