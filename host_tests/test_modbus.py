# The host protocol handler (firmware/app/host.py, lib/proto/modbus.py) over
# RTU: requests built by pymodbus's framer, replies decoded by pymodbus's
# client decoder (an independent implementation of the Modbus Application
# Protocol and Serial Line specifications), sessions through a test double of
# lib/bms/auth's API (IFACE.md) whose MAC is HMAC-SHA-256 computed here.
import hashlib
import hmac
import json
import os
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as hs
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.file_message import FileRecord, ReadFileRecordRequest, WriteFileRecordRequest
from pymodbus.pdu.mei_message import ReadDeviceInformationRequest
from pymodbus.pdu.register_message import (ReadHoldingRegistersRequest, ReadHoldingRegistersResponse,
                                           ReadInputRegistersRequest, WriteMultipleRegistersRequest,
                                           WriteSingleRegisterRequest)

from app.host import Host, PARAM, DIAG, CHALLENGE, LOGIN, R_NO_SESSION, R_RANGE, R_INVALID, R_LOGIN
from bms import auth as A
from bms import params as P
from bms import prows
from bms.params import Params
from bms.state import PackState
from bms.system import SystemView, from_pack
from proto import modbus as mb
from store.eventlog import EventLog
from store.memfs import MemFs

SECRET = b"per-device secret"


class Auth:
    """lib/bms/auth's API (IFACE.md) with one secret and no timeout."""

    def __init__(self):
        self.levels = {}
        self.nonce = {}
        self.n = 0
        self.refused = 0
        self.refusals = []
        self.locked = False
        self.touched = 0

    def challenge(self, port, now_ms):
        if self.locked:
            return None
        self.n += 1
        self.nonce[port] = hashlib.sha256(b"%d" % self.n).digest()[:16]
        return self.nonce[port]

    def login(self, port, level, mac, now_ms):
        want = hmac.new(SECRET, self.nonce.pop(port, b"x") + bytes([level]), hashlib.sha256).digest()
        if hmac.compare_digest(want, bytes(mac)):
            self.levels[port] = level
            return True
        self.refused += 1
        return False

    def level(self, port, now_ms):
        return self.levels.get(port, 0)

    def tick(self, now_ms):
        self.ticks = getattr(self, "ticks", 0) + 1

    def touch(self, port, now_ms):
        self.touched += 1

    def logout(self, port):
        self.levels.pop(port, None)

    def refuse(self, port, code):
        self.refused += 1
        self.refusals.append(code)


class Port:
    def __init__(self):
        self.out = []

    def write(self, b):
        self.out.append(bytes(b))
        return len(b)


def _state():
    st = PackState()
    s = st.snap
    s.reads = 1
    for i in range(16):
        s.cell_mv[i] = 3300 + i
    s.stack_mv = sum(s.cell_mv)
    s.min_cell_mv, s.max_cell_mv, s.min_cell, s.max_cell = 3300, 3315, 0, 15
    for i in range(7):
        s.temp_dc[i] = 250 + 10 * i
    st.current_ma = -12345
    st.soc_pct = 62
    st.soh_pct = 97
    st.cvl_mv, st.ccl_ma, st.dcl_ma, st.dvl_mv = 56000, 70000, 100000, 48000
    st.chg_fet = st.dsg_fet = True
    return st


@pytest.fixture
def rig():
    st = _state()
    params = Params()
    view = SystemView()
    from_pack(view, st, params)
    port = Port()
    auth = Auth()
    host = Host(st, params, view, port, auth, unit=1, journal=Journal())
    host.writes = host.journal.writes
    return host


class Journal:
    """app.hostctl.Journal's parameter part: what was journalled and saved."""

    def __init__(self):
        self.writes = []
        self.commands = []
        self.saves = 0
        self.history = EventLog(MemFs()).mount()  # empty

    def changed(self, pid, old, new, port):
        self.writes.append((pid, old, new))

    def command(self, code, old, new, port):
        self.commands.append((code, old, new))

    def clock_set(self):
        return False

    def clock_word(self, k):
        return 0

    def save_params(self):
        self.saves += 1


def ask(host, req, unit=1):
    """Send pymodbus request `req` as RTU, return pymodbus's decoding of the reply (None: silence)."""
    req.dev_id = unit
    frame = FramerRTU(DecodePDU(True)).buildFrame(req)
    host.port.out.clear()
    host.on_rs485(bytearray(frame), len(frame))
    if not host.port.out:
        return None
    (reply,) = host.port.out
    used, pdu = FramerRTU(DecodePDU(False)).handleFrame(reply, unit, 0)
    assert used == len(reply) and pdu is not None, reply.hex()
    return pdu


def regs(v):
    """int32 as two registers, high word first."""
    return list(struct.unpack(">HH", struct.pack(">i", v)))


def login(host, level=2, secret=SECRET):
    nonce = ask(host, ReadHoldingRegistersRequest(address=CHALLENGE, count=8))
    n = struct.pack(">8H", *nonce.registers)
    mac = hmac.new(secret, n + bytes([level]), hashlib.sha256).digest()
    return ask(host, WriteMultipleRegistersRequest(address=LOGIN, registers=[level] + list(
        struct.unpack(">16H", mac))))


def diag(host):
    r = ask(host, ReadHoldingRegistersRequest(address=DIAG, count=36)).registers
    text = struct.pack(">32H", *r[4:]).rstrip(b"\0").decode()
    return r[:4], text


# ---- framing and CRC ----------------------------------------------------------

@given(hs.binary(max_size=300))
def test_crc_matches_pymodbus(data):
    c = mb.crc16(data, len(data))  # sent low byte first; pymodbus gives the wire order big-endian
    assert bytes((c & 0xFF, c >> 8)) == struct.pack(">H", FramerRTU.compute_CRC(data))


def test_parameter_read_is_the_int32_of_the_table(rig):
    i = P.CELL_OV_ALARM_MV
    r = ask(rig, ReadHoldingRegistersRequest(address=PARAM + 2 * i, count=6))
    got = [struct.unpack(">i", struct.pack(">HH", *r.registers[k:k + 2]))[0] for k in (0, 2, 4)]
    assert got == [3550, 3450, 2000]  # bms.ptable ids 14, 15, 16 defaults
    neg = P.CHG_LT_P2_DC  # default -50
    r = ask(rig, ReadInputRegistersRequest(address=PARAM + 2 * neg, count=2))
    assert r.registers == regs(-50)


def test_bad_crc_short_frame_and_gap_get_no_reply_and_the_next_frame_works(rig):
    good = FramerRTU(DecodePDU(True)).buildFrame(ReadHoldingRegistersRequest(address=0, count=5, dev_id=1))
    bad = bytearray(good)
    bad[3] ^= 1
    rig.on_rs485(bad, len(bad))
    assert rig.port.out == [] and rig.framer.errors == 1
    rig.tick(0)
    rig.on_rs485(bytearray(good[:5]), 5)  # cut short: the line goes quiet
    rig.tick(50)
    rig.tick(100)
    rig.tick(350)  # host.GAP_MS after the last byte
    assert rig.port.out == []
    r = ask(rig, ReadHoldingRegistersRequest(address=0, count=5))
    assert r.registers[1] == prows.N and r.registers[2] == PARAM


def test_a_frame_read_in_parts_a_link_period_apart_is_answered(rig):
    # 9600 baud: the 43-byte login or a 10-register write takes longer on the
    # wire than the router's 100 ms between reads, and the handler ticks every
    # 50 ms: quiet ticks inside a frame must not cut it
    f = FramerRTU(DecodePDU(True))
    data = f.buildFrame(WriteMultipleRegistersRequest(address=0, registers=[0] * 17, dev_id=1))
    rig.tick(0)
    rig.on_rs485(bytearray(data[:20]), 20)
    for t in (50, 100, 150):
        rig.tick(t)
    rig.on_rs485(bytearray(data[20:]), len(data) - 20)
    assert len(rig.port.out) == 1  # answered (an exception: INFO is read-only), not dropped
    assert rig.framer.errors == 0


def test_back_to_back_frames_are_both_answered(rig):
    f = FramerRTU(DecodePDU(True))
    data = f.buildFrame(ReadHoldingRegistersRequest(address=0, count=1, dev_id=1)) * 2
    rig.on_rs485(bytearray(data), len(data))
    assert len(rig.port.out) == 2


def test_other_units_are_silent_and_broadcast_acts_without_reply(rig):
    assert ask(rig, ReadHoldingRegistersRequest(address=0, count=1), unit=2) is None
    login(rig)
    i = P.CHARGE_MV
    assert ask(rig, WriteMultipleRegistersRequest(address=PARAM + 2 * i, registers=regs(55600)), unit=0) is None
    assert rig.params.v[i] == 55600


@pytest.mark.parametrize("req, code", [
    (ReadHoldingRegistersRequest(address=5000, count=1), mb.EX_ILLEGAL_ADDRESS),
    (ReadHoldingRegistersRequest(address=PARAM + 2 * prows.N - 1, count=2), mb.EX_ILLEGAL_ADDRESS),
    (ReadHoldingRegistersRequest(address=3, count=100), mb.EX_ILLEGAL_ADDRESS),  # INFO into nothing
    (ReadHoldingRegistersRequest(address=CHALLENGE, count=4), mb.EX_ILLEGAL_ADDRESS),  # half a nonce
    (WriteSingleRegisterRequest(address=40010, registers=[1]), mb.EX_ILLEGAL_ADDRESS),  # SunSpec is read-only
    (ReadFileRecordRequest(records=[FileRecord(file_number=1, record_number=0, record_length=14)]),
     mb.EX_ILLEGAL_ADDRESS),  # 7 registers: past the 6-register history index (pymodbus: length in bytes)
    (ReadFileRecordRequest(records=[FileRecord(file_number=2, record_number=0, record_length=18)]),
     mb.EX_ILLEGAL_ADDRESS),  # event 0 of an empty history
    (WriteFileRecordRequest(records=[FileRecord(file_number=1, record_number=0, record_data=b"ab")]),
     mb.EX_ILLEGAL_FUNCTION),
])
def test_out_of_map_and_unserved_requests_get_the_exception(rig, req, code):
    r = ask(rig, req)
    assert isinstance(r, ExceptionResponse) and r.exception_code == code
    assert r.function_code == req.function_code | 0x80


def raw(host, adu):
    """Send adu + its CRC (pymodbus's) as RTU; the reply bytes, CRC checked by pymodbus."""
    frame = bytearray(adu) + struct.pack(">H", FramerRTU.compute_CRC(adu))
    host.port.out.clear()
    host.on_rs485(frame, len(frame))
    (reply,) = host.port.out
    assert reply[-2:] == struct.pack(">H", FramerRTU.compute_CRC(reply[:-2]))
    return reply[:-2]


@pytest.mark.parametrize("adu, code", [
    (b"\x01\x42\x12\x34", mb.EX_ILLEGAL_FUNCTION),  # unknown FC (0x41 is the update block): its frame ends where the CRC checks
    (b"\x01\x03\x00\x00\x00\x7e", mb.EX_ILLEGAL_VALUE),  # 126 registers (Application Protocol 6.3)
    (b"\x01\x03\x00\x00\x00\x00", mb.EX_ILLEGAL_VALUE),  # 0 registers
    (b"\x01\x10\x03\xe8\x00\x02\x03\x00\x01\x02", mb.EX_ILLEGAL_VALUE),  # byte count != 2 x count
    (b"\x01\x2b\x0d\x00\x00", mb.EX_ILLEGAL_FUNCTION),  # MEI type 0x0D (CANopen) not served
])
def test_malformed_requests_get_their_exception(rig, adu, code):
    assert raw(rig, adu) == bytes((1, adu[1] | 0x80, code))


def test_device_identification_basic_objects(rig):
    r = ask(rig, ReadDeviceInformationRequest(read_code=1, object_id=0))
    assert r.information[0] == b"BMS-MPY" and r.information[2] == b"1.0"


@pytest.mark.parametrize("version, word", [(b"2.10.3", 0x020A), (b"1.2", 0x0102), (b"beta", 0x0100)])
def test_the_running_images_version_is_reported_everywhere(version, word):
    # app.compose hands Host the version file of the mounted image (update.boot.version)
    st = _state()
    params = Params()
    view = SystemView()
    from_pack(view, st, params)
    rig = Host(st, params, view, Port(), Auth(), unit=1, journal=Journal(), version=version)
    r = ask(rig, ReadDeviceInformationRequest(read_code=1, object_id=0))
    assert r.information[2] == version
    r = ask(rig, ReadHoldingRegistersRequest(address=3, count=1))
    assert r.registers == [word]  # INFO 3: MAJOR << 8 | MINOR ("beta": the built-in 1.0)
    # SunSpec model 1 (ID 1 at 40002, L, Mn 16, Md 16, Opt 8 registers): Vr, 8 registers, NUL padded
    r = ask(rig, ReadHoldingRegistersRequest(address=40002 + 2 + 16 + 16 + 8, count=8))
    assert struct.pack(">8H", *r.registers).rstrip(b"\0") == version


# ---- writes and sessions ----------------------------------------------------------

def test_write_without_session_is_refused_counted_and_changes_nothing(rig):
    i = P.CELL_OV_ALARM_MV
    r = ask(rig, WriteMultipleRegistersRequest(address=PARAM + 2 * i, registers=regs(3500)))
    assert r.exception_code == mb.EX_ILLEGAL_FUNCTION
    assert rig.params.v[i] == 3550 and rig.writes == []
    assert rig.auth.refusals == [A.R_NO_SESSION]  # auth's reason code, not DIAG's
    (reason, reg, pid, refused), _ = diag(rig)
    assert (reason, reg, pid, refused) == (R_NO_SESSION, PARAM + 2 * i, 0, 1)


def test_user_session_cannot_write_parameters(rig):
    assert not isinstance(login(rig, level=1), ExceptionResponse)
    r = ask(rig, WriteSingleRegisterRequest(address=PARAM + 2 * P.CHARGE_MV + 1, registers=[55000]))
    assert r.exception_code == mb.EX_ILLEGAL_FUNCTION and rig.params.v[P.CHARGE_MV] == 56000


def test_installer_writes_a_parameter_and_reads_it_back(rig):
    assert not isinstance(login(rig), ExceptionResponse)
    i = P.CELL_OV_ALARM_MV
    r = ask(rig, WriteMultipleRegistersRequest(address=PARAM + 2 * i, registers=regs(3500)))
    assert (r.address, r.count) == (PARAM + 2 * i, 2)
    assert rig.params.v[i] == 3500 and rig.writes == [(i + 1, 3550, 3500)] and rig.auth.touched
    assert rig.journal.saves == 1
    assert ask(rig, ReadHoldingRegistersRequest(address=PARAM + 2 * i, count=2)).registers == regs(3500)
    # FC06 on the low word: the high word (0) is kept
    r = ask(rig, WriteSingleRegisterRequest(address=PARAM + 2 * i + 1, registers=[3520]))
    assert (r.address, r.registers) == (PARAM + 2 * i + 1, [3520]) and rig.params.v[i] == 3520


def test_out_of_range_value_is_refused_named_and_changes_nothing(rig):
    login(rig)
    i = P.CELL_OV_ALARM_MV  # 3000..3900
    before = list(rig.params.v)
    r = ask(rig, WriteMultipleRegistersRequest(address=PARAM + 2 * i, registers=regs(3550) + regs(4000)))
    assert r.exception_code == mb.EX_ILLEGAL_VALUE
    assert list(rig.params.v) == before and rig.writes == []
    (reason, _, pid, _), text = diag(rig)
    assert reason == R_RANGE and pid == i + 2 and "cell_ov_alarm_rel_mv" in text and "3000..3900" in text


def test_value_validate_refuses_is_refused_with_the_reason(rig):
    login(rig)
    i = P.CELL_OV_ALARM_REL_MV  # release must stay below the alarm threshold 3550
    r = ask(rig, WriteMultipleRegistersRequest(address=PARAM + 2 * i, registers=regs(3600)))
    assert r.exception_code == mb.EX_ILLEGAL_VALUE and rig.params.v[i] == 3450
    (reason, _, _, _), text = diag(rig)
    assert reason == R_INVALID and "release" in text and "3550" in text


def test_factory_rows_are_read_only_even_with_a_session(rig):
    login(rig)
    r = ask(rig, WriteMultipleRegistersRequest(address=PARAM + 2 * P.CYCLE_MS, registers=regs(200)))
    assert r.exception_code == mb.EX_ILLEGAL_ADDRESS and rig.params.v[P.CYCLE_MS] == 100
    assert rig.auth.refusals == [A.R_LEVEL]  # a level no session has


def test_wrong_mac_is_refused_and_locked_out_challenge_is_busy(rig):
    r = login(rig, secret=b"guess")
    assert r.exception_code == mb.EX_ILLEGAL_VALUE and rig.auth.levels == {}
    assert rig.auth.refused == 1  # counted once, by auth.login
    assert diag(rig)[0][0] == R_LOGIN
    rig.auth.locked = True
    r = ask(rig, ReadHoldingRegistersRequest(address=CHALLENGE, count=8))
    assert r.exception_code == 0x06
    rig.auth.locked = False
    assert not isinstance(login(rig), ExceptionResponse)
    assert ask(rig, ReadHoldingRegistersRequest(address=LOGIN, count=1)).registers == [2]
    ask(rig, WriteSingleRegisterRequest(address=LOGIN, registers=[0]))
    assert ask(rig, ReadHoldingRegistersRequest(address=LOGIN, count=1)).registers == [0]


# ---- nothing a host sends can make it raise -------------------------------------------

@settings(max_examples=300)
@given(hs.lists(hs.binary(min_size=1, max_size=80), max_size=6))
def test_random_bytes_never_raise_nor_change_parameters(chunks):
    st = _state()
    params = Params()
    view = SystemView()
    from_pack(view, st, params)
    host = Host(st, params, view, Port(), Auth())
    before = list(params.v)
    t = 0
    for c in chunks:
        host.on_rs485(bytearray(c), len(c))
        t += 50
        host.tick(t)
    assert list(params.v) == before and host.errors == 0


@settings(max_examples=300)
@given(hs.integers(0, 0xFF), hs.binary(max_size=60))
def test_random_pdus_never_raise(fc, body):
    st = _state()
    params = Params()
    view = SystemView()
    from_pack(view, st, params)
    host = Host(st, params, view, None, Auth())
    req = bytearray([fc]) + body
    out = bytearray(mb.MAX_PDU)
    k = host.pdu(1, req, len(req), out, "p")
    assert 2 <= k <= mb.MAX_PDU and host.errors == 0
    if out[0] & 0x80:
        assert k == 2 and out[0] == fc | 0x80 and out[1] in (1, 2, 3, 6)


# ---- the machine-readable map (tools/regmap.py) -----------------------------------

def test_regmap_json_describes_what_the_handler_serves(rig):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-m", "tools.regmap", "--json"], capture_output=True, text=True,
                         check=True, cwd=root).stdout
    d = json.loads(out)
    assert len(d["params"]) == prows.N
    for p in d["params"]:
        r = ask(rig, ReadHoldingRegistersRequest(address=p["register"], count=p["regs"]))
        assert struct.unpack(">i", struct.pack(">HH", *r.registers))[0] == p["default"], p["name"]
    by_name = {p["name"]: p for p in d["params"]}
    assert by_name["cell_ov_alarm_mv"]["unit"] == "V" and by_name["cycle_ms"]["access"] == "R"
    login(rig)
    p = by_name["cell_ov_alarm_mv"]
    r = ask(rig, WriteMultipleRegistersRequest(address=p["register"], registers=regs(p["max"] + 1)))
    assert r.exception_code == mb.EX_ILLEGAL_VALUE
    blocks = {b["name"]: b for b in d["blocks"]}
    r = ask(rig, ReadHoldingRegistersRequest(address=blocks["SunS"]["register"], count=2))
    assert struct.pack(">HH", *r.registers) == b"SunS"


def test_the_framer_takes_frames_again_after_a_bad_one_and_a_quiet_time():
    # Serial Line 2.5.1.1: after a bad frame everything up to the next silence is
    # ignored; a reader that polls the port in bursts ends that silence with
    # quiet(): a bad frame must not keep the framer deaf (the relay's reply framer
    # only gapped while a frame was under way, so one bad reply silenced the chain)
    rep = FramerRTU(DecodePDU(False)).buildFrame(ReadHoldingRegistersResponse(registers=[7], dev_id=2))
    for replies in (False, True):
        fr = mb.Framer(replies=replies)
        frame = rep if replies else FramerRTU(DecodePDU(True)).buildFrame(
            ReadHoldingRegistersRequest(address=0, count=1, dev_id=2))
        bad = bytearray(frame)
        bad[-1] ^= 0xFF
        fr.heard(0)
        assert not any(fr.feed(b) for b in bad) and fr.errors == 1
        fr.quiet(100, 250)  # not yet quiet long enough: still skipping
        assert not any(fr.feed(b) for b in frame)
        fr.quiet(400, 250)
        fr.heard(400)
        assert [fr.feed(b) for b in frame][-1] == len(frame)
