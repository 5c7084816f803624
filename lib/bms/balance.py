# Owns the passive balancing decision (SPEC 9, `000` 3.2; issue 4): which cells
# to bleed, as a bit mask (bit c = cell c), from the measured cells.
#  - Only while charging or at rest (never while discharging), with good
#    readings and no fault, awake, and bal_cells_count > 0 (0 = off).
#  - Only cells at or above bal_min_cell_mv: on the LiFePO4 plateau a few mV
#    say nothing about SOC, on the knee they do (top balancing).
#  - A cell starts when it is bal_start_mv or more above the lowest cell and
#    stops at bal_stop_mv or less (hysteresis).
#  - At most bal_cells_count cells at once: cells already bled keep their place
#    (no chatter from noise), then the highest; bled cells at least
#    bal_min_gap_count apart (2 = never two adjacent cells: the BQ76952 rule for
#    host-controlled balancing; the bleed current of adjacent cells would share
#    a sense line and distort both readings).
#  - Paused while any cell NTC or the board NTC is at or above bal_max_dc,
#    resumed at bal_max_rel_dc.
# Pure and allocation-free: the mask is an int below 2**16.
from bms import params as P
from bms.snapshot import N_CELL_TEMPS, T_AMB


class Balancer:
    def __init__(self, v):
        self.v = v
        self.mask = 0
        self.hot = False

    def update(self, cells, temps, current_ma, allowed):
        """The new mask; allowed = awake, good read, no fault."""
        v = self.v
        limit = v[P.BAL_CELLS_COUNT]
        t = temps[T_AMB]
        for k in range(N_CELL_TEMPS):
            if temps[k] > t:
                t = temps[k]
        if t >= v[P.BAL_MAX_DC]:
            self.hot = True
        elif t <= v[P.BAL_MAX_REL_DC]:
            self.hot = False
        if not allowed or limit <= 0 or current_ma < 0 or self.hot:
            self.mask = 0
            return 0
        n = len(cells)
        vmin = cells[0]
        for c in range(1, n):
            if cells[c] < vmin:
                vmin = cells[c]
        start = v[P.BAL_START_MV]
        stop = v[P.BAL_STOP_MV]
        floor = v[P.BAL_MIN_CELL_MV]
        prev = self.mask
        cand = 0
        for c in range(n):
            d = cells[c] - vmin
            if cells[c] >= floor and (d >= start or (prev >> c & 1 and d > stop)):
                cand |= 1 << c
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
                        if was > was_best or (was == was_best and cells[c] > cells[best]):
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
