"""Link protocol (lib/proto/link): ids, payload helpers, RS485 framing, the
DBC decode with cantools, and fuzzing of what a pack's link service gets."""
import binascii
import os
import random
import sys

import cantools
import pytest
from hypothesis import given, settings, strategies as stt

import pylon_rs485_decoder
from fake_port import Uart
from proto import link
from proto import wire
from proto import pylon_rs485 as pr
from bms import linkrows, parallel
from bms.state import PackState
from bms.params import Params
from app import compose
from app.invrs485 import other_pack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fields(i):
    """(type, src, dst) of a link CAN id as SPEC 7 lays it out (0x1A << 24 |
    type << 16 | dst << 8 | src); type -1 for an id without the prefix."""
    return ((i >> 16) & 0xFF if i >> 24 == 0x1A else -1), i & 0xFF, (i >> 8) & 0xFF


def test_can_id_carries_type_src_dst():
    i = link.can_id(link.T_STATUS, 7, 1)
    assert i < (1 << 29) and _fields(i) == (link.T_STATUS, 7, 1)
    assert _fields(link.can_id(link.T_HELLO, 1, 0xFF)) == (link.T_HELLO, 1, 0xFF)


def test_every_message_type_has_its_payload_length():
    # the payload table in lib/proto/link.py: ADDR, CMD and REQ carry two bytes,
    # every other message eight; an unknown type has none
    names = sorted(n for n in dir(link) if n.startswith("T_"))
    want = {getattr(link, n): (2 if n in ("T_ADDR", "T_CMD", "T_REQ") else 8) for n in names}
    assert sorted(link.TYPES) == sorted(want) and len(link.TYPES) == len(link.LENGTHS)
    assert {t: link.length_of(t) for t in link.TYPES} == want
    assert all(link.length_of(t) == -1 for t in range(256) if t not in want)


def _crc(body):
    # CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout) is
    # binascii.crc_hqx with init 0xFFFF; check value over "123456789": 0x29B1
    # (the CRC RevEng catalogue, "CRC-16/IBM-3740" alias CCITT-FALSE)
    return binascii.crc_hqx(bytes(body), 0xFFFF)


def _by_hand(typ, src, dst, payload):
    """An RS485 link frame built from the protocol text (lib/proto/link.py header):
    SOF 0x7E, len, type, src, dst, payload, CRC hi, lo over len..payload."""
    body = bytes([len(payload), typ, src, dst]) + bytes(payload)
    c = _crc(body)
    return b"\x7e" + body + bytes([c >> 8, c & 0xFF])


def test_rs485_framing_follows_the_protocol_and_no_corruption_passes():
    assert _crc(b"123456789") == 0x29B1
    assert link.crc16(b"123456789", 0, 9) == 0x29B1
    out = bytearray(link.RS485_MAX)
    for typ, payload in ((link.T_ADDR, b"\x01\x05"), (link.T_STATUS, bytes(range(200, 208))),
                         (link.T_CMD, b"\x01\x00")):
        n = link.rs485_frame(out, typ, 3, 4, payload, len(payload))
        assert bytes(out[:n]) == _by_hand(typ, 3, 4, payload)
    good = _by_hand(link.T_ADDR, 3, 4, b"\x01\x05")
    p = link.Rs485Parser()
    got = [p.feed(b) for b in b"~2001\x7e\x09\x00" + good]
    assert got.count(True) == 1 and got[-1]
    assert (p.typ, p.src, p.dst, bytes(p.payload[:2])) == (link.T_ADDR, 3, 4, b"\x01\x05")
    # every single-bit error after the SOF is refused (CRC-16 finds all of them)
    for i in range(1, len(good)):
        for bit in range(8):
            bad = bytearray(good)
            bad[i] ^= 1 << bit
            p2 = link.Rs485Parser()
            assert not any(p2.feed(b) for b in bytes(bad) + bytes(16)), (i, bit)
    # a good CRC with a length the type does not have is refused too
    p3 = link.Rs485Parser()
    assert not any(p3.feed(b) for b in _by_hand(link.T_ADDR, 3, 4, b"\x01\x05\x00")) and p3.bad == 1


def _crc_bitwise(data, crc):
    """CRC-16/CCITT-FALSE from its definition: MSB first, one shift a bit."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


@settings(max_examples=400, deadline=None)
@given(data=stt.binary(max_size=40), cut=stt.tuples(stt.integers(0, 40), stt.integers(0, 40)),
       init=stt.integers(0, 0xFFFF))
def test_crc16_is_the_ccitt_false_crc_of_any_range(data, cut, init):
    start, end = min(cut[0], len(data)), min(max(cut), len(data))
    want = binascii.crc_hqx(data[start:end], init)
    assert want == _crc_bitwise(data[start:end], init)
    assert link.crc16(data, start, end, init) == want
    assert link.crc16(bytearray(data), start, end) == binascii.crc_hqx(data[start:end], 0xFFFF)


def test_dbc_decodes_the_link_frames():
    db = cantools.database.load_file(os.path.join(ROOT, "tools", "dbc", "bms_link.dbc"))
    d = bytearray(8)
    wire.put_u16(d, 0, 53210)
    wire.put_i16(d, 2, -1234)  # 10 mA units
    d[4], d[5], d[6], d[7] = 57, 99, link.F_CHG_OK | link.F_DSG_OK, 100
    m = db.decode_message(link.can_id(link.T_STATUS, 2, 1), bytes(d))
    assert m["voltage"] == pytest.approx(53.21) and m["current"] == pytest.approx(-12.34)
    assert (m["soc"], m["soh"], m["flags"], m["capacity"]) == (57, 99, 3, 100)
    wire.put_u16(d, 0, 56000)
    wire.put_u16(d, 2, 10000)
    wire.put_u16(d, 4, 12000)
    wire.put_u16(d, 6, 44800)
    m = db.decode_message(link.can_id(link.T_LIMITS, 2, 1), bytes(d))
    assert (m["cvl"], m["ccl"], m["dcl"], m["dvl"]) == pytest.approx((56.0, 100.0, 120.0, 44.8))
    wire.put_u16(d, 0, 3301)
    wire.put_u16(d, 2, 3342)
    wire.put_i16(d, 4, -55)
    wire.put_i16(d, 6, 312)
    m = db.decode_message(link.can_id(link.T_EXTREMES, 2, 1), bytes(d))
    assert (m["min_cell"], m["max_cell"], m["min_temp"], m["max_temp"]) == pytest.approx((3.301, 3.342, -5.5, 31.2))
    d = bytes([0x3A, 0x16, 0, 5, 0, 0, 1, 0])
    m = db.decode_message(link.can_id(link.T_INFO, 2, 1), d)
    assert (m["min_cell_index"], m["max_cell_index"], m["min_temp_index"], m["max_temp_index"]) == (3, 10, 1, 6)
    assert (m["alarms"], m["faults"]) == (5, 256)
    d = bytearray(8)
    d[0], d[1] = 3, 8
    wire.put_u16(d, 2, 52000)
    m = db.decode_message(link.can_id(link.T_HELLO, 1, 0xFF), bytes(d))
    assert (m["generation"], m["packs_online"], m["system_voltage"]) == (3, 8, pytest.approx(52.0))


class FakeCan:
    FLAG_EXT_ID = 2

    def __init__(self):
        self.rx = []
        self.tx = []

    def any(self):
        return bool(self.rx)

    def recv(self, fr):
        i, d, f = self.rx.pop(0)
        fr[0], fr[1], fr[2], fr[3] = i, memoryview(d), f, 0
        return fr

    def send(self, i, d, f):
        self.tx.append((i, bytes(d), f))


class Board:
    def __init__(self):
        self.can = FakeCan()
        self.link_in = Uart()
        self.link_out = Uart()


def _service(b=None):
    """The link service on board b's ports, wired as app.compose wires it."""
    st = PackState()
    b = b if b is not None else Board()
    return compose.link(st, Params(), b, compose.Ports(b)), st, b


def _addr_frame(src, dst, flags=link.ADDR_MASTER_REACHED):
    out = bytearray(link.RS485_MAX)
    n = link.rs485_frame(out, link.T_ADDR, src, dst, bytes([flags, 0]), 2)
    return bytes(out[:n])


def _dbc():
    return cantools.database.load_file(os.path.join(ROOT, "tools", "dbc", "bms_link.dbc"))


_RS485_TYPES = tuple(t for t in link.TYPES if t != link.T_ADDR)  # ADDR from upstream is authoritative


def _fuzz_rs485(rng, exp):
    """Noise (no SOF) and link frames with mutated fields on a slave's Link IN;
    exp counts what the parser must take (good), refuse (bad) and which good
    ones are reset commands for address 2 (reset)."""
    out = bytearray()
    for _ in range(rng.randrange(4)):
        kind = rng.random()
        if kind < 0.3:
            noise = bytes(rng.choice([x for x in range(256) if x != link.SOF]) for _ in range(rng.randrange(1, 12)))
            exp["noise"] += noise
            out += noise
            continue
        typ = rng.choice(_RS485_TYPES + (0x7F, 0x00))
        n = link.length_of(typ) if typ in link.TYPES and rng.random() < 0.8 else rng.randrange(9)
        src = rng.choice((0, 1, 1, 2, 3, 0xFF))
        dst = rng.choice((1, 2, 2, 3, 0xFF))
        payload = bytes(rng.randrange(256) for _ in range(n))
        if typ == link.T_CMD and rng.random() < 0.5:
            payload = bytes([link.CMD_RESET_PROTECT]) + payload[1:]
        f = bytearray(_by_hand(typ, src, dst, payload))
        if kind < 0.45:  # a corrupted frame of the same length
            f[rng.randrange(2, len(f))] ^= 1 << rng.randrange(8)
            exp["bad"] += 1
        elif link.length_of(typ) != n:
            exp["bad"] += 1
        else:
            exp["good"] += 1
            if typ == link.T_CMD and payload[0] == link.CMD_RESET_PROTECT and src == 1 and dst in (2, 0xFF):
                exp["reset"] += 1
        out += f
    return bytes(out)


def _fuzz_can(rng, exp, db, role):
    """Link-shaped CAN frames with mutated fields (and a few foreign ids);
    exp["status"] gets the DBC decode of the last good STATUS per source
    (master), exp["reset"] the reset commands for address 2 (slave)."""
    frames = []
    for _ in range(rng.randrange(6)):
        typ = rng.choice(tuple(link.TYPES) + (0x7F,))
        src = rng.choice((0, 1, 2, 3, 5, 32, 33, 0xFF))
        dst = rng.choice((0, 1, 1, 2, 0xFF))
        i = link.can_id(typ, src, dst) if rng.random() > 0.1 else rng.randrange(1 << 29)
        n = link.length_of(typ) if typ in link.TYPES and rng.random() < 0.8 else rng.randrange(9)
        d = bytes(rng.randrange(256) for _ in range(n))
        if typ == link.T_CMD and rng.random() < 0.5:
            d = bytes([link.CMD_RESET_PROTECT]) + d[1:]
        ext = rng.random() < 0.9
        frames.append((i, d, 2 if ext else 0))
        if not ext or _fields(i)[0] != typ or n != link.length_of(typ):
            continue
        if role == parallel.MASTER and typ == link.T_STATUS and dst == 1 and 2 <= src <= 32:
            exp["status"][src] = db.get_message_by_name("LINK_STATUS").decode(d)
        if role == parallel.SLAVE and typ == link.T_CMD and d[0] == link.CMD_RESET_PROTECT and src == 1 \
                and dst in (2, 0xFF):
            exp["reset"] += 1
    return frames


def test_fuzz_mutated_link_frames_are_taken_or_refused_as_the_protocol_says():
    db = _dbc()
    rng = random.Random(5)
    reached = {"good": 0, "bad": 0, "reset": 0, "status": 0, "noise": 0}
    for trial in range(40):
        svc, st, b = _service()
        lst = Listener()
        _listen(svc, lst)
        master = trial % 2 == 0
        role = parallel.MASTER if master else parallel.SLAVE
        exp = {"good": 0, "bad": 0, "reset": 0, "noise": bytearray(), "status": {}}
        t = 0
        for step in range(80):
            if not master:
                b.link_in.rx.extend(_addr_frame(1, 2))
                exp["good"] += 1
            if step >= 25:  # roles decided (DISCOVER_MS): now the noise
                if not master:
                    b.link_in.rx.extend(_fuzz_rs485(rng, exp))
                b.can.rx.extend(_fuzz_can(rng, exp, db, role))
            svc.tick(t)
            t += 100
        assert (st.link_role, st.link_address) == ((parallel.MASTER, 1) if master else (parallel.SLAVE, 2))
        assert svc.roles.changes == 1  # decided once, never flipped by noise
        assert svc.rx_frames == exp["good"] and svc.rx_in.parser.bad == exp["bad"]
        assert bytes(lst.got) == bytes(exp["noise"])  # not a byte of the noise lost or taken as a frame
        assert st.protect_reset_req == 0 and st.link_refused == exp["reset"]
        tab = svc.table
        for src, m in exp["status"].items():
            assert tab.voltage_mv[src] == round(m["voltage"] * 1000)
            assert tab.current_ma[src] == round(m["current"] * 1000)
            assert (tab.soc_pct[src], tab.soh_pct[src]) == (min(m["soc"], 100), min(m["soh"], 100))
            assert (tab.flags[src], tab.cap_ah[src]) == (m["flags"], m["capacity"])
        for src in range(2, parallel.N):
            assert tab.seen[src] == (1 if src in exp["status"] else 0)
        reached["good"] += exp["good"] - (0 if master else 80)  # beyond our own ADDR frames
        reached["bad"] += exp["bad"]
        reached["reset"] += exp["reset"]
        reached["status"] += len(exp["status"])
        reached["noise"] += len(exp["noise"])
    # the generator reached every path it is meant to (else the checks above prove little)
    assert min(reached.values()) >= 5, reached


def test_duplicate_master_and_duplicate_address_are_flagged():
    svc, st, b = _service()
    for t in range(0, 3000, 100):
        svc.tick(t)
    assert st.link_role == parallel.MASTER
    hello = bytes(8)
    b.can.rx.append((link.can_id(link.T_HELLO, 1, 0xFF), hello, 2))
    svc.tick(3000)
    assert svc.table.conflicts == 1 and st.link_role == parallel.MASTER
    # a report claiming the master's own address is not taken as a pack
    b.can.rx.append((link.can_id(link.T_STATUS, 1, 1), bytes(8), 2))
    svc.tick(3100)
    assert svc.table.conflicts == 2


def test_master_hands_over_when_a_pack_appears_upstream():
    svc, st, b = _service()
    for t in range(0, 3000, 100):
        svc.tick(t)
    assert st.link_role == parallel.MASTER
    b.link_in.rx.extend(_addr_frame(1, 2))
    svc.tick(3000)
    assert (st.link_role, st.link_address) == (parallel.SLAVE, 2)
    # and it hands address 3 down its Link OUT
    p = link.Rs485Parser()
    last = None
    for x in bytes(b.link_out.tx):
        if p.feed(x):
            last = p.dst
    assert last == 3


def test_dip_master_is_master_at_once():
    b = Board()
    b.link_dip_master = True
    svc, st, _ = _service(b)
    b.link_in.rx.extend(_addr_frame(1, 2))
    svc.tick(0)
    assert (st.link_role, st.link_address) == (parallel.MASTER, 1)


class Listener:
    def __init__(self):
        self.got = bytearray()

    def on_rs485(self, buf, n):
        self.got.extend(bytes(buf[:n]))


def _listen(svc, lst):
    """lst gets every Link IN byte that is not a link frame (ASCII and binary)."""
    svc.rx_in.subscribe_ascii(lst)
    svc.rx_in.subscribe_binary(lst)


def test_link_in_router_splits_link_frames_from_pylontech_requests():
    svc, st, b = _service()
    lst = Listener()
    _listen(svc, lst)
    req = b"~20024642E00202FD33\r"
    stream = bytearray()
    frames = 0
    for k in range(30):
        stream += _addr_frame(1, 0, 0)  # an undecided pack upstream: no address for us
        frames += 1
        if k % 3 == 0:
            stream += req
    # chunks cut anywhere, a 0x7E held across a chunk boundary included
    pos = 0
    rng = random.Random(3)
    t = 0
    while pos < len(stream):
        n = rng.randrange(1, 25)
        b.link_in.rx.extend(stream[pos:pos + n])
        pos += n
        svc.tick(t)
        t += 100
    assert svc.rx_frames == frames and svc.rx_in.parser.bad == 0
    assert bytes(lst.got) == req * 10
    assert svc.roles.up_ms >= 0


def test_link_in_router_passes_garbage_and_double_tilde_on():
    svc, st, b = _service()
    lst = Listener()
    _listen(svc, lst)
    b.link_in.rx.extend(b"xy~~20\r" + _addr_frame(1, 0, 0) + b"z" * 100)
    svc.tick(0)
    assert svc.rx_frames == 1
    assert bytes(lst.got) == b"xy~~20\r" + b"z" * 100


def test_two_routers_polled_in_turn_each_deliver_their_own_stream():
    # the routers share their read and chunk buffers (app.router): polled in turn,
    # with chunks cut anywhere and more bytes than one read, each delivers what
    # its own port's stream holds, as a router polled alone does
    from app.router import Router
    req = b"~20024642E00202FD33\r"
    modbus = bytes([0x01, 0x03, 0x00, 0x10, 0x00, 0x02, 0xC5, 0xCE])
    rng = random.Random(5)
    parts = (req, modbus, _addr_frame(1, 0, 0), _addr_frame(2, 3, 0), b"xy~~20\r", b"z" * 70)
    streams = [b"".join(rng.choice(parts) for _ in range(40)) for _ in range(2)]

    def run(which):
        out = {}
        routers = {}
        for k in which:
            r = routers[k] = Router(Uart())
            asc, bi, frames = Listener(), Listener(), []
            r.subscribe_ascii(asc)
            r.subscribe_binary(bi)
            r.subscribe_link(lambda p, now, frames=frames: frames.append(bytes(p.buf[:7 + p.n])))
            out[k] = (asc, bi, frames)
        pos = dict.fromkeys(which, 0)
        cut = random.Random(9)
        while any(pos[k] < len(streams[k]) for k in which):
            for k in which:
                n = cut.randrange(1, 150)
                routers[k].port.rx.extend(streams[k][pos[k]:pos[k] + n])
                pos[k] += n
                routers[k].poll(0)
        return {k: (bytes(a.got), bytes(b.got), f) for k, (a, b, f) in out.items()}
    both = run((0, 1))
    for k in (0, 1):
        alone = run((k,))[k]
        assert both[k] == alone
        assert alone[0].count(req) == streams[k].count(req) and len(alone[2]) == streams[k].count(b"\x7e\x02")


def test_link_in_router_splits_ascii_requests_from_binary():
    # IFACE: '~' then a printable byte up to '\r' is ASCII (Pylontech), the rest binary
    svc, st, b = _service()
    asc, bi = Listener(), Listener()
    svc.rx_in.subscribe_ascii(asc)
    svc.rx_in.subscribe_binary(bi)
    req = b"~20024642E00202FD33\r"
    modbus = bytes([0x01, 0x03, 0x00, 0x10, 0x00, 0x02, 0xC5, 0xCE])
    b.link_in.rx.extend(modbus + req + b"\x7e\x80" + _addr_frame(1, 0, 0) + req[:9])
    svc.tick(0)
    b.link_in.rx.extend(req[9:] + b"xy~~20\r" + modbus)
    svc.tick(100)
    assert svc.rx_frames == 1
    assert bytes(asc.got) == req + req + b"~~20\r"
    assert bytes(bi.got) == modbus + b"\x7e\x80" + b"xy" + modbus


def test_link_in_router_keeps_a_0x7e_inside_a_modbus_frame_binary():
    # an RTU frame's data and CRC are any bytes: a 0x7E followed by a printable
    # byte inside a request is not a Pylontech start (Modbus over Serial Line
    # 2.5.1.1: a frame ends at a 3.5-character gap), nor 0x7E + 0..8 a link frame
    from app.host import Host
    from proto import modbus as mb
    from pymodbus.framer import FramerRTU
    from pymodbus.pdu import DecodePDU
    from pymodbus.pdu.register_message import WriteMultipleRegistersRequest
    svc, st, b = _service()
    asc = Listener()
    svc.rx_in.subscribe_ascii(asc)
    host = Host(st, Params(), None, b.link_in)
    svc.rx_in.subscribe_binary(host, host.framer)
    framer = FramerRTU(DecodePDU(False))
    req = b""
    for regs in ([0x7E41, 0x0D00, 3], [0x7E03, 1, 2]):  # '~A', then a 0x7E before a link length byte
        pdu = WriteMultipleRegistersRequest(address=1026, registers=regs)
        req += framer.encode(bytes([16]) + pdu.encode(), 1, 0)
    pylon = b"~20024642E00202FD33\r"
    b.link_in.rx.extend(req[:len(req) // 2 + 3])
    svc.tick(0)
    host.tick(0)
    b.link_in.rx.extend(req[len(req) // 2 + 3:])
    svc.tick(10)
    host.tick(10)
    svc.tick(20)  # a quiet poll: the gap after the frames
    host.tick(20)
    b.link_in.rx.extend(pylon)
    svc.tick(30)
    assert host.framer.frames == 2 and host.framer.errors == 0  # both answered (01: no session)
    assert host.refused == 2 and host.reason == 1
    assert bytes(asc.got) == pylon and svc.rx_in.parser.bad == 0


def test_slave_answers_a_cells_request_and_the_master_builds_the_0x42_info():
    from defs.snapshot import N_CELLS, N_TEMPS
    db = _dbc()
    slave, sst, sb = _service()
    for t in range(0, 600, 100):
        sb.link_in.rx.extend(_addr_frame(1, 2))
        slave.tick(t)
    assert sst.link_role == parallel.SLAVE and sst.link_address == 2
    sst.snap.reads = 1
    for i in range(N_CELLS):
        sst.snap.cell_mv[i] = 3300 + 7 * i
    for i in range(N_TEMPS):
        sst.snap.temp_dc[i] = 250 - 45 * i  # down to -20.0 degC: the sign is carried
    sst.snap.stack_mv = 53000
    sst.current_ma = -12345
    sst.soc_pct = 40
    sst.fcc_mah = 98765  # learned (rated 100 Ah): the 0x42 for this pack must say 98.765 Ah
    sst.cycles = 321
    sb.can.tx.clear()
    # the master's requests as the DBC spells them (src 1 -> dst 2), one for address 3
    req = db.get_message_by_name("LINK_REQ")
    cmd = db.get_message_by_name("LINK_CMD")
    sb.can.rx.append((req.frame_id, req.encode({"what": "reports", "argument": 0}), 2))
    sb.can.rx.append((req.frame_id, req.encode({"what": "cells", "argument": 0}), 2))
    sb.can.rx.append((req.frame_id + 0x100, req.encode({"what": "cells", "argument": 0}), 2))  # dst 3
    sb.can.rx.append((cmd.frame_id | 0xFF00, cmd.encode({"command": "reset_protect", "argument": 0}), 2))
    sb.link_in.rx.extend(_addr_frame(1, 2))
    slave.tick(650)
    assert sst.protect_reset_req == 0 and sst.link_refused == 1  # a link frame resets nothing (issue 14)
    # what the slave sent, decoded with the DBC: its reports, its capacity and cycles,
    # every NTC then every cell, 3 a frame, to dst 1
    temps, cells, capacity = [], [], []
    for i, d, f in sb.can.tx:
        assert f == 2 and i >> 8 & 0xFF == 1 and i & 0xFF == 2
        m = db.get_message_by_frame_id(i)  # KeyError: a frame the DBC does not know
        v = m.decode(d)
        if m.name == "LINK_CAPACITY":
            assert not temps and not cells
            capacity.append((v["full_capacity"], v["cycles"]))
        elif m.name == "LINK_TEMPS":
            assert not cells and v["count"] == N_TEMPS and v["first_index"] == len(temps)
            temps += [v["temp%d" % k] for k in range(3)]
        elif m.name == "LINK_CELLS":
            assert v["count"] == N_CELLS and v["first_index"] == len(cells)
            cells += [v["cell%d" % k] for k in range(3)]
    assert [round(x * 1000) for x in cells] == [3300 + 7 * i for i in range(N_CELLS)] + [0] * (-N_CELLS % 3)
    assert [round(x * 10) for x in temps] == [250 - 45 * i for i in range(N_TEMPS)] + [0] * (-N_TEMPS % 3)
    assert capacity == [(pytest.approx(98.765), 321)]
    # the master takes them and answers 0x42 for pylon address 3 (= link address 2) as the
    # pack would answer for itself, read with the independent decoder (python-pylontech /
    # FHEM layout): board NTC first, 0.1 A, the learned capacity over 65 Ah in the 3-byte
    # mAh fields (count 4), the real cycle count
    master, mst, mb = _service()
    master.table.build().build_series()  # what the master's first report and cells reply build (_rows)
    for i, d, f in sb.can.tx:
        assert linkrows.take(master.table, 700, *_fields(i)[:2], d)
    master.table.online[2] = 1
    master.roles.role = parallel.MASTER
    info = bytearray(128)
    n = other_pack(master, info, 3, 2, 800, pr.UNITS_PYLON)
    assert n == 3 + 2 * N_CELLS + 1 + 2 * N_TEMPS + 17 and info[1] == 3
    (m,) = pylon_rs485_decoder.analog(bytes(info[:n]))
    assert m["cells_mv"] == [3300 + 7 * i for i in range(N_CELLS)]
    assert [m["board_dc"]] + m["temps_dc"] == [250 - 45 * (N_TEMPS - 1)] + [250 - 45 * i for i in range(N_TEMPS - 1)]
    assert (m["current_a"], m["voltage_v"], m["udi"]) == (-12.3, 53.0, 4)
    assert (m["total_ah"], m["remaining_ah"], m["cycles"]) == (98.765, 39.506, 321)
    assert other_pack(master, info, 3, 2, 800 + parallel.CELLS_MAX_AGE_MS, pr.UNITS_PYLON) == -1  # stale
    assert other_pack(master, info, 4, 3, 800, pr.UNITS_PYLON) == -1 and master._marks[3] & 1  # none yet: asked for (app.link's _ASK bit)


# --- fixed addresses (parameter link_fixed_address_count, SPEC 6's address DIP) -------

def _fixed_service(a, b=None):
    """The link service of a pack whose parameter says address a (read at start)."""
    st = PackState()
    prm = Params()
    prm.set_by_name("link_fixed_address_count", a)
    b = b if b is not None else Board()
    return compose.link(st, prm, b, compose.Ports(b)), st, b


def _frames(data):
    """(type, src, dst, payload) of every RS485 link frame in data, by the protocol text's parser."""
    out = []
    i = 0
    while i + 7 <= len(data):
        assert data[i] == link.SOF, data[i:].hex()
        n = data[i + 1]
        f = bytes(data[i:i + 7 + n])
        assert f == _by_hand(f[2], f[3], f[4], f[5:5 + n])  # CRC as the protocol text computes it
        out.append((f[2], f[3], f[4], f[5:5 + n]))
        i += 7 + n
    assert i == len(data)
    return out


def test_roles_fixed_master_slave_and_the_dip_master_wins():
    from bms.parallel import Roles, DISCOVER_MS
    r = Roles(False, 1)
    r.step(0)
    assert (r.role, r.address, r.fixed) == (parallel.MASTER, 1, 1)
    r.heard_upstream(100, 2, link.ADDR_MASTER_REACHED)  # a pack upstream: a fixed master never hands over
    r.step(100)
    assert (r.role, r.address, r.changes) == (parallel.MASTER, 1, 1)
    # fixed 7: a slave at 7 at once, whatever upstream hands it
    r = Roles(False, 7)
    r.step(0)
    assert (r.role, r.address) == (parallel.SLAVE, 7) and not r.master_reached(0)  # nothing upstream: orphan
    r.heard_upstream(50, 3, link.ADDR_MASTER_REACHED)
    r.step(100)
    assert (r.role, r.address, r.changes) == (parallel.SLAVE, 7, 1) and r.master_reached(100)
    r.step(100 + parallel.UPSTREAM_LOST_MS + DISCOVER_MS)  # upstream silent: still 7, never master
    assert (r.role, r.address) == (parallel.SLAVE, 7) and not r.master_reached(100 + parallel.UPSTREAM_LOST_MS)
    # the DIP master wins over a fixed slave address; 0 and out of range are automatic
    r = Roles(True, 7)
    r.step(0)
    assert (r.role, r.address, r.fixed) == (parallel.MASTER, 1, 1)
    for a in (0, 33, -1):
        r = Roles(False, a)
        r.step(0)
        assert (r.fixed, r.role) == (0, parallel.NONE)
        r.step(DISCOVER_MS)
        assert (r.role, r.address) == (parallel.MASTER, 1)


def test_a_fixed_slave_hands_its_address_plus_one_down_and_reports_when_a_master_is_upstream():
    svc, st, b = _fixed_service(7)
    assert st.link_fixed
    svc.tick(0)
    assert (st.link_role, st.link_address) == (parallel.SLAVE, 7) and st.link_orphan and st.link_failure
    addr = [f for f in _frames(bytes(b.link_out.tx)) if f[0] == link.T_ADDR]
    assert addr and addr[-1][1:3] == (7, 8) and addr[-1][3][0] == 0  # "you are 8", no master reached
    assert not b.can.tx  # an orphan sends no reports
    b.link_out.tx.clear()
    t = 100
    for _ in range(20):  # the master upstream hands it 2: it stays 7 and reports as 7
        b.link_in.rx.extend(_addr_frame(1, 2))
        svc.tick(t)
        t += 100
    assert (st.link_role, st.link_address) == (parallel.SLAVE, 7) and not st.link_orphan
    assert svc.roles.changes == 1
    addr = [f for f in _frames(bytes(b.link_out.tx)) if f[0] == link.T_ADDR]
    assert addr[-1][1:3] == (7, 8) and addr[-1][3][0] == link.ADDR_MASTER_REACHED
    reports = {_fields(i) for i, _d, _f in b.can.tx}
    assert (link.T_STATUS, 7, 1) in reports


def test_a_fixed_master_is_master_at_once_and_a_pack_after_it_takes_two():
    svc, st, b = _fixed_service(1)
    svc.tick(0)
    assert (st.link_role, st.link_address) == (parallel.MASTER, 1) and st.link_fixed
    b.link_in.rx.extend(_addr_frame(1, 2))  # a pack upstream: the fixed master stays
    svc.tick(100)
    assert (st.link_role, st.link_address) == (parallel.MASTER, 1)
    assert [f[1:3] for f in _frames(bytes(b.link_out.tx)) if f[0] == link.T_ADDR][-1] == (1, 2)


def test_the_rs485_chain_relays_with_gaps_and_addresses_that_do_not_increase():
    """A board without CAN at fixed address 9 (upstream hands it 2), a pack at
    3 below it: what the master sends down for 3 (and broadcasts) goes on down,
    nothing for 9 itself or for the master; reports of 3 coming up go on up;
    a frame from below claiming 9 is a conflict, not passed up."""
    b = Board()
    b.can = None
    svc, st, _ = _fixed_service(9, b)
    t = 0
    for _ in range(5):
        b.link_in.rx.extend(_addr_frame(1, 2))
        svc.tick(t)
        t += 100
    assert (st.link_role, st.link_address, st.link_orphan) == (parallel.SLAVE, 9, False)
    b.link_out.tx.clear()
    b.link_in.tx.clear()
    d = bytes([link.REQ_CELLS, 0])
    for dst in (3, 2, 9, 1, 0xFF, 33):
        b.link_in.rx.extend(_by_hand(link.T_REQ, 1, dst, d))
    svc.tick(t)
    down = [f for f in _frames(bytes(b.link_out.tx)) if f[0] != link.T_ADDR]
    assert [f[2] for f in down] == [3, 2, 0xFF] and all(f[1] == 1 and f[3] == d for f in down)
    status = bytes(range(8))
    b.link_out.rx.extend(_by_hand(link.T_STATUS, 3, 1, status))  # pack 3's report, up to the master
    b.link_out.rx.extend(_by_hand(link.T_STATUS, 3, 5, status))  # not for the master: dropped
    svc.tick(t + 100)
    assert [f for f in _frames(bytes(b.link_in.tx)) if f[1] == 3] == [(link.T_STATUS, 3, 1, status)]
    assert st.link_conflict == 0 and not st.link_failure
    b.link_in.tx.clear()
    b.link_out.rx.extend(_by_hand(link.T_STATUS, 9, 1, status))  # a pack below also set to 9
    b.link_in.rx.extend(_addr_frame(1, 2))
    svc.tick(t + 200)
    assert not [f for f in _frames(bytes(b.link_in.tx)) if f[1] == 9 and f[0] == link.T_STATUS]
    assert st.link_conflict == 9 and st.link_failure and svc.table.conflicts == 1


def test_an_address_conflict_is_a_parallel_failure_while_it_is_heard():
    """Two packs set to one fixed address on the CAN bus: each hears the
    other's reports from its own address; PARALLEL (link_failure) and the
    address (INFO address_conflict) hold while they are heard and end
    OFFLINE_MS after the last one."""
    svc, st, b = _fixed_service(5)
    t = 0
    for _ in range(5):
        b.link_in.rx.extend(_addr_frame(1, 2))
        svc.tick(t)
        t += 100
    assert not st.link_failure and st.link_conflict == 0
    b.can.rx.append((link.can_id(link.T_STATUS, 5, 1), bytes(8), 2))
    b.link_in.rx.extend(_addr_frame(1, 2))
    svc.tick(t)
    assert st.link_conflict == 5 and st.link_failure
    heard = t
    while t < heard + parallel.OFFLINE_MS - 100:
        t += 100
        b.link_in.rx.extend(_addr_frame(1, 2))
        svc.tick(t)
        assert st.link_failure and st.link_conflict == 5, t
    t = heard + parallel.OFFLINE_MS
    b.link_in.rx.extend(_addr_frame(1, 2))
    svc.tick(t)
    assert st.link_conflict == 0 and not st.link_failure and svc.table.conflicts == 1
    # a second master (a HELLO from address 1) on a master: conflict at 1
    m, mst, mb = _fixed_service(1)
    m.tick(0)
    mb.can.rx.append((link.can_id(link.T_HELLO, 1, 0xFF), bytes(8), 2))
    m.tick(100)
    assert mst.link_conflict == 1 and mst.link_failure


def test_the_addr_frame_goes_down_every_tick_with_the_master_generation():
    """A master writes one ADDR frame on Link OUT every ADDR_MS ("you are 2",
    master reached, its generation: the proto.link header's ADDR payload),
    and the frame follows the generation when a slave heard on CAN for
    STABLE_MS forms the system."""
    svc, st, b = _fixed_service(1)
    st.snap.reads = 1  # its own row counts
    gens = []
    for k in range(50):
        b.can.rx.append((link.can_id(link.T_STATUS, 2, link.MASTER), bytes(8), b.can.FLAG_EXT_ID))
        svc.tick(k * parallel.ADDR_MS)
        fr = _frames(bytes(b.link_out.tx))
        b.link_out.tx.clear()
        assert [f[:3] + (f[3][0],) for f in fr] == [(link.T_ADDR, 1, 2, link.ADDR_MASTER_REACHED)], k
        gens.append(fr[0][3][1])
    assert svc.roles.gen == 1 and gens[0] == 0 and gens[-1] == 1 and gens == sorted(gens)


class _NoHeap:
    """Stands in for a Table build the heap cannot hold: MemoryError the first
    `times` calls (app.service.built counts it in the link's `failed`)."""

    def __init__(self, real, times):
        self.real = real
        self.times = times

    def __call__(self):
        if self.times:
            self.times -= 1
            raise MemoryError
        return self.real()


def _master():
    svc, st, b = _service()
    st.snap.reads = 1
    for t in range(0, parallel.DISCOVER_MS + 100, 100):
        svc.tick(t)
    assert st.link_role == parallel.MASTER
    return svc, st, b


def test_the_master_builds_its_rows_at_the_first_peer_report_and_retries_after_a_memory_error():
    """A pack alone holds seen/online and its own row only; the first report
    from a peer builds every row, the first cells reply the cells/NTC block.
    When the heap cannot hold them the frame is dropped (counted in failed,
    not a bad frame) and the next one builds them."""
    svc, st, b = _master()
    t = svc.table
    assert t.n == 2 and t.cells is None and svc.failed == 0
    t.build = _NoHeap(t.build, 1)
    t.build_series = _NoHeap(t.build_series, 1)
    status = bytes([0xCE, 0x20, 0, 0, 50, 100, link.F_CHG_OK | link.F_DSG_OK, 100])
    temps = bytes([0, 2, 0, 250, 0, 251, 0, 0])
    for k, (typ, d, n, heard, n_temps, failed) in enumerate((
            (link.T_STATUS, status, 2, 0, 0, 1),  # dropped: the rows could not be built
            (link.T_STATUS, status, parallel.N, 1, 0, 1),  # the next one builds them
            (link.T_TEMPS, temps, parallel.N, 1, 0, 2),  # dropped: no cells/NTC block
            (link.T_TEMPS, temps, parallel.N, 1, 2, 2))):
        b.can.rx.append((link.can_id(typ, 2, link.MASTER), d, 2))
        svc.tick(parallel.DISCOVER_MS + 200 + 100 * k)
        assert (t.n, t.heard, t.n_temps[2] if t.n > 2 else 0, svc.failed) == (n, heard, n_temps, failed), k
        assert (t.cells is None) == (k < 3) and svc.bad_frames == 0
    assert st.link_online == 2 and t.voltage_mv[2] == 0xCE20 and list(t.temps[2 * parallel.MAX_TEMPS:][:2]) == [250, 251]
    assert t.voltage_mv[1] == st.snap.stack_mv  # the own row came along


def test_a_pack_alone_never_imports_the_report_payloads(monkeypatch):
    """bms.linkrows (the reports and HELLO) comes with the rows, at the
    first peer report, app.linkpeer (the slave's part, the HELLO) at the
    first HELLO: a pack alone loads neither (issue 12)."""
    import app
    import bms
    for pkg, name in ((bms, "linkrows"), (app, "linkpeer")):
        monkeypatch.delitem(sys.modules, pkg.__name__ + "." + name, raising=False)
        monkeypatch.delattr(pkg, name, raising=False)
    svc, st, b = _master()
    for k in range(30):
        svc.tick(parallel.DISCOVER_MS + 200 + 100 * k)
    assert "bms.linkrows" not in sys.modules and "app.linkpeer" not in sys.modules and svc.table.n == 2
    b.can.rx.append((link.can_id(link.T_STATUS, 2, link.MASTER), bytes([0xCE, 0x20, 0, 0, 50, 100, 3, 100]), 2))
    svc.tick(parallel.DISCOVER_MS + 3200)
    assert "bms.linkrows" in sys.modules and "app.linkpeer" in sys.modules and svc.table.voltage_mv[2] == 0xCE20


def test_the_master_ignores_can_ids_without_the_link_prefix():
    """An inverter's 11-bit id or another 29-bit protocol's (the host PGN)
    carrying a STATUS-shaped payload is no link frame: not taken, not bad."""
    svc, st, b = _master()
    status = bytes([0xCE, 0x20, 0, 0, 50, 100, 0, 100])
    own = link.can_id(link.T_STATUS, 2, link.MASTER)
    for k, i in enumerate((0x351, 0x18100102, own & 0xFFFFFF | 0x1B << 24)):
        b.can.rx.append((i, status, 2))
        svc.tick(parallel.DISCOVER_MS + 200 + 100 * k)
    assert svc.table.heard == 0 and svc.bad_frames == 0 and st.link_online == 1
    b.can.rx.append((own, status, 2))
    svc.tick(parallel.DISCOVER_MS + 600)
    assert svc.table.heard == 1 and st.link_online == 2


def test_a_slave_that_cannot_build_its_row_skips_that_report():
    """A slave writes its own row at its address (the rows built at its first
    report): when the heap cannot hold them it sends nothing that slot (the
    master sees a pack silent, as on a lost frame) and reports in the next."""
    svc, st, b = _service()
    st.snap.reads = 1
    svc.table.build = _NoHeap(svc.table.build, 1)
    sent = []  # when a STATUS went out
    for t in range(0, 3000, 100):
        b.link_in.rx.extend(_addr_frame(1, 2))
        n = len(b.can.tx)
        svc.tick(t)
        sent += [t for i, _, _ in b.can.tx[n:] if _fields(i)[0] == link.T_STATUS]
    assert st.link_role == parallel.SLAVE and svc.failed == 1 and svc.table.n == parallel.N
    # address 2 reports in the slot 200 ms into each second: the first failed, the next went out
    assert sent == [1200, 2200]


def test_a_slave_that_cannot_import_its_part_reports_once_it_can(monkeypatch):
    """app.linkpeer (the slave's reports) imported at the first need: while
    the heap cannot hold it (counted in failed) the slave sends nothing (its
    hold is app.link's: held here, no HELLO heard); the next ticks try again
    and it reports in its slot."""
    from app import link as app_link
    svc, st, b = _service()
    st.snap.reads = 1
    monkeypatch.setattr(app_link, "_peer", _NoHeap(app_link._peer, 5))
    sent = []
    for t in range(0, 3000, 100):
        b.link_in.rx.extend(_addr_frame(1, 2))
        n = len(b.can.tx)
        svc.tick(t)
        if svc.failed:
            assert st.link_role == parallel.SLAVE and st.link_hold and st.link_online == 0
        sent += [t for i, _, _ in b.can.tx[n:] if _fields(i)[0] == link.T_STATUS]
    assert svc.failed == 5 and st.link_role == parallel.SLAVE
    assert sent == [1200, 2200]  # address 2's slot, 200 ms into each second
