"""The firmware update session over Modbus file records (issue 15;
app.hostupd): bmsctl's client (tools/bmsctl/mbupdate.py, pymodbus's FileRecord
PDUs, not the board's encoder) against the board's real host handler
in-process (test_bmsctl's InProcess transport), on the same updater, slot
record and simulated partition as test_uds_update. Shown: a good bundle is
written, verified, staged and activated, the pack held idle meanwhile; the
negative set comes back with its Modbus exception and DIAG reason, and stages
nothing: no installer session, a bad signature, one flipped byte, a block out
of order, current flowing, the UDS session holding the pack; an interrupted
transfer resumes; a session left open ends by itself. The same blocks by the
user-defined FC 0x41 (tools.bmsctl.mbpdu's pymodbus PDU: a 3-byte reply, no
echo), which bmsctl takes when the map and the pack's status offer it, FC 0x15
otherwise; FC 0x41 keeps every refusal of the FC 0x15 path."""
import io

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import pytest
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.file_message import FileRecord, WriteFileRecordRequest

from app.host import Host
from app.hostupd import BLOCK_BYTES as BLOCK, HostUpdate, RESET_DELAY_MS, SESSION_MS
from app.updsess import UpdateSession
from bms import auth as A
from bms.params import Params
from bms.state import PackState
from bms.system import SystemView, from_pack
from simflash import SimFlash, SimPartition
from store import cred as C
from store.slotstore import SlotStore
from test_bmsctl import InProcess, PORT_ID
from test_uds_update import PUB, SLOT, IMAGE, FILES, bundle
from tools.bmsctl import mbupdate as M
from tools.bmsctl.cli import main as bmsctl
from tools.bmsctl.client import CtlError, Pack as Client, load_map
from update import boot as B
from update import slots as S
from update import updater as W
import hashlib

SECRET = bytes(range(32))
MAP = load_map()


class Rig:
    """One pack's host handler with the update session on a SimFlash record
    (slot A confirmed, counter 3) and a simulated partition."""

    def __init__(self):
        self.fs = SimFlash()
        C.CredStore(self.fs).save({A.INSTALLER: SECRET})
        rec = B.factory()
        rec[S.COUNTER0] = rec[S.FLOOR] = 3
        SlotStore(self.fs).save(rec)
        self.part = SimPartition(self.fs, 2 * SLOT)
        self.st = PackState()
        self.params = Params()
        view = SystemView()
        from_pack(view, self.st, self.params)
        self.auth = A.Auth(C.CredStore(self.fs), self.params, _rng())
        self.hold = UpdateSession(self.st, lambda: W.Updater(self.part, SlotStore(self.fs), PUB, "host_sim", 1,
                                                             slot_bytes=SLOT))
        self.resets = 0
        self.host = Host(self.st, self.params, view, None, self.auth, unit=1,
                         update=lambda: HostUpdate(self.host, self.hold, lambda: self._reset, self._digest))
        self.t = InProcess(self.host)
        self.now = 0

    def _reset(self):
        self.resets += 1

    @staticmethod
    def _digest(slot, name):
        return hashlib.sha256(FILES[name]).hexdigest() if name in FILES else None

    def tick(self, ms=100):
        self.now += ms
        self.host.tick(self.now)

    def client(self, login=True):
        c = Client(self.t, 1, MAP)
        if login:
            c.login(A.INSTALLER, SECRET)
        return c

    def record(self):
        return SlotStore(self.fs.remount()).load()[0]


def _rng():
    n = [0]

    def rng(k):
        n[0] += 1
        return hashlib.sha256(b"n%d" % n[0]).digest()[:k]
    return rng


def raw(rig, file_number, record, data):
    """An FC 0x15 request by pymodbus; (exception code or 0, DIAG text)."""
    req = WriteFileRecordRequest(records=[FileRecord(file_number=file_number, record_number=record,
                                                     record_data=data)])
    reply = rig.t.exchange(1, bytes([req.function_code]) + req.encode())
    r = DecodePDU(False).decode(reply)
    if isinstance(r, ExceptionResponse):
        d = Client(rig.t, 1, MAP).diag_or_none()
        return r.exception_code, d["text"]
    assert r.records[0].record_data == data  # the normal response echoes the request
    return 0, ""


def raw_block(rig, block, data, byte_count=None):
    """An FC 0x41 request (tools.bmsctl.mbpdu, pymodbus's PDU classes); (exception code or 0, DIAG text)."""
    from tools.bmsctl.mbpdu import UpdateBlockRequest, decoder
    pdu = bytes([0x41]) + UpdateBlockRequest(block, data).encode()
    if byte_count is not None:
        pdu = pdu[:1] + bytes([byte_count]) + pdu[2:]
    reply = rig.t.exchange(1, pdu)
    r = decoder().decode(reply)
    if isinstance(r, ExceptionResponse):
        d = Client(rig.t, 1, MAP).diag_or_none()
        return r.exception_code, d["text"]
    assert len(reply) == 3 and r.block == block  # the normal response names the block, no echo
    return 0, ""


def begin(n, offset=0):
    return bytes([0, M.CMD_BEGIN]) + n.to_bytes(4, "big") + offset.to_bytes(4, "big")


@pytest.mark.parametrize("how", ["fc41", "old map", "old pack"])
def test_a_good_bundle_over_file_records_is_staged_activated_and_the_pack_held_idle(tmp_path, monkeypatch, how):
    # fc41: the map describes FC 0x41 and the pack offers it; "old map": a map
    # without it, "old pack": a status record of 24 registers (no register 24): FC 0x15
    rig = Rig()
    data = bundle()
    (tmp_path / "fw.bmsu").write_bytes(data)
    (tmp_path / "inst.key").write_text(SECRET.hex())
    args = ["--via", "tcp:x:1", "--secret-file", str(tmp_path / "inst.key")]
    if how == "old map":
        import json
        old = json.loads(json.dumps(MAP))
        old["files"] = [f for f in old["files"] if not f["name"].startswith("update")]
        (tmp_path / "map.json").write_text(json.dumps(old))
        args += ["--map", str(tmp_path / "map.json")]
    if how == "old pack":
        import app.hostupd as HU
        monkeypatch.setattr(HU, "STATUS_REGS", 24)
    seen = []
    real_w, real_b = M._write, M._block

    def spy(pack, f, rec, chunk, what):
        real_w(pack, f, rec, chunk, what)
        if f == M.FILE_DATA:
            seen.append((0x15, rec, rig.st.update_hold))

    def spy_b(pack, block, chunk, what):
        real_b(pack, block, chunk, what)
        seen.append((0x41, block, rig.st.update_hold))
    monkeypatch.setattr(M, "_write", spy)
    monkeypatch.setattr(M, "_block", spy_b)
    out = io.StringIO()
    assert bmsctl(args + ["update", str(tmp_path / "fw.bmsu")], out=out, transport=rig.t) == 0
    assert "staged, %d bytes verified" % len(data) in out.getvalue()
    assert [r for _, r, _ in seen] == list(range(-(-len(data) // BLOCK)))  # every block once, in order
    assert {fc for fc, _, _ in seen} == {0x41 if how == "fc41" else 0x15}
    blocks = [q for q in rig.t.requests if q[0] == (0x41 if how == "fc41" else 0x15)]
    assert len(blocks) == len(seen) + (0 if how == "fc41" else 3)  # FC 0x15 also carries begin, check, activate
    assert all(h for _, _, h in seen)  # held idle (FETs open, 0 A limits) through the transfer
    assert bytes(rig.part.buf[SLOT:SLOT + len(IMAGE)]) == IMAGE
    rec = rig.record()
    assert rec[S.PENDING] == 1 and rec[S.COUNTER1] == 5
    assert rig.resets == 0
    rig.tick()  # activate: the reset comes RESET_DELAY_MS after the reply went out (a relayed one too)
    assert rig.resets == 0
    rig.tick(RESET_DELAY_MS - 100)
    assert rig.resets == 1 and not rig.st.update_hold


def _staged_nothing(rig):
    rec = rig.record()
    assert rec[S.PENDING] == S.NONE and rec[S.CONFIRMED] == 0


def test_without_an_installer_session_nothing_is_accepted_and_the_refusal_is_counted():
    rig = Rig()
    data = bundle()
    before = rig.auth.refused
    assert raw(rig, M.FILE_CTL, 0, begin(len(data)))[0] == 1
    assert raw(rig, M.FILE_DATA, 0, data[:BLOCK])[0] == 1
    assert rig.auth.refused == before + 2 and rig.host.reason == 1  # DIAG: no installer session
    assert not rig.st.update_hold and rig.hold.upd is None
    with pytest.raises(CtlError, match="exception 01"):
        M.status(rig.client(login=False))
    _staged_nothing(rig)


@pytest.mark.parametrize("case,make,where,exc,reason", [
    ("bad signature", lambda: bundle(key=Ed25519PrivateKey.generate()), "data", 3, "signature"),
    ("one flipped byte in the image", lambda: _flip(bundle(), -100), "check", 3, "hash"),
    ("wrong board", lambda: bundle(board="esp32_bq"), "data", 3, "board"),
])
def test_refused_with_its_exception_and_diag_reason_and_nothing_staged(case, make, where, exc, reason):
    rig = Rig()
    c = rig.client()
    with pytest.raises(CtlError) as e:
        M.update(c, make())
    msg = str(e.value)
    assert ("update %s" % ("check" if where == "check" else "block")) in msg
    assert "exception %02X" % exc in msg and "update refused: " + reason in msg
    _staged_nothing(rig)
    assert rig.host.refused >= 1


def _flip(data, at):
    b = bytearray(data)
    b[at] ^= 0x01
    return bytes(b)


def test_a_block_out_of_order_or_repeated_is_refused_and_changes_nothing():
    rig = Rig()
    rig.client()
    data = bundle()
    assert raw(rig, M.FILE_CTL, 0, begin(len(data))) == (0, "")
    assert raw(rig, M.FILE_DATA, 0, data[:BLOCK])[0] == 0
    code, text = raw(rig, M.FILE_DATA, 2, data[2 * BLOCK:3 * BLOCK])  # skipped one
    assert code == 2 and "not the next block (1)" in text
    assert raw(rig, M.FILE_DATA, 0, data[:BLOCK])[0] == 2  # repeated
    code, text = raw(rig, M.FILE_DATA, 1, data[BLOCK:BLOCK + 10])  # a short block
    assert code == 3 and "120 registers" in text
    assert rig.hold.upd.received == BLOCK and rig.hold.upd.state in (W.HEADER, W.IMAGE)
    assert raw(rig, M.FILE_DATA, 1, data[BLOCK:2 * BLOCK])[0] == 0  # the right one still goes on
    assert rig.hold.upd.received == 2 * BLOCK


def test_refused_while_current_flows_and_while_the_uds_session_holds_the_pack():
    rig = Rig()
    c = rig.client()
    rig.st.current_ma = 5000
    with pytest.raises(CtlError, match="exception 06.*current flows"):
        M.update(c, bundle())
    assert not rig.st.update_hold and rig.hold.upd is None
    rig.st.current_ma = 0
    other = object()
    assert rig.hold.take(other)  # app.uds in its programming session
    with pytest.raises(CtlError, match="exception 06.*another session holds the pack"):
        M.update(c, bundle())
    rig.hold.release(other)
    _staged_nothing(rig)


def test_an_interrupted_transfer_resumes_and_a_silent_session_ends_by_itself():
    rig = Rig()
    c = rig.client()
    data = bundle()
    assert raw(rig, M.FILE_CTL, 0, begin(len(data)))[0] == 0
    for k in range(3):
        assert raw(rig, M.FILE_DATA, k, data[k * BLOCK:(k + 1) * BLOCK])[0] == 0
    s = M.status(c)
    assert s["received"] == 3 * BLOCK and s["total"] == len(data) and s["holder"] == "modbus"
    assert rig.st.update_hold
    for _ in range(SESSION_MS // 100 + 2):
        rig.tick()
    assert not rig.st.update_hold and M.status(c)["holder"] == "none"  # the pack is free again
    sent = []
    s = M.update(c, data, progress=lambda done, total: sent.append(done), activate=False)
    assert sent[0] == 4 * BLOCK  # resumed after the 3 blocks it had
    assert s["state"] == "staged" and rig.record()[S.PENDING] == 1
    assert not rig.st.update_hold and rig.resets == 0


def test_fc41_blocks_keep_every_refusal_of_the_file_record_path():
    rig = Rig()
    data = bundle()
    before = rig.auth.refused
    assert raw_block(rig, 0, data[:BLOCK])[0] == 1  # no installer session: 01, counted
    assert rig.auth.refused == before + 1 and rig.host.reason == 1
    rig.client()
    code, text = raw_block(rig, 0, data[:BLOCK])
    assert code == 3 and "no update session on this port" in text  # no begin yet
    assert rig.hold.upd is None and not rig.st.update_hold
    assert raw(rig, M.FILE_CTL, 0, begin(len(data))) == (0, "")
    assert raw_block(rig, 0, data[:BLOCK]) == (0, "")
    code, text = raw_block(rig, 2, data[2 * BLOCK:3 * BLOCK])  # skipped one
    assert code == 2 and "not the next block (1)" in text
    assert raw_block(rig, 0, data[:BLOCK])[0] == 2  # repeated
    code, text = raw_block(rig, 1, data[BLOCK:BLOCK + 10])  # a short block
    assert code == 3 and "240 bytes" in text
    assert raw_block(rig, 1, data[BLOCK:2 * BLOCK], byte_count=200)[0] == 3  # a byte count that lies
    assert rig.hold.upd.received == BLOCK
    assert raw_block(rig, 1, data[BLOCK:2 * BLOCK])[0] == 0  # the right one still goes on
    k = 2
    while k * BLOCK < len(data):
        assert raw_block(rig, k, data[k * BLOCK:(k + 1) * BLOCK]) == (0, "")  # the last one unpadded
        k += 1
    assert raw(rig, M.FILE_CTL, 0, bytes([0, M.CMD_CHECK])) == (0, "")
    assert rig.record()[S.PENDING] == 1


def test_fc41_with_a_bad_signature_is_refused_with_its_reason_and_a_resume_goes_on_by_fc41():
    rig = Rig()
    c = rig.client()
    bad = bytearray(bundle())
    from update import bundle as fmt
    bad[fmt.header_length(bytes(bad[:fmt.HEAD])) - 1] ^= 1
    assert raw(rig, M.FILE_CTL, 0, begin(len(bad))) == (0, "")
    k = 0
    while True:  # the header is checked when its last byte is in
        code, text = raw_block(rig, k, bytes(bad[k * BLOCK:(k + 1) * BLOCK]))
        if code:
            break
        k += 1
    assert code == 3 and text == "update refused: signature" and k * BLOCK < len(bad)
    _staged_nothing(rig)
    data = bundle()
    assert raw(rig, M.FILE_CTL, 0, begin(len(data))) == (0, "")
    for k in range(2):
        assert raw_block(rig, k, data[k * BLOCK:(k + 1) * BLOCK]) == (0, "")
    sent = []
    s = M.update(c, data, progress=lambda done, total: sent.append(done), activate=False)
    assert sent[0] == 3 * BLOCK and s["via"] == 0x41 and rig.record()[S.PENDING] == 1


def test_fc41_framing_parse_and_relay_match_follow_the_pymodbus_layout():
    # proto.modbus against tools.bmsctl.mbpdu's pymodbus classes (an independent encoder)
    from proto import modbus as mb
    from tools.bmsctl.mbpdu import UpdateBlockRequest, UpdateBlockResponse
    from tools.fuzz_host import adu
    req = bytes([0x41]) + UpdateBlockRequest(7, bytes(range(240))).encode()
    rep = bytes([0x41]) + UpdateBlockResponse(7).encode()
    for frame, replies in ((adu(2, req), False), (adu(2, rep), True)):
        fr = mb.Framer(replies)
        got = [fr.feed(b) for b in frame]
        assert got[-1] == len(frame) and not any(got[:-1])  # the length from the byte count / fixed 6
    r = mb.Request()
    assert mb.parse(bytearray(req), len(req), r) == 0 and (r.addr, r.count, r.data) == (7, 240, 4)
    for bad in (req[:4], req[:1] + bytes([req[1] + 1]) + req[2:], req[:-1]):  # no data, byte counts that lie
        assert mb.parse(bytearray(bad), len(bad), mb.Request()) == mb.EX_ILLEGAL_VALUE
    assert mb.answers(req, len(req), rep, len(rep))
    other = bytes([0x41]) + UpdateBlockResponse(8).encode()
    assert not mb.answers(req, len(req), other, len(other))  # a late reply for another block
    assert mb.answers(req, len(req), bytes([0xC1, 3]), 2)
