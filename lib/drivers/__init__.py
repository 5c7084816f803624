# The drivers package; owns once() and drop(): the set-up code of a driver
# (building it, bit timing, filters, the chip's configuration) lives in a
# module of its own that is imported for the call and dropped after it, so
# its bytecode is on the heap (.mpy store) only while it runs (README "RAM and
# CPU on the board"); boards/bq_build.py drops itself the same way.
import sys


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


def drop(name):
    """Module `name` off sys.modules and off its package (the import set it
    there too): once nothing else refers to it, its code is garbage."""
    sys.modules.pop(name, None)
    pkg, _, leaf = name.rpartition(".")
    p = sys.modules.get(pkg)
    if p is not None and hasattr(p, leaf):
        delattr(p, leaf)
