# The PC tool against the bench, end to end (issue 13 "Try it without
# hardware"): the simulated master's Link IN behind the bench's Modbus TCP
# gateway (tools/gateway.py), the firmware's host handler on the other side
# (wired by app.compose), bmsctl on this side. Also over CAN: the bench's bus
# bridged to python-can's udp_multicast, bmsctl's ISO-TP transport. The packs
# are commissioned as the bench does it (gateway.commission: per-pack secrets
# derived by tools.authkit from the bench factory key); the expected effects
# come from the packs' state and store, not from bmsctl's output alone.
import io
import json
import threading
import time

import pytest

from bms import auth as A
from bms.params import index_of
from defs import codes
from store.eventlog import C_LOG_CLEARED

from tools import paths  # noqa: F401
import simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS
from tools import gateway
from tools.bmsctl.cli import main as bmsctl


@pytest.fixture
def bench(tmp_path):
    sc = scn.parse('{"packs": 2, "duration_s": 3600, "seed": 1, "initial": {"soc_pct": 60}}', FAULTS)
    w = simworld.World(sc, lambda line: None)
    port = gateway.local_port()
    chan = "239.74.164.%d" % (port % 200 + 20)
    _rtu, _lines = gateway.attach(w, "127.0.0.1:%d" % port, can_spec="udp_multicast:" + chan)
    gateway.commission(w, str(tmp_path))
    stop = threading.Event()
    t = threading.Thread(target=gateway.pace, args=(w, stop), daemon=True)
    t.start()
    # the packs boot, the link gives every pack its address, and each has found the CAN
    # bus rate (app.canrate: listen-only until then, so a request over CAN would go unanswered)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(p.app.link.roles.address and p.app.state.can_kbps
                                                  for p in w.packs):
        time.sleep(0.1)
    yield w, port, chan, tmp_path
    stop.set()
    t.join(5)


def test_scan_and_live_read_the_master_through_the_gateway(bench):
    w, port, _, _ = bench
    out = io.StringIO()
    assert bmsctl(["--via", "tcp:127.0.0.1:%d" % port, "scan", "--json"], out=out) == 0
    rows = json.loads(out.getvalue())
    row = rows[0]
    view = w.packs[0].app.system.view
    assert row["unit"] == 1 and row["Mn"] == "BMS-MPY"
    sns = [r["SN"] for r in rows]  # SunSpec model 1 of every pack, through the master
    assert len(rows) == len(w.packs) and len(set(sns)) == len(sns) and sns[0] == "BMS-MPY-00000001"
    # unit 1's 802 SoC is the system's (capacity-weighted over the packs the
    # master has heard): the view's, not the master pack's own
    assert abs(row["SoC"] - view.soc_pct) <= 1
    out = io.StringIO()
    assert bmsctl(["--via", "tcp:127.0.0.1:%d" % port, "live", "--pack", "1", "--count", "2",
                   "--period", "0.2", "--json"], out=out) == 0
    rows = [json.loads(ln) for ln in out.getvalue().splitlines()]
    assert len(rows) == 2
    assert abs(rows[-1]["V"] * 1000 - view.voltage_mv) < 200


def test_each_pack_answers_for_itself_over_can(bench):
    w, _port, chan, _ = bench
    for k in (0, 1):
        addr = w.packs[k].app.link.roles.address
        out = io.StringIO()
        assert bmsctl(["--via", "can:udp_multicast:" + chan, "scan", "--last", str(addr), "--json"],
                      out=out) == 0, "pack %d (address %d)" % (k, addr)
        rows = json.loads(out.getvalue())
        assert addr and rows and rows[-1]["unit"] == addr


def ctl(port, *argv):
    """(exit code, stdout, stderr) of one bmsctl run through the TCP gateway."""
    out = io.StringIO()
    err = io.StringIO()
    import contextlib
    with contextlib.redirect_stderr(err):
        rc = bmsctl(["--via", "tcp:127.0.0.1:%d" % port] + list(argv), out=out)
    return rc, out.getvalue(), err.getvalue()


def wait_for(cond, s=8.0):
    deadline = time.monotonic() + s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def test_commissioned_secrets_are_per_pack_and_derived_from_the_bench_factory_key(bench):
    from tools import authkit
    w, _port, _chan, keys = bench
    with open(gateway.BENCH_FACTORY_KEY, "rb") as f:
        key = f.read()
    s0 = bytes.fromhex((keys / "pack0-installer.key").read_text())
    s1 = bytes.fromhex((keys / "pack1-installer.key").read_text())
    assert s0 == authkit.derive_secret(key, "bench-pack-0", A.INSTALLER) and s0 != s1
    assert all(p.app.host.auth().has_secret(A.INSTALLER) for p in w.packs)


def test_protection_parameter_refused_then_accepted_and_the_pack_acts_and_journals(bench):
    w, port, _, keys = bench
    master = w.packs[0].app
    auth = master.host.auth()
    top_mv = master.state.snap.max_cell_mv
    assert 3260 < top_mv < 3500, top_mv  # 60 % SoC: the alarm at its default 3550 mV stays off
    alarm_mv = top_mv - 40  # validate(): above chg_taper_cell_mv (lowest 3200), the release below it
    refused = auth.refused
    rc, _, err = ctl(port, "params", "set", "cell_ov_alarm_mv=%d" % alarm_mv)
    assert rc == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "unit 1: cell_ov_alarm_mv" in err and "no installer session" in err
    assert auth.refused == refused + 1 and master.params.v[index_of("cell_ov_alarm_mv")] == 3550
    assert not master.state.alarms & codes.bit(codes.ALARMS, "OV")

    rc, out, err = ctl(port, "--login", "installer", "--secret-file", str(keys / "pack0-installer.key"),
                       "params", "set", "chg_taper_cell_mv=3200", "cell_ov_alarm_rel_mv=%d" % (alarm_mv - 100),
                       "cell_ov_alarm_mv=%d" % alarm_mv)
    assert rc == 0, err
    assert "cell_ov_alarm_mv: 3550 -> %d" % alarm_mv in out
    # the pack acts on it: the over-voltage alarm within its delay (cell_ov_alarm_delay_ms 2 s) and a margin
    assert wait_for(lambda: master.state.alarms & codes.bit(codes.ALARMS, "OV")), master.state.alarms
    rc, out, _ = ctl(port, "live", "--pack", "1", "--count", "1", "--json")
    assert rc == 0 and any("cell over-voltage" in a for a in json.loads(out)["alarms"])
    # and the event log has the write, old and new
    rc, out, err = ctl(port, "history", "pull", "--csv")
    assert rc == 0, err
    import csv
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r["name"] == "cell_ov_alarm_mv"]
    assert [(r["raised"], r["value"]) for r in rows] == [("False", "3550"), ("True", str(alarm_mv))]


def test_history_clear_clock_sync_calib_and_fets(bench):
    w, port, _, keys = bench
    app = w.packs[0].app
    login = ("--login", "installer", "--secret-file", str(keys / "pack0-installer.key"))
    log = app.host.build()[0].journal.history
    # clock: not set at boot; sync puts it within 2 s of this computer's
    assert app.host.build()[0].journal.unix_s() == -1
    rc, out, err = ctl(port, *login, "clock", "sync")
    assert rc == 0, err
    assert abs(app.host.build()[0].journal.unix_s() - time.time()) <= 2
    # history clear: what was there goes; only the clear itself is journalled
    assert log.next_seq - log.oldest_seq() > 0
    rc, out, err = ctl(port, *login, "history", "clear")
    assert rc == 0, err
    assert "history cleared" in out
    rc, out, _ = ctl(port, "history", "pull", "--csv")
    import csv
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == ["note %d" % C_LOG_CLEARED, "history_clear", "history_clear"]
    # calibration: the current offset the estimate stage applies
    rc, out, err = ctl(port, *login, "calib", "set", "i_offset_ma=-120")
    assert rc == 0, err
    assert wait_for(lambda: app.state.i_offset_ma == -120)
    rc, out, _ = ctl(port, "calib", "get")
    assert rc == 0 and "i_offset_ma              -120" in out
    # FETs: held open by the PC tool, released again
    st = app.state
    assert st.chg_fet and st.dsg_fet
    rc, _, err = ctl(port, *login, "control", "set", "fet_off=3")
    assert rc == 0, err
    assert wait_for(lambda: not st.chg_fet and not st.dsg_fet)
    assert wait_for(lambda: not w.packs[0].model.chg_on() and not w.packs[0].model.dsg_on())
    rc, _, err = ctl(port, *login, "control", "set", "fet_off=0")
    assert rc == 0, err
    assert wait_for(lambda: st.chg_fet and st.dsg_fet)


def test_params_set_and_read_back_on_a_slave_over_can(bench):
    w, _port, chan, keys = bench
    slave = w.packs[1].app
    addr = slave.link.roles.address
    assert addr and addr != w.packs[0].app.link.roles.address
    i = index_of("cell_ov_alarm_mv")
    via = ["--via", "can:udp_multicast:" + chan, "--unit", str(addr)]
    out = io.StringIO()
    assert bmsctl(via + ["params", "set", "cell_ov_alarm_mv=3580"], out=out) == 1  # no session on CAN either
    assert slave.params.v[i] == 3550
    out = io.StringIO()
    assert bmsctl(via + ["--login", "installer", "--secret-file", str(keys / "pack1-installer.key"),
                         "params", "set", "cell_ov_alarm_mv=3580"], out=out) == 0
    assert "cell_ov_alarm_mv: 3550 -> 3580" in out.getvalue()
    assert slave.params.v[i] == 3580 and w.packs[0].app.params.v[i] == 3550  # the slave's own, not the master's
    out = io.StringIO()
    assert bmsctl(via + ["params", "get", "cell_ov_alarm_mv", "--json"], out=out) == 0
    assert json.loads(out.getvalue()) == {"cell_ov_alarm_mv": 3580}
    # the master's secret opens no slave
    out = io.StringIO()
    assert bmsctl(via + ["--login", "installer", "--secret-file", str(keys / "pack0-installer.key"), "info"],
                  out=out) == 1


def test_pysunspec2_reads_802_that_matches_the_trace(tmp_path):
    # issue 13: pysunspec2 scans the map through the bench's gateway, and model
    # 802's SoC, voltage and current are the trace's (a single pack: the
    # system is that pack; the trace line is the one written just before the read)
    from tools.bmsctl import sunspec
    from tools.bmsctl.transport import Tcp
    lines = []
    sc = scn.parse('{"packs": 1, "duration_s": 3600, "seed": 4, "initial": {"soc_pct": 70}, '
                   '"events": [{"t_s": 1, "set": "current_a", "value": -20}]}', FAULTS)
    w = simworld.World(sc, lines.append)
    port = gateway.local_port()
    gateway.attach(w, "127.0.0.1:%d" % port)
    stop = threading.Event()
    t = threading.Thread(target=gateway.pace, args=(w, stop), daemon=True)
    t.start()
    try:
        time.sleep(4)  # the pack reads, the current settles
        tcp = Tcp("127.0.0.1", port)
        try:
            n = len(lines)
            dev = sunspec.scan(tcp, 1)
            m = len(lines)
        finally:
            tcp.close()
    finally:
        stop.set()
        t.join(5)
    assert dev is not None and 802 in dev.models
    b = dev.models[802][0]
    # the pack lines written around the read: the read's values are within them
    around = [json.loads(ln) for ln in lines[max(0, n - 3):m + 3] if '"pack"' in ln and '"soc_pct"' in ln]
    assert around
    socs = {d["soc_pct"] for d in around}
    assert sunspec.point(b, "SoC") in socs or min(abs(sunspec.point(b, "SoC") - s) for s in socs) <= 1
    assert min(abs(sunspec.point(b, "V") * 1000 - d["stack_mv"]) for d in around) <= 20
    assert min(abs(sunspec.point(b, "A") * 1000 - d["current_ma"]) for d in around) <= 100
    assert around[-1]["current_ma"] < -15000  # the discharge the scenario asked for is what 802 shows
    assert sunspec.point(b, "A") < -15


def test_can_bitrate_all_through_the_gateway_moves_the_system_to_250(bench):
    # bmsctl control can-bitrate 250 --all on the master's RS485 port (TCP gateway):
    # both packs store can_bitrate_count 1 and restart (the slave first), and the
    # system comes back at 250 kbit/s; the PC's CAN adapter (the bench's bridge) still
    # at 500 is what the tool warns about: set to 250, bmsctl over CAN reaches both packs
    import shutil
    from bms.params import CAN_BITRATE_COUNT
    w, port, chan, keys = bench
    for k in range(2):
        shutil.copy(str(keys / ("pack%d-installer.key" % k)), str(keys / ("unit%d-installer.key" % (k + 1))))
    apps = [p.app for p in w.packs]
    out = io.StringIO()
    assert bmsctl(["--via", "tcp:127.0.0.1:%d" % port, "--login", "installer", "--secret-file",
                   str(keys / "pack0-installer.key"), "control", "can-bitrate", "250", "--all",
                   "--secret-pattern", str(keys / "unit{unit}-installer.key")], out=out) == 0
    text = out.getvalue()
    assert "unit 1: can_bitrate_count 0 -> 1 (250 kbit/s), read back" in text
    assert "unit 2: can_bitrate_count 0 -> 1 (250 kbit/s), read back" in text
    assert "inverter" in text and "CAN adapter" in text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(
            p.app is not a and p.app.state.can_kbps == 250 and p.app.link.roles.address
            for p, a in zip(w.packs, apps)):
        time.sleep(0.1)
    assert [(p.app.state.can_kbps, p.app.state.can_followed) for p in w.packs] == [(250, False)] * 2
    assert [p.app.params.v[CAN_BITRATE_COUNT] for p in w.packs] == [1, 1]  # from each pack's store
    pc = [p for p in w.can.ports if p.name == "pc"][0]
    pc.init(250000)  # the PC's adapter to the new rate, as the tool says
    out = io.StringIO()
    assert bmsctl(["--via", "can:udp_multicast:" + chan, "scan", "--last", "2", "--json"], out=out) == 0
    assert [r["unit"] for r in json.loads(out.getvalue())] == [1, 2]
