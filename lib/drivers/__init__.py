# The drivers package; owns once(): the set-up code of a driver (building it,
# bit timing, filters, the chip's configuration) lives in a module of its own
# that is imported for the call and dropped after it (defs.drop), so its
# bytecode is on the heap (.mpy store) only while it runs (README "RAM and CPU
# on the board"); boards/bq_build.py drops itself the same way.
import sys

from defs import drop


def once(name, fn, *args):
    """fn(*args) of drivers.<name>, imported for this call and dropped after
    it unless it was imported already (a set-up call inside another one
    keeps it for the outer call). Nothing may keep a function of it."""
    full = "drivers." + name
    held = full in sys.modules
    mod = __import__(full, None, None, (fn,))
    try:
        return getattr(mod, fn)(*args)
    finally:
        if not held:
            drop(full)

