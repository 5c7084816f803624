# Owns the measurement snapshot: one preallocated record of everything the AFE
# reports in a cycle. The acquire service writes it (protect adds its
# plausibility verdict, `plausible`); every other service reads it. Allocated
# once, refilled in place each cycle.
from defs.const import const
from array import array

N_CELLS = const(16)
# Temperature channels, in this order everywhere (trace, link, inverter):
# four cell NTCs, two MOSFET NTCs, one board/ambient NTC (SPEC 1).
T_CELL0 = const(0)
N_CELL_TEMPS = const(4)
T_MOS0 = const(4)
T_MOS1 = const(5)
T_AMB = const(6)
N_TEMPS = const(7)


class Snapshot:
    def __init__(self):
        self.cell_mv = array("H", [0] * N_CELLS)
        self.temp_dc = array("h", [0] * N_TEMPS)
        self.stack_mv = 0
        self.pack_mv = 0  # voltage on P+/P- (charger or inverter side of the FETs)
        self.current_ma = 0  # + = charge; after acquire: calibrated (gain, less the offset)
        self.current_raw_ma = 0  # acquire: the current with its gain, before the offset
        self.t_ms = 0  # tick of the read that filled this record
        self.dt_ms = 0  # measured time since the previous good read
        self.ok = False  # False when the last read failed (values are stale)
        self.reads = 0  # good reads since start
        # the lowest and highest cell and cell NTC of this read (acquire computes
        # them once: extremes())
        self.min_cell_mv = 0
        self.max_cell_mv = 0
        self.min_cell = 0  # index
        self.max_cell = 0
        self.min_temp_dc = 0
        self.max_temp_dc = 0
        self.min_temp = 0  # index, T_CELL0 .. N_CELL_TEMPS - 1
        self.max_temp = 0
        # protect: False when this read's voltages fail plausibility (a cell outside
        # cell_phys_*, or the cells' sum off the stack by more than stack_sum_tol_mv,
        # e.g. 0xFFFF from a bad transfer): no calibration and no alert release from it
        self.plausible = True

    def extremes(self):
        """Find the lowest and highest cell and cell NTC (the first on a tie):
        min/max run in C, only the index is looked for in Python."""
        cells = self.cell_mv
        lo = min(cells)
        hi = max(cells)
        self.min_cell_mv = lo
        self.max_cell_mv = hi
        self.min_cell = _first(cells, lo)
        self.max_cell = _first(cells, hi)
        t = self.temp_dc
        lo = min(t[0], t[1], t[2], t[3])  # the N_CELL_TEMPS cell NTCs
        hi = max(t[0], t[1], t[2], t[3])
        self.min_temp_dc = lo
        self.max_temp_dc = hi
        self.min_temp = _first(t, lo)
        self.max_temp = _first(t, hi)


def _first(a, x):
    """The index of the first x in a (x is in it)."""
    i = 0
    while a[i] != x:
        i += 1
    return i
