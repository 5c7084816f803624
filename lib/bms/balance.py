# Owns the passive balancing decision (SPEC 9, `000` 3.2; issue 4): which cells
# to bleed, as a bit mask (bit c = cell c), from the measured cells.
#  - Only while charging or at rest (never while discharging), with good
#    readings and no fault, awake, and bal_cells_count > 0 (0 = off).
#  - Voltage rule (top balancing): cells at or above bal_min_cell_mv (the knee;
#    on the LiFePO4 plateau a few mV say nothing about SOC) start when
#    bal_start_mv or more above the lowest cell, stop at bal_stop_mv or less.
#  - Charge rule (bal_bleed_ma > 0): each cell's excess charge over the lowest
#    cell (`owed`, mAs) is MEASURED at the top of charge, where the curve is steep
#    (highest cell >= bal_min_cell_mv, current 0..bal_meas_max_ma: at rest or the
#    tail of the charge; rated capacity x (SOC from OCV of the cell - the pack's
#    mean), one sample every SAMPLE_MS, running mean; then taken over the
#    lowest cell's), PREDICTED in between
#    (minus bal_bleed_ma x the time the cell was bled, plus its learned drift),
#    and bled down to 0 also on the plateau and at rest (cells at or above
#    bal_q_min_cell_mv), starting at bal_q_start_mah. The drift is the
#    self-discharge difference that reopens the spread on days that never reach
#    the top: at the end of each top (the measurement stops) the prediction
#    error of every cell over the time since the previous top
#    (>= LEARN_MIN_S) corrects its drift rate (uA; the common part is removed:
#    the lowest rate is 0), and the measurement replaces the prediction.
#  - At most bal_cells_count cells at once: cells already bled keep their place
#    (no chatter from noise), then the cell that owes most, then the highest;
#    bled cells at least bal_min_gap_count apart (2 = never two adjacent cells:
#    the BQ76952 rule for host-controlled balancing; the bleed current of
#    adjacent cells would share a sense line and distort both readings).
#  - Paused while any cell NTC or the board NTC is at or above bal_max_dc,
#    resumed at bal_max_rel_dc (the prediction and the drift keep counting).
# Pure and allocation-free: the mask is an int below 2**16, the per-cell state
# is in arrays made once, every intermediate stays a small int (< 2**30).
from defs.const import const
from array import array

from bms import params as P
from bms.ocv import soc_ppm_from_ocv
from defs.snapshot import N_CELLS, T_AMB

SAMPLE_MS = const(10000)  # one excess measurement per 10 s at the top
N_AVG = const(128)  # the mean of the samples becomes a running mean of the last ~128 (21 min)
N_MIN = const(8)  # a top with fewer samples (80 s) corrects nothing
LEARN_MIN_S = const(4 * 3600)  # tops closer than this teach no drift rate
DIFF_MAX_PPM = const(20000)  # excess clamped at 2 % of capacity (2 Ah: 40 h of bleed)
RATE_MAX_UA = const(15000)  # drift clamped at 15 mA (360 mAh/day: a cell to replace)
OWED_MAX_MAS = const(100000000)  # |owed| clamped at ~28 Ah
INNO_MAX_MAS = const(1000000)  # a correction teaches at most 278 mAh of drift
CHUNK_MS = const(60000)  # long intervals in 1 min steps: rate x ms stays a small int


class Balancer:
    def __init__(self, v):
        self.v = v
        self.mask = 0
        self.hot = False
        n = N_CELLS
        self.owed = array("i", [0] * n)  # mAs the cell holds above the lowest (prediction)
        self.rate = array("i", [0] * n)  # uA of learned drift relative to the lowest
        self.inno = array("i", [0] * n)  # mAs: mean of measured - predicted in this top
        # scratch, never read across calls: update's what a candidate owes over
        # the lowest (owed + inno), written before it is read; _sample's SOC
        # from OCV of each cell (ppm), which runs in update before eff is written
        self.eff = array("i", [0] * n)
        self._acc = array("i", [0] * n)  # nAs of drift not yet a whole mAs
        self._bl = array("i", [0] * n)  # mA*ms of bleed not yet a whole mAs
        self.n_meas = 0  # samples in the present top (0 = not at the top)
        self.t_s = 0  # seconds of measured time since start
        self._t_ms = 0
        self._samp_ms = 0
        self._drift_ms = 0  # time whose drift is not yet added
        self.fix_s = -1  # when the last top ended (-1: none yet, no drift learned)
        self.learned = 0  # drift corrections made

    def stop(self):
        """The stage forced the switches off (asleep, fault, failed read)."""
        self.mask = 0

    def _advance(self, dt_ms, n):
        """dt_ms passed with self.mask bled: the bled cells' predicted excess
        falls by the bleed; the drift is added every SAMPLE_MS (cheap cycles)."""
        t = self._t_ms + dt_ms
        self.t_s += t // 1000
        self._t_ms = t % 1000
        owed = self.owed
        mask = self.mask
        if mask:
            bleed = self.v[P.BAL_BLEED_MA]
            bl = self._bl
            for c in range(n):
                if mask >> c & 1:
                    left = dt_ms
                    while left > 0:
                        d = left if left < CHUNK_MS else CHUNK_MS
                        left -= d
                        b = bl[c] + bleed * d
                        owed[c] -= b // 1000
                        bl[c] = b % 1000
        t = self._drift_ms + dt_ms
        if t < SAMPLE_MS:
            self._drift_ms = t
            return
        self._drift_ms = 0
        rate = self.rate
        acc = self._acc
        for c in range(n):
            left = t
            o = owed[c]
            while left > 0:
                d = left if left < CHUNK_MS else CHUNK_MS
                left -= d
                a = acc[c] + rate[c] * d
                o += a // 1000000
                acc[c] = a % 1000000
            if o > OWED_MAX_MAS:
                o = OWED_MAX_MAS
            elif o < -OWED_MAX_MAS:
                o = -OWED_MAX_MAS
            owed[c] = o

    def _sample(self, cells, n):
        """One measurement of every cell's charge against the pack's mean
        (SOC from OCV x rated capacity), folded into the running mean of the
        difference from the prediction. Against the mean, not the lowest
        reading: the lowest of 16 noisy readings is biased low (~1.8 sigma, ~10
        mAh at the top), and that bias would make every cell owe and bleed."""
        cap10 = self.v[P.RATED_CAPACITY_MAH] // 10
        s = self.eff
        tot = 0
        for c in range(n):
            x = soc_ppm_from_ocv(cells[c])
            s[c] = x
            tot += x
        mean = tot // n
        k = self.n_meas + 1
        if k > N_AVG:
            k = N_AVG
        owed = self.owed
        inno = self.inno
        for c in range(n):
            d = s[c] - mean
            if d > DIFF_MAX_PPM:
                d = DIFF_MAX_PPM
            elif d < -DIFF_MAX_PPM:
                d = -DIFF_MAX_PPM
            x = d * cap10 // 1000 * 36 - owed[c]  # 10 uAh = 36 mAs
            if k == 1:
                inno[c] = x
            else:
                inno[c] += (x - inno[c]) // k
        self.n_meas += 1

    def _close(self, n):
        """The top ended: the measurement replaces the prediction and, with a
        previous top far enough back, corrects the drift rates."""
        owed = self.owed
        inno = self.inno
        rate = self.rate
        if self.n_meas >= N_MIN:
            gap = self.t_s - self.fix_s
            learn = self.fix_s >= 0 and gap >= LEARN_MIN_S
            lo = RATE_MAX_UA
            lo_o = OWED_MAX_MAS
            for c in range(n):
                x = inno[c]
                o = owed[c] + x
                owed[c] = o
                if o < lo_o:
                    lo_o = o
                if learn:
                    if x > INNO_MAX_MAS:
                        x = INNO_MAX_MAS
                    elif x < -INNO_MAX_MAS:
                        x = -INNO_MAX_MAS
                    r = rate[c] + x * 1000 // gap
                    rate[c] = r
                    if r < lo:
                        lo = r
            for c in range(n):
                owed[c] -= lo_o  # the lowest cell owes 0
            if learn:
                for c in range(n):
                    r = rate[c] - lo
                    rate[c] = RATE_MAX_UA if r > RATE_MAX_UA else r
                self.learned += 1
            self.fix_s = self.t_s
        self.n_meas = 0
        for c in range(n):
            inno[c] = 0

    def update(self, cells, temps, current_ma, allowed, dt_ms=0):
        """The new mask; allowed = awake, good read, no fault; dt_ms = time
        since the previous reading (the last mask was on for it)."""
        v = self.v
        n = len(cells)
        self._advance(dt_ms, n)
        limit = v[P.BAL_CELLS_COUNT]
        t = max(temps[T_AMB], temps[0], temps[1], temps[2], temps[3])  # the board's and the N_CELL_TEMPS cell NTCs
        if t >= v[P.BAL_MAX_DC]:
            self.hot = True
        elif t <= v[P.BAL_MAX_REL_DC]:
            self.hot = False
        vmin = min(cells)
        vmax = max(cells)
        floor = v[P.BAL_MIN_CELL_MV]
        by_q = v[P.BAL_BLEED_MA] > 0
        if by_q:
            if allowed and 0 <= current_ma <= v[P.BAL_MEAS_MAX_MA] and vmax >= floor:
                self._samp_ms += dt_ms
                if self.n_meas == 0 or self._samp_ms >= SAMPLE_MS:
                    self._samp_ms = 0
                    self._sample(cells, n)
            elif self.n_meas:
                self._close(n)
        if not allowed or limit <= 0 or current_ma < 0 or self.hot:
            self.mask = 0
            return 0
        start = v[P.BAL_START_MV]
        stop = v[P.BAL_STOP_MV]
        prev = self.mask
        cand = 0
        eff = self.eff
        spread = vmax - vmin
        # the loops only run when the extremes allow a candidate at all
        if vmax >= floor and (spread >= start or (prev and spread > stop)):
            for c in range(n):
                d = cells[c] - vmin
                if cells[c] >= floor and (d >= start or (prev >> c & 1 and d > stop)):
                    cand |= 1 << c
        if by_q:
            q_start = v[P.BAL_Q_START_MAH] * 3600
            q_floor = v[P.BAL_Q_MIN_CELL_MV]
            e = self.owed
            if self.n_meas:
                inno = self.inno
                for c in range(n):
                    eff[c] = e[c] + inno[c]
                e = eff
            lo = min(OWED_MAX_MAS, min(e))
            hi = max(e) - lo
            if cand or (vmax >= q_floor and (hi >= q_start or (prev and hi > 0))):
                for c in range(n):
                    x = e[c] - lo  # over the lowest cell
                    eff[c] = x
                    if cells[c] >= q_floor and (x >= q_start or (prev >> c & 1 and x > 0)):
                        cand |= 1 << c
        elif cand:
            for c in range(n):
                eff[c] = 0
        if not cand:
            self.mask = 0
            return 0
        gap = v[P.BAL_MIN_GAP_COUNT]
        mask = 0
        count = 0
        while count < limit and cand:
            best = -1
            for c in range(n):
                if cand >> c & 1:
                    if best < 0:
                        best = c
                    else:
                        was = prev >> c & 1
                        was_best = prev >> best & 1
                        if was > was_best or (was == was_best and (
                                eff[c] > eff[best] or (eff[c] == eff[best] and cells[c] > cells[best]))):
                            best = c
            cand &= ~(1 << best)
            near = False
            for k in range(1, gap):
                if (mask >> (best + k) & 1) or (best >= k and mask >> (best - k) & 1):
                    near = True
            if not near:
                mask |= 1 << best
                count += 1
        self.mask = mask
        return mask
