# tools/mpstep (`make perf`'s split of the control step in the 32-bit
# MicroPython): the split covers every stage the firmware's cycle runs, in
# its order, and the bench's share it takes off is what it says, a part of
# the step; every part it times is found in the stages; the real board's
# run is the same stages on the BQ76952 driver. Few short
# windows: this checks what is measured, not how fast.
import json

import pytest

from tools import mpstep, paths, ram  # noqa: F401  (paths: lib/, firmware/ on sys.path)
import simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS


@pytest.fixture(scope="module")
def split():
    if ram.interpreter() is None:
        pytest.skip(ram.HOWTO)
    saved = mpstep.WINDOW, mpstep.ROUNDS
    mpstep.WINDOW, mpstep.ROUNDS = 5, 3
    try:
        return mpstep.stages()
    finally:
        mpstep.WINDOW, mpstep.ROUNDS = saved


def test_every_stage_of_the_cycle_in_its_order(split):
    w = simworld.World(scn.parse(json.dumps({"duration_s": 1}), FAULTS), lambda line: None)
    want = [type(s).__name__.lower() for s in w.packs[0].app.cycle.stages]
    assert split["order"] == want
    assert all(split["stage_" + n] > 0 for n in want)


def test_the_bench_share_is_part_of_the_step(split):
    s = mpstep.split(split)
    assert 0 < split["mock_read"] < s["bench"] < s["step"] <= split["step"]
    assert s["own"] == pytest.approx(s["step"] - s["bench"])
    assert s["driver"] > 0 and s["chip"] > 0  # the chip model's register reads cost more than a replay


def test_every_part_it_times_is_found(split):
    assert split["missing"] == []
    assert any(k.startswith("part_protect.") for k in split)


def test_the_real_board_runs_the_same_stages_on_the_driver(split):
    saved = mpstep.WINDOW, mpstep.ROUNDS
    mpstep.WINDOW, mpstep.ROUNDS = 5, 3
    try:
        b = mpstep.board()
    finally:
        mpstep.WINDOW, mpstep.ROUNDS = saved
    assert b["afe"] == "BQ76952"
    assert all(b["stage_" + n] > 0 for n in split["order"])
    assert 0 < b["copies"] < b["own"] < b["stages"]
