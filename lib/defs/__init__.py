# The shared definitions (every other folder may import them); the package
# owns transient() and drop(): a module that runs only at start or rarely (the
# event history's scan at mount, a driver's set-up, the parameter rows, the
# boot's composition) used without staying in RAM (issue 12): taken off
# sys.modules and its package, so its code is garbage as soon as the caller
# lets the module go (from .mpy its bytecode sits on the heap only while it is
# held). drivers.once and bms.params.rows build on them.
import sys


def transient(name):
    """Module `name` (dotted) for the caller alone: imported again at every
    call, so hold it for one operation; nothing may keep a function of it."""
    mod = __import__(name, None, None, ("_",))
    drop(name)
    return mod


def drop(name):
    """Module `name` off sys.modules and off its package (the import set it
    there too): once nothing else refers to it, its code is garbage."""
    sys.modules.pop(name, None)
    pkg, _, leaf = name.rpartition(".")
    p = sys.modules.get(pkg)
    if p is not None and hasattr(p, leaf):
        delattr(p, leaf)
