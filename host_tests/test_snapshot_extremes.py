"""defs.snapshot: Snapshot.extremes() (min/max in C, then the first index)
finds what the full loops over the read found before it (the first on a tie),
for random cells and temperatures with many ties: the lowest and highest cell
and cell NTC, their values and indexes."""
from hypothesis import given, settings, strategies as stt

from defs.snapshot import Snapshot, N_CELLS, N_CELL_TEMPS, N_TEMPS


def _loop_extremes(a, n):
    """The full evaluation: the first lowest and the first highest of a[:n]."""
    lo = hi = 0
    for i in range(1, n):
        if a[i] < a[lo]:
            lo = i
        if a[i] > a[hi]:
            hi = i
    return lo, hi


@settings(max_examples=400, deadline=None)
@given(stt.lists(stt.integers(2500, 2510) | stt.integers(0, 0xFFFF), min_size=N_CELLS, max_size=N_CELLS),
       stt.lists(stt.integers(-3, 3) | stt.integers(-32768, 32767), min_size=N_TEMPS, max_size=N_TEMPS))
def test_extremes_match_the_loops(cells, temps):
    s = Snapshot()
    for i, x in enumerate(cells):
        s.cell_mv[i] = x
    for i, x in enumerate(temps):
        s.temp_dc[i] = x
    s.extremes()
    lo, hi = _loop_extremes(s.cell_mv, N_CELLS)
    assert (s.min_cell, s.max_cell, s.min_cell_mv, s.max_cell_mv) == (lo, hi, cells[lo], cells[hi])
    lo, hi = _loop_extremes(s.temp_dc, N_CELL_TEMPS)  # the MOSFET and board NTCs are no cell's
    assert (s.min_temp, s.max_temp, s.min_temp_dc, s.max_temp_dc) == (lo, hi, temps[lo], temps[hi])
