# Owns the acquire stage: AFE -> the pack state's snapshot, with the time of
# the read, the measured interval since the previous good read and the
# lowest/highest cell.
from defs.const import const
from defs.ticks import ticks_diff

# the largest small int on a 32-bit board (2**30 - 1): counters stop or wrap
# there so the heap-locked cycle never makes a big int
SMALL_MAX = const(0x3FFFFFFF)


class Acquire:
    def __init__(self, afe, state, ticks_us):
        self.afe = afe
        self.state = state
        self.ticks_us = ticks_us

    def tick(self, now_ms):
        st = self.state
        snap = st.snap
        t0 = self.ticks_us()
        ok = self.afe.read(snap)
        st.acquire_us = ticks_diff(self.ticks_us(), t0)
        if not ok:
            snap.ok = False
            if st.afe_errors < SMALL_MAX:
                st.afe_errors += 1
            return
        cells = snap.cell_mv
        lo = hi = 0
        for c in range(1, len(cells)):
            if cells[c] < cells[lo]:
                lo = c
            elif cells[c] > cells[hi]:
                hi = c
        snap.min_cell = lo
        snap.max_cell = hi
        snap.min_cell_mv = cells[lo]
        snap.max_cell_mv = cells[hi]
        snap.dt_ms = ticks_diff(now_ms, snap.t_ms) if snap.reads else 0
        snap.t_ms = now_ms
        snap.ok = True
        # wraps to 1, not 0: 0 means "no good read yet"; consumers only compare it
        snap.reads = snap.reads + 1 if snap.reads < SMALL_MAX else 1
        st.afe_errors = 0
