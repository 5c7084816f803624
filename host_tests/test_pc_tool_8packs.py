# The PC tool against an 8-pack parallel system on the bench, end to end
# (issue 13 "How it is shown"): bmsctl, run as a user runs it (its main() with
# argv), reads all 8 packs through the master behind the bench's Modbus TCP
# gateway (tools/gateway.py: RTU on the master's Link IN, relayed over CAN to
# units 2..8; and on a bench without CAN along the RS485 chain), changes a
# protection parameter of a slave (refused without login, accepted with that
# pack's installer session, the pack's alarm follows, the write is in its
# event log), pulls and clears its history, syncs its clock, calibrates its
# current offset; then the same over CAN (the bench's bus bridged to
# python-can udp_multicast, each pack answering for itself). Every effect is
# asserted against the packs' own state and store.
# Time: the bench runs at SPEED x real time (gateway.pace): the gateway waits in
# simulated time, bmsctl's timeouts are wall time (TCP 3 s, CAN 2 s) and stay
# far above SPEED-scaled replies; real time would make the 8-pack reads (a
# SunSpec scan is ~10 reads per unit, up to ~0.5 s each through the master)
# take minutes.
import contextlib
import csv
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

N = 8
SPEED = 4
SOC = [30, 35, 40, 45, 50, 55, 60, 65]


def _bench(keys, can):
    sc = scn.parse(json.dumps({"packs": N, "duration_s": 7200, "seed": 3, "initial": {"soc_pct": SOC}}), FAULTS)
    w = simworld.World(sc, lambda line: None, can=can)
    port = gateway.local_port()
    chan = "239.74.165.%d" % (port % 200 + 20)
    gateway.attach(w, "127.0.0.1:%d" % port, can_spec=("udp_multicast:" + chan) if can else None)
    gateway.commission(w, str(keys))
    stop = threading.Event()
    t = threading.Thread(target=gateway.pace, args=(w, stop), kwargs={"speed": SPEED}, daemon=True)
    t.start()
    master = w.packs[0].app
    deadline = time.monotonic() + 30  # addresses handed down the chain, every slave reported to the master
    while time.monotonic() < deadline and master.state.link_online < N:
        time.sleep(0.1)
    assert [p.app.link.roles.address for p in w.packs] == list(range(1, N + 1))
    assert master.state.link_online == N
    return w, port, chan, t, stop


class Bench:
    def __init__(self, w, port, chan, keys, can):
        self.w = w
        self.port = port
        self.chan = chan
        self.keys = keys
        self.can = can

    def ctl(self, *argv, via=None):
        """(exit code, stdout, stderr) of one bmsctl run (through the TCP gateway by default)."""
        out = io.StringIO()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = bmsctl(["--via", via or "tcp:127.0.0.1:%d" % self.port] + list(argv), out=out)
        return rc, out.getvalue(), err.getvalue()

    def login(self, k):
        return ("--login", "installer", "--secret-file", str(self.keys / ("pack%d-installer.key" % k)))


@pytest.fixture(scope="module", params=["can", "rs485"])
def bench(request, tmp_path_factory):
    """8 packs with CAN (the master relays over CAN; bmsctl also on the bridged
    bus) or without (the master relays along the RS485 chain)."""
    can = request.param == "can"
    keys = tmp_path_factory.mktemp("keys-" + request.param)
    w, port, chan, t, stop = _bench(keys, can)
    yield Bench(w, port, chan, keys, can)
    stop.set()
    t.join(5)


def wait_for(cond, s=8.0):
    deadline = time.monotonic() + s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_bmsctl_reads_all_8_packs_through_the_master(bench):
    rc, out, err = bench.ctl("scan", "--last", str(N + 1), "--json")
    assert rc == 0, err
    rows = json.loads(out)
    assert [r["unit"] for r in rows] == list(range(1, N + 1))  # unit 9: no pack (0x0A), not listed
    view = bench.w.packs[0].app.system.view  # unit 1's 802 is the system
    assert abs(rows[0]["SoC"] - view.soc_pct) <= 1 and abs(rows[0]["V"] * 1000 - view.voltage_mv) < 200
    for r in rows[1:]:
        st = bench.w.packs[r["unit"] - 1].app.state
        assert abs(r["SoC"] - st.soc_pct) <= 1, r
    assert len({r["SoC"] for r in rows[1:]}) == N - 1  # each unit is its own pack (initial SOC differ)
    relay = bench.w.packs[0].app.host.build()[-1]
    assert relay.relayed > 0 and relay.timeouts == 0


# the slave the parameter, history, clock and calibration steps go to: the chain's far end
K = N - 1
UNIT = K + 1


def test_a_slaves_protection_parameter_through_the_master(bench):
    w = bench.w
    app = w.packs[K].app
    auth = app.host.auth()
    i = index_of("cell_ov_alarm_mv")
    top_mv = app.state.snap.max_cell_mv
    assert 3260 < top_mv < 3500, top_mv  # the alarm at its default 3550 mV is off
    alarm_mv = top_mv - 40  # validate(): above chg_taper_cell_mv (lowest 3200), the release below it
    refused = auth.refused
    rc, _, err = bench.ctl("--unit", str(UNIT), "params", "set", "cell_ov_alarm_mv=%d" % alarm_mv)
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "unit %d: cell_ov_alarm_mv" % UNIT in err and "no installer session" in err
    assert auth.refused == refused + 1 and app.params.v[i] == 3550
    # the master's secret opens no slave
    rc, _, err = bench.ctl("--unit", str(UNIT), *bench.login(0), "info")
    assert rc == 1 and app.params.v[i] == 3550
    rc, out, err = bench.ctl("--unit", str(UNIT), *bench.login(K), "params", "set", "chg_taper_cell_mv=3200",
                             "cell_ov_alarm_rel_mv=%d" % (alarm_mv - 100), "cell_ov_alarm_mv=%d" % alarm_mv)
    assert rc == 0, err
    assert "cell_ov_alarm_mv: 3550 -> %d" % alarm_mv in out
    assert app.params.v[i] == alarm_mv and all(p.app.params.v[i] == 3550 for p in w.packs[:K])
    # the pack acts on it: its over-voltage alarm within the delay (cell_ov_alarm_delay_ms 2 s)
    ov = codes.bit(codes.ALARMS, "OV")
    assert wait_for(lambda: app.state.alarms & ov), app.state.alarms
    assert not any(p.app.state.alarms & ov for p in w.packs[:K])
    rc, out, _ = bench.ctl("live", "--pack", str(UNIT), "--count", "1", "--json")
    assert rc == 0 and any("cell over-voltage" in a for a in json.loads(out)["alarms"])
    # its event log has the write, old and new, as history pull shows it
    rc, out, err = bench.ctl("--unit", str(UNIT), "history", "pull", "--csv")
    assert rc == 0, err
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r["name"] == "cell_ov_alarm_mv"]
    assert [(r["raised"], r["value"]) for r in rows] == [("False", "3550"), ("True", str(alarm_mv))]
    log = app.host.build()[0].journal.history
    assert log.next_seq - log.oldest_seq() >= len(list(csv.DictReader(io.StringIO(out))))


def _clear_sync_calib(bench, k, via=None, unit=None):
    """history clear, clock sync, current offset on pack k (unit: bmsctl's
    --unit), checked on the pack."""
    app = bench.w.packs[k].app
    journal = app.host.build()[0].journal
    at = ("--unit", str(unit if unit is not None else k + 1))
    before = time.time()
    rc, _, err = bench.ctl(*at, *bench.login(k), "clock", "sync", via=via)
    after = time.time()
    assert rc == 0, err
    # set to this computer's time; the bench's clock then runs SPEED x as fast
    assert before - 1 <= journal.unix_s() <= after + 1 + SPEED * (time.time() - before)
    log = journal.history
    assert log.next_seq - log.oldest_seq() > 0
    rc, out, err = bench.ctl(*at, *bench.login(k), "history", "clear", via=via)
    assert rc == 0 and "history cleared" in out, err
    rc, out, err = bench.ctl(*at, "history", "pull", "--csv", via=via)
    assert rc == 0, err
    assert [r["name"] for r in csv.DictReader(io.StringIO(out))] == [
        "note %d" % C_LOG_CLEARED, "history_clear", "history_clear"]
    others = [p.app.state.i_offset_ma for p in bench.w.packs if p.app is not app]
    rc, _, err = bench.ctl(*at, *bench.login(k), "calib", "set", "i_offset_ma=-120", via=via)
    assert rc == 0, err
    assert wait_for(lambda: app.state.i_offset_ma == -120)
    assert [p.app.state.i_offset_ma for p in bench.w.packs if p.app is not app] == others
    rc, out, _ = bench.ctl(*at, "calib", "get", via=via)
    assert rc == 0 and "i_offset_ma              -120" in out


def test_a_slaves_history_clock_and_calibration_through_the_master(bench):
    _clear_sync_calib(bench, K)


@pytest.mark.parametrize("bench", ["can"], indirect=True)
def test_the_same_over_can(bench):
    via = "can:udp_multicast:" + bench.chan
    rc, out, err = bench.ctl("scan", "--last", str(N), "--json", via=via)
    assert rc == 0, err
    rows = json.loads(out)
    assert [r["unit"] for r in rows] == list(range(1, N + 1))
    assert all(abs(r["SoC"] - bench.w.packs[r["unit"] - 1].app.state.soc_pct) <= 1 for r in rows[1:])  # 1: the system
    k = 4  # a slave in the middle of the chain, at its own CAN address
    app = bench.w.packs[k].app
    i = index_of("cell_ov_alarm_mv")
    rc, _, err = bench.ctl("--unit", str(k + 1), "params", "set", "cell_ov_alarm_mv=3580", via=via)
    assert rc == 1 and "no installer session" in err and app.params.v[i] == 3550
    rc, out, err = bench.ctl("--unit", str(k + 1), *bench.login(k), "params", "set", "cell_ov_alarm_mv=3580",
                             via=via)
    assert rc == 0 and "cell_ov_alarm_mv: 3550 -> 3580" in out, err
    assert app.params.v[i] == 3580
    rc, out, err = bench.ctl("--unit", str(k + 1), "history", "pull", "--csv", via=via)
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r["name"] == "cell_ov_alarm_mv"]
    assert [(r["raised"], r["value"]) for r in rows] == [("False", "3550"), ("True", "3580")]
    _clear_sync_calib(bench, k, via=via)
