# The update sessions' board side in the wasm gate (issue 15, "the board side
# of the session runs in the MicroPython gates (wasm and the 32-bit
# interpreter)"): test_update_gate's board scripts (app.uds resp. app.host +
# app.hostupd with a real bms.auth, update.updater writing a real ROMFS image
# into slot B of a bytearray partition, the slot record on store.memfs.MemFs) in
# the official WebAssembly port under Node, driven live by udsoncan's client on
# can-isotp resp. bmsctl's FC 0x15 client in this CPython process, the CAN
# frames / PDUs as hex lines in lock step and virtual time: the same protocol
# as the 32-bit test. The line channel is tools/mpy_wasm's popen(lines=True):
# the code goes to Node in a file and the runner's stdin is the script's
# sys.stdin, read as the lines arrive.
# What this port lacks (reported by each board at its start, checked in the
# first test): vfs.VfsRom, so every file of the written image is checked
# through the file_digest hook, here lib/sim/romfs's reader over the
# partition (the bench's host_sim reader); os.urandom, so the seed and nonce
# source is a seeded one passed in, as the bench's host_sim board has. The same
# seeded source in the 32-bit interpreter (with its real vfs.VfsRom check)
# gives the same sessions frame for frame and PDU for PDU (the last test).
import hashlib

import pytest
import udsoncan

import test_update_gate as G
from test_uds_update import ADDR, KEY, PUB, SECRET, SLOT, client, nrc_of
from tools import ram
from tools.bmsctl import bundle as tool
from tools.bmsctl import mbupdate as M
from tools.bmsctl import update as U
from tools.bmsctl.client import CtlError, Pack as Client, load_map
from tools.bmsctl.transport import TransportError
from update import bundle as fmt
from update import slots as S
from bms import auth as A

# os.urandom's stand-in in both interpreters: SHA-256 of a counter
SEEDED = """
import hashlib as _hl
_drawn = [0]
def urandom(n):
    _drawn[0] += 1
    return _hl.sha256(b"wasm-gate %d" % _drawn[0]).digest()[:n]
"""

# after test_update_gate.PACK in the wasm port: what the port has ("V" line),
# the file check through lib/sim/romfs's reader of the partition
WASM_HOOKS = """
from sim import romfs
def file_digest(slot, name):
    f = romfs.files(board.rom, slot * SLOT).get(name)
    return None if f is None else hexlify(hashlib.sha256(f).digest()).decode()
sys.stdout.write("V %d %d\\n" % (hasattr(vfs, "VfsRom"), hasattr(os, "urandom")))
"""

HEADER = "SLOT = %d\nPUB = %r\nSECRET = %r\nADDR = %d\nOLD = %r\n"


def wasm_code(old, loop):
    """The wasm board's script: test_update_gate's PACK + loop, the Auth on
    the seeded source, the file check on the hook."""
    assert G.PACK.count("os.urandom") == 1, "test_update_gate.PACK builds its Auth differently now"
    return (HEADER % (SLOT, PUB, SECRET, ADDR, old) + SEEDED + G.PACK.replace("os.urandom", "urandom")
            + WASM_HOOKS + loop)


class Recorded:
    """Every tick's frames in and frames out, for comparing two boards."""

    def _record(self):
        self.log = []

    def tick(self, now_ms):
        n = len(self.sent)
        self.log.append(("in", now_ms, tuple(self.out)))
        G.UdsBoard.tick(self, now_ms)
        self.log.append(("out", tuple(self.sent[n:])))


class RecordedPdus:
    """Every request PDU and its answer (None: none), for comparing two boards."""

    def _record(self):
        self.log = []

    def exchange(self, unit, pdu):
        try:
            r = G.ModbusBoard.exchange(self, unit, pdu)
        except TransportError:
            r = None
            raise
        finally:
            self.log.append((unit, bytes(pdu), r))
        return r


class WasmBoard:
    """test_update_gate's Board with its script in the wasm port."""

    def _start(self, mpy, old, loop):
        self.p = mpy.popen(wasm_code(old, loop), timeout_s=120, lines=True)
        w = self._line().split()
        assert w[0] == "V", w
        self.has_vfsrom, self.has_urandom = int(w[1]), int(w[2])

    def _line(self):
        line = self.p.stdout.readline()
        if not line:
            self.p.wait(10)
            raise AssertionError("the wasm board ended: %s" % self.p.stderr_text())
        return line

    def close(self):
        self.p.stdin.close()
        try:
            self.p.wait(10)
        finally:
            self.p.__exit__(None, None, None)


class WasmUdsBoard(WasmBoard, Recorded, G.UdsBoard):
    def __init__(self, mpy, old):
        self._start(mpy, old, G.UDS_LOOP)
        self._uds_state()
        self._record()


class WasmModbusBoard(WasmBoard, RecordedPdus, G.ModbusBoard):
    def __init__(self, mpy, old):
        self._start(mpy, old, G.MODBUS_LOOP)
        self.t = self
        self.requests = 0
        self._record()


# the 32-bit boards of test_update_gate (their VfsRom file check) with the Auth on the same seeded source
REAUTH = SEEDED + "auth = Auth(CredStore(fs), params, urandom)\n"


class Seeded32Board(Recorded, G.UdsBoard):
    def __init__(self, exe, old):
        G.Board.__init__(self, exe, REAUTH + G.UDS_LOOP, old)
        self._uds_state()
        self._record()


class Seeded32ModbusBoard(RecordedPdus, G.ModbusBoard):
    def __init__(self, exe, old):
        G.Board.__init__(self, exe, REAUTH + G.MODBUS_LOOP, old)
        self.t = self
        self.requests = 0
        self._record()


@pytest.fixture
def wasm_board(mpy):
    made = []

    def start(kind, old):
        made.append(kind(mpy, old))
        return made[-1]
    yield start
    for b in made:
        b.close()


def _refuse_then_update(board, data, img, bad_file):
    """The session of the tests below: refusals with their NRCs, then the good
    bundle staged and activated; the board's final state checked."""
    c, conn = client(board)
    # a bad signature (the last byte of the manifest's signature flipped): NRC 0x72 at TransferData
    bad = bytearray(data)
    bad[fmt.header_length(data[:fmt.HEAD]) - 1] ^= 1
    with pytest.raises(U.UpdateError) as e:
        U.update(c, bytes(bad), activate=False)
    assert "TransferData" in str(e.value) and "NRC 0x72" in str(e.value)
    t = c.read_data_by_identifier([U.DID_TRANSFER]).service_data.values[U.DID_TRANSFER]
    assert t["state"] == "failed" and t["reason"] == "signature"
    # a file whose hash does not match its signed manifest: all bytes taken, the check routine
    # (the file hook reading the written slot) refuses it with NRC 0x72
    with pytest.raises(U.UpdateError) as e:
        U.update(c, bad_file, activate=False)
    assert "RoutineControl" in str(e.value) and "NRC 0x72" in str(e.value), str(e.value)
    t = c.read_data_by_identifier([U.DID_TRANSFER]).service_data.values[U.DID_TRANSFER]
    assert t["state"] == "failed" and t["reason"] == "file"
    # a session without security access: NRC 0x33; a wrong block counter: NRC 0x73
    c.change_session(1)  # leaving the programming session locks it again
    c.change_session(2)
    assert nrc_of(c.request_download, udsoncan.MemoryLocation(0, len(data), 32, 32)) == 0x33
    c.unlock_security_access(1)
    blk = c.request_download(udsoncan.MemoryLocation(0, len(data), 32, 32)).service_data.max_length - 2
    c.transfer_data(1, data[:blk])
    assert nrc_of(c.transfer_data, 3, data[blk:2 * blk]) == 0x73
    c.change_session(1)
    pending, _, _, refused, _, _, hold = board.state()
    assert pending == S.NONE and refused == 4 and not hold  # nothing staged
    # the good bundle: written, every file checked, staged (pending B, its counter, its bytes),
    # no reset yet; then the activate routine, and the reset after its reply
    ident = U.update(c, data, activate=False)
    t = ident["transfer"]
    assert ident["slots"]["pending"] == "B" and t["state"] == "staged" and t["received"] == t["total"] == len(data)
    assert board.state() == (1, 5, 0, 4, padded(img), 0, True)  # the pack still held idle in the session
    assert c.start_routine(U.RT_ACTIVATE).positive
    for _ in range(5):
        conn.step()
    assert board.state() == (1, 5, 0, 4, padded(img), 1, False)  # pending B, one reset, the hold released
    return conn


def padded(img):
    """The SHA-256 (hex) slot B holds once img is written into it."""
    return hashlib.sha256(img + b"\xff" * (SLOT - len(img))).hexdigest()


def _bundles(tmp_path):
    old, img, data = G._bundle(tmp_path)
    files = dict(G.FILES, **{"lib/big.py": G.FILES["lib/big.py"][:-2] + b"0\n"})  # one byte of one file
    bad_file = tool.pack(tool.manifest("host_sim", "2.0.0", 5, img, files), img, KEY)
    return old, img, data, bad_file


def test_udsoncan_updates_the_board_side_running_in_the_wasm_port(tmp_path, wasm_board):
    old, img, data, bad_file = _bundles(tmp_path)
    board = wasm_board(WasmUdsBoard, old)
    # what the port lacks (README): no VfsRom, no os.urandom
    assert (board.has_vfsrom, board.has_urandom) == (0, 0)
    conn = _refuse_then_update(board, data, img, bad_file)
    print("%d bytes of bundle in %d CAN frames into the wasm MicroPython, %d ms of virtual time"
          % (len(data), board.frames, conn.now))


def _file_records_update(board, data, img, bad_file):
    """bmsctl's FC 0x15 session (pymodbus's FileRecord PDUs): refusals with
    their exception codes and DIAG reasons, then the good bundle staged and
    activated."""
    c = Client(board, 1, load_map())
    c.login(A.INSTALLER, SECRET)
    bad = bytearray(data)
    bad[fmt.header_length(data[:fmt.HEAD]) - 1] ^= 1
    for b, where, reason in ((bytes(bad), "update block", "signature"), (bad_file, "update check", "file")):
        with pytest.raises(CtlError) as e:
            M.update(c, b)
        assert where in str(e.value) and "exception 03" in str(e.value), str(e.value)
        assert "update refused: " + reason in str(e.value)
    pending, _, _, refused, _, _, _ = board.state()
    assert pending == S.NONE and refused == 2
    M.update(c, data)
    board.tick()  # the reset comes RESET_DELAY_MS (200) after the reply went out
    board.tick()
    assert board.state()[:6] == (1, 5, 0, 2, padded(img), 1)


def test_bmsctl_file_records_update_the_board_side_running_in_the_wasm_port(tmp_path, wasm_board):
    old, img, data, bad_file = _bundles(tmp_path)
    board = wasm_board(WasmModbusBoard, old)
    _file_records_update(board, data, img, bad_file)
    print("%d bytes of bundle in %d Modbus requests into the wasm MicroPython" % (len(data), board.requests))


def test_the_wasm_boards_answer_frame_for_frame_as_the_32_bit_boards(tmp_path, wasm_board, mpy32):
    # the same sessions against both interpreters (the same seeded source): every tick's CAN frames
    # in and out, every FC 0x15 request and its answer identical; the 32-bit boards check the files
    # through the real vfs.VfsRom, the wasm ones through lib/sim/romfs
    old, img, data, bad_file = _bundles(tmp_path)
    for wasm_kind, b32_kind, session, least in ((WasmUdsBoard, Seeded32Board, _refuse_then_update, 1000),
                                                (WasmModbusBoard, Seeded32ModbusBoard, _file_records_update, 50)):
        w = wasm_board(wasm_kind, old)
        session(w, data, img, bad_file)
        b = b32_kind(ram.interpreter(), old)
        try:
            session(b, data, img, bad_file)
        finally:
            b.close()
        assert len(w.log) > least
        same(w.log, b.log)


def same(wasm, b32):
    """The two boards' logs identical; else the first entry where they part."""
    first = next((i for i, (x, y) in enumerate(zip(wasm, b32)) if x != y), None)
    assert first is None, "entry %d: wasm %r, 32-bit %r" % (first, wasm[first], b32[first])
    assert len(wasm) == len(b32)


# ---- the runner's line channel (tools/mpy_wasm.popen(lines=True)) ------------------

def test_the_wasm_runner_feeds_a_running_script_line_by_line(mpy):
    # each answer comes before the next line is written (lock step), a partial line printed
    # before the script waits reaches the reader, and closing stdin is the script's end of file
    code = ("import sys\nsys.stdout.write('ready>')\nn = 0\nwhile True:\n"
            "    w = sys.stdin.readline()\n    if not w:\n        break\n"
            "    n += int(w)\n    print(n)\nprint('end', repr(sys.stdin.readline()))\n")
    with mpy.popen(code, timeout_s=30, lines=True) as p:
        assert p.stdout.read(6) == "ready>"
        for i, total in ((5, 5), (7, 12), (-2, 10)):
            p.stdin.write("%d\n" % i)
            assert p.stdout.readline() == "%d\n" % total
        p.stdin.close()
        assert p.stdout.read() == "end ''\n"
        assert p.wait() == 0
        assert p.stderr_text() == ""


def test_with_the_code_on_stdin_the_scripts_stdin_is_at_its_end(mpy):
    r = mpy.run("import sys\nprint(repr(sys.stdin.readline()))\n", timeout_s=30)
    assert (r.returncode, r.stdout) == (0, "''\n"), r.stderr
