# The PC tool against the bench, end to end (issue 13 "Try it without
# hardware"): the simulated master's Link IN behind the bench's Modbus TCP
# gateway (tools/gateway.py), the firmware's host handler on the other side
# (wired by app.compose), bmsctl on this side. Also over CAN: the bench's bus
# bridged to python-can's udp_multicast, bmsctl's ISO-TP transport.
import io
import json
import threading
import time

import pytest

from tools import paths  # noqa: F401
import simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS
from tools import gateway
from tools.bmsctl.cli import main as bmsctl


@pytest.fixture
def bench():
    sc = scn.parse('{"packs": 2, "duration_s": 3600, "seed": 1, "initial": {"soc_pct": 60}}', FAULTS)
    w = simworld.World(sc, lambda line: None)
    port = gateway.local_port()
    chan = "239.74.164.%d" % (port % 200 + 20)
    _rtu, _lines = gateway.attach(w, "127.0.0.1:%d" % port, can_spec="udp_multicast:" + chan)
    stop = threading.Event()
    t = threading.Thread(target=gateway.pace, args=(w, stop), daemon=True)
    t.start()
    deadline = time.monotonic() + 20  # the packs boot and the link gives every pack its address
    while time.monotonic() < deadline and not all(p.app.link.roles.address for p in w.packs):
        time.sleep(0.1)
    yield w, port, chan
    stop.set()
    t.join(5)


def test_scan_and_live_read_the_master_through_the_gateway(bench):
    w, port, _ = bench
    out = io.StringIO()
    assert bmsctl(["--via", "tcp:127.0.0.1:%d" % port, "scan", "--last", "1", "--json"], out=out) == 0
    (row,) = json.loads(out.getvalue())
    st = w.packs[0].app.state
    assert row["unit"] == 1 and row["Mn"] == "BMS-MPY"
    assert abs(row["SoC"] - st.soc_pct) <= 1
    out = io.StringIO()
    assert bmsctl(["--via", "tcp:127.0.0.1:%d" % port, "live", "--pack", "1", "--count", "2",
                   "--period", "0.2", "--json"], out=out) == 0
    rows = [json.loads(ln) for ln in out.getvalue().splitlines()]
    assert len(rows) == 2
    view = w.packs[0].app.system.view
    assert abs(rows[-1]["V"] * 1000 - view.voltage_mv) < 200


def test_each_pack_answers_for_itself_over_can(bench):
    w, _port, chan = bench
    for k in (0, 1):
        addr = w.packs[k].app.link.roles.address
        out = io.StringIO()
        assert bmsctl(["--via", "can:udp_multicast:" + chan, "scan", "--last", str(addr), "--json"],
                      out=out) == 0, "pack %d (address %d)" % (k, addr)
        rows = json.loads(out.getvalue())
        assert addr and rows and rows[-1]["unit"] == addr
