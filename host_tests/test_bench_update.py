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


def test_a_broadcast_with_frames_dropped_for_some_packs_ends_with_every_pack_confirmed(tmp_path, monkeypatch):
    # "pack": "all" broadcasts the bundle; pack 1 loses one data frame, pack 2 the
    # first announce, pack 3 a later one: two packs lack bytes, so a second pass
    # from the furthest behind (pack 2: nothing) brings each the rest from its own point
    from tools import benchupdate
    from update import bundle as fmt
    path, data = make_bundle(tmp_path)
    n = fmt.header_length(data[:fmt.HEAD])
    passes = []
    end = benchupdate.Tester._end_broadcast

    def snapshot(self):
        passes.append({p.index: (p.app.uds.server.upd.received, p.app.uds.server.bc_taken) for p in w.packs})
        end(self)
    monkeypatch.setattr(benchupdate.Tester, "_end_broadcast", snapshot)
    w, lines = run({"packs": 4, "duration_s": 90, "seed": 2, "events": [
        {"t_s": 10, "update": path, "pack": "all", "via": "can"}]})
    drop = {1: {("data", 600)}, 2: {("announce", 0)}, 3: {("announce", 3)}}
    for k, lose in drop.items():
        port = w.packs[k].board.can
        seen = {"announce": 0}

        def push(id_, d, flags, port=port, lose=lose, seen=seen, keep=port._push):
            if id_ >> 8 == 0x18FFB0:
                seq = d[0] << 8 | d[1]
                what = ("announce", seen["announce"]) if seq == 0xFFFF else ("data", seq)
                seen["announce"] += seq == 0xFFFF
                if what in lose:
                    lose.discard(what)  # once
                    return
            keep(id_, d, flags)
        port._push = push
    w.run()
    assert len(passes) == len(w.tester.passes) == 2
    first, second = passes
    assert first[0][0] == first[3][0] == len(data)  # everything by the broadcast (a later announce is a repeat)
    assert first[1][0] == 600 * 6 > n  # up to the lost frame, then nothing: the slot is written in order
    assert first[2] == (0, 0)  # the next announce came after its next byte had passed
    assert first[0][1] == first[3][1] == (len(data) + 5) // 6 and first[1][1] == 600
    assert all(second[k][0] == len(data) for k in range(4))  # the second pass, from 0: each from its own point
    assert second[1][1] == (len(data) + 5) // 6 and second[2][1] == (len(data) + 5) // 6
    assert second[0][1] == first[0][1]  # a pack that had it all took nothing more
    results = [u for u in updates(lines) if u["result"] is not None]
    assert sorted(u["pack"] for u in results) == [0, 1, 2, 3]
    assert all(u["result"] == "ok" and u["bytes"] == u["of"] == len(data) for u in results)
    assert fw_of(lines) == {k: {"version": "2.0.0", "slot": "B", "state": "confirmed"} for k in range(4)}


def test_one_pack_behind_after_the_broadcast_gets_the_rest_over_uds(tmp_path, monkeypatch):
    from tools import benchupdate
    path, data = make_bundle(tmp_path)
    passes = []
    end = benchupdate.Tester._end_broadcast

    def snapshot(self):
        passes.append({p.index: p.app.uds.server.upd.received for p in w.packs})
        end(self)
    monkeypatch.setattr(benchupdate.Tester, "_end_broadcast", snapshot)
    w, lines = run({"packs": 3, "duration_s": 90, "seed": 2, "events": [
        {"t_s": 10, "update": path, "pack": "all", "via": "can"}]})
    port = w.packs[1].board.can
    keep = port._push
    port._push = lambda id_, d, flags: None if id_ >> 8 == 0x18FFB0 and d[:2] == b"\x01\x00" else keep(id_, d, flags)
    w.run()
    assert passes == [{0: len(data), 1: 256 * 6, 2: len(data)}]  # one pass: one pack behind is not worth another
    assert fw_of(lines) == {k: {"version": "2.0.0", "slot": "B", "state": "confirmed"} for k in range(3)}


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
    ({"t_s": 1, "update": "f", "via": "usb"}, "is not can or rs485"),
    ({"t_s": 1, "update": "", "pack": 0}, "a file name expected"),
    ({"t_s": 1, "update": "f", "pack": 3}, "outside"),
    ({"t_s": 1, "update": "f", "pack": 0, "unit": 2}, "unknown key"),
])
def test_bad_update_events_are_scenario_errors(ev, msg):
    with pytest.raises(scn.ScenarioError) as e:
        scn.parse(json.dumps({"packs": 2, "events": [ev]}), FAULTS)
    assert msg in str(e.value)


def test_an_update_via_rs485_beside_an_rs485_inverter_emulator_is_a_scenario_error():
    with pytest.raises(scn.ScenarioError) as e:
        scn.parse(json.dumps({"packs": 2, "inverter": {"bus": "rs485", "emulator": "pylon"},
                              "events": [{"t_s": 1, "update": "f", "via": "rs485"}]}), FAULTS)
    assert "uses the master's Link IN" in str(e.value)


def _rs485(tmp_path, baud_high=0, all_at_once=False):
    path, data = make_bundle(tmp_path)
    doc = {"packs": 2, "duration_s": 110, "seed": 3, "params": {"inv_baud_high_count": baud_high}, "events": [
        {"t_s": 10, "update": path, "pack": 1, "via": "rs485"},  # the slave first: the master restarts after
        {"t_s": 11, "update": path, "pack": 0, "via": "rs485"}]}  # its activate and relays nothing for a while
    if all_at_once:  # "all": the same order (the master last)
        doc["events"] = [{"t_s": 10, "update": path, "pack": "all", "via": "rs485"}]
    w, lines = run(doc)
    w.run()
    return w, lines, data, doc


def test_via_rs485_the_master_and_a_slave_through_it_end_confirmed_with_the_new_version(tmp_path):
    # bmsctl's Modbus session (tools/benchrtu.py) on the master's Link IN at 9600 baud: the master
    # itself (unit 1), then pack 1 (unit 2) relayed by the master over CAN
    w, lines, data, doc = _rs485(tmp_path)
    t = w.rtu_tester
    assert t.baud == 9600 and w.tester is None  # no UDS tester: the update went over RS485 only
    assert fw_of(lines) == {k: {"version": "2.0.0", "slot": "B", "state": "confirmed"} for k in range(2)}
    results = [u for u in updates(lines) if u["result"] is not None]
    assert [(u["pack"], u["result"], u["bytes"], u["of"]) for u in results] == [
        (k, "ok", len(data), len(data)) for k in (1, 0)]
    progress = [u for u in updates(lines) if u["result"] is None]
    assert {u["pack"] for u in progress} == {0, 1} and all(u["bytes"] < u["of"] or u["bytes"] == len(data)
                                                           for u in progress)
    assert t.vias == {0: 0x41, 1: 0x41}  # the pack offers FC 0x41 and the map describes it
    (a0, b0), (a1, b1) = t.times[0], t.times[1]
    assert a0 >= b1  # one session at a time on the line: pack 0's waited for pack 1's
    # bit times: at 9600 baud (11-bit characters) the bundle cannot cross faster than the line
    assert len(data) * 1000 / (b0 - a0) < 9600 / 11
    assert t.block_rate(0) > 0.8 * 9600 / 11  # FC 0x41 and the 2 ms reads: above 80 % of the line
    # the pack idle while its session held it
    states = [json.loads(ln) for ln in lines if '"fw"' in ln and json.loads(ln)["pack"] == 1]
    upd = [x for x in states if x["fw"]["state"] == "updating"]
    assert upd and all(not x["chg_fet"] and not x["dsg_fet"] and x["ccl_ma"] == 0 for x in upd[2:])
    seen = [x["fw"]["state"] for x in states]
    assert seen.index("updating") < seen.index("pending") < seen.index("confirmed")
    w2, lines2 = run(doc)  # the trace repeats byte for byte
    w2.run()
    assert lines2 == lines


def test_via_rs485_all_packs_at_115200_the_blocks_take_the_port_s_baud_and_the_flash_time(tmp_path, monkeypatch):
    w, lines, data, _ = _rs485(tmp_path, baud_high=1, all_at_once=True)
    t = w.rtu_tester
    assert t.baud == 115200 and [t.results[k] for k in range(2)] == ["ok", "ok"]
    assert [u["pack"] for u in updates(lines) if u["result"]] == [1, 0]  # the master last
    assert fw_of(lines)[0] == {"version": "2.0.0", "slot": "B", "state": "confirmed"}
    line = 115200 / 11
    with_flash = t.block_rate(0)
    # the master's replies wait for its flash (a 45 ms erase per 4 KiB, 0.4 ms per page): without
    # those times the same run is faster; the line's bit times bound both. The erase runs ahead,
    # while the next block is on the line (app.hostupd), so it costs ~20 ms of its 45 per 17 blocks
    monkeypatch.setattr(romfs, "ERASE_MS", 0)
    monkeypatch.setattr(romfs, "PAGE_US", 0)
    w, lines, data, _ = _rs485(tmp_path, baud_high=1, all_at_once=True)
    without = w.rtu_tester.block_rate(0)
    assert 0.8 * line < with_flash < without - 200 and without < line


def test_via_rs485_a_refused_bundle_shows_its_reason(tmp_path):
    p1, _ = make_bundle(tmp_path, "a.bmsu", key=Ed25519PrivateKey.generate())
    p2, _ = make_bundle(tmp_path, "b.bmsu", board="esp32_bq")
    w, lines = run({"packs": 2, "duration_s": 40, "events": [
        {"t_s": 10, "update": p1, "pack": 1, "via": "rs485"}, {"t_s": 20, "update": p2, "pack": 0, "via": "rs485"}]})
    w.run()
    res = [(u["pack"], u["result"]) for u in updates(lines) if u["result"]]
    assert [k for k, _ in res] == [1, 0]
    assert res[0][1].startswith("refused: unit 2: update block") and res[0][1].endswith("(signature)")
    assert "update refused: signature" in res[0][1]
    assert res[1][1].startswith("refused: unit 1: update block") and res[1][1].endswith("(board)")
    assert fw_of(lines) == {k: {"version": "1.0", "slot": "A", "state": "running"} for k in range(2)}


def test_a_bad_update_pubkey_is_a_scenario_error(tmp_path):
    (tmp_path / "k.pub").write_text("abcd\n")
    for doc, msg in (({"update_pubkey": str(tmp_path / "k.pub")}, "not a 32-byte"),
                     ({"update_pubkey": str(tmp_path / "none.pub")}, "cannot read"),
                     ({"update_pubkey": 7}, "a file name expected")):
        with pytest.raises(scn.ScenarioError) as e:
            simworld.World(scn.parse(json.dumps(doc), FAULTS), lambda ln: None)
        assert msg in str(e.value)


@pytest.mark.parametrize("how", ["broadcast", "--no-broadcast"])
def test_bmsctl_update_all_over_a_python_can_bus(tmp_path, capsys, how):
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
                     "update", str(tmp_path / "fw.bmsu"), "--all", "--no-activate", "--rate", "2000"]
                    + ([how] if how.startswith("--") else []))
    finally:
        stop.append(1)
        th.join()
        bus.shutdown()
    out = capsys.readouterr().out
    assert rc == 0, out
    assert bmsctl(["--via", "can:virtual:" + chan, "--secret-file", str(tmp_path / "inst.key"), "update",
                   str(tmp_path / "fw.bmsu"), "--all", "--rate", "0"]) == 1
    assert "--rate is broadcast frames per second" in capsys.readouterr().err
    assert "pack 2: ok, staged in slot B" in out and "pack 3: ok, staged in slot B" in out
    assert "2 of 2 packs updated" in out
    for pk in packs.values():
        assert pk.record()[T.S.PENDING] == 1 and pk.resets == 0
        if how == "broadcast":  # the whole bundle by the broadcast, 6 bytes a frame
            assert pk.svc.bc_taken == (len((tmp_path / "fw.bmsu").read_bytes()) + 5) // 6
        else:
            assert pk.svc.bc_taken == pk.svc.bc_ignored == 0


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


def test_bmsctl_updates_a_slave_and_the_master_through_the_bench_s_tcp_gateway(tmp_path):
    # the gateway's framers know FC 0x41 (tools.bmsctl.mbpdu): bmsctl over Modbus TCP, the bench
    # framing each request as RTU on the master's Link IN, the master relaying unit 2 over CAN
    import threading
    import time
    from tools import gateway
    from tools.benchupdate import installer_secrets
    from tools.bmsctl import mbupdate as M
    from tools.bmsctl.client import Pack, load_map
    from tools.bmsctl.transport import Tcp
    path, data = make_bundle(tmp_path)
    w = simworld.World(scn.parse(json.dumps({"packs": 2, "duration_s": 600, "seed": 2,
                                             "update_pubkey": simworld.dev_pubkey()}), FAULTS), lambda ln: None)
    port = gateway.local_port()
    gateway.attach(w, "127.0.0.1:%d" % port)
    secrets = installer_secrets(w)
    stop = threading.Event()
    t = threading.Thread(target=gateway.pace, args=(w, stop), kwargs={"speed": 5}, daemon=True)
    t.start()
    try:
        time.sleep(1)  # the link forms (5 s simulated)
        tr = Tcp("127.0.0.1", port, 10)
        got = [M.run_pack(Pack(tr, unit, load_map()), secrets[k], data) for unit, k in ((2, 1), (1, 0))]
        tr.close()
    finally:
        stop.set()
        t.join(10)
    assert [(r, s["via"], s["state"]) for r, s in got] == [("ok", 0x41, "staged")] * 2
