# Owns the protection event ring: every raise and clear of an alarm,
# protection or fault (written by bms.protect), kept in preallocated arrays
# until persist (the event history) and the PC tool have read it.
from array import array

from defs.const import const
from defs import codes

# Events.what[i]: kind << KIND_SHIFT | RAISED (a raise, not a clear) | code
# (the bit index in the kind's table: every table is shorter than CODE_MASK + 1)
KIND_SHIFT = const(6)
RAISED = const(32)
CODE_MASK = const(31)


class Events:
    """Bounded ring of protection events in preallocated arrays. Every event
    has a sequence number (0, 1, 2, ...); the ring holds the last `size`; an
    event recorded into a full ring drops the oldest (counted in dropped).
    Readers remember the next sequence number they want and call get()."""

    def __init__(self, size=64):
        self.size = size
        self.what = bytearray(size)  # codes.KIND_*, raised, code (above)
        self.t_ms = array("i", [0] * size)
        self.value = array("i", [0] * size)  # the measurement that caused it
        self.next_seq = 0  # sequence number the next event gets
        self.dropped = 0

    def record(self, kind, code, raised, t_ms, value):
        n = self.next_seq
        i = n % self.size
        if n >= self.size:
            self.dropped += 1
        self.what[i] = kind << KIND_SHIFT | (RAISED if raised else 0) | code
        self.t_ms[i] = t_ms
        self.value[i] = value
        self.next_seq = n + 1

    def first_seq(self):
        """Oldest sequence number still held."""
        n = self.next_seq - self.size
        return n if n > 0 else 0

    def slot(self, seq):
        """Array index of event seq, or -1 when it is not (or no longer) held."""
        if seq < self.first_seq() or seq >= self.next_seq:
            return -1
        return seq % self.size

    def get(self, seq):
        """(kind, code, raised, t_ms, value) of event seq, or None (allocates:
        for readers outside the control step)."""
        i = self.slot(seq)
        if i < 0:
            return None
        w = self.what[i]
        return (w >> KIND_SHIFT, w & CODE_MASK, w & RAISED != 0, self.t_ms[i], self.value[i])

    def describe(self, seq):
        """Host-side: 'raise COVP 3700 @ 1200 ms' style text of event seq."""
        e = self.get(seq)
        if e is None:
            return None
        table = (codes.ALARMS, codes.PROTECTIONS, codes.FAULTS)[e[0]]
        return "%s %s %s %d @ %d ms" % ("raise" if e[2] else "clear", codes.KIND_NAMES[e[0]],
                                        table[e[1]], e[4], e[3])
