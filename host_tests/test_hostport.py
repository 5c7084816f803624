# The host protocol built at its first request (issue 12, firmware/app/hostport.py):
# on a 3-pack bench no pack holds the host handler, its CAN service or its
# relay until a request for it comes; the very first request, RTU on the
# master's Link IN (framed and its CRC computed here from Modbus over Serial
# Line V1.02 6.2.2, the reply decoded by pymodbus too) or ISO-TP on CAN (the
# python-can-isotp stack), is answered; a pack that a request passes through
# (the master's relay, a slave of the RS485 chain passing it down) builds its
# own, one that is not asked builds none; a build that runs out of memory is
# counted, its request dropped, and the next request is answered.
import gc

import pytest
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU

from tools import paths  # noqa: F401
import simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS
from app import relay as relay_mod
from app.host import Host
from app.hostcan import HostCan
from app.relay import Relay
from test_relay import can_tester


def _crc(data):
    """CRC-16 of Modbus over Serial Line 6.2.2: preset 0xFFFF, each byte XORed
    in, eight shifts right with 0xA001 on a carry; sent low byte first."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes((crc & 0xFF, crc >> 8))


def _read_info(unit, count=5):
    """FC 03 of the INFO block (registers 0..count-1) as an RTU frame."""
    body = bytes((unit, 0x03, 0, 0, 0, count))
    return body + _crc(body)


def _world(can):
    sc = scn.parse('{"packs": 3, "duration_s": 3600, "seed": 2, "initial": {"soc_pct": [40, 60, 80]}}', FAULTS)
    w = simworld.World(sc, lambda line: None, can=can)
    w.run_until(8000)  # roles and addresses settle
    assert [p.app.link.roles.address for p in w.packs] == [1, 2, 3]
    return w


def _rtu(w, frame, wait_ms=1500):
    """frame on the master's Link IN from the PC; the reply frame (b"" if none)."""
    end = w.links[0].a
    if end.any():
        end.read()
    end.write(frame)
    buf = b""
    t0 = w.runner.now_ms
    while w.runner.now_ms - t0 < wait_ms:
        w.run_until(w.runner.now_ms + 10)
        if end.any():
            buf += end.read()
            if len(buf) >= 5 and len(buf) >= 5 + buf[2]:
                return buf
    return buf


def _check_info_reply(rep, unit, count=5):
    """The reply checked by its CRC and layout, then decoded by pymodbus: the INFO registers."""
    n = 3 + 2 * count
    assert len(rep) == n + 2 and rep[:3] == bytes((unit, 0x03, 2 * count)), rep.hex()
    assert rep[n:] == _crc(rep[:n])
    used, dev, _tid, pdu = FramerRTU(DecodePDU(False)).decode(rep)
    assert used == len(rep) and dev == unit
    regs = DecodePDU(False).decode(pdu).registers
    assert regs == [int.from_bytes(rep[3 + 2 * i:5 + 2 * i], "big") for i in range(count)]
    return regs


def _host_objects(app):
    """The app's host protocol objects alive anywhere (not only in app.host)."""
    return [o for o in gc.get_objects() if (isinstance(o, Host) and o.st is app.state) or
            (isinstance(o, (HostCan, Relay)) and getattr(o.host, "st", None) is app.state)]


@pytest.mark.parametrize("can", [True, False], ids=["can", "rs485"])
def test_no_pack_holds_the_host_protocol_until_a_request_and_the_first_one_is_answered(can):
    w = _world(can)
    for p in w.packs:
        assert p.app.host.services is None and p.app.host.failed == 0
        assert _host_objects(p.app) == []
        assert not any(isinstance(s, (Host, HostCan, Relay)) for s in p.app.services)
    regs = _check_info_reply(_rtu(w, _read_info(1)), 1)
    assert regs[0] == 1 and regs[4] == 1  # map version 1, unit: the master's link address
    master = w.packs[0].app
    built = master.host.services
    assert [type(s) for s in built] == ([Host, HostCan, Relay] if can else [Host, Relay])
    assert built[0].replies == 1 and built[0].framer.errors == 0  # the first frame whole, from its unit byte
    assert master.state.host_requests == 1
    assert [p.app.host.services for p in w.packs[1:]] == [None, None]  # not asked
    # unit 3 through the master: over CAN straight to pack 3, on the chain through pack 2
    regs = _check_info_reply(_rtu(w, _read_info(3)), 3)
    assert regs[4] == 3
    assert master.host.services is built  # kept
    assert w.packs[2].app.host.services is not None
    assert (w.packs[1].app.host.services is None) == can  # on the chain pack 2 passed it down
    assert w.packs[2].app.state.host_requests == 1


def test_a_slave_builds_at_the_first_iso_tp_frame_to_its_address():
    w = _world(True)
    tester = can_tester(w, "tester", 2)
    tester.send(bytes((0x03, 0, 0, 0, 17)))  # FC 03, the whole INFO block: a multi-frame reply
    got = None
    for _ in range(300):
        tester.process()
        w.run_until(w.runner.now_ms + 10)
        tester.process()
        if tester.available():
            got = tester.recv()
            break
    assert got is not None
    regs = DecodePDU(False).decode(got).registers
    assert len(regs) == 17 and regs[4] == 2  # pack 2 answers for itself
    assert bytes(b for r in regs[5:13] for b in r.to_bytes(2, "big")) == w.packs[1].board.serial
    assert w.packs[1].app.host.services is not None
    assert w.packs[0].app.host.services is None and w.packs[2].app.host.services is None


def test_a_build_out_of_memory_is_counted_the_request_dropped_and_the_next_one_answered(monkeypatch):
    w = _world(False)  # the chain: the relay subscribes to Link OUT when it is built
    master = w.packs[0].app
    init = relay_mod.Relay.__init__
    fail = [1]

    def relay_init(self, *a, **kw):
        if fail[0]:
            fail[0] -= 1
            raise MemoryError  # after the host handler was built: a build that fails part way
        init(self, *a, **kw)
    monkeypatch.setattr(relay_mod.Relay, "__init__", relay_init)
    cycles = master.state.snap.reads
    assert _rtu(w, _read_info(1), wait_ms=500) == b""  # dropped: no reply
    assert master.host.failed == 1 and master.host.services is None
    assert master.state.safe_reason is None and master.state.snap.reads > cycles  # the pack runs on
    regs = _check_info_reply(_rtu(w, _read_info(1)), 1)
    assert regs[4] == 1 and master.host.failed == 1
    s = master.host.services
    assert [type(x) for x in s] == [Host, Relay]
    assert master.board.link_out is s[1].down.port and master.host.build() is s
    rout = s[1].down
    assert rout.binary is s[1]  # the relay built last is Link OUT's one binary subscriber
    assert _check_info_reply(_rtu(w, _read_info(2)), 2)[4] == 2  # and it relays


def test_the_uds_server_and_commissioning_use_the_login_without_building_the_host():
    w = _world(True)
    app = w.packs[1].app
    auth = app.host.auth()
    srv = app.uds.make()  # what app.udsport builds at a tester's first frame
    assert srv.auth is auth and app.host.services is None
    assert app.host.build()[0].auth is auth  # one login: its lock-out and nonces shared
