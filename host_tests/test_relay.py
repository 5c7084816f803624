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


def can_tester(w, name, ta):
    """An ISO-TP tester (python-can-isotp) on w's CAN bus with SA 0xF1, talking to the pack at ta."""
    node = w.can.attach(name, -1)
    rxid = 0x18EFF100 | ta

    def rx(timeout=0):
        while node.any():
            fr = node.recv()
            if fr[0] == rxid:
                return isotp.CanMessage(arbitration_id=fr[0], data=bytes(fr[1]), extended_id=True)
        return None
    return isotp.TransportLayerLogic(
        rxfn=rx, txfn=lambda m: node.send(m.arbitration_id, bytes(m.data), 2),
        address=isotp.Address(isotp.AddressingMode.Normal_29bits, txid=0x18EF00F1 | ta << 8, rxid=rxid))


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
    relay = w.packs[0].app.host.build()[-1]
    assert relay.relayed >= 2 and relay.timeouts == 0
    # the slaves' replies to the master (0x18EF_01_xx) went to the relay, none
    # was taken for a tester's request by the master's own CAN handler
    can_host = w.packs[0].app.host.build()[1]
    assert can_host.requests == 0 and can_host.busy == 0


def _write_needs_the_slaves_session(w, k):
    """Through the master, a parameter write to pack k (unit k + 1): refused
    without a session on that pack and counted there, accepted after a login
    through the relay, on that pack only."""
    pc = Pc(w)
    slave = w.packs[k].app
    slave.host.auth().provision(INSTALLER, SECRET, True)
    i = index_of("cell_ov_alarm_mv")
    old = slave.params.v[i]
    write = _pdu(WriteMultipleRegistersRequest(address=_param_reg("cell_ov_alarm_mv"), registers=[0, old - 20]))
    refused = slave.host.auth().refused
    assert pc.exchange(k + 1, write) == bytes([0x90, 0x01])  # no installer session on that pack
    assert slave.params.v[i] == old and slave.host.auth().refused == refused + 1
    assert _login(pc, k + 1)[0] == 0x10
    assert pc.exchange(k + 1, write)[0] == 0x10
    assert slave.params.v[i] == old - 20
    assert all(p.app.params.v[i] == old for p in w.packs if p.app is not slave)
    from app.host import PORT_RTU
    master = w.packs[0].app.host.build()[0]
    assert master.auth.level(PORT_RTU, master.now_ms) == 0  # the master's own RTU port has none
    return slave.host.build()[0]


def test_a_write_to_a_slave_needs_a_session_on_that_slave(bench):
    host = _write_needs_the_slaves_session(bench, 1)
    from app.hostcan import PORT_BASE
    assert host.auth.level(PORT_BASE + 1, host.now_ms) == INSTALLER  # the relay's CAN source


def test_without_can_a_write_to_a_slave_needs_its_session_opened_through_the_chain(chain):
    host = _write_needs_the_slaves_session(chain, 2)
    from app.host import PORT_RTU
    # the session is pack 3's Link IN port's: the chain from the master's relay
    assert host.auth.level(PORT_RTU, host.now_ms) == INSTALLER


def test_a_slave_commanded_directly_on_can_is_refused_and_counted(bench):
    w = bench
    pc = Pc(w)
    slave = w.packs[1].app
    slave.host.auth().provision(INSTALLER, SECRET, True)
    assert _login(pc, 2)[0] == 0x10  # the relay (SA 1) holds an installer session on pack 2
    from app import hostcan
    w.run_until(w.runner.now_ms + hostcan._IDLE_MS)  # the relay no longer holds pack 2's channel
    tester = can_tester(w, "intruder", 2)
    inbox = []
    i = index_of("cell_ov_alarm_mv")
    old = slave.params.v[i]
    refused = slave.host.auth().refused
    diag = slave.host.build()[0].refused
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
    assert slave.host.auth().refused == refused + 1 and slave.host.build()[0].refused == diag + 1
    from app.hostcan import PORT_BASE
    assert slave.host.auth().last_port == PORT_BASE + 0xF1
    w.run_until(w.runner.now_ms + hostcan._IDLE_MS)  # the node's hold on pack 2's channel ends


def test_a_unit_without_a_pack_is_path_unavailable(bench):
    pc = Pc(bench)
    relay = bench.packs[0].app.host.build()[-1]
    n = relay.unavailable
    for unit in (4, 32, 33, 200):
        assert pc.exchange(unit, _pdu(ReadHoldingRegistersRequest(address=0, count=1))) == bytes([0x83, EX_PATH])
    assert relay.unavailable == n + 4


@pytest.mark.parametrize("can", [True, False])
def test_a_pack_that_does_not_answer_is_target_failed_then_unavailable(can):
    w = _world(can)
    pc = Pc(w)
    relay = w.packs[0].app.host.build()[-1]
    w.power(2, False)
    read = _pdu(ReadHoldingRegistersRequest(address=0, count=1))
    assert pc.exchange(3, read) == bytes([0x83, EX_TARGET])  # still online in the master's table
    assert relay.timeouts == 1
    assert _regs(pc.exchange(2, read)) == [1]  # the relay is free again: pack 2 answers
    w.run_until(w.runner.now_ms + parallel.OFFLINE_MS)
    assert pc.exchange(3, read) == bytes([0x83, EX_PATH])  # offline now


@pytest.fixture(scope="module")
def chain():
    return _world(can=False)


def _frame(unit, pdu):
    """An RTU frame by pymodbus (address, PDU, CRC-16)."""
    return FramerRTU(DecodePDU(False)).encode(bytes(pdu), unit, 0)


def test_the_bench_gateway_waits_longer_than_the_relay_along_the_chain(bench, chain):
    from app import relay
    from tools import gateway
    # the relay's wait: TIMEOUT_MS and HOP_MS per pack that may be between, i.e. every
    # pack online but the master and the target (README: addresses need not follow the chain)
    n = len(chain.packs)
    for unit in range(2, 33):
        assert gateway.reply_timeout_ms(chain, unit) > relay.TIMEOUT_MS + (n - 2) * relay.HOP_MS
    assert gateway.reply_timeout_ms(bench, 8) == gateway.REPLY_TIMEOUT_MS > relay.TIMEOUT_MS  # CAN: one wait


def _link_frame_types(data):
    """The types of the RS485 link frames data is made of (README "Parallel
    packs": 7E len type src dst payload CRC, 7 + len bytes); fails on anything else."""
    types = set()
    i = 0
    while i < len(data):
        assert data[i] == 0x7E and data[i + 1] <= 8, data[i:].hex()
        types.add(data[i + 2])
        i += 7 + data[i + 1]
    return types


def test_without_can_units_2_and_3_are_relayed_along_the_rs485_chain(chain):
    w = chain
    pc = Pc(w)
    relays = [p.app.host.build()[-1] for p in w.packs]
    passed = relays[1].passed
    for k in (1, 2):
        st = w.packs[k].app.state
        info = _regs(pc.exchange(k + 1, _pdu(ReadHoldingRegistersRequest(address=0, count=13))))
        assert info[4] == k + 1
        dev = sunspec.scan(pc, k + 1)
        mod = dev.models["lithium-ion-module"][0]
        assert sunspec.point(mod, "StrIdx") == k + 1 and sunspec.point(mod, "ModIdx") == 1  # a pack is a string
        assert sunspec.point(mod, "SoC") == st.soc_pct
        cells = [c.CellV.cvalue for c in mod.groups["lithium-ion-module-cell"]]
        assert max(abs(v * 1000 - mv) for v, mv in zip(cells, st.snap.cell_mv)) <= 5
    assert sunspec.point(sunspec.scan(pc, 1).models["lithium-ion-module"][0], "SoC") == \
        w.packs[0].app.state.soc_pct != w.packs[2].app.state.soc_pct
    assert relays[0].relayed >= 4 and relays[0].timeouts == 0 and relays[0].late == 0
    # pack 2 passed unit 3's requests down and its replies up (two per exchange)
    assert relays[1].passed > passed and (relays[1].passed - passed) % 2 == 0
    assert pc.exchange(4, _pdu(ReadHoldingRegistersRequest(address=0, count=1))) == bytes([0x83, EX_PATH])


def test_without_can_nothing_coming_up_a_link_out_is_a_request_and_a_slave_answers_only_its_address(chain):
    w = chain
    slave = w.packs[2].app
    i = index_of("cell_ov_alarm_mv")
    old = slave.params.v[i]
    relays = [p.app.host.build()[-1] for p in w.packs]
    late = relays[2].late
    # a node hung on the last pack's free Link OUT writes its parameter (a reply-sized FC06)
    tail = w.links[3]
    tail.plugged = True
    try:
        for unit in (3, 1):
            tail.b.write(_frame(unit, _pdu(WriteSingleRegisterRequest(
                address=_param_reg("cell_ov_alarm_mv") + 1, registers=[old - 50]))))
            w.run_until(w.runner.now_ms + 300)
        assert _link_frame_types(tail.b.read()) <= {0x01, 0x02}  # link frames only (ADDR, HELLO passed down): no answer
    finally:
        tail.plugged = False
    assert slave.params.v[i] == old and relays[2].late == late + 2  # framed as replies nobody waits for
    # on its Link IN (from upstream) a slave answers only its own address: unit 1 and a
    # broadcast are dropped; another address, a lower one too (fixed addresses need not
    # increase along the chain), goes on down its Link OUT (here unplugged: no answer,
    # the pack gives up); nothing goes up to pack 2's Link OUT
    dropped = relays[2].dropped
    passed = relays[2].passed
    timeouts = relays[2].timeouts
    framed = relays[1].replies.frames
    for unit in (1, 0, 2):
        w.links[2].b.receive(_frame(unit, _pdu(ReadHoldingRegistersRequest(address=0, count=1))))
        w.run_until(w.runner.now_ms + 300)
    assert relays[2].dropped == dropped + 2 and relays[2].passed == passed + 1
    from app import relay as relay_mod
    w.run_until(w.runner.now_ms + relay_mod.TIMEOUT_MS + relay_mod.HOP_MS)
    assert relays[2].timeouts == timeouts + 1 and relays[2].unit == 0 and relays[1].replies.frames == framed


def test_a_late_reply_is_not_taken_for_the_next_request(monkeypatch):
    from app import relay as relay_mod
    for can in (True, False):
        w = _world(can=can)
        pc = Pc(w)
        relay = w.packs[0].app.host.build()[-1]
        monkeypatch.setattr(relay_mod, "TIMEOUT_MS", 1)  # the relay gives up before pack 3 can answer
        monkeypatch.setattr(relay_mod, "HOP_MS", 0)
        assert pc.exchange(3, _pdu(ReadHoldingRegistersRequest(address=0, count=2))) == bytes([0x83, EX_TARGET])
        monkeypatch.undo()
        # the next request, to the same pack, gets its own reply: pack 3's late one (2 registers) is dropped
        assert _regs(pc.exchange(3, _pdu(ReadHoldingRegistersRequest(address=4, count=1)))) == [3], can
        # dropped where it was no longer waited for: by the master on CAN; on the
        # chain by pack 2, which gave up on it too (and so passed nothing up)
        assert [p.app.host.build()[-1].late for p in w.packs] == ([1, 0, 0] if can else [0, 1, 0])
        assert relay.timeouts == 1


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


def _server_pdu(resp):
    return bytes([resp.function_code]) + resp.encode()


def test_the_reply_framer_frames_what_a_server_sends_and_answers_matches_the_request():
    from pymodbus.pdu import ExceptionResponse
    from pymodbus.pdu.file_message import FileRecord, ReadFileRecordRequest, ReadFileRecordResponse
    from pymodbus.pdu.mei_message import ReadDeviceInformationRequest, ReadDeviceInformationResponse
    from pymodbus.pdu.register_message import (ReadHoldingRegistersResponse, WriteMultipleRegistersResponse,
                                               WriteSingleRegisterResponse)
    from proto import modbus as mb
    read3 = ReadHoldingRegistersRequest(address=40000, count=3)
    pairs = [  # (request, reply) as pymodbus's client and server encode them
        (read3, ReadHoldingRegistersResponse(registers=[0x7E02, 0x7E7E, 3])),  # 0x7E bytes inside
        (read3, ExceptionResponse(3, 2)),
        (WriteSingleRegisterRequest(address=1027, registers=[3500]), WriteSingleRegisterResponse(address=1027,
                                                                                                registers=[3500])),
        (WriteMultipleRegistersRequest(address=1026, registers=[0, 3500]),
         WriteMultipleRegistersResponse(address=1026, count=2)),
        (ReadDeviceInformationRequest(read_code=1), ReadDeviceInformationResponse(
            read_code=1, information={0: b"BMS-MPY", 1: b"LFP 16S 51.2 V", 2: b"1.0"})),
        (ReadFileRecordRequest(records=[FileRecord(file_number=1, record_number=0, record_length=2)]),
         ReadFileRecordResponse(records=[FileRecord(record_data=b"\x00\x01\x00\x02")])),
    ]
    fr = mb.Framer(True)
    pairs = [(_pdu(q), _server_pdu(r)) for q, r in pairs]  # encoded once (pymodbus's MEI reply counts again)
    frames = [_frame(2, r) for _, r in pairs]
    stream = b"".join(frames)
    got = []
    for b in stream:
        m = fr.feed(b)
        if m:
            got.append(bytes(fr.buf[:m]))
    assert got == frames and fr.errors == 0
    for q, r in pairs:
        assert mb.answers(q, len(q), r, len(r)), (q, r)
    # a reply to another request of the same function is not the answer
    others = [
        (ReadHoldingRegistersRequest(address=40000, count=2), ReadHoldingRegistersResponse(registers=[1, 2, 3])),
        (WriteSingleRegisterRequest(address=1027, registers=[3500]), WriteSingleRegisterResponse(
            address=1027, registers=[3400])),
        (WriteMultipleRegistersRequest(address=1026, registers=[0, 3500]),
         WriteMultipleRegistersResponse(address=1028, count=2)),
        (read3, WriteSingleRegisterResponse(address=1027, registers=[3500])),
        (read3, ExceptionResponse(6, 2)),
    ]
    for req, rep in others:
        q, r = _pdu(req), _server_pdu(rep)
        assert not mb.answers(q, len(q), r, len(r)), (req, rep)
    # a corrupt reply is dropped up to the gap, the next one is framed
    bad = bytearray(frames[0])
    bad[4] ^= 1
    fr.gap()
    assert not any(fr.feed(b) for b in bad) and fr.errors == 1
    fr.gap()
    assert [fr.feed(b) for b in _frame(3, pairs[1][1])][-1] == 5


_MPY_COMMON = """
from app.host import Host
from app.relay import Relay
from bms.params import Params
from bms.state import PackState
from bms.system import SystemView, from_pack
from proto import modbus as mb

class Roles:
    def __init__(self, role, address):
        self.role = role
        self.address = address

class Table:
    def __init__(self):
        self.online = bytearray(33)
        self.seen = bytearray(33)

class Link:
    def __init__(self, role, address, online=3):
        self.roles = Roles(role, address)
        self.table = Table()
        self.state = PackState()
        self.state.link_online = online if role == 2 else 0  # the master's count (app.link)
        self.hello_online = online if role == 3 else 0  # a slave's, from the HELLO

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

def exchange(feed, r, clock, steps, written):
    # feed request frame r, then run steps(t) every 10 ms until written() changes (the reply)
    n0 = written()
    feed(r, len(r))
    t = clock[0]
    for i in range(200):
        t += 10
        for s in steps:
            s(t)
        if written() != n0:
            break
    clock[0] = t

def locked_runs(reqs, run, row):
    # every request once to warm up, then again under heap_lock: row() after each
    if not lock_works():
        return "heap_lock does not catch allocation"
    for r in reqs:
        run(r)
    out = []
    for r in reqs:
        failed = False
        micropython.heap_lock()
        try:
            run(r)
        except MemoryError:
            failed = True
        micropython.heap_unlock()
        if failed:
            return "allocates for " + str(bytes(r))
        out.append(row())
    return out
"""

MPY_RELAY = LOCKED + _MPY_COMMON + """
from app.hostcan import HostCan

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

port = Port()
h1 = host(port)
h2 = host(None)
can1 = Can()
can2 = Can()
link = Link(2, 1)
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
clock = [0]
steps = [hc1.tick, relay.tick, hc2.tick, h1.tick, h2.tick]
written = lambda: port.n
feed = h1.on_rs485  # bound once: a bound method made per call allocates

def run(r):
    exchange(feed, r, clock, steps, written)

def probe():
    out = locked_runs(reqs, run, lambda: (port.last[0], port.last[1], port.last[2], port.k))
    if isinstance(out, str):
        return out
    out.append((relay.relayed, relay.unavailable, relay.timeouts, hc1.requests))
    return out

print(probe())
"""


def _locked_probe(mpy32, program):
    """What program's probe() printed on the 32-bit MicroPython (a string: what failed)."""
    r = mpy32(program, heap="512K")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("["), last  # else what allocated
    return eval(last)


def test_the_relay_runs_under_heap_lock_on_32_bit_micropython(mpy32):
    got = _locked_probe(mpy32, MPY_RELAY)
    # unit, function code, byte count / exception code, RTU frame length
    assert got[:4] == [(2, 3, 250, 255), (2, 3, 26, 31), (5, 0x83, EX_PATH, 5), (3, 0x83, EX_TARGET, 5)]
    assert got[4] == (4, 2, 2, 0)  # two relayed (warm-up + locked) each; none taken as a tester's request


MPY_CHAIN = LOCKED + _MPY_COMMON + """
from app.router import Router

class End:
    # one end of a serial segment: machine.UART's any/readinto/write, no allocation
    def __init__(self):
        self.rx = bytearray(1024)
        self.n = 0
        self.peer = None
        self.writes = 0
    def write(self, b):
        p = self.peer
        k = len(b)
        for i in range(k):
            p.rx[p.n + i] = b[i]
        p.n += k
        self.writes += 1
        return k
    def any(self):
        return self.n
    def readinto(self, buf):
        k = self.n if self.n < len(buf) else len(buf)
        rx = self.rx
        for i in range(k):
            buf[i] = rx[i]
        for i in range(self.n - k):
            rx[i] = rx[k + i]
        self.n -= k
        return k

def pair():
    a = End()
    b = End()
    a.peer = b
    b.peer = a
    return a, b

pc, m_in = pair()  # the PC on the master's Link IN
m_out, s_in = pair()  # master's Link OUT -> the slave's Link IN
s_out, tail = pair()  # the slave's Link OUT, nobody behind
hm = host(m_in)
hs = host(s_in)
lm = Link(2, 1)
lm.table.online[2] = 1
lm.table.online[3] = 1
ls = Link(3, 2)
rm = Relay(hm, None, None, lm, Router(m_out))
rm.down.subscribe_binary(rm, rm.replies)
hm.relay = rm
rin = Router(s_in)
rin.subscribe_binary(hs, hs.framer)
rs = Relay(hs, None, None, ls, Router(s_out))
rs.down.subscribe_binary(rs, rs.replies)
hs.relay = rs
reqs = [frame(2, bytearray([3, 0x9c, 0x40, 0, 125])), frame(2, bytearray([3, 0, 0, 0, 13])),
        frame(5, bytearray([3, 0, 0, 0, 1])), frame(3, bytearray([3, 0, 0, 0, 1]))]
clock = [0]
got = bytearray(256)
steps = [rin.poll, rs.tick, rm.tick, hs.tick, hm.tick]  # rin.poll: the slave's link tick reads its Link IN
k = [0]
written = lambda: m_in.writes
feed = hm.on_rs485

def run(r):
    exchange(feed, r, clock, steps, written)
    k[0] = pc.readinto(got)

def probe():
    out = locked_runs(reqs, run, lambda: (got[0], got[1], got[2], k[0]))
    if isinstance(out, str):
        return out
    out.append((rm.relayed, rm.unavailable, rm.timeouts, rs.passed, rs.timeouts, tail.n))
    return out

print(probe())
"""


def test_the_rs485_relay_runs_under_heap_lock_on_32_bit_micropython(mpy32):
    got = _locked_probe(mpy32, MPY_CHAIN)
    # unit, function code, byte count / exception code, RTU frame length: unit 2 answers
    # through the master, 5 is no pack (0x0A), 3 is passed down by pack 2 and never answers (0x0B)
    assert got[:4] == [(2, 3, 250, 255), (2, 3, 26, 31), (5, 0x83, EX_PATH, 5), (3, 0x83, EX_TARGET, 5)]
    # relayed 2 x 2, 0x0A twice, 0x0B twice; pack 2 passed unit 3's request down twice and gave up on it
    # twice; what it passed down is the 8-byte request as it came, twice
    assert got[4] == (4, 2, 2, 2, 2, 16)


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
