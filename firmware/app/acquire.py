# Owns the acquire stage: AFE -> the pack state's snapshot, with the time of
# the read, the measured interval since the previous good read, the
# lowest/highest cell and cell NTC (found once per read: Snapshot.extremes),
# and the calibration applied (issue 13): the voltages and the current times
# their gains (parameters cal_v_gain_ppm, cal_i_gain_ppm), then the current
# less the sensor offset (PackState i_offset_ma, the estimator's):
# snap.current_ma is what every stage reports and protects on;
# snap.current_raw_ma (gain applied, offset not) is what the estimator learns
# the offset from.
from defs.const import const
from defs.ticks import ticks_diff
from bms import params as P
from bms.soc import gained

# the largest small int on a 32-bit board (2**30 - 1): counters stop or wrap
# there so the heap-locked cycle never makes a big int
SMALL_MAX = const(0x3FFFFFFF)
_UNITY_PPM = const(1000000)


class Acquire:
    def __init__(self, afe, state, ticks_us, params):
        self.afe = afe
        self.state = state
        self.ticks_us = ticks_us
        self.v = params.v

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
        self._calibrate(snap)
        snap.extremes()
        snap.dt_ms = ticks_diff(now_ms, snap.t_ms) if snap.reads else 0
        snap.t_ms = now_ms
        snap.ok = True
        # wraps to 1, not 0: 0 means "no good read yet"; consumers only compare it
        snap.reads = snap.reads + 1 if snap.reads < SMALL_MAX else 1
        st.afe_errors = 0

    def _calibrate(self, snap):
        v = self.v
        d = v[P.CAL_V_GAIN_PPM] - _UNITY_PPM
        if d:
            cells = snap.cell_mv
            for c in range(len(cells)):
                x = gained(cells[c], d)
                cells[c] = x if x < 0xFFFF else 0xFFFF  # a 0xFFFF bad transfer stays one
            snap.stack_mv = gained(snap.stack_mv, d)
            snap.pack_mv = gained(snap.pack_mv, d)
        d = v[P.CAL_I_GAIN_PPM] - _UNITY_PPM
        i = gained(snap.current_ma, d) if d else snap.current_ma
        snap.current_raw_ma = i
        snap.current_ma = i - self.state.i_offset_ma
