# Owns the one CPython stand-in for MicroPython's const(): the board's
# compiler folds `NAME = const(N)` by the name alone, so modules take
# `from defs.const import const` (micropython.const on the board, an identity
# function on CPython, where the host tests run the same modules).
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[misc]
        return x
