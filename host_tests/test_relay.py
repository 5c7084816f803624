# The host protocol through the master (issue 13, firmware/app/relay.py): on a
# 3-pack bench the PC end of the master's Link IN (world.links[0].a) sends
# Modbus RTU frames built and decoded by pymodbus (FramerRTU, DecodePDU), and
# SunSpec is read with pysunspec2: unit u is the pack at link address u,
# relayed by the master over CAN/ISO-TP; a slave's session belongs to the
# master's relay, so a CAN node commanding the slave directly is refused and
# counted; no pack -> gateway exception 0x0A, no answer -> 0x0B (Modbus
# Application Protocol v1.1b3 7).
import hashlib
import hmac
import io
import json
import os

import isotp
from heap_probe import LOCKED
import pytest
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import (ReadHoldingRegistersRequest, WriteMultipleRegistersRequest,
                                           WriteSingleRegisterRequest)

from tools import paths  # noqa: F401
import simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS
from tools.bmsctl import sunspec
from tools.bmsctl.cli import main as bmsctl
from bms.params import index_of
from bms import parallel

SECRET = bytes(range(32))
INSTALLER = 2
CHALLENGE, LOGIN, PARAM = 200, 208, 1000
EX_PATH, EX_TARGET = 0x0A, 0x0B
def _world(can=True):
    sc = scn.parse('{"packs": 3, "duration_s": 3600, "seed": 1, "initial": {"soc_pct": [40, 60, 80]}}', FAULTS)
    w = simworld.World(sc, lambda line: None, can=can)
    w.run_until(8000)  # roles and addresses settle, every slave has reported
    assert [p.app.link.roles.address for p in w.packs] == [1, 2, 3]
    return w


@pytest.fixture(scope="module")
def bench():
    return _world()


class Pc:
    """The PC on the master's Link IN: RTU frames by pymodbus; the world runs
    in 10 ms steps while it waits (as the gateway's RtuMaster does)."""

    def __init__(self, w):
        self.w = w
        self.end = w.links[0].a
        self.framer = FramerRTU(DecodePDU(False))

    def exchange(self, unit, pdu, wait_ms=1500):
        end = self.end
        if end.any():
            end.read()
        end.write(self.framer.encode(bytes(pdu), unit, 0))
        buf = b""
        t0 = self.w.runner.now_ms
        while self.w.runner.now_ms - t0 < wait_ms:
            self.w.run_until(self.w.runner.now_ms + 10)
            if end.any():
                buf += end.read()
                used, dev, _tid, reply = self.framer.decode(buf)
                if used and reply:
                    assert dev == unit
                    return reply
        raise AssertionError("no RTU reply for unit %d" % unit)

    def close(self):
        pass


def _pdu(req):
    return bytes([req.function_code]) + req.encode()


def _regs(reply):
    resp = DecodePDU(False).decode(bytes(reply))
    assert resp.function_code == 3, reply
    return resp.registers


def _login(pc, unit):
    nonce = b"".join(r.to_bytes(2, "big") for r in _regs(pc.exchange(unit, _pdu(
        ReadHoldingRegistersRequest(address=CHALLENGE, count=8)))))
    mac = hmac.new(SECRET, nonce + bytes([INSTALLER]), hashlib.sha256).digest()
    regs = [INSTALLER] + [int.from_bytes(mac[i:i + 2], "big") for i in range(0, 32, 2)]
    return pc.exchange(unit, _pdu(WriteMultipleRegistersRequest(address=LOGIN, registers=regs)))


def _param_reg(name):
    return PARAM + 2 * index_of(name)


def test_units_2_and_3_are_those_packs_read_through_the_master(bench):
    w = bench
    pc = Pc(w)
    for k in (1, 2):
        st = w.packs[k].app.state
        info = _regs(pc.exchange(k + 1, _pdu(ReadHoldingRegistersRequest(address=0, count=13))))
        assert info[4] == k + 1  # INFO unit: the pack's link address
        dev = sunspec.scan(pc, k + 1)
        assert dev is not None
        mod = dev.models["lithium-ion-module"][0]
        # the pack is string k + 1 (its link address), its one module 1
        assert (sunspec.point(mod, "StrIdx"), sunspec.point(mod, "ModIdx")) == (k + 1, 1)
        assert sunspec.point(dev.models["lithium_ion_string"][0], "Idx") == k + 1
        # a slave's bank (803) holds its own string only, from its own link report
        rows = dev.models["lithium_ion_bank"][0].groups["string"]
        assert [r.StrNMod.value for r in rows[:4]] == [1 if a == k else 0 for a in range(4)]
        assert rows[k].StrSoC.value == st.soc_pct
        assert sunspec.point(mod, "SoC") == st.soc_pct
        assert sunspec.point(dev.models["common"][0], "DA") == k + 1
        cells = [c.CellV.cvalue for c in mod.groups["lithium-ion-module-cell"]]
        assert max(abs(v * 1000 - mv) for v, mv in zip(cells, st.snap.cell_mv)) <= 5
    # the three packs differ (initial SOC 40, 60, 80): unit 1 is the master's
    own = sunspec.scan(pc, 1).models["lithium-ion-module"][0]
    assert sunspec.point(own, "SoC") == w.packs[0].app.state.soc_pct != w.packs[2].app.state.soc_pct
    relay = w.packs[0].app.host[-1]
    assert relay.relayed >= 2 and relay.timeouts == 0
    # the slaves' replies to the master (0x18EF_01_xx) went to the relay, none
    # was taken for a tester's request by the master's own CAN handler
    can_host = w.packs[0].app.host[1]
    assert can_host.requests == 0 and can_host.busy == 0


def test_a_write_to_a_slave_needs_a_session_on_that_slave(bench):
    w = bench
    pc = Pc(w)
    slave = w.packs[1].app
    master = w.packs[0].app
    slave.host[0].auth.provision(INSTALLER, SECRET, True)
    i = index_of("cell_ov_alarm_mv")
    old = slave.params.v[i]
    write = _pdu(WriteMultipleRegistersRequest(address=_param_reg("cell_ov_alarm_mv"), registers=[0, old - 20]))
    refused = slave.host[0].auth.refused
    assert pc.exchange(2, write) == bytes([0x90, 0x01])  # no installer session on pack 2
    assert slave.params.v[i] == old and slave.host[0].auth.refused == refused + 1
    assert _login(pc, 2)[0] == 0x10
    assert pc.exchange(2, write)[0] == 0x10
    assert slave.params.v[i] == old - 20 and master.params.v[i] == old  # pack 2 only
    assert master.host[0].auth.level(master.host[0].port, master.host[0].now_ms) == 0
    from app.hostcan import PORT_BASE
    assert slave.host[0].auth.level(PORT_BASE + 1, slave.host[0].now_ms) == INSTALLER  # the relay's


def test_a_slave_commanded_directly_on_can_is_refused_and_counted(bench):
    w = bench
    pc = Pc(w)
    slave = w.packs[1].app
    slave.host[0].auth.provision(INSTALLER, SECRET, True)
    assert _login(pc, 2)[0] == 0x10  # the relay (SA 1) holds an installer session on pack 2
    from app import hostcan
    w.run_until(w.runner.now_ms + hostcan._IDLE_MS)  # the relay no longer holds pack 2's channel
    node = w.can.attach("intruder", -1)
    inbox = []

    def rx(timeout=0):
        while node.any():
            fr = node.recv()
            if fr[0] == 0x18EFF102:
                return isotp.CanMessage(arbitration_id=fr[0], data=bytes(fr[1]), extended_id=True)
        return None
    tester = isotp.TransportLayerLogic(
        rxfn=rx, txfn=lambda m: node.send(m.arbitration_id, bytes(m.data), 2),
        address=isotp.Address(isotp.AddressingMode.Normal_29bits, txid=0x18EF02F1, rxid=0x18EFF102))
    i = index_of("cell_ov_alarm_mv")
    old = slave.params.v[i]
    refused = slave.host[0].auth.refused
    diag = slave.host[0].refused
    tester.send(_pdu(WriteSingleRegisterRequest(address=_param_reg("cell_ov_alarm_mv") + 1, registers=[old - 30])))
    for _ in range(300):
        tester.process()
        w.run_until(w.runner.now_ms + 10)
        tester.process()
        if tester.available():
            inbox.append(tester.recv())
            break
    assert inbox == [bytes([0x86, 0x01])]  # no session for SA 0xF1 on pack 2
    assert slave.params.v[i] == old
    assert slave.host[0].auth.refused == refused + 1 and slave.host[0].refused == diag + 1
    from app.hostcan import PORT_BASE
    assert slave.host[0].auth.last_port == PORT_BASE + 0xF1
    w.run_until(w.runner.now_ms + hostcan._IDLE_MS)  # the node's hold on pack 2's channel ends


def test_a_unit_without_a_pack_is_path_unavailable(bench):
    pc = Pc(bench)
    relay = bench.packs[0].app.host[-1]
    n = relay.unavailable
    for unit in (4, 32, 33, 200):
        assert pc.exchange(unit, _pdu(ReadHoldingRegistersRequest(address=0, count=1))) == bytes([0x83, EX_PATH])
    assert relay.unavailable == n + 4


def test_a_pack_that_does_not_answer_is_target_failed_then_unavailable():
    w = _world()
    pc = Pc(w)
    relay = w.packs[0].app.host[-1]
    w.power(2, False)
    read = _pdu(ReadHoldingRegistersRequest(address=0, count=1))
    assert pc.exchange(3, read) == bytes([0x83, EX_TARGET])  # still online in the master's table
    assert relay.timeouts == 1
    assert _regs(pc.exchange(2, read)) == [1]  # the relay is free again: pack 2 answers
    w.run_until(w.runner.now_ms + parallel.OFFLINE_MS)
    assert pc.exchange(3, read) == bytes([0x83, EX_PATH])  # offline now


def test_without_can_other_units_are_not_relayed_yet():
    w = _world(can=False)
    pc = Pc(w)
    read = _pdu(ReadHoldingRegistersRequest(address=0, count=5))
    assert pc.exchange(2, read) == bytes([0x83, EX_PATH])
    assert _regs(pc.exchange(1, read))[4] == 1


def test_bmsctl_scan_and_live_all_through_the_relay(bench):
    pc = Pc(bench)
    out = io.StringIO()
    assert bmsctl(["scan", "--json"], out=out, transport=pc) == 0
    rows = json.loads(out.getvalue())
    assert [r["unit"] for r in rows] == [1, 2, 3]
    assert rows[2]["SoC"] == bench.packs[2].app.state.soc_pct
    out = io.StringIO()
    assert bmsctl(["live", "--all", "--count", "1", "--period", "0", "--json"], out=out, transport=pc) == 0
    live = [json.loads(ln) for ln in out.getvalue().splitlines()]
    assert [r["unit"] for r in live] == [1, 2, 3]
    assert live[1]["SoC"] == bench.packs[1].app.state.soc_pct


MPY_RELAY = LOCKED + """
from app.host import Host
from app.hostcan import HostCan
from app.relay import Relay
from bms.params import Params
from bms.state import PackState
from bms.system import SystemView, from_pack
from proto import modbus as mb

class Port:
    def __init__(self):
        self.n = 0
        self.k = 0
        self.last = bytearray(256)
    def write(self, b):
        self.n += 1
        self.k = len(b)
        for i in range(len(b)):
            self.last[i] = b[i]
        return len(b)

class Can:
    FLAG_EXT_ID = 2
    def __init__(self):
        self.peer = None
        self.buf = bytearray(8)
        self.fr = [0, memoryview(self.buf), 2, 0]
    def send(self, id_, data, flags):
        for i in range(8):
            self.buf[i] = data[i]
        self.fr[0] = id_
        self.peer.on_frame("can", self.fr)
        return 0

class Rx:
    def poll(self):
        pass

class Roles:
    def __init__(self):
        self.role = 2
        self.address = 1

class Table:
    def __init__(self):
        self.online = bytearray(33)
        self.seen = bytearray(33)

class Link:
    def __init__(self):
        self.roles = Roles()
        self.table = Table()

def host(port):
    st = PackState()
    st.snap.reads = 1
    st.snap.stack_mv = 52800
    p = Params()
    v = SystemView()
    from_pack(v, st, p)
    return Host(st, p, v, port, None)

def frame(unit, pdu):
    b = bytearray([unit]) + pdu
    c = mb.crc16(b, len(b))
    b.append(c & 0xFF)
    b.append(c >> 8)
    return b

port = Port()
h1 = host(port)
h2 = host(None)
can1 = Can()
can2 = Can()
link = Link()
link.table.online[2] = 1
link.table.online[3] = 1
link.table.seen[2] = 1
link.table.seen[3] = 1
hc1 = HostCan(h1, can1, lambda: 1)
hc2 = HostCan(h2, can2, lambda: 2)
relay = Relay(h1, can1, Rx(), link)
h1.relay = relay
hc1.relay = relay
can1.peer = hc2
can2.peer = hc1
reqs = [frame(2, bytearray([3, 0x9c, 0x40, 0, 125])), frame(2, bytearray([3, 0, 0, 0, 13])),
        frame(5, bytearray([3, 0, 0, 0, 1])), frame(3, bytearray([3, 0, 0, 0, 1]))]
res = [0, 0]

def run(r, res):
    n0 = port.n
    h1.on_rs485(r, len(r))
    t = res[1]
    for i in range(120):
        t += 10
        hc1.tick(t)
        relay.tick(t)
        hc2.tick(t)
        h1.tick(t)
        h2.tick(t)
        if port.n != n0:
            break
    res[1] = t
    res[0] = port.last[1]

def probe():
    if not lock_works():
        return "heap_lock does not catch allocation"
    for r in reqs:
        run(r, res)
    out = []
    for r in reqs:
        failed = False
        micropython.heap_lock()
        try:
            run(r, res)
        except MemoryError:
            failed = True
        micropython.heap_unlock()
        if failed:
            return "allocates for " + str(bytes(r))
        out.append((port.last[0], port.last[1], port.last[2], port.k))
    out.append((relay.relayed, relay.unavailable, relay.timeouts, hc1.requests))
    return out

print(probe())
"""


def test_the_relay_runs_under_heap_lock_on_32_bit_micropython(mpy32):
    r = mpy32(MPY_RELAY, heap="512K")
    assert r.returncode == 0, r.stderr
    got = eval(r.stdout.strip().splitlines()[-1])
    assert not isinstance(got, str), got
    # unit, function code, byte count / exception code, RTU frame length
    assert got[:4] == [(2, 3, 250, 255), (2, 3, 26, 31), (5, 0x83, EX_PATH, 5), (3, 0x83, EX_TARGET, 5)]
    assert got[4] == (4, 2, 2, 0)  # two relayed (warm-up + locked) each; none taken as a tester's request


def test_a_new_request_on_can_replaces_a_reply_the_tester_gave_up_on():
    # the relay timed out in the middle of a long reply (no flow control came):
    # the pack's next request must still be answered
    from app.host import Host
    from app.hostcan import HostCan
    from bms.params import Params
    from bms.state import PackState
    from bms.system import SystemView, from_pack
    sent = []

    class Can:
        def send(self, id_, data, flags):
            sent.append(bytes(data))
            return 0
    st = PackState()
    p = Params()
    v = SystemView()
    from_pack(v, st, p)
    svc = HostCan(Host(st, p, v, None, None), Can(), lambda: 2)
    req = 0x18EF0201
    svc.on_frame("can", [req, bytes([5, 3, 0x9C, 0x40, 0, 125, 0xCC, 0xCC]), 2, 0])
    svc.tick(10)
    assert sent[-1][0] >> 4 == 1  # a first frame (ISO 15765-2 9.6.3), waiting for our flow control
    svc.on_frame("can", [req, bytes([5, 3, 0, 4, 0, 1, 0xCC, 0xCC]), 2, 0])  # INFO unit
    svc.tick(20)
    assert sent[-1][:5] == bytes([4, 3, 2, 0, 1])  # single frame: 03, 2 bytes, unit 1
