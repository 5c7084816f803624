# The shared definitions (every other folder may import them); the package
# owns transient(): a module that runs only at start or rarely (the event
# history's scan at mount, its reads) used without staying in RAM (issue 12):
# imported for the caller alone and taken off sys.modules and its package at
# once, so its code is garbage as soon as the caller lets the module go (from
# .mpy its bytecode sits on the heap only while it is held). drivers.once and
# bms.params.rows do the same in their layers.
import sys


def transient(name):
    """Module `name` (dotted) for the caller alone: imported again at every
    call, so hold it for one operation; nothing may keep a function of it."""
    mod = __import__(name, None, None, ("_",))
    sys.modules.pop(name, None)
    pkg, _, leaf = name.rpartition(".")
    p = sys.modules.get(pkg)
    if p is not None and hasattr(p, leaf):
        delattr(p, leaf)
    return mod
