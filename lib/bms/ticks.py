# Owns time arithmetic on wrapping millisecond ticks. The firmware's now_ms is
# MicroPython's ticks_ms(): it wraps at 2**30 so it stays a small int on the
# board. Pure: this module never reads a clock.
TICKS_PERIOD = 1 << 30
TICKS_MASK = TICKS_PERIOD - 1
_HALF = TICKS_PERIOD >> 1


def ticks_add(t_ms, delta_ms):
    return (t_ms + delta_ms) & TICKS_MASK


def ticks_diff(a_ms, b_ms):
    """Signed a - b, correct across the wrap for |a - b| < 2**29 ms (6.2 days)."""
    return ((a_ms - b_ms + _HALF) & TICKS_MASK) - _HALF
