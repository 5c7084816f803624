# The firmware update in the bench world (issue 15, "Bench contract"): the
# scenario's update event runs bmsctl update's session (udsoncan on can-isotp,
# tools/benchupdate.py) on the simulated CAN bus in virtual time against every
# simulated pack's real UDS server, updater and slot writer on its simulated
# ROMFS partition; the pack restarts into the new slot (update.boot.choose),
# runs its self-test (app.confirm, 60 s) and reports the new version,
# confirmed, with its parameters, counters and history kept. Refusals come
# back as result lines with the pack's reason. bmsctl update --all is driven
# over a python-can virtual bus against two board sides.
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import simworld
from bms.params import index_of
from sim import romfs
from sim import scenario as scn
from sim.mock_afe import FAULTS
from tools.bmsctl import bundle as tool

FILES = {"version": b"2.0.0", "app/app.mpy": bytes(range(256)) * 20, "lib/bms/soc.mpy": b"\x4d\x06soc" * 300}


def make_bundle(tmp_path, name="fw.bmsu", key=None, files=FILES, counter=1, board="host_sim"):
    img = romfs.image(files)
    key = key or tool.load_key(tool.DEV_KEY)
    data = tool.pack(tool.manifest(board, files["version"].decode(), counter, img, files), img, key)
    p = tmp_path / name
    p.write_bytes(data)
    return str(p), data


def run(doc, frames=False):
    lines = []
    w = simworld.World(scn.parse(json.dumps(doc), FAULTS), lines.append, frames=frames)
    return w, lines


def fw_of(lines):
    last = {}
    for ln in lines:
        d = json.loads(ln)
        if "fw" in d:
            last[d["pack"]] = d["fw"]
    return last


def updates(lines):
    return [json.loads(ln)["update"] for ln in lines if '"update"' in ln]


def test_four_packs_updated_at_once_report_the_new_version_confirmed_and_keep_their_store(tmp_path):
    path, data = make_bundle(tmp_path)
    w, lines = run({"packs": 4, "duration_s": 150, "seed": 2, "events": [
        {"t_s": 10, "update": path, "pack": "all", "via": "can"}]})
    w.run_until(9000)
    before = []
    for p in w.packs:
        p.app.params.set(index_of("buzzer_enable"), 1)  # an installer's setting, stored
        p.store.params.save(p.app.params)
        p.app.persist.save_now()
        before.append((p.app.persist.now[:], p.store.log.next_seq))
    assert fw_of(lines) == {k: {"version": "1.0", "slot": "A", "state": "running"} for k in range(4)}
    w.run()
    assert fw_of(lines) == {k: {"version": "2.0.0", "slot": "B", "state": "confirmed"} for k in range(4)}
    results = [u for u in updates(lines) if u["result"] is not None]
    assert sorted(u["pack"] for u in results) == [0, 1, 2, 3]
    assert all(u["result"] == "ok" and u["bytes"] == u["of"] == len(data) for u in results)
    assert sorted(w.tester.scanned) == sorted(p.app.state.link_address for p in w.packs)
    for p, (counters, seq) in zip(w.packs, before):
        assert p.board.running == 1 and bytes(p.board.rom[256 * 1024:256 * 1024 + 3]) == romfs.HEADER
        assert p.app.params.v[index_of("buzzer_enable")] == 1  # parameters survived the restart
        assert p.store.log.next_seq >= seq  # the history too
        from store import counters as C
        assert p.app.persist.now[C.BOOTS] == counters[C.BOOTS] + 1  # and the counters: one boot more
    # while updating: the pack idle, its slot record staged then confirmed (the boot part's record)
    states = [json.loads(ln) for ln in lines if '"fw"' in ln and json.loads(ln)["pack"] == 0]
    seen = [s["fw"]["state"] for s in states]
    assert seen.index("updating") < seen.index("pending") < seen.index("confirmed")
    upd = [s for s in states if s["fw"]["state"] == "updating"]
    assert all(not s["chg_fet"] and not s["dsg_fet"] and s["ccl_ma"] == 0 for s in upd[2:])


def test_the_trace_repeats_and_old_scenarios_have_no_fw(tmp_path):
    path, _ = make_bundle(tmp_path)
    doc = {"packs": 1, "duration_s": 14, "events": [{"t_s": 10, "update": path, "pack": 0}]}
    a = run(doc, frames=True)
    a[0].run()
    b = run(doc, frames=True)
    b[0].run()
    assert a[1] == b[1]  # seeded nonces: the same frames, byte for byte
    assert sum('"bus": "can"' in ln for ln in a[1]) > 1000
    w, lines = run({"packs": 1, "duration_s": 3})
    w.run()
    assert lines and not any('"fw"' in ln for ln in lines)


def test_an_unknown_key_is_refused_and_the_provisioned_one_accepted(tmp_path):
    owner = Ed25519PrivateKey.generate()
    path, _ = make_bundle(tmp_path, key=owner)
    w, lines = run({"packs": 1, "duration_s": 30, "events": [{"t_s": 10, "update": path}]})
    w.run()
    res = [u["result"] for u in updates(lines) if u["result"]]
    assert len(res) == 1 and res[0].startswith("refused: TransferData refused: NRC 0x72") and "(signature)" in res[0]
    assert fw_of(lines)[0] == {"version": "1.0", "slot": "A", "state": "running"}
    (tmp_path / "owner.pub").write_text(tool.public_hex(owner) + "\n")
    w, lines = run({"packs": 1, "duration_s": 30, "update_pubkey": str(tmp_path / "owner.pub"),
                    "events": [{"t_s": 10, "update": path}]})
    w.run()
    assert [u["result"] for u in updates(lines) if u["result"]] == ["ok"]
    assert fw_of(lines)[0] == {"version": "2.0.0", "slot": "B", "state": "pending"}  # self-test still running


def test_a_downgrade_and_a_wrong_board_are_refused_with_their_reason(tmp_path):
    p1, _ = make_bundle(tmp_path, "a.bmsu", counter=5)
    p2, _ = make_bundle(tmp_path, "b.bmsu", counter=4, files=dict(FILES, version=b"1.9.0"))
    p3, _ = make_bundle(tmp_path, "c.bmsu", board="esp32_bq", counter=9)
    w, lines = run({"packs": 1, "duration_s": 200, "events": [
        {"t_s": 10, "update": p1}, {"t_s": 100, "update": p2}, {"t_s": 120, "update": p3}]})
    w.run()
    res = [u["result"] for u in updates(lines) if u["result"]]
    assert res[0] == "ok"
    assert res[1].endswith("(downgrade)") and res[2].endswith("(board)")
    assert fw_of(lines)[0] == {"version": "2.0.0", "slot": "B", "state": "confirmed"}


@pytest.mark.parametrize("ev,msg", [
    ({"t_s": 1, "update": "f", "via": "rs485"}, "FC 0x15"),
    ({"t_s": 1, "update": "f", "via": "usb"}, "is not can"),
    ({"t_s": 1, "update": "", "pack": 0}, "a file name expected"),
    ({"t_s": 1, "update": "f", "pack": 3}, "outside"),
    ({"t_s": 1, "update": "f", "pack": 0, "unit": 2}, "unknown key"),
])
def test_bad_update_events_are_scenario_errors(ev, msg):
    with pytest.raises(scn.ScenarioError) as e:
        scn.parse(json.dumps({"packs": 2, "events": [ev]}), FAULTS)
    assert msg in str(e.value)


def test_a_bad_update_pubkey_is_a_scenario_error(tmp_path):
    (tmp_path / "k.pub").write_text("abcd\n")
    for doc, msg in (({"update_pubkey": str(tmp_path / "k.pub")}, "not a 32-byte"),
                     ({"update_pubkey": str(tmp_path / "none.pub")}, "cannot read"),
                     ({"update_pubkey": 7}, "a file name expected")):
        with pytest.raises(scn.ScenarioError) as e:
            simworld.World(scn.parse(json.dumps(doc), FAULTS), lambda ln: None)
        assert msg in str(e.value)


def test_bmsctl_update_all_over_a_python_can_bus(tmp_path, capsys):
    # two board sides (test_uds_update's) at units 2 and 3 on one python-can virtual bus, real time
    import threading
    import time
    import can
    import test_uds_update as T
    from tools.bmsctl.cli import main as bmsctl
    small = b"\xd2\xcd\x31" + bytes(700)
    (tmp_path / "fw.bmsu").write_bytes(T.bundle(image=small, files={}))
    (tmp_path / "inst.key").write_text(T.SECRET.hex())
    chan = "uds-all-%d" % id(tmp_path)
    bus = can.Bus(interface="virtual", channel=chan)
    packs = {}
    for unit in (2, 3):
        pk = T.Pack()
        pk.files = {}
        pk.svc.address = (lambda u: lambda: u)(unit)
        pk.svc.can = T.PcanPort(bus)
        packs[unit] = pk
    stop = []

    def board():
        t0 = time.monotonic()
        next_tick = 0
        while not stop:
            m = bus.recv(0.001)
            now = int((time.monotonic() - t0) * 1000)
            for pk in packs.values():
                if m is not None:
                    pk.svc.now_ms = now
                    pk.svc.on_frame("can", [m.arbitration_id, m.data, 2, 0])
                if now >= next_tick:
                    pk.svc.tick(now)
            if now >= next_tick:
                next_tick = now + 1
    th = threading.Thread(target=board, daemon=True)
    th.start()
    try:
        rc = bmsctl(["--via", "can:virtual:" + chan, "--secret-file", str(tmp_path / "inst.key"), "--timeout", "0.3",
                     "update", str(tmp_path / "fw.bmsu"), "--all", "--no-activate"])
    finally:
        stop.append(1)
        th.join()
        bus.shutdown()
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "pack 2: ok, staged in slot B" in out and "pack 3: ok, staged in slot B" in out
    assert "2 of 2 packs updated" in out
    for pk in packs.values():
        assert pk.record()[T.S.PENDING] == 1 and pk.resets == 0


def test_a_host_sim_bundle_holds_the_firmware_and_its_version(tmp_path):
    # bmsctl bundle --board host_sim: what the bench's packs can be updated with
    from update import bundle as fmt
    out = tmp_path / "h.bmsu"
    total, image, nfiles = tool.make("host_sim", "3.1.0", 2, tool.DEV_KEY, str(out), str(tmp_path / "build"))
    data = out.read_bytes()
    n = fmt.header_length(data[:fmt.HEAD])
    m = fmt.check(data[:n], bytes.fromhex(tool.public_hex(tool.load_key(tool.DEV_KEY))), "host_sim", 0, 1)
    img = data[n:]
    files = romfs.files(img)
    assert len(img) == image == m["image_bytes"] and romfs.size(img) == len(img)
    assert files["version"] == b"3.1.0" and "app/uds.mpy" in files and "board.mpy" in files
    assert {k: hashlib.sha256(v).hexdigest() for k, v in files.items()} == m["files"]
