"""Pylontech RS485 server (issue 7): replies decoded by an independent decoder
(checksums computed here), the PROTOCOLS example, error return codes for
malformed requests, silence for garbage and other addresses, fuzzing."""
import struct

from hypothesis import given, settings, strategies as hs

import pylon_rs485_decoder as dec
from fake_port import Stream

from app.inverter import Inverter, BUS_RS485
from app.router import Router
from bms.params import Params, index_of
from bms.state import PackState
from proto import pylon_rs485 as pr
from test_inverter_can import view


def csum(body):
    return (-sum(body)) & 0xFFFF


def lsum(n):
    return (-((n & 15) + ((n >> 4) & 15) + ((n >> 8) & 15))) & 15


def req(cid2, info=b"", ver=0x20, adr=2, cid1=0x46):
    h = info.hex().upper().encode()
    body = b"%02X%02X%02X%02X%04X" % (ver, adr, cid1, cid2, (lsum(len(h)) << 12) | len(h)) + h
    return b"~" + body + b"%04X" % csum(body) + b"\r"


def decode(frame):
    assert frame[:1] == b"~" and frame[-1:] == b"\r"
    body = frame[1:-5]
    assert int(frame[-5:-1], 16) == csum(body)
    ln = int(body[8:12], 16)
    assert ln >> 12 == lsum(ln & 0xFFF) and (ln & 0xFFF) == len(body) - 12
    return int(body[6:8], 16), bytes.fromhex(body[12:].decode()), int(body[2:4], 16)


def server(v=None):
    st = PackState()
    st.snap.reads = 1
    for i in range(16):
        st.snap.cell_mv[i] = 3300 + i
    st.snap.stack_mv = sum(st.snap.cell_mv)
    st.current_ma = 12345
    st.soc_pct = 57
    return _wired(st, Params(), v or view())


def _wired(st, p, v):
    """The inverter on Link IN, as app.compose wires it: the port's reader
    (app.router, kept as end.router) hands it the ASCII requests."""
    end = Stream()  # read() only: the router's other read path
    inv = Inverter(st, p, v, None, end)
    end.router = Router(end)
    end.router.subscribe_ascii(inv)
    return inv, st, end


def ask(inv, end, data, t=0):
    end.rx.extend(data)
    end.tx.clear()
    inv.tick(t)
    end.router.poll(t)  # in the link's tick, after the inverter's (app.compose)
    return bytes(end.tx)


def test_protocols_example_request():
    assert req(0x42, b"\x02") == b"~20024642E00202FD33\r"
    r = pr.Request()
    buf = bytearray(b"~20024642E00202FD33\r")
    assert pr.parse(buf, len(buf), r) and r.rtn == 0 and r.cid2 == 0x42 and r.info[0] == 2


def test_every_command_replies_ok():
    inv, st, end = server()
    for cid2, info in ((0x4F, b""), (0x51, b""), (0x42, b"\x02"), (0x44, b"\x02"), (0x47, b""),
                       (0x92, b"\x02"), (0x93, b"\x02"), (0x96, b"\x02"), (0x61, b""), (0x62, b""),
                       (0x63, b"")):
        rtn, data, adr = decode(ask(inv, end, req(cid2, info)))
        assert rtn == 0 and adr == 2, hex(cid2)
    assert st.inverter_bus == BUS_RS485 and st.inverter_frames == 11


def test_analog_and_management_values():
    inv, st, end = server()
    _, d, _ = decode(ask(inv, end, req(0x42, b"\x02")))
    assert d[0] == 0 and d[1] == 2  # INFOFLAG, command value
    (m,) = dec.analog(d)
    assert m["cells_mv"] == [3300 + i for i in range(16)]
    assert m["current_a"] == 12.3 and m["voltage_v"] == st.snap.stack_mv / 1000  # 0.1 A, charge +
    _, d, _ = decode(ask(inv, end, req(0x92, b"\x02")))
    g = dec.management(d)
    assert (g["cvl_v"], g["dvl_v"], g["ccl_a"], g["dcl_a"]) == (56.0, 48.0, 70.0, 100.0)
    assert g["flags"] & 0xC0 == 0xC0
    _, d, _ = decode(ask(inv, end, req(0x51)))
    assert d[:5] == b"PYLON"


def _bench_pack(rated_mah, soc_pct=62, current_ma=-20000, units=None):
    p = Params()
    p.set(2, rated_mah)  # bms.params.RATED_CAPACITY_MAH
    if units is not None:
        p.set_by_name("inv_rs485_units_count", units)
    st = PackState()
    st.snap.reads = 1
    for i in range(16):
        st.snap.cell_mv[i] = 3300
    for i, t in enumerate((251, 252, 253, 254, 300, 310, 280)):  # 4 cells, 2 MOSFETs, board
        st.snap.temp_dc[i] = t
    st.snap.stack_mv = 52800
    st.current_ma = current_ma
    st.soc_pct = soc_pct
    st.cycles = 17
    return _wired(st, p, view())


def test_issue_bench_pack_reads_as_real_clients_read_it():
    # one 100 Ah pack at 62 %, -20 A (issue 14): python-pylontech read -200.0 A and 6.2/10.0 Ah
    inv, st, end = _bench_pack(100000)
    (m,) = dec.analog(dec.frame(ask(inv, end, req(0x42, b"\x02")))["info"])
    assert m["current_a"] == -20.0
    assert m["udi"] == 4 and m["remaining_ah"] == 62.0 and m["total_ah"] == 100.0
    assert m["board_dc"] == 280 and m["temps_dc"] == [251, 252, 253, 254, 300, 310]
    assert m["cycles"] == 17 and m["voltage_v"] == 52.8
    inv, st, end = _bench_pack(50000, 50)  # up to 65 Ah: count 2, 16-bit mAh
    (m,) = dec.analog(dec.frame(ask(inv, end, req(0x42, b"\x02")))["info"])
    assert m["udi"] == 2 and m["remaining_ah"] == 25.0 and m["total_ah"] == 50.0
    inv, st, end = _bench_pack(100000, units=1)  # Pace units: 10 mA, 10 mAh, count 2
    info = dec.frame(ask(inv, end, req(0x42, b"\x02")))["info"]
    i = 3 + 32 + 1 + 14
    assert struct.unpack(">hHHBHH", info[i:i + 11]) == (-2000, 52800, 6200, 2, 10000, 17)


def test_all_packs_sysparam_and_address_zero():
    inv, st, end = _bench_pack(100000)
    r = dec.frame(ask(inv, end, req(0x42, b"\xff")))
    mods = dec.analog(r["info"], all_packs=True)
    assert r["rtn"] == 0 and len(mods) == 1 and mods[0]["current_a"] == -20.0
    p = dec.sysparam(dec.frame(ask(inv, end, req(0x47)))["info"])
    v = Params().v
    assert p["cell_high_v"] * 1000 == v[index_of("cell_ov_alarm_mv")]
    assert p["charge_limit_a"] * 1000 == v[index_of("max_chg_ma")]
    assert p["discharge_limit_a"] * 1000 == -v[index_of("max_dsg_ma")]
    assert round(p["discharge_high_c"] * 10) == v[index_of("dsg_ht_alarm_dc")]
    for cid2 in (0x4F, 0x51):  # python-pylontech asks at ADR 0
        assert dec.frame(ask(inv, end, req(cid2, adr=0)))["rtn"] == 0
    r = dec.frame(ask(inv, end, req(0x4F, ver=0x00)))  # FHEM asks with VER 00
    assert r["rtn"] == 0 and r["ver"] == 0x20
    assert ask(inv, end, req(0x42, b"\x00", adr=0)) == b""  # only 4F and 51 at ADR 0


def test_error_codes():
    inv, st, end = server()
    good = req(0x42, b"\x02")
    bad_sum = good[:-5] + b"%04X" % ((int(good[-5:-1], 16) + 1) & 0xFFFF) + b"\r"
    assert decode(ask(inv, end, bad_sum))[0] == 0x02
    assert decode(ask(inv, end, req(0x42, b"\x02", ver=0x99)))[0] == 0x01
    body = b"20024642F002" + b"02"  # LCHKSUM wrong
    assert decode(ask(inv, end, b"~" + body + b"%04X" % csum(body) + b"\r"))[0] == 0x03
    body = b"20024642E00402"  # LENID says 4, 2 given
    assert decode(ask(inv, end, b"~" + body + b"%04X" % csum(body) + b"\r"))[0] == 0x03
    assert decode(ask(inv, end, req(0x77)))[0] == 0x04
    assert decode(ask(inv, end, req(0x42, b"\x02", cid1=0x47)))[0] == 0x04
    assert decode(ask(inv, end, req(0x42)))[0] == 0x05  # no pack address
    assert decode(ask(inv, end, req(0x42, b"\x05")))[0] == 0x90
    assert st.inverter_errors >= 6  # the ones that failed the frame checks


def test_silence_for_other_addresses_truncated_and_garbage():
    inv, st, end = server()
    assert ask(inv, end, req(0x42, b"\x03", adr=3)) == b""
    assert ask(inv, end, b"~20024642E00202FD") == b""  # truncated: no end yet
    out = ask(inv, end, b"\r")  # ended: its last 4 characters are not its checksum
    assert decode(out)[0] == 0x02
    assert ask(inv, end, b"\x00\xffhello~zz\r~~~\r") == b""
    assert decode(ask(inv, end, req(0x42, b"\x02")))[0] == 0  # still serving


COMMANDS = (0x4F, 0x51, 0x42, 0x44, 0x47, 0x92, 0x93, 0x96, 0x61, 0x62, 0x63)
_PER_PACK = (0x42, 0x44, 0x92, 0x93, 0x96)


def model(data):
    """What the V3.3 document says a lone pack at ADR 2 answers to these bytes
    (PROTOCOLS 2): None = silence, else (return code, ADR). Written from the
    rules, not from parse()."""
    frame = None
    cur = None
    for b in data:  # '~' starts a frame, '\r' ends it
        if b == 0x7E:
            cur = bytearray(b"~")
        elif cur is not None:
            cur.append(b)
            if b == 0x0D:
                frame, cur = bytes(cur), None
    if frame is None:
        return None
    body = frame[1:-1]
    hexd = b"0123456789ABCDEFabcdef"
    if len(frame) < 18 or len(body) % 2 or any(c not in hexd for c in body):
        return None
    ver, adr, cid1, cid2 = (int(body[k:k + 2], 16) for k in (0, 2, 4, 6))
    if adr != 2 and not (adr == 0 and cid2 in (0x4F, 0x51)):
        return None
    if int(body[-4:], 16) != (-sum(body[:-4])) % 65536:
        return 0x02, adr
    if ver not in (0x20, 0x25, 0x35) and cid2 != 0x4F:
        return 0x01, adr
    length = int(body[8:12], 16)
    n = length & 0xFFF
    if length >> 12 != (-((n & 15) + ((n >> 4) & 15) + (n >> 8))) % 16 or n != len(body) - 16:
        return 0x03, adr
    if n % 2 or n // 2 > 64:
        return 0x05, adr
    if cid1 != 0x46 or cid2 not in COMMANDS:
        return 0x04, adr
    if cid2 in _PER_PACK:
        if n == 0:
            return 0x05, adr
        if int(body[12:14], 16) not in (adr, 0xFF):
            return 0x90, adr
    return 0x00, adr


def check(inv, end, data):
    out = ask(inv, end, data)
    want = model(data)
    if want is None:
        assert out == b"", data
        return None
    r = dec.frame(out)
    assert (r["rtn"], r["adr"]) == want, data
    return r


_SERVER = server()


@settings(max_examples=400)
@given(hs.binary(max_size=200))
def test_fuzz_random_bytes_match_the_model(data):
    inv, st, end = _SERVER
    check(inv, end, data + b"\r")


@settings(max_examples=1500)
@given(hs.sampled_from((0x20, 0x25, 0x35, 0x00, 0x21)) | hs.integers(0, 255),
       hs.sampled_from((2, 0, 3)) | hs.integers(0, 255), hs.sampled_from((0x46, 0x47)),
       hs.sampled_from(COMMANDS) | hs.integers(0, 255),
       hs.sampled_from((b"", b"\x02", b"\xff", b"\x03")) | hs.binary(max_size=70),
       hs.sampled_from(("ok", "chksum", "lchksum", "lenid", "lower")))
def test_fuzz_well_framed_requests_with_mutated_fields(ver, adr, cid1, cid2, info, how):
    # valid framing and checksums around mutated header fields and INFO, then one
    # framing field broken on purpose: every one reaches parse()
    f = bytearray(req(cid2, info, ver=ver, adr=adr, cid1=cid1))
    if how == "chksum":
        f[-2] = ord("0") if f[-2] != ord("0") else ord("1")
    elif how == "lchksum":
        f[9] = ord("F") if f[9] != ord("F") else ord("E")
        f[-5:-1] = b"%04X" % ((-sum(f[1:-5])) % 65536)
    elif how == "lenid":  # a LENID that is not the INFO's length, with its own good LCHKSUM
        n = (int(f[10:13], 16) + 2) & 0xFFF
        f[9:13] = b"%04X" % ((lsum(n) << 12) | n)
        f[-5:-1] = b"%04X" % ((-sum(f[1:-5])) % 65536)
    elif how == "lower":
        f[1:-5] = bytes(f[1:-5]).lower()
        f[-5:-1] = b"%04X" % ((-sum(f[1:-5])) % 65536)
    inv, st, end = _SERVER
    r = check(inv, end, bytes(f))
    if r is not None and r["rtn"] == 0 and cid2 == 0x42:
        assert dec.analog(r["info"], all_packs=info[:1] == b"\xff")


def test_every_single_byte_mutation_of_a_request():
    # exhaustive: each of the 20 positions of a 0x42 request to each of 256 values
    inv, st, end = server()
    good = req(0x42, b"\x02")
    seen = set()
    for pos in range(len(good)):
        for b in range(256):
            f = bytearray(good)
            f[pos] = b
            r = check(inv, end, bytes(f))
            seen.add(None if r is None else r["rtn"])
            if 1 <= pos < len(good) - 5:  # the same with its checksum made good again
                f[-5:-1] = b"%04X" % ((-sum(f[1:-5])) % 65536)
                r = check(inv, end, bytes(f))
                seen.add(None if r is None else r["rtn"])
    assert seen >= {None, 0x00, 0x01, 0x02, 0x03, 0x04, 0x90}  # the mutations reached every check
    assert decode(ask(inv, end, good))[0] == 0  # and it still serves


def test_lost_rs485_sends_safe_limits():
    inv, st, end = server()
    decode(ask(inv, end, req(0x92, b"\x02"), 0))
    for t in range(50, 20000, 50):
        inv.tick(t)
    assert st.inverter_lost
    _, d, _ = decode(ask(inv, end, req(0x92, b"\x02"), 20000))
    # the request is heard again (presence back), so normal limits return
    assert not st.inverter_lost and struct.unpack(">hh", d[5:9]) == (700, 1000)


@settings(max_examples=60, deadline=None)
@given(data=hs.data())
def test_info_built_in_the_reply_buffer_tail_is_encoded_intact(data):
    """The server builds INFO in the tail of its output buffer (no second
    buffer): encoding it over itself loses no byte, at any length up to the
    whole tail (the 8-pack 0x42 reply)."""
    inv, _, end = server()
    ask(inv, end, req(0x4F))  # the server is built at the first request
    srv = inv.server
    n = data.draw(hs.integers(0, len(srv.info)))
    info = data.draw(hs.binary(min_size=n, max_size=n))
    srv.info[:n] = info
    m = pr.encode_frame(srv.out, 0x20, 2, pr.CID1, 0, srv.info, n)
    f = dec.frame(bytes(srv.out[:m]))
    assert f["info"] == info and (f["ver"], f["adr"], f["rtn"]) == (0x20, 2, 0)


def test_pylontech_pack_numbers_follow_the_online_link_addresses_with_gaps(monkeypatch):
    """Fixed addresses may leave gaps (1, 2, 7): the inverter's pack n (RS485
    address FIRST_ADR + n - 1) is the n-th pack online in address order, so
    pack 3 is link address 7 and the 0xFF reply lists 2 and 7."""
    from bms import parallel
    from app import invrs485
    from app.invrs485 import Rs485Server

    class Packs:
        def __init__(self):
            self.table = parallel.Table()
            for a in (1, 2, 7):
                self.table.online[a] = 1
            self.asked = []

    def other_pack(packs, info, adr, a, now_ms, units):
        packs.asked.append((adr, a))
        return -1

    monkeypatch.setattr(invrs485, "other_pack", other_pack)
    assert [Packs().table.nth_online(k) for k in range(5)] == [0, 1, 2, 7, 0]
    packs = Packs()
    v = view()
    v.packs_online = 3
    srv = Rs485Server(Inverter(PackState(), Params(), v), packs)
    srv._analog(pr.FIRST_ADR + 2)
    srv._analog(pr.FIRST_ADR + 3)  # no 4th pack: address 0, which analog() answers with -1
    assert packs.asked == [(pr.FIRST_ADR + 2, 7), (pr.FIRST_ADR + 3, 0)]
    packs.asked.clear()
    srv._analog_all()
    assert packs.asked == [(pr.FIRST_ADR + 1, 2), (pr.FIRST_ADR + 2, 7)]


def test_the_serial_number_reply_carries_the_packs_own_serial():
    st = PackState()
    st.snap.reads = 1
    end = Stream()
    inv = Inverter(st, Params(), view(), None, end, serial=b"BMS-0A1B2C3D4E5F")
    end.router = Router(end)
    end.router.subscribe_ascii(inv)
    rtn, data, adr = decode(ask(inv, end, req(0x93, b"\x02")))
    assert rtn == 0 and bytes(data[1:17]) == b"BMS-0A1B2C3D4E5F"  # INFO: address, 16 ASCII bytes


def test_the_server_is_built_at_the_first_request_and_a_build_out_of_memory_is_retried(monkeypatch):
    """issue 12: a pack holds the RS485 server only once an inverter speaks
    RS485. A build that runs out of memory is counted and drops those bytes
    (no reply, no presence); the inverter keeps serving CAN, and the next
    request builds the server and is answered as any other."""
    from app import invrs485
    from test_inverter_can import FakeCan
    st = PackState()
    st.snap.reads = 1
    end = Stream()
    can = FakeCan()
    inv = Inverter(st, Params(), view(), can, end)
    end.router = Router(end)
    end.router.subscribe_ascii(inv)
    inv.on_frame("can", [0x305, memoryview(bytes(8)), 0, 0])  # CAN frames alone build nothing
    for t in range(0, 1000, 50):
        inv.tick(t)
    assert inv.server is None and can.sent
    real = invrs485.Rs485Server

    def no_memory(*a):
        raise MemoryError
    monkeypatch.setattr(invrs485, "Rs485Server", no_memory)
    frames = st.inverter_frames
    assert ask(inv, end, req(0x4F), 1000) == b"" and inv.failed == 1 and inv.server is None
    assert st.inverter_frames == frames and st.inverter_errors == 0  # dropped: neither heard nor an error
    can.sent.clear()
    inv.on_frame("can", [0x305, memoryview(bytes(8)), 0, 0])
    for t in range(1000, 2000, 50):
        inv.tick(t)
    assert can.sent  # CAN still served
    monkeypatch.setattr(invrs485, "Rs485Server", real)
    rtn, _, adr = decode(ask(inv, end, req(0x4F), 2000))
    assert (rtn, adr) == (0, 2) and inv.failed == 1 and isinstance(inv.server, real)
    assert st.inverter_bus == BUS_RS485 and st.inverter_frames == frames + 2


def test_a_bus_forced_to_rs485_holds_no_can_frame_set():
    """inv_bus_count 2 (RS485): the bus never becomes CAN, so the CAN frame
    set is never built; the RS485 server answers as on the automatic bus."""
    p = Params()
    p.set_by_name("inv_bus_count", BUS_RS485)
    st = PackState()
    st.snap.reads = 1
    end = Stream()
    inv = Inverter(st, p, view(), None, end)
    end.router = Router(end)
    end.router.subscribe_ascii(inv)
    assert inv.enc is None
    inv.on_frame("can", [0x305, memoryview(bytes(8)), 0, 0])
    rtn, _, _ = decode(ask(inv, end, req(0x42, b"\x02")))
    assert rtn == 0 and st.inverter_bus == BUS_RS485 and st.inverter_frames == 1
