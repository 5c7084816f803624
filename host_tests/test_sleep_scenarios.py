"""Sleep and wake, button actions, pre-charge and dry contacts through the
bench world: what the trace and the pins show (SPEC 3, 6, 10)."""
import json

import simworld
from bms import indicate
from sim import scenario as scn
from sim.mock_afe import FAULTS


def run(doc, log_edges=False):
    lines = []
    world = simworld.World(scn.parse(json.dumps(doc), FAULTS), lines.append, log_edges)
    world.run()
    return world, [json.loads(ln) for ln in lines if '"mode"' in ln]


def at(trace, t_s, pack=0):
    best = None
    for o in trace:
        if o["pack"] == pack and o["t_ms"] <= t_s * 1000:
            best = o
    return best


def first(trace, pred):
    return next((o for o in trace if pred(o)), None)


def test_button_3s_sleeps_and_3s_again_wakes():
    world, tr = run({"duration_s": 40, "events": [
        {"t_s": 5, "press": "button", "pack": 0, "hold_s": 3.5},
        {"t_s": 25, "press": "button", "pack": 0, "hold_s": 3.5}]}, log_edges=True)
    asleep = first(tr, lambda o: o["mode"] == "sleep")
    assert 8500 <= asleep["t_ms"] <= 8700  # acts on release (SPEC 6: hold 3 s)
    assert asleep["sleep"] == "button"
    s = at(tr, 20)
    assert (s["chg_fet"], s["dsg_fet"], s["pchg_fet"]) == (False, False, False)
    assert s["leds"] == {"run": "off", "alm": "off", "soc": ["off"] * 4, "ms": "off"}
    # power-off: the SOC LEDs flicker 3 times (`004`), then everything is dark
    soc1 = world.packs[0].board.led_pins[indicate.SOC0].edges
    # (SOC1 may already be lit when it starts: count the ends of the flickers)
    falls = [t for t, v in soc1 if v == 0 and asleep["t_ms"] <= t < asleep["t_ms"] + 2000]
    assert len(falls) == 3
    woke = first(tr, lambda o: o["t_ms"] > 25000 and o["mode"] != "sleep")
    assert 28500 <= woke["t_ms"] <= 28700 and woke["sleep"] is None
    assert at(tr, 35)["chg_fet"] and at(tr, 35)["dsg_fet"]


def test_sleeping_pack_wakes_on_charger_voltage():
    _, tr = run({"duration_s": 30, "events": [
        {"t_s": 2, "press": "button", "pack": 0, "hold_s": 3.2},
        {"t_s": 15, "set": "current_a", "value": 20}]})
    assert at(tr, 14)["mode"] == "sleep"
    assert at(tr, 14)["current_ma"] == 0  # asleep: the charger cannot push current in
    woke = first(tr, lambda o: o["t_ms"] > 15000 and o["mode"] != "sleep")
    assert woke["t_ms"] <= 15300  # > 48 V on P+/P- (SPEC 10)
    assert at(tr, 30)["mode"] == "charge"


def test_under_voltage_not_released_in_30s_sleeps_then_wakes_after_4h_to_try():
    _, tr = run({"duration_s": 4 * 3600 + 120, "events": [
        {"t_s": 5, "sensor": "cell_mv", "pack": 0, "index": 9, "value": 2400}]})
    cuvp = first(tr, lambda o: "CUVP" in o["protections"])
    slept = first(tr, lambda o: o["mode"] == "sleep")
    assert slept["sleep"] == "under_voltage"
    assert 29900 <= slept["t_ms"] - cuvp["t_ms"] <= 30200  # `003` 5.5: not released in 30 s
    retry = first(tr, lambda o: o["t_ms"] > slept["t_ms"] and o["mode"] != "sleep")
    assert 4 * 3600 * 1000 <= retry["t_ms"] - slept["t_ms"] <= 4 * 3600 * 1000 + 200
    again = first(tr, lambda o: o["t_ms"] > retry["t_ms"] and o["mode"] == "sleep")
    assert again is not None and again["t_ms"] - retry["t_ms"] <= 31000  # still low: back to sleep


def test_idle_standby_sleeps_after_the_standby_time():
    _, tr = run({"duration_s": 200, "params": {"standby_sleep_ms": 60000}})
    slept = first(tr, lambda o: o["mode"] == "sleep")
    assert slept["sleep"] == "idle" and 60000 <= slept["t_ms"] <= 60400


def test_discharge_fet_closes_only_after_precharge():
    _, tr = run({"duration_s": 3})
    pre = first(tr, lambda o: o["pchg_fet"])
    dsg = first(tr, lambda o: o["dsg_fet"])
    assert pre is not None and not pre["dsg_fet"]
    assert dsg["t_ms"] > pre["t_ms"] and not dsg["pchg_fet"]


def test_precharge_into_a_short_fails_and_latches():
    _, tr = run({"duration_s": 10, "events": [{"t_s": 0, "fault": "short_circuit", "pack": 0, "on": True}]})
    failed = first(tr, lambda o: "PRECHARGE" in o["faults"])
    assert failed is not None and 3000 <= failed["t_ms"] <= 3500  # precharge_timeout_ms 3 s
    assert not at(tr, 10)["dsg_fet"] and not at(tr, 10)["pchg_fet"]


def test_dry_contacts_both_mappings():
    # `000`: contact 1 = charge enable, 2 = discharge enable; COVP opens contact 1
    _, tr = run({"duration_s": 20, "events": [{"t_s": 5, "sensor": "cell_mv", "pack": 0, "index": 0, "value": 3700}]})
    assert at(tr, 4)["contacts"] == [True, True]
    assert at(tr, 20)["contacts"] == [False, True]
    # `003`: contact 1/2 closes on a fault protection
    _, tr = run({"duration_s": 20, "params": {"dry_contact_mapping": 1},
                 "events": [{"t_s": 5, "sensor": "cell_mv", "pack": 0, "index": 0, "value": 3700}]})
    assert at(tr, 4)["contacts"] == [False, False]
    assert at(tr, 20)["contacts"][0] is True


def test_low_cell_with_nothing_going_on_sleeps_after_the_sleep_delay():
    # a pack on the plateau (~3.28 V) is "low" against a 3.3 V sleep voltage
    _, tr = run({"duration_s": 60, "params": {"sleep_cell_mv": 3300, "sleep_delay_ms": 20000}})
    slept = first(tr, lambda o: o["mode"] == "sleep")
    assert slept["sleep"] == "low_cell" and 20000 <= slept["t_ms"] <= 20400
    # with a load flowing it stays awake
    _, tr = run({"duration_s": 60, "params": {"sleep_cell_mv": 3300, "sleep_delay_ms": 20000},
                 "events": [{"t_s": 1, "set": "current_a", "value": -5}]})
    assert first(tr, lambda o: o["mode"] == "sleep") is None
