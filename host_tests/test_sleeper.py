"""The MCU sleeps when the pack sleeps (boards with deep_sleep): after the
power-off flicker, with the stored state saved, for the 4-hourly try after an
under-voltage sleep and indefinitely otherwise."""
import json

import simworld
from app.sleeper import Sleeper
from bms import sleep
from sim import scenario as scn
from sim.mock_afe import FAULTS


def world(doc):
    return simworld.World(scn.parse(json.dumps(doc), FAULTS), lambda line: None)


def attach(w):
    calls = []
    pack = w.packs[0]
    saves = []
    pack.app.persist.save_now = lambda: saves.append(w.t_ms())
    w.runner.add(Sleeper(pack.app, lambda ms: calls.append((w.t_ms(), ms))))
    return calls, saves


def test_button_sleep_deep_sleeps_after_the_flicker_until_woken():
    w = world({"duration_s": 20, "events": [{"t_s": 2, "press": "button", "pack": 0, "hold_s": 3.2}]})
    calls, saves = attach(w)
    w.run()
    asleep_ms = 5200  # released at 5.2 s, classified then
    t, ms = calls[0]
    assert ms == 0  # only the button or the charger wakes it
    assert asleep_ms + 1500 <= t <= asleep_ms + 2200  # after the 1.5 s power-off flicker
    assert saves and saves[0] <= t


def test_under_voltage_sleep_wakes_for_the_4_hourly_try():
    w = world({"duration_s": 60, "events": [{"t_s": 2, "sensor": "cell_mv", "pack": 0, "index": 4, "value": 2400}]})
    calls, _ = attach(w)
    w.run()
    assert w.packs[0].app.state.sleep_reason == sleep.BY_UV
    assert calls and calls[0][1] == 4 * 3600 * 1000
