"""Pylontech RS485 server (issue 7): replies decoded by an independent decoder
(checksums computed here), the PROTOCOLS example, error return codes for
malformed requests, silence for garbage and other addresses, fuzzing."""
import struct

from hypothesis import given, strategies as hs

from app.inverter import Inverter, BUS_RS485
from bms.params import Params
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


class End:
    def __init__(self):
        self.rx = bytearray()
        self.tx = bytearray()

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        d = bytes(self.rx)
        self.rx.clear()
        return d

    def write(self, d):
        self.tx.extend(d)
        return len(d)


def server(v=None):
    st = PackState()
    st.snap.reads = 1
    for i in range(16):
        st.snap.cell_mv[i] = 3300 + i
    st.snap.stack_mv = sum(st.snap.cell_mv)
    st.current_ma = 12345
    st.soc_pct = 57
    end = End()
    inv = Inverter(st, Params(), v or view(), None, end)
    return inv, st, end


def ask(inv, end, data, t=0):
    end.rx.extend(data)
    end.tx.clear()
    inv.tick(t)
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
    assert d[1] == 2 and d[2] == 16
    assert list(struct.unpack(">16H", d[3:35])) == [3300 + i for i in range(16)]
    k = d[35]
    i = 36 + 2 * k
    cur, volt = struct.unpack(">hH", d[i:i + 4])
    assert cur == 1235 and volt == st.snap.stack_mv  # 10 mA, charge positive
    _, d, _ = decode(ask(inv, end, req(0x92, b"\x02")))
    cvl, dvl, ccl, dcl, fl = struct.unpack(">HHhhB", d[1:10])
    assert (cvl, dvl, ccl, dcl) == (56000, 48000, 700, 1000) and fl & 0xC0 == 0xC0
    _, d, _ = decode(ask(inv, end, req(0x51)))
    assert d[:5] == b"PYLON"


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


@given(hs.binary(max_size=200))
def test_fuzz_random_bytes_never_crash(data):
    inv, st, end = server()
    out = ask(inv, end, data)
    if out:
        decode(out)


@given(hs.integers(0, 19), hs.integers(0, 255), hs.sampled_from([0x42, 0x92, 0x44, 0x61, 0x4F]))
def test_fuzz_mutated_requests(pos, b, cid2):
    inv, st, end = server()
    f = bytearray(req(cid2, b"\x02" if cid2 in (0x42, 0x92, 0x44) else b""))
    f[pos % len(f)] = b
    out = ask(inv, end, bytes(f))
    if out:
        rtn, _, adr = decode(out)
        assert adr == 2


def test_lost_rs485_sends_safe_limits():
    inv, st, end = server()
    decode(ask(inv, end, req(0x92, b"\x02"), 0))
    for t in range(50, 20000, 50):
        inv.tick(t)
    assert st.inverter_lost
    _, d, _ = decode(ask(inv, end, req(0x92, b"\x02"), 20000))
    # the request is heard again (presence back), so normal limits return
    assert not st.inverter_lost and struct.unpack(">hh", d[5:9]) == (700, 1000)
