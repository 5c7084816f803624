"""Protections through the real bench world (tools/simworld + mock AFE): each
scenario drives the pack into a protection with sensor overrides, currents or
injected faults and checks the trace: the code appears after its delay (not
before, within one cycle), the FETs are as the manual says, and it releases at
its release value (not before)."""
import json

import pytest

import simworld
from bms import params as P
from sim import scenario as scn
from sim.mock_afe import FAULTS

CYCLE = 100


def run(doc):
    lines = []
    world = simworld.World(scn.parse(json.dumps(doc), FAULTS), lines.append)
    world.run()
    return world, [json.loads(ln) for ln in lines]


def pack_lines(tr, pack=0):
    return [o for o in tr if o.get("pack") == pack and "mode" in o]


def at(tr, t_s, pack=0):
    best = None
    for o in pack_lines(tr, pack):
        if o["t_ms"] <= t_s * 1000:
            best = o
    return best


def first(tr, pred, after_s=0, pack=0):
    for o in pack_lines(tr, pack):
        if o["t_ms"] >= after_s * 1000 and pred(o):
            return o
    return None


def v(name):
    return P.TABLE[P.index_of(name)][2]


def has(kind, code):
    return lambda o: code in o[kind]


def lacks(kind, code):
    return lambda o: code not in o[kind]


def assert_trip(tr, kind, code, t_event_s, delay_ms):
    o = first(tr, has(kind, code))
    assert o is not None, "%s never raised" % code
    t = o["t_ms"] - t_event_s * 1000
    assert delay_ms <= t <= delay_ms + CYCLE, (code, t)
    return o


def test_quiet_day_has_no_protection_and_fets_on():
    _, tr = run({"duration_s": 60, "events": [
        {"t_s": 5, "set": "current_a", "value": 40}, {"t_s": 30, "set": "current_a", "value": -60}]})
    for o in pack_lines(tr):
        assert (o["alarms"], o["protections"], o["faults"]) == ([], [], []), o
        if o["t_ms"] >= 1000:
            assert o["chg_fet"] and o["dsg_fet"]


def test_covp_trips_blocks_charge_releases_at_release_value():
    _, tr = run({"duration_s": 40, "events": [
        {"t_s": 5, "sensor": "cell_mv", "pack": 0, "index": 3, "value": 3700},
        {"t_s": 15, "sensor": "cell_mv", "pack": 0, "index": 3, "value": 3401},
        {"t_s": 25, "sensor": "cell_mv", "pack": 0, "index": 3, "value": 3400}]})
    o = assert_trip(tr, "protections", "COVP", 5, v("cell_ov_p2_delay_ms"))
    assert not o["chg_fet"] and o["dsg_fet"] and o["mode"] == "protection"
    assert "COVP" in at(tr, 24.9)["protections"]  # above release: held
    rel = first(tr, lacks("protections", "COVP"), after_s=15)
    assert 25000 <= rel["t_ms"] <= 25000 + CYCLE
    assert rel["chg_fet"] and rel["dsg_fet"]


def test_cuvp_trips_blocks_discharge_released_by_charge_current():
    _, tr = run({"duration_s": 40, "events": [
        {"t_s": 2, "set": "current_a", "value": -20},
        {"t_s": 5, "sensor": "cell_mv", "pack": 0, "index": 9, "value": 2700},
        {"t_s": 15, "sensor": "cell_mv", "pack": 0, "index": 9, "value": 2850},
        {"t_s": 25, "set": "current_a", "value": 10}]})
    o = assert_trip(tr, "protections", "CUVP", 5, v("cell_uv_p1_delay_ms"))
    assert o["chg_fet"] and not o["dsg_fet"]
    assert at(tr, 10)["current_ma"] == 0  # the discharge is stopped
    assert "CUVP" in at(tr, 24.9)["protections"]  # above threshold but below release, no charge
    rel = first(tr, lacks("protections", "CUVP"), after_s=15)
    assert 25000 <= rel["t_ms"] <= 25000 + 2 * CYCLE
    assert at(tr, 30)["current_ma"] > 9000


def test_cocp_retries_and_locks_out_after_three_trips_then_button_reset():
    retry = v("oc_retry_ms") // 1000
    d = v("chg_oc_p1_delay_ms") // 1000
    end = 5 + 3 * (d + retry) + 40
    _, tr = run({"duration_s": end, "events": [
        {"t_s": 5, "set": "current_a", "value": 80},
        {"t_s": end - 30, "set": "current_a", "value": 0},
        {"t_s": end - 25, "press": "button", "pack": 0, "hold_s": 7}]})
    o = assert_trip(tr, "protections", "COCP", 5, v("chg_oc_p1_delay_ms"))
    assert not o["chg_fet"] and o["dsg_fet"]
    # retry: released after oc_retry_ms, trips again after the delay
    rel1 = first(tr, lacks("protections", "COCP"), after_s=o["t_ms"] / 1000)
    assert retry * 1000 <= rel1["t_ms"] - o["t_ms"] <= retry * 1000 + CYCLE
    assert rel1["chg_fet"]
    trips = []
    prev = False
    for x in pack_lines(tr):
        on = "COCP" in x["protections"]
        if on and not prev:
            trips.append(x["t_ms"])
        prev = on
    assert len(trips) == 3, trips
    locked = at(tr, end - 31)
    assert "COCP" in locked["protections"] and not locked["chg_fet"] and locked["dsg_fet"]
    # only the reset (6-10 s press) releases it
    after = at(tr, end)
    assert "COCP" not in after["protections"] and after["chg_fet"]


def test_docp_p2_trips_after_15_s_blocks_discharge():
    _, tr = run({"duration_s": 30, "events": [{"t_s": 5, "set": "current_a", "value": -130}]})
    o = assert_trip(tr, "protections", "DOCP", 5, v("dsg_oc_p2_delay_ms"))
    assert o["chg_fet"] and not o["dsg_fet"]
    assert at(tr, 25)["current_ma"] == 0


def test_short_circuit_stops_both_until_a_charger_is_connected():
    _, tr = run({"duration_s": 30, "events": [
        {"t_s": 5, "fault": "short_circuit", "pack": 0, "on": True},
        {"t_s": 10, "fault": "short_circuit", "pack": 0, "on": False},
        {"t_s": 20, "set": "current_a", "value": 20}]})
    o = first(tr, has("protections", "SCP"))
    assert 5000 <= o["t_ms"] <= 5000 + 2 * CYCLE
    assert not o["chg_fet"] and not o["dsg_fet"] and o["mode"] == "protection"
    assert "SCP" in at(tr, 19.9)["protections"]  # short gone, no charger: still latched
    rel = first(tr, lacks("protections", "SCP"), after_s=10)
    assert 20000 <= rel["t_ms"] <= 20000 + 3 * CYCLE
    last = at(tr, 30)
    assert last["hw_alerts"] == [] and last["chg_fet"] and last["dsg_fet"]
    assert last["current_ma"] > 15000


@pytest.mark.parametrize("fam,code,ch,value,rel_ok,rel_bad,fets", [
    ("chg_ht", "CHTP", 0, 46, 40, 40.1, (False, True)),
    ("chg_lt", "CLTP", 1, -1, 3, 2.9, (False, True)),
    ("dsg_ht", "DHTP", 2, 55, 45, 45.1, (False, False)),
    ("dsg_lt", "DLTP", 3, -12, -7, -7.1, (False, False)),
    ("mos_ot", "MOS OT", 4, 95, 70, 70.1, (False, False)),
    ("amb_ht", "EOTP", 6, 65, 50, 50.1, (False, False)),
    ("amb_lt", "EUTP", 6, -25, -10, -10.1, (False, False)),
])
def test_temperature_protection(fam, code, ch, value, rel_ok, rel_bad, fets):
    _, tr = run({"duration_s": 40, "events": [
        {"t_s": 5, "sensor": "ntc_c", "pack": 0, "index": ch, "value": value},
        {"t_s": 15, "sensor": "ntc_c", "pack": 0, "index": ch, "value": rel_bad},
        {"t_s": 25, "sensor": "ntc_c", "pack": 0, "index": ch, "value": rel_ok}]})
    o = assert_trip(tr, "protections", code, 5, v(fam + "_p1_delay_ms"))
    assert (o["chg_fet"], o["dsg_fet"]) == fets
    assert code in at(tr, 24.9)["protections"]
    rel = first(tr, lacks("protections", code), after_s=15)
    assert 25000 <= rel["t_ms"] <= 25000 + CYCLE


def test_imbalance_protection_stops_charging():
    _, tr = run({"duration_s": 60, "events": [
        {"t_s": 5, "sensor": "cell_mv", "pack": 0, "index": 2, "value": 2850}]})
    # the difference to the highest cell is about 450 mV: alarm, not protection
    o = first(tr, has("alarms", "IMB"))
    assert o is not None and "IMB" not in at(tr, 60)["protections"]
    assert at(tr, 60)["chg_fet"] and at(tr, 60)["dsg_fet"]


@pytest.mark.parametrize("fault,index,value,code,delay", [
    ("ntc_open", 1, 0, "NTC", "sensor_fail_delay_ms"),
    ("ntc_short", 5, 0, "NTC", "sensor_fail_delay_ms"),
    ("cell_open_wire", 6, 0, "CELL", "sensor_fail_delay_ms"),
    ("cell_offset", 4, 1500, "SAMPLE", "sensor_fail_delay_ms"),
])
def test_sensor_failure_latches_and_stops_both(fault, index, value, code, delay):
    _, tr = run({"duration_s": 30, "events": [
        {"t_s": 5, "fault": fault, "pack": 0, "index": index, "value": value, "on": True},
        {"t_s": 15, "fault": fault, "pack": 0, "index": index, "value": value, "on": False}]})
    o = assert_trip(tr, "faults", code, 5, v(delay))
    assert not o["chg_fet"] and not o["dsg_fet"] and o["mode"] == "failure"
    last = at(tr, 30)
    assert code in last["faults"] and not last["chg_fet"]  # latched after the fault is gone


def test_afe_silent_is_a_fault_after_the_failed_reads():
    _, tr = run({"duration_s": 10, "events": [{"t_s": 5, "fault": "afe_silent", "pack": 0, "on": True}]})
    o = first(tr, has("faults", "AFE"))
    t = o["t_ms"] - 5000
    n = v("afe_fail_reads")
    assert (n - 1) * CYCLE <= t <= n * CYCLE
    assert not o["chg_fet"] and not o["dsg_fet"]


def test_stuck_cell_reading_is_found_at_a_load_step():
    stuck = v("sensor_stuck_ms") // 1000
    _, tr = run({"duration_s": 40, "events": [
        {"t_s": 5, "fault": "cell_stuck", "pack": 0, "index": 8, "on": True},
        {"t_s": 10, "set": "current_a", "value": -60}]})
    assert "CELL" not in at(tr, 9.9 + stuck)["faults"]
    o = first(tr, has("faults", "CELL"))
    assert o is not None and 10000 + stuck * 1000 <= o["t_ms"] <= 10000 + stuck * 1000 + CYCLE


def test_stuck_current_reading_is_found_at_a_load_step():
    stuck = v("sensor_stuck_ms") // 1000
    _, tr = run({"duration_s": 40, "events": [
        {"t_s": 5, "set": "current_a", "value": 10},
        {"t_s": 8, "fault": "current_stuck", "pack": 0, "on": True},
        {"t_s": 10, "set": "current_a", "value": -60}]})
    o = first(tr, has("faults", "CURRENT"))
    assert o is not None and 10000 + stuck * 1000 <= o["t_ms"] <= 10000 + stuck * 1000 + CYCLE


def test_charge_fet_stuck_on_is_a_mos_failure():
    _, tr = run({"duration_s": 30, "events": [
        {"t_s": 2, "fault": "chg_fet_stuck_on", "pack": 0, "on": True},
        {"t_s": 5, "sensor": "cell_mv", "pack": 0, "index": 0, "value": 3700},
        {"t_s": 8, "set": "current_a", "value": 20}]})
    assert at(tr, 7)["protections"] == ["COVP"]
    o = first(tr, has("faults", "CHG MOS"))
    assert o is not None
    assert 8000 + v("mos_fail_delay_ms") <= o["t_ms"] <= 8000 + v("mos_fail_delay_ms") + 2 * CYCLE
    assert not o["chg_fet"] and not o["dsg_fet"]


def test_scenario_params_override_protection_levels():
    # the scenario's params replace the defaults (applied in name order, each
    # write validated): longer delays, a lower P1 threshold
    _, tr = run({"duration_s": 30,
                 "params": {"cell_ov_p1_delay_ms": 3000, "cell_ov_p2_delay_ms": 3000,
                            "cell_ov_p1_mv": 3580},
                 "events": [{"t_s": 5, "sensor": "cell_mv", "pack": 0, "index": 0, "value": 3590}]})
    o = assert_trip(tr, "protections", "COVP", 5, 3000)
    assert not o["chg_fet"] and o["dsg_fet"]


def test_bad_param_override_is_a_scenario_error():
    with pytest.raises(scn.ScenarioError) as e:
        scn.parse(json.dumps({"params": {"cell_ov_p1_mv": 3700}}), FAULTS)
    assert "cell_ov_p1_mv" in str(e.value)


def test_ffff_cell_reading_sets_no_soc_and_keeps_the_cov_alert_until_plausible():
    """A 0xFFFF cell reading (a bad transfer; here the reading clamped at 65535) trips the
    AFE's COV: the SOC takes no 100 % point from it, the alert stays while the reading is
    implausible (CELL and SAMPLE take over, both FETs off), and goes with the first
    plausible read below the release."""
    _, tr = run({"duration_s": 20, "initial": {"soc_pct": 50}, "events": [
        {"t_s": 5, "fault": "cell_offset", "pack": 0, "index": 3, "on": True, "value": 65000},
        {"t_s": 12, "fault": "cell_offset", "pack": 0, "index": 3, "on": False}]})
    soc0 = at(tr, 4.9)["soc_pct"]
    assert 40 <= soc0 <= 60
    cov = first(tr, has("hw_alerts", "COV"))
    assert cov is not None and cov["t_ms"] < 12000 and cov["cell_mv"][3] == 65535
    for o in pack_lines(tr):
        assert abs(o["soc_pct"] - soc0) <= 1, o
        if cov["t_ms"] <= o["t_ms"] < 12000:
            assert "COV" in o["hw_alerts"] and not o["chg_fet"] and not o["dsg_fet"], o
    assert {"CELL", "SAMPLE"} <= set(at(tr, 11.9)["faults"])
    gone = first(tr, lacks("hw_alerts", "COV"), after_s=cov["t_ms"] / 1000)
    assert gone is not None and 12000 <= gone["t_ms"] <= 12000 + CYCLE
    assert gone["cell_mv"][3] < v("cell_ov_p1_rel_mv")


def test_stuck_cell_ntcs_while_ambient_and_mosfets_heat_up_are_an_ntc_fault():
    """Issue 14: the four cell NTCs stuck at 25 C (mock fault ntc_stuck) while the room
    goes to 70 C: EOTP, and ntc_stuck_ms after the ambient NTC moved a temperature sensor
    failure (NTC: failure mode, both FETs off, `000` 3.4)."""
    events = [{"t_s": 1, "fault": "ntc_stuck", "pack": 0, "index": k, "on": True} for k in range(4)]
    events.append({"t_s": 2, "set": "ambient_c", "value": 70})
    _, tr = run({"duration_s": 310, "initial": {"ambient_c": 25}, "events": events})
    o = first(tr, has("faults", "NTC"))
    assert o is not None, "stuck NTCs never seen"
    t = o["t_ms"] - 2000
    assert v("ntc_stuck_ms") <= t <= v("ntc_stuck_ms") + 2 * CYCLE, t
    assert o["temp_dc"][:4] == at(tr, 1.5)["temp_dc"][:4] and o["temp_dc"][6] >= 650
    assert o["mode"] == "failure" and not o["chg_fet"] and not o["dsg_fet"]
    assert "EOTP" in at(tr, 100)["protections"] and "NTC" not in at(tr, 290)["faults"]


def test_healthy_ntcs_at_rest_or_in_a_warming_room_raise_no_ntc_fault():
    """The negatives: a pack at rest in a stable room (every temperature genuinely
    constant), and a room that warms 25 -> 40 C, which the cells follow slowly."""
    for ambient in (None, 40):
        events = [] if ambient is None else [{"t_s": 5, "set": "ambient_c", "value": ambient}]
        _, tr = run({"duration_s": 400, "initial": {"ambient_c": 25}, "events": events})
        lines = pack_lines(tr)
        assert all("NTC" not in o["faults"] for o in lines)
        if ambient is None:
            assert lines[-1]["temp_dc"] == lines[1]["temp_dc"]  # genuinely constant
            assert all(o["faults"] == [] for o in lines)
        else:
            assert lines[-1]["temp_dc"][0] > lines[1]["temp_dc"][0]  # the cells did move
