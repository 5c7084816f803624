"""Link protocol (lib/proto/link): ids, payload helpers, RS485 framing, the
DBC decode with cantools, and fuzzing of what a pack's link service gets."""
import os
import random

import cantools
import pytest

from proto import link
from bms import parallel
from bms.state import PackState
from bms.params import Params
from app.link import Link

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_can_id_carries_type_src_dst_and_ignores_foreign_ids():
    i = link.can_id(link.T_STATUS, 7, 1)
    assert i < (1 << 29) and link.id_type(i) == link.T_STATUS
    assert (link.id_src(i), link.id_dst(i)) == (7, 1)
    assert link.id_type(0x351) == -1 and link.id_type(0x18FF0102) == -1


def test_rs485_frame_roundtrip_and_garbage_is_skipped():
    out = bytearray(link.RS485_MAX)
    n = link.rs485_frame(out, link.T_ADDR, 3, 4, b"\x01\x05", 2)
    p = link.Rs485Parser()
    stream = b"~2001\x7e\x09\x00" + bytes(out[:n])
    got = [p.feed(b) for b in stream]
    assert got.count(True) == 1 and (p.typ, p.src, p.dst, bytes(p.payload[:2])) == (link.T_ADDR, 3, 4, b"\x01\x05")
    bad = bytearray(out[:n])
    bad[5] ^= 1
    p2 = link.Rs485Parser()
    assert not any(p2.feed(b) for b in bad) and p2.bad == 1


def test_dbc_decodes_the_link_frames():
    db = cantools.database.load_file(os.path.join(ROOT, "tools", "dbc", "bms_link.dbc"))
    d = bytearray(8)
    link.put_u16(d, 0, 53210)
    link.put_i16(d, 2, -1234)  # 10 mA units
    d[4], d[5], d[6], d[7] = 57, 99, link.F_CHG_OK | link.F_DSG_OK, 100
    m = db.decode_message(link.can_id(link.T_STATUS, 2, 1), bytes(d))
    assert m["voltage"] == pytest.approx(53.21) and m["current"] == pytest.approx(-12.34)
    assert (m["soc"], m["soh"], m["flags"], m["capacity"]) == (57, 99, 3, 100)
    link.put_u16(d, 0, 56000)
    link.put_u16(d, 2, 10000)
    link.put_u16(d, 4, 12000)
    link.put_u16(d, 6, 44800)
    m = db.decode_message(link.can_id(link.T_LIMITS, 2, 1), bytes(d))
    assert (m["cvl"], m["ccl"], m["dcl"], m["dvl"]) == pytest.approx((56.0, 100.0, 120.0, 44.8))
    link.put_u16(d, 0, 3301)
    link.put_u16(d, 2, 3342)
    link.put_i16(d, 4, -55)
    link.put_i16(d, 6, 312)
    m = db.decode_message(link.can_id(link.T_EXTREMES, 2, 1), bytes(d))
    assert (m["min_cell"], m["max_cell"], m["min_temp"], m["max_temp"]) == pytest.approx((3.301, 3.342, -5.5, 31.2))
    d = bytes([0x3A, 0x16, 0, 5, 0, 0, 1, 0])
    m = db.decode_message(link.can_id(link.T_INFO, 2, 1), d)
    assert (m["min_cell_index"], m["max_cell_index"], m["min_temp_index"], m["max_temp_index"]) == (3, 10, 1, 6)
    assert (m["alarms"], m["faults"]) == (5, 256)
    d = bytearray(8)
    d[0], d[1] = 3, 8
    link.put_u16(d, 2, 52000)
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


class FakeUart:
    def __init__(self):
        self.rx = bytearray()
        self.tx = bytearray()

    def any(self):
        return len(self.rx)

    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        del self.rx[:n]
        return n or None

    def write(self, b):
        self.tx.extend(b)
        return len(b)


class Board:
    def __init__(self):
        self.can = FakeCan()
        self.link_in = FakeUart()
        self.link_out = FakeUart()


def _service():
    st = PackState()
    b = Board()
    return Link(st, Params(), b), st, b


def _addr_frame(src, dst, flags=link.ADDR_MASTER_REACHED):
    out = bytearray(link.RS485_MAX)
    n = link.rs485_frame(out, link.T_ADDR, src, dst, bytes([flags, 0]), 2)
    return bytes(out[:n])


def test_fuzz_random_frames_never_crash_and_never_change_role_silently():
    rng = random.Random(5)
    for trial in range(40):
        svc, st, b = _service()
        master = trial % 2 == 0
        t = 0
        for step in range(60):
            if not master:
                b.link_in.rx.extend(_addr_frame(1, 2))
            # random RS485 noise and random CAN frames, link-shaped or not
            b.link_in.rx.extend(bytes(rng.randrange(256) for _ in range(rng.randrange(12))))
            for _ in range(rng.randrange(6)):
                typ = rng.choice(link.TYPES + (0x7F, 0))
                i = link.can_id(typ, rng.choice((0, 1, 2, 5, 33, 0xFF)), rng.choice((0, 1, 2, 0xFF)))
                if rng.random() < 0.2:
                    i = rng.randrange(1 << 29)
                n = rng.randrange(9)
                b.can.rx.append((i, bytes(rng.randrange(256) for _ in range(n)), rng.choice((0, 2))))
            svc.tick(t)
            t += 100
        if master:
            assert st.link_role == parallel.MASTER and st.link_address == 1
        else:
            assert st.link_role == parallel.SLAVE and st.link_address == 2
        assert svc.roles.changes == 1  # decided once, never flipped by noise


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
    st = PackState()
    b = Board()
    b.link_dip_master = True
    svc = Link(st, Params(), b)
    b.link_in.rx.extend(_addr_frame(1, 2))
    svc.tick(0)
    assert (st.link_role, st.link_address) == (parallel.MASTER, 1)


class Listener:
    def __init__(self):
        self.got = bytearray()

    def on_rs485(self, buf, n):
        self.got.extend(bytes(buf[:n]))


def test_link_in_router_splits_link_frames_from_pylontech_requests():
    svc, st, b = _service()
    lst = Listener()
    svc.rs485_listeners.append(lst)
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
    assert svc.rx_frames == frames and svc._p.bad == 0
    assert bytes(lst.got) == req * 10
    assert svc.roles.up_ms >= 0


def test_link_in_router_passes_garbage_and_double_tilde_on():
    svc, st, b = _service()
    lst = Listener()
    svc.rs485_listeners.append(lst)
    b.link_in.rx.extend(b"xy~~20\r" + _addr_frame(1, 0, 0) + b"z" * 100)
    svc.tick(0)
    assert svc.rx_frames == 1
    assert bytes(lst.got) == b"xy~~20\r" + b"z" * 100


def test_slave_answers_a_cells_request_and_the_master_builds_the_0x42_info():
    from bms.snapshot import N_CELLS, N_TEMPS
    slave, sst, sb = _service()
    for t in range(0, 600, 100):
        sb.link_in.rx.extend(_addr_frame(1, 2))
        slave.tick(t)
    assert sst.link_role == parallel.SLAVE and sst.link_address == 2
    sst.snap.reads = 1
    for i in range(N_CELLS):
        sst.snap.cell_mv[i] = 3300 + i
    for i in range(N_TEMPS):
        sst.snap.temp_dc[i] = 250 - 10 * i
    sb.can.tx.clear()
    sb.can.rx.append((link.can_id(link.T_REQ, 1, 2), bytes([link.REQ_CELLS, 0]), 2))
    sb.can.rx.append((link.can_id(link.T_REQ, 1, 3), bytes([link.REQ_CELLS, 0]), 2))  # not ours
    sb.can.rx.append((link.can_id(link.T_CMD, 1, 0xFF), bytes([link.CMD_RESET_PROTECT, 0]), 2))
    sb.link_in.rx.extend(_addr_frame(1, 2))
    slave.tick(650)
    assert sst.protect_reset_req == 0 and slave.refused == 1  # a link frame resets nothing (issue 14)
    typs = [link.id_type(i) for i, _, _ in sb.can.tx if link.id_type(i) in (link.T_CELLS, link.T_TEMPS)]
    assert typs == [link.T_TEMPS] * 3 + [link.T_CELLS] * 6
    # the master takes them and answers for pylon address 3 (= link address 2)
    master, mst, mb = _service()
    for i, d, f in sb.can.tx:
        assert master.table.take(700, link.id_type(i), link.id_src(i), d)
    master.table.online[2] = 1
    master.roles.role = parallel.MASTER
    info = bytearray(128)
    n = master.analog(info, 3, 2, 800)
    assert n == 3 + 2 * N_CELLS + 1 + 2 * N_TEMPS + 11 and info[1] == 3 and info[2] == N_CELLS
    assert [link.get_u16(info, 3 + 2 * i) for i in range(N_CELLS)] == [3300 + i for i in range(N_CELLS)]
    o = 4 + 2 * N_CELLS
    assert [link.get_u16(info, o + 2 * i) - 2731 for i in range(N_TEMPS)] == [250 - 10 * i for i in range(N_TEMPS)]
    assert master.analog(info, 3, 2, 800 + parallel.CELLS_MAX_AGE_MS) == -1  # stale
    assert master.analog(info, 4, 3, 800) == -1 and master._ask[3] == 1  # none yet: asked for
