"""Link commands from the bus prove nothing about their sender (issue 14,
defect 2): a link frame never clears a latched failure, a lock-out or SCP;
those need the button (SPEC 2 "manual intervention", `000`). Refusals are
counted. Also the bench's inject events (a foreign node on the CAN bus or on
a Link IN) and their error path."""
import json

import pytest

import simworld
from bench import main as bench_main
from proto import link
from sim import scenario as scn
from sim.mock_afe import FAULTS

# the forged "reset protection" command (lib/proto/link.py: T_CMD 0x20,
# CMD_RESET_PROTECT 1): src 1 (master), dst 0xFF (broadcast) and dst 2
FORGED_BROADCAST = 0x1A20FF01
FORGED_TO_2 = 0x1A200201


def _latch_then(events):
    """2 packs; pack 1 (the slave, address 2) reads 6000 mV on cell 4 from 8 s
    to 13 s: CELL and SAMPLE latch (sensor_fail_delay_ms 2 s); events follow."""
    return {"packs": 2, "duration_s": 36, "events": [
        {"t_s": 8, "sensor": "cell_mv", "pack": 1, "index": 4, "value": 6000},
        {"t_s": 13, "sensor": "cell_mv", "pack": 1, "index": 4, "value": None}] + events}


def _run(doc, can=True):
    lines = []
    world = simworld.World(scn.parse(json.dumps(doc), FAULTS), lines.append, can=can)
    world.run()
    return world, [json.loads(ln) for ln in lines]


def _pack_at(tr, t_s, k):
    best = None
    for o in tr:
        if o.get("pack") == k and "mode" in o and o["t_ms"] <= t_s * 1000:
            best = o
    return best


def _latched(o):
    return "CELL" in o["faults"] and not o["chg_fet"] and not o["dsg_fet"]


def test_forged_can_reset_leaves_the_failure_latched_and_the_button_clears_it():
    world, tr = _run(_latch_then([
        {"t_s": 15, "inject": "can", "id": FORGED_BROADCAST, "ext": True, "data": "0100"},
        {"t_s": 16, "inject": "can", "id": FORGED_TO_2, "ext": True, "data": "0100"},
        {"t_s": 22, "press": "button", "pack": 1, "hold_s": 7}]))
    assert _pack_at(tr, 12, 1)["address"] == 2 and _latched(_pack_at(tr, 14, 1))
    # the injected frames are on the bus (traced like any frame)
    frames = [(o["id"], o["ext"], o["data"]) for o in tr if o.get("bus") == "can" and o["id"] >> 16 == 0x1A20]
    assert frames == [(FORGED_BROADCAST, True, "0100"), (FORGED_TO_2, True, "0100")]
    for t in (15.5, 17, 21):
        o = _pack_at(tr, t, 1)
        assert _latched(o) and "SAMPLE" in o["faults"], o
    assert _pack_at(tr, 17, 1)["link_refused"] == 2
    assert world.packs[1].app.state.protect_reset_req == 0
    assert world.packs[1].app.state.link_refused == 2
    # the button (held 6-10 s: RESET) still clears it: FETs close again
    o = _pack_at(tr, 35, 1)
    assert o["faults"] == [] and o["chg_fet"] and o["dsg_fet"]


def test_forged_rs485_reset_on_a_can_less_chain_is_refused_too():
    out = bytearray(link.RS485_MAX)
    n = link.rs485_frame(out, link.T_CMD, link.MASTER, link.BROADCAST, bytes([link.CMD_RESET_PROTECT, 0]), 2)
    world, tr = _run(_latch_then([
        {"t_s": 15, "inject": "rs485", "into": 1, "data": bytes(out[:n]).hex()}]), can=False)
    assert _pack_at(tr, 12, 1)["address"] == 2
    assert [o["data"] for o in tr if o.get("bus") == "rs485" and o.get("into") == 1] == [bytes(out[:n]).hex()]
    for t in (15.5, 20, 35):
        assert _latched(_pack_at(tr, t, 1))
    assert world.packs[1].app.state.link_refused == 1 and world.packs[1].app.state.protect_reset_req == 0


def test_a_latched_master_is_not_reset_by_a_frame_either():
    # the master ignores commands (they come from it); its failure stays latched
    doc = {"packs": 2, "duration_s": 20, "events": [
        {"t_s": 8, "sensor": "cell_mv", "pack": 0, "index": 2, "value": 6000},
        {"t_s": 13, "sensor": "cell_mv", "pack": 0, "index": 2, "value": None},
        {"t_s": 15, "inject": "can", "id": FORGED_BROADCAST, "ext": True, "data": "0100"}]}
    world, tr = _run(doc)
    assert _latched(_pack_at(tr, 19, 0)) and world.packs[0].app.state.protect_reset_req == 0


@pytest.mark.parametrize("ev,msg", [
    ({"inject": "can", "id": 0x800, "ext": False, "data": "00"}, "events[0].id: 2048 outside 0..2047"),
    ({"inject": "can", "id": 0x20000000, "ext": True, "data": ""}, "events[0].id: 536870912 outside 0..536870911"),
    ({"inject": "can", "id": -1, "ext": True, "data": ""}, "events[0].id: -1 outside"),
    ({"inject": "can", "id": 1, "data": "00"}, "events[0].ext: true or false expected"),
    ({"inject": "can", "id": 1, "ext": 1, "data": "00"}, "events[0].ext: true or false expected"),
    ({"inject": "can", "id": 1, "ext": False, "data": "0g"}, 'events[0].data: "0g" is not hex'),
    ({"inject": "can", "id": 1, "ext": False, "data": "012"}, "events[0].data: hex string of whole bytes"),
    ({"inject": "can", "id": 1, "ext": False, "data": 12}, "events[0].data: hex string of whole bytes"),
    ({"inject": "can", "id": 1, "ext": False, "data": "00" * 9}, "events[0].data: 9 bytes, at most 8"),
    ({"inject": "can", "id": 1, "ext": False, "data": "00", "into": 0}, 'unknown key "into"'),
    ({"inject": "rs485", "into": 2, "data": "7e"}, "events[0].into: 2 outside 0..1"),
    ({"inject": "rs485", "data": "7e"}, "events[0].into: number expected"),
    ({"inject": "rs485", "into": 0, "data": ""}, "events[0].data: at least one byte"),
    ({"inject": "rs485", "into": 0, "data": "zz"}, "is not hex"),
    ({"inject": "lin", "into": 0, "data": "00"}, 'inject must be "can" or "rs485", not "lin"'),
])
def test_bad_inject_is_one_bench_error_and_exit_2(tmp_path, capsys, ev, msg):
    f = tmp_path / "bad.json"
    ev = dict(ev, t_s=1)
    f.write_text(json.dumps({"packs": 2, "duration_s": 5, "events": [ev]}))
    assert bench_main(["--scenario", str(f), "--headless"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error:") and msg in lines[0], lines


def test_good_inject_events_parse_to_their_bytes():
    sc = scn.parse(json.dumps({"packs": 2, "duration_s": 5, "events": [
        {"t_s": 1, "inject": "can", "id": 0x7FF, "ext": False, "data": "A0ff"},
        {"t_s": 2, "inject": "can", "id": 0x1FFFFFFF, "ext": True, "data": ""},
        {"t_s": 3, "inject": "rs485", "into": 1, "data": "7e00"}]}), FAULTS)
    got = [(e.t_ms, e.name, e.pack, e.index, e.value, e.on) for e in sc.events]
    assert got == [(1000, "can", -1, 0x7FF, b"\xa0\xff", False), (2000, "can", -1, 0x1FFFFFFF, b"", True),
                   (3000, "rs485", 1, 0, b"\x7e\x00", True)]
