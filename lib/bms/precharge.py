# Owns the pre-charge sequence (`000` 3.2, `004`: pre-charge failure is a
# fault): before the discharge FET closes onto the inverter's input
# capacitors, the pre-charge FET charges them through its resistor until the
# pack-side voltage is within a margin of the stack; if that takes longer than
# the timeout the pre-charge has failed. Pure: values in, state out.
from defs.const import const
from defs.ticks import ticks_diff

IDLE = const(0)
RUNNING = const(1)
DONE = const(2)
FAILED = const(3)


class Precharge:
    def __init__(self, margin_mv, timeout_ms):
        self.margin_mv = margin_mv
        self.timeout_ms = timeout_ms
        self.phase = IDLE
        self._start = 0

    def start(self, now_ms):
        self.phase = RUNNING
        self._start = now_ms

    def abort(self):
        self.phase = IDLE

    def step(self, now_ms, stack_mv, pack_mv):
        """While RUNNING: DONE once the pack side is close enough to the stack,
        FAILED after the timeout. Returns the phase."""
        if self.phase == RUNNING:
            if stack_mv - pack_mv <= self.margin_mv:
                self.phase = DONE
            elif ticks_diff(now_ms, self._start) >= self.timeout_ms:
                self.phase = FAILED
        return self.phase
