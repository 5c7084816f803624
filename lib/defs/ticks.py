# Owns time arithmetic on wrapping millisecond ticks. The firmware's now_ms is
# MicroPython's ticks_ms(): it wraps at 2**30 so it stays a small int on the
# board. No intermediate here leaves the small-int range (-2**30 .. 2**30-1 on
# 32-bit ports), so none of it allocates. Pure: never reads a clock.
TICKS_PERIOD = 1 << 30
TICKS_MASK = TICKS_PERIOD - 1
_HALF = TICKS_PERIOD >> 1


def ticks_add(t_ms, delta_ms):
    """t_ms + delta_ms on the wrapping clock (|delta_ms| < 2**29). TICKS_PERIOD
    itself is not a small int, so it never enters the arithmetic."""
    if delta_ms >= 0:
        u = (t_ms - TICKS_MASK) + (delta_ms - 1)  # t + delta - 2**30
        return u if u >= 0 else t_ms + delta_ms
    s = t_ms + delta_ms
    return s if s >= 0 else s + TICKS_MASK + 1


def ticks_diff(a_ms, b_ms):
    """Signed a - b, correct across the wrap for |a - b| < 2**29 ms (6.2 days)."""
    d = (a_ms - b_ms) & TICKS_MASK
    if d >= _HALF:
        d = d - TICKS_MASK - 1
    return d
