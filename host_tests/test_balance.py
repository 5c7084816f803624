"""Passive balancing (lib/bms/balance.py, firmware/app/balance.py, issue 4):
threshold with hysteresis, minimum cell voltage, cells at once, no adjacent
cells, temperature pause, not while discharging; the stage writes the AFE only
on a change; in the bench the trace shows the bled cells."""
import json

import simworld
from app.balance import Balance
from bms.balance import Balancer
from bms.params import Params
from bms.state import PackState
from sim import scenario as scn
from sim.mock_afe import FAULTS

T25 = [250] * 7


def bal(**over):
    p = Params()
    for k, v in over.items():
        p.set_by_name(k, v)
    return Balancer(p.v)


def cells_with(base=3450, **high):
    c = [base] * 16
    for k, v in high.items():
        c[int(k[1:])] = v
    return c


def bits(mask):
    return [c for c in range(16) if mask >> c & 1]


def test_cells_above_the_lowest_by_the_threshold_with_hysteresis():
    b = bal()
    assert b.update(cells_with(c3=3457), T25, 0, True) == 0  # 7 mV: below the start
    assert bits(b.update(cells_with(c3=3458), T25, 0, True)) == [3]
    assert bits(b.update(cells_with(c3=3454), T25, 0, True)) == [3]  # keeps going above stop
    assert b.update(cells_with(c3=3453), T25, 0, True) == 0  # 3 mV: stops


def test_only_above_the_minimum_cell_voltage():
    b = bal()
    assert b.update(cells_with(3300, c3=3390), T25, 0, True) == 0  # plateau: nothing said
    assert bits(b.update(cells_with(3300, c3=3400), T25, 0, True)) == [3]


def test_while_charging_or_at_rest_not_discharging_nor_forbidden():
    b = bal()
    c = cells_with(c3=3480)
    assert b.update(c, T25, 20000, True) != 0
    assert b.update(c, T25, -20000, True) == 0
    assert b.update(c, T25, 0, False) == 0
    assert bal(bal_cells_count=0).update(c, T25, 0, True) == 0  # switched off


def test_limit_of_cells_at_once_highest_first():
    b = bal()
    c = cells_with(c0=3470, c2=3480, c4=3490, c6=3500, c8=3510, c10=3460)
    assert bits(b.update(c, T25, 0, True)) == [2, 4, 6, 8]


def test_never_two_adjacent_cells():
    c = cells_with(c4=3500, c5=3499, c6=3498, c9=3480)
    assert bits(bal().update(c, T25, 0, True)) == [4, 6, 9]
    assert bits(bal(bal_min_gap_count=1).update(c, T25, 0, True)) == [4, 5, 6, 9]


def test_paused_above_the_temperature_resumed_below_release():
    b = bal()
    c = cells_with(c3=3480)
    hot = [250] * 7
    hot[6] = 450  # board NTC
    assert b.update(c, hot, 0, True) == 0
    hot[6] = 420
    assert b.update(c, hot, 0, True) == 0  # still paused
    hot[6] = 400
    assert b.update(c, hot, 0, True) != 0


class FakeAfe:
    def __init__(self):
        self.calls = []

    def set_balance(self, mask):
        self.calls.append(mask)


def test_stage_writes_the_afe_only_on_a_change_and_stops_on_a_fault():
    st = PackState()
    afe = FakeAfe()
    stage = Balance(afe, st, Params())
    for c, v in enumerate(cells_with(c3=3480)):
        st.snap.cell_mv[c] = v
    for k in range(7):
        st.snap.temp_dc[k] = 250
    st.snap.ok = True
    for n in range(1, 6):
        st.snap.reads = n
        stage.tick(n * 100)
    assert afe.calls == [1 << 3] and st.balance_mask == 1 << 3
    st.faults = 1
    st.snap.reads = 6
    stage.tick(600)
    assert afe.calls == [1 << 3, 0] and st.balance_mask == 0


def test_bench_trace_shows_the_bled_cells_and_the_model_bleeds():
    doc = {"duration_s": 20, "initial": {"soc_pct": 99}}
    lines = []
    world = simworld.World(scn.parse(json.dumps(doc), FAULTS), lines.append)
    model = world.packs[0].model
    for c in range(16):  # all at 99.3 %, cell 5 at 99.5 % (the knee: ~70 mV higher)
        model._q[c] = model.capacity_nc(c) // 1000 * (995 if c == 5 else 993)
    world.run()
    last = json.loads(lines[-1])
    assert len(last["balancing"]) == 16 and last["balancing"][5] is True
    assert model.balance_mask >> 5 & 1
    assert "soh_pct" in last and "cycles" in last and "cvl_mv" in last and "force_charge" in last
