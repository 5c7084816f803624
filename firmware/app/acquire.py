# Owns the acquire stage: AFE -> the pack state's snapshot, with the time of
# the read and the measured interval since the previous good read.
from bms.ticks import ticks_diff


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
            st.afe_errors += 1
            return
        snap.dt_ms = ticks_diff(now_ms, snap.t_ms) if snap.reads else 0
        snap.t_ms = now_ms
        snap.ok = True
        snap.reads += 1
        st.afe_errors = 0
