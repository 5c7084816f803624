"""The bench contract: CLI, scenario events reaching the simulated packs, the
trace's fields and timing, determinism, and the first firmware slice
(mode from current, RUN LED per the manual, FETs, SOC by coulomb counting)."""
import json
import os
import subprocess
import sys

import pytest

import simworld
from bms import indicate
from sim import scenario as scn
from sim.mock_afe import FAULTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIRED = ("t_ms", "pack", "mode", "chg_fet", "dsg_fet", "soc_pct", "current_ma", "cell_mv",
            "temp_dc", "alarms", "protections", "faults", "leds", "buzzer")


def run(doc, log_edges=False):
    lines = []
    world = simworld.World(scn.parse(json.dumps(doc), FAULTS), lines.append, log_edges)
    world.run()
    return world, [json.loads(ln) for ln in lines]


def at(trace, t_s, pack=0):
    """The last pack line at or before t_s."""
    best = None
    for o in trace:
        if o.get("pack") == pack and o["t_ms"] <= t_s * 1000:
            best = o
    return best


def bench(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "tools.bench", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


# --- trace contract -----------------------------------------------------------

def test_trace_has_contract_fields_every_second_and_on_change():
    _, tr = run({"duration_s": 20, "events": [{"t_s": 5.3, "set": "current_a", "value": 20}]})
    for o in tr:
        for k in REQUIRED:
            assert k in o, k
        assert len(o["cell_mv"]) == 16 and len(o["temp_dc"]) == 7
        assert set(o["leds"]) == {"run", "alm", "soc", "ms"} and len(o["leds"]["soc"]) == 4
    seconds = {o["t_ms"] for o in tr if o["t_ms"] % 1000 == 0}
    assert seconds == {1000 * s for s in range(20)}
    # the change to charging is traced when it happens, not at the next second
    first_charge = min(o["t_ms"] for o in tr if o["mode"] == "charge")
    assert 5300 <= first_charge < 5500 and first_charge % 1000 != 0


def test_same_seed_same_trace_other_seed_other_trace():
    doc = {"duration_s": 30, "seed": 11, "events": [{"t_s": 3, "set": "current_a", "value": -40}]}
    _, a = run(doc)
    _, b = run(doc)
    assert a == b
    _, c = run(dict(doc, seed=12))
    assert [o["cell_mv"] for o in a] != [o["cell_mv"] for o in c]


# --- first slice: mode, RUN LED, FETs, SOC -----------------------------------------

def test_mode_and_run_led_follow_current():
    _, tr = run({"duration_s": 30, "events": [
        {"t_s": 10, "set": "current_a", "value": 30},
        {"t_s": 20, "set": "current_a", "value": -30}]})
    standby, charge, discharge = at(tr, 9), at(tr, 19), at(tr, 29)
    assert (standby["mode"], standby["leds"]["run"]) == ("standby", "flash1")
    assert (charge["mode"], charge["leds"]["run"]) == ("charge", "on")
    assert (discharge["mode"], discharge["leds"]["run"]) == ("discharge", "flash3")
    assert charge["current_ma"] == pytest.approx(30000, abs=300)
    assert discharge["current_ma"] == pytest.approx(-30000, abs=300)
    assert all(o["chg_fet"] and o["dsg_fet"] for o in tr if o["t_ms"] >= 1000)


def test_current_inside_dead_band_is_standby_and_zero():
    _, tr = run({"duration_s": 5, "events": [{"t_s": 1, "set": "current_a", "value": 0.3}]})
    last = at(tr, 5)
    assert last["mode"] == "standby" and last["current_ma"] == 0


def test_run_led_pin_really_flashes_flash1_in_standby():
    world, _ = run({"duration_s": 20}, log_edges=True)
    edges = [(t, v) for t, v in world.packs[0].board.led_pins[indicate.RUN].edges if t >= 4000]
    rises = [t for t, v in edges if v == 1]
    falls = [t for t, v in edges if v == 0]
    assert [b - a for a, b in zip(rises, rises[1:])] == [4000] * (len(rises) - 1)  # period 4 s
    assert all(f - r == 250 for r, f in zip(rises, falls))  # 0.25 s on


def test_soc_follows_charge_by_coulomb_counting():
    # 50 A for 36 min into a 100 Ah pack is 30 % of capacity
    _, tr = run({"duration_s": 2400, "initial": {"soc_pct": 40}, "events": [
        {"t_s": 60, "set": "current_a", "value": 50}, {"t_s": 60 + 2160, "set": "current_a", "value": 0}]})
    before, after = at(tr, 59)["soc_pct"], at(tr, 2400)["soc_pct"]
    assert after - before == pytest.approx(30, abs=1)


def test_blocked_fet_blocks_current_in_the_pack():
    _, tr = run({"duration_s": 10, "events": [
        {"t_s": 1, "fault": "chg_fet_stuck_off", "pack": 0, "on": True},
        {"t_s": 2, "set": "current_a", "value": 40}]})
    last = at(tr, 10)
    assert last["current_ma"] == 0 and last["mode"] == "standby"


def test_sensor_override_is_what_the_firmware_sees():
    _, tr = run({"duration_s": 6, "events": [
        {"t_s": 2, "sensor": "cell_mv", "pack": 0, "index": 3, "value": 3456},
        {"t_s": 4, "sensor": "cell_mv", "pack": 0, "index": 3, "value": None}]})
    assert at(tr, 3)["cell_mv"][3] == 3456
    assert at(tr, 6)["cell_mv"][3] != 3456


def test_external_short_trips_the_afe_hardware_channel():
    _, tr = run({"duration_s": 5, "events": [{"t_s": 2, "fault": "short_circuit", "pack": 0, "on": True}]})
    last = at(tr, 5)
    assert "SCD" in last["hw_alerts"]
    assert last["current_ma"] == 0


def test_afe_silent_is_reported_in_the_trace():
    _, tr = run({"duration_s": 5, "events": [{"t_s": 2, "fault": "afe_silent", "pack": 0, "on": True}]})
    assert at(tr, 1)["afe_ok"] is True and at(tr, 5)["afe_ok"] is False


def test_packs_are_independent_models_with_their_own_soc():
    _, tr = run({"packs": 3, "duration_s": 3, "initial": {"soc_pct": [10, 50, 95]}})
    socs = [at(tr, 3, k)["soc_pct"] for k in range(3)]
    assert socs[0] < socs[1] < socs[2]


# --- CLI: bad input is one clear line and a non-zero exit ---------------------------

@pytest.mark.parametrize("content,msg", [
    ("{not json", "not valid JSON"),
    ('{"events": [{"t_s": 1, "explode": true}]}', "events[0]: needs exactly one of"),
    ('{"initial": {"soc_pct": 150}}', "initial.soc_pct: 150 outside 0..100"),
    ('{"params": {"cycle_ms": 1}}', "cycle_ms: 1 outside 20..1000"),
])
def test_cli_bad_scenario_is_one_clear_error(tmp_path, content, msg):
    f = tmp_path / "bad.json"
    f.write_text(content)
    r = bench("--scenario", str(f), "--headless")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error:") and msg in lines[0]


def test_cli_missing_file(tmp_path):
    r = bench("--scenario", str(tmp_path / "nope.json"), "--headless")
    assert r.returncode == 2 and "scenario file not found" in r.stderr and "Traceback" not in r.stderr


def test_cli_headless_writes_trace_and_summary(tmp_path):
    sc = tmp_path / "s.json"
    sc.write_text(json.dumps({"duration_s": 120, "events": [{"t_s": 10, "set": "current_a", "value": -20}]}))
    out = tmp_path / "t.jsonl"
    r = bench("--scenario", str(sc), "--trace", str(out), "--headless")
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert len(lines) >= 120 and json.loads(lines[-1])["mode"] == "discharge"
    assert "pack 0:" in r.stdout and "discharge" in r.stdout


def test_frames_on_the_can_bus_become_trace_lines():
    lines = []
    world = simworld.World(scn.parse('{"packs": 2, "duration_s": 4}', FAULTS), lines.append)
    world.run_until(3000)  # after the listen-only start (bms.canrate.LISTEN_MS: a silent bus)
    world.packs[0].board.can.send(0x0CFF0102, b"\x01\xab", 2)
    frame = json.loads(lines[-1])
    assert frame == {"t_ms": 3000, "bus": "can", "id": 0x0CFF0102, "ext": True, "data": "01ab"}
    # on the bus (traced) but no service reads that id (priority 3: neither the
    # link's 0x1A nor the host protocol's priority-6 space): the port's filter drops it
    assert world.packs[1].board.can.recv() is None and world.packs[1].board.can.filtered == 1
    world.packs[0].board.can.send(0x1AFF0102, b"\x01\xab", 2)  # a link id: delivered
    got = world.packs[1].board.can.recv()
    assert got[0] == 0x1AFF0102 and bytes(got[1]) == b"\x01\xab"
    # RS485: pack 0's Link OUT is pack 1's Link IN; pack 0's Link IN faces the inverter
    world.packs[0].board.link_out.write(b"addr 2")
    assert world.packs[1].board.link_in.read() == b"addr 2"
    world.links[0].a.write(b"~2001")
    assert world.packs[0].board.link_in.read() == b"~2001"


def test_cli_micropython_runtime_refuses_host_only_emulators(tmp_path):
    f = tmp_path / "inv.json"
    f.write_text(json.dumps({"duration_s": 5, "inverter": "victron"}))
    r = bench("--scenario", str(f), "--headless", "--runtime", "micropython")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "run on the host only" in lines[0]


# --- CLI: every violation of the scenario contract, as a user meets it (issue 14, defect 9) ---

def _ev(**kw):
    return '{"duration_s": 10, "events": [%s]}' % json.dumps(kw)


NAN_IN = {  # NaN is not a JSON number (RFC 8259 section 6); CPython's json reads it
    "duration_s": '{"duration_s": NaN}',
    "t_s": '{"events": [{"t_s": NaN, "set": "current_a", "value": 1}]}',
    "value": '{"events": [{"t_s": 1, "set": "current_a", "value": NaN}]}',
    "seed": '{"seed": NaN}',
    "params": '{"params": {"cycle_ms": NaN}}',
    "soc": '{"initial": {"soc_pct": NaN}}',
    "soc_list": '{"packs": 2, "initial": {"soc_pct": [50, NaN]}}',
    "hold": '{"events": [{"t_s": 1, "press": "button", "hold_s": NaN}]}',
    "ambient": '{"initial": {"ambient_c": NaN}}',
    "infinity": '{"duration_s": Infinity}',
    "minus_infinity": '{"events": [{"t_s": 1, "set": "ambient_c", "value": -Infinity}]}',
}

BAD = {
    "overflow_float": ('{"duration_s": 1e400}', "duration_s: Infinity outside"),
    "deep_brackets": ("[" * 100000 + "]" * 100000, "nested deeper than"),
    "deep_objects": ('{"comment": ' * 50000 + "1" + "}" * 50000, "nested deeper than"),
    "duplicate_top": ('{"seed": 1, "seed": 2}', 'duplicate key "seed"'),
    "duplicate_event": ('{"events": [{"t_s": 1, "t_s": 2, "set": "current_a", "value": 1}]}', 'duplicate key "t_s"'),
    "duplicate_escaped": ('{"seed": 1, "se\\u0065d": 2}', 'duplicate key "seed"'),
    "short_circuit_index": (_ev(t_s=1, fault="short_circuit", index=15), 'fault "short_circuit" takes no index'),
    "afe_silent_value": (_ev(t_s=1, fault="afe_silent", value=3), 'fault "afe_silent" takes no value'),
    "afe_silent_bool_value": (_ev(t_s=1, fault="afe_silent", value=False), "events[0].value: number expected, got false"),
    "afe_crc_5000": (_ev(t_s=1, fault="afe_crc", value=5000), "events[0].value: 5000 outside 1..1000"),
    "afe_crc_minus_300": (_ev(t_s=1, fault="afe_crc", value=-300), "events[0].value: -300 outside 1..1000"),
    "cell_offset_index": (_ev(t_s=1, fault="cell_offset", index=16, value=5), "events[0].index: 16 outside 0..15"),
    "current_offset_range": (_ev(t_s=1, fault="current_offset", value=5000), "events[0].value: 5000 outside"),
    "current_sensor_index": (_ev(t_s=1, sensor="current_a", index=3, value=1), "current_a sensor takes no index"),
    "victron_rs485": ('{"inverter": {"bus": "rs485", "emulator": "victron"}}', '"victron" does not speak Pylontech RS485'),
    "sma_rs485": ('{"inverter": {"bus": "rs485", "emulator": "sma"}}', '"sma" does not speak Pylontech RS485'),
    "protocol2_emulator": ('{"inverter": {"protocol_id": 2, "emulator": "victron"}}', "no emulator speaks protocol 2"),
    "bool_packs": ('{"packs": true}', "packs: number expected, got true"),
    "bool_t_s": ('{"events": [{"t_s": false, "set": "current_a", "value": 1}]}', "events[0].t_s: number expected"),
    "bool_value": (_ev(t_s=1, set="current_a", value=True), "events[0].value: number expected, got true"),
    "bool_soc": ('{"initial": {"soc_pct": true}}', "initial.soc_pct: number expected"),
    "bool_param": ('{"params": {"cycle_ms": true}}', "params.cycle_ms: number expected"),
    "bool_index": (_ev(t_s=1, sensor="cell_mv", index=True, value=3000), "events[0].index: number expected"),
    "top_list": ("[]", "must be a JSON object"),
    "top_string": ('"scenario"', "must be a JSON object"),
    "top_null": ("null", "must be a JSON object"),
    "empty_file": ("", "not valid JSON"),
    "unknown_top": ('{"pakcs": 2}', 'unknown key "pakcs"'),
    "unknown_initial": ('{"initial": {"soc": 5}}', 'initial: unknown key "soc"'),
    "unknown_inverter": ('{"inverter": {"emulator": "sma", "baud": 9600}}', 'inverter: unknown key "baud"'),
    "unknown_event": (_ev(t_s=1, press="button", force=2), 'events[0]: unknown key "force"'),
}


def _cli(tmp_path, capsys, text):
    from tools import bench as bench_cli
    f = tmp_path / "bad.json"
    f.write_text(text)
    rc = bench_cli.main(["--scenario", str(f), "--headless"])  # an exception here is the traceback a user sees
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error:"), err
    return lines[0]


@pytest.mark.parametrize("where", sorted(NAN_IN))
def test_cli_nan_or_infinity_is_one_clear_error(tmp_path, capsys, where):
    assert "NaN and Infinity are not JSON numbers (line 1)" in _cli(tmp_path, capsys, NAN_IN[where])


@pytest.mark.parametrize("case", sorted(BAD))
def test_cli_contract_violation_is_one_clear_error(tmp_path, capsys, case):
    text, msg = BAD[case]
    assert msg in _cli(tmp_path, capsys, text)


def test_cli_duplicate_key_names_its_line(tmp_path, capsys):
    text = '{\n "duration_s": 5,\n "events": [\n  {"t_s": 1, "set": "current_a",\n   "set": "ambient_c", "value": 1}]}'
    assert 'duplicate key "set" (line 5)' in _cli(tmp_path, capsys, text)


def test_same_key_in_sibling_objects_and_keylike_strings_are_fine():
    sc = scn.parse('{"comment": "NaN, Infinity, \\"seed\\": 2", "seed": 3, "events": ['
                   '{"t_s": 1, "set": "current_a", "value": 1}, {"t_s": 2, "set": "current_a", "value": 2}]}', FAULTS)
    assert sc.seed == 3 and [e.value for e in sc.events] == [1000, 2000]
