"""The reset button (issue 3, item 5; SPEC 6, `000` E, `003` 5.3): hold 3 s =
sleep/wake, 6-10 s = reset, classified on release; shorter or longer presses
do nothing; debounced; published in PackState.button_action/button_count."""
import json

import pytest

import simworld
from app.button import Button
from bms import button, params as P
from bms.params import Params
from bms.state import PackState
from defs.ticks import TICKS_MASK
from sim import scenario as scn
from sim.mock_afe import FAULTS
from sim.pins import SimPin


@pytest.mark.parametrize("held_ms,action", [
    (0, button.NONE), (2990, button.NONE), (2999, button.NONE),
    (3000, button.SLEEP_WAKE), (5990, button.SLEEP_WAKE), (5999, button.SLEEP_WAKE),
    (6000, button.RESET), (8000, button.RESET), (10000, button.RESET),
    (10001, button.NONE), (10010, button.NONE), (60000, button.NONE),
])
def test_classify_boundaries(held_ms, action):
    assert button.classify(held_ms) == action


def press(c, t0, held_ms, step=10):
    """Samples every `step` ms: released until t0, pressed for held_ms, then
    released; returns the actions seen (and the time after)."""
    out = []
    t = t0 - 100
    while t < t0 + held_ms + 200:
        a = c.sample(t0 <= t < t0 + held_ms, t & TICKS_MASK)
        if a:
            out.append((t, a))
        t += step
    return out


@pytest.mark.parametrize("held_ms,action", [
    (2990, None), (3000, button.SLEEP_WAKE), (5990, button.SLEEP_WAKE),
    (6000, button.RESET), (10000, button.RESET), (10010, None),
])
def test_classifier_on_samples_classifies_on_release(held_ms, action):
    c = button.Classifier()
    got = press(c, 1000, held_ms)
    if action is None:
        assert got == [] and c.held_ms == held_ms
    else:
        # reported once, one debounce time after the release
        assert got == [(1000 + held_ms + button.DEBOUNCE_MS, action)]


def test_nothing_happens_while_held():
    c = button.Classifier()
    for t in range(0, 20000, 50):
        assert c.sample(True, t) == button.NONE
    assert c.pressed


def test_bounces_shorter_than_the_debounce_time_are_ignored():
    c = button.Classifier()
    seq = []
    t = 0
    # contact bounce at the press: 20 ms pulses
    for lvl in (1, 0, 1, 0, 1):
        seq.append((t, lvl))
        t += 20
    seq += [(t + k * 10, 1) for k in range(1, 400)]  # held ~4 s
    t = seq[-1][0] + 10
    for lvl in (0, 1, 0, 1, 0):  # bounce at the release
        seq.append((t, lvl))
        t += 20
    seq += [(t + k * 10, 0) for k in range(1, 20)]
    got = [(tt, a) for tt, lvl in seq for a in [c.sample(lvl, tt)] if a]
    assert [a for _, a in got] == [button.SLEEP_WAKE]
    # a glitch shorter than the debounce is not a press at all
    c = button.Classifier()
    assert [c.sample(v, t) for t, v in ((0, 0), (10, 1), (30, 1), (50, 0), (100, 0), (200, 0))] == [0] * 6
    assert not c.pressed


def test_press_across_the_tick_wrap():
    c = button.Classifier()
    got = press(c, TICKS_MASK - 1000, 3000)
    assert [a for _, a in got] == [button.SLEEP_WAKE]


def test_thresholds_from_the_parameter_table():
    class FakeParams:  # the service reads the running values, the table's rows
        v = list(Params().v)
    FakeParams.v[P.BUTTON_SLEEP_MS] = 2000
    FakeParams.v[P.BUTTON_RESET_MIN_MS] = 4000
    FakeParams.v[P.BUTTON_RESET_MAX_MS] = 5000  # below the row's minimum: only set() checks

    t = [0]
    pin = SimPin(lambda: t[0], 1)
    st = PackState()
    svc = Button(st, pin, FakeParams())

    def hold(ms):
        pin.value(0)
        end = t[0] + ms
        while t[0] < end:
            svc.tick(t[0])
            t[0] += 50
        pin.value(1)
        for _ in range(4):
            svc.tick(t[0])
            t[0] += 50

    hold(2000)
    assert (st.button_count, st.button_action) == (1, button.SLEEP_WAKE)
    hold(4000)
    assert (st.button_count, st.button_action) == (2, button.RESET)
    hold(5050)
    assert st.button_count == 2


def test_service_without_parameters_uses_the_manual_defaults():
    svc = Button(PackState(), SimPin(lambda: 0, 1))
    c = svc.classifier
    assert (c.sleep_ms, c.reset_min_ms, c.reset_max_ms) == (3000, 6000, 10000)


# --- through the bench world -----------------------------------------------------------

def run_world(events, duration_s=30):
    w = simworld.World(scn.parse(json.dumps({"duration_s": duration_s, "events": events}), FAULTS),
                       lambda line: None)
    return w


@pytest.mark.parametrize("hold_s,count,action", [
    (3, 1, button.SLEEP_WAKE), (2.9, 0, button.NONE), (5.9, 1, button.SLEEP_WAKE),
    (6, 1, button.RESET), (10, 1, button.RESET), (10.1, 0, button.NONE),
])
def test_bench_press_is_classified(hold_s, count, action):
    w = run_world([{"t_s": 5, "press": "button", "pack": 0, "hold_s": hold_s}])
    st = w.packs[0].app.state
    w.run_until(5000 + int(hold_s * 1000) - 50)
    assert st.button_count == 0  # nothing until the release
    w.run()
    assert (st.button_count, st.button_action) == (count, action)


def test_bench_each_press_counts_once_and_only_on_its_pack():
    w = simworld.World(scn.parse(json.dumps({"packs": 2, "duration_s": 30, "events": [
        {"t_s": 2, "press": "button", "pack": 1, "hold_s": 3},
        {"t_s": 10, "press": "button", "pack": 1, "hold_s": 7},
        {"t_s": 20, "press": "button", "pack": 1, "hold_s": 1}]}), FAULTS), lambda line: None)
    w.run_until(6000)
    s0, s1 = w.packs[0].app.state, w.packs[1].app.state
    assert (s1.button_count, s1.button_action) == (1, button.SLEEP_WAKE)
    w.run()
    assert (s1.button_count, s1.button_action) == (2, button.RESET)
    assert s0.button_count == 0
