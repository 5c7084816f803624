# The update session's board side in the real MicroPython (issue 15, "the
# board side of the session runs in the MicroPython gates"): app.uds with a
# real bms.auth, update.updater writing slot B of a bytearray partition and
# checking every file of the written image through the port's own vfs.VfsRom,
# the slot record on store.memfs.MemFs, all inside the 32-bit unix MicroPython;
# the tester is udsoncan's client (tools/bmsctl/update.py's sequence) on
# can-isotp's transport layer in this CPython process. The CAN frames cross
# the process boundary as hex lines on the interpreter's stdin/stdout, in
# lock step and virtual time (test_uds_update's SimConnection: 10 ms per tick
# line). The same for the Modbus FC 0x15 session: app.host + app.hostupd in
# the interpreter, bmsctl's client (pymodbus's FileRecord PDUs) here, the PDUs
# as hex lines. The wasm port runs the same scripts in test_update_wasm.py.
import hashlib
import os
import subprocess

import pytest
import udsoncan

import test_boot_slots as T
from test_modbus_update import begin, raw, raw_block
from test_uds_update import ADDR, KEY, MPY_PARTITION, PUB, SECRET, SLOT, client, nrc_of
from tools import ram
from tools.bmsctl import bundle as tool
from tools.bmsctl import mbupdate as M
from tools.bmsctl import update as U
from tools.bmsctl.client import CtlError, Pack as Client, load_map
from tools.bmsctl.transport import TransportError
from update import bundle as fmt
from update import boot as B
from update import slots as S
from app.hostupd import BLOCK_BYTES as M_BLOCK
from app.host import UPDATE_MS
from bms import auth as A

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The pack both sessions update (slot A confirmed, counter 3; the installer
# secret provisioned); the loops below read lines from stdin; "S" prints the
# slot record, the refusals, a digest of slot B, the resets and the hold.
PACK = """
import sys, os, vfs, hashlib
from bms.auth import Auth, INSTALLER
from bms.params import Params
from bms.state import PackState
from store.cred import CredStore
from store.memfs import MemFs
from store.slotstore import SlotStore
from update import boot, slots, updater as W
from binascii import hexlify, unhexlify
""" + MPY_PARTITION + """
board = Board()
board.rom = Part(b"\\xff" * (2 * SLOT))
board.rom[:len(OLD)] = OLD
fs = MemFs()
CredStore(fs).save({INSTALLER: SECRET})
rec = boot.factory()
rec[slots.COUNTER0] = rec[slots.FLOOR] = 3
SlotStore(fs).save(rec)
params = Params()
st = PackState()
auth = Auth(CredStore(fs), params, os.urandom)
resets = []
restart = lambda: lambda: resets.append(1)
make_updater = lambda: W.Updater(board.rom, SlotStore(fs), PUB, "host_sim", 1, SLOT)
file_digest = lambda slot, name: W.romfs_digest(vfs, board, slot, name, SLOT)

def report(refused):
    r = SlotStore(fs).load()[0]
    b = bytes(memoryview(board.rom)[SLOT:2 * SLOT])
    print(repr((r[slots.PENDING], r[slots.COUNTER1], r[slots.CONFIRMED], refused,
                hexlify(hashlib.sha256(b).digest()).decode(), len(resets), st.update_hold)))
"""

# UDS: "F id data" a frame to on_frame, "T ms" a tick (the frames it sent
# print as "F id data", then ".").
UDS_LOOP = """
from app.uds import Uds
class Can:
    FLAG_EXT_ID = 2
    def send(self, id_, data, flags):
        sys.stdout.write("F %x %s\\n" % (id_, hexlify(data).decode()))
        return 0
svc = Uds(st, params, auth, Can(), lambda: ADDR, make_updater=make_updater, slot_store=SlotStore(fs), running=0,
          version=b"1.0", restart=restart, file_digest=file_digest)
while True:
    w = sys.stdin.readline().split()
    if not w:
        break
    if w[0] == "F":
        svc.on_frame("can", [int(w[1], 16), unhexlify(w[2]), 2, 0])
    elif w[0] == "T":
        svc.now_ms = int(w[1])
        svc.tick(svc.now_ms)
        sys.stdout.write(".\\n")
    elif w[0] == "S":
        report(svc.refused)
"""

# Modbus: "P unit pdu" a request PDU (after a tick 20 ms on), answered
# "R pdu" ("R" alone: no answer); "T" a tick 100 ms on, answered "."; "U adu"
# RTU bytes on the port (Link IN: app.router, read as the link service does),
# answered "R" and the RTU frames the host wrote; "H" 200 host ticks 2 ms
# apart under heap_lock, answered "H" and the period the host asked.
MODBUS_LOOP = """
import micropython
from app.host import Host
from app.hostupd import HostUpdate
from app.router import Router
from app.updsess import UpdateSession
from bms.system import SystemView, from_pack
class Port:
    def __init__(self):
        self.rx = b""
        self.tx = []
    def any(self):
        return len(self.rx)
    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n
    def write(self, b):
        self.tx.append(bytes(b))
        return len(b)
view = SystemView()
from_pack(view, st, params)
hold = UpdateSession(st, make_updater)
port = Port()
host = Host(st, params, view, port, auth, unit=1, update=lambda: HostUpdate(host, hold, restart, file_digest))
host.rx = Router(port)
host.rx.subscribe_binary(host, host.framer)
out = bytearray(260)
now = 0
while True:
    w = sys.stdin.readline().split()
    if not w:
        break
    if w[0] == "P":
        now += 20
        host.tick(now)
        req = bytearray(unhexlify(w[2]))
        k = host.pdu(int(w[1]), req, len(req), out, 1)  # app.host.PORT_RTU: the session "U" frames share
        sys.stdout.write("R %s\\n" % hexlify(out[:k]).decode())
    elif w[0] == "U":
        now += 20
        host.tick(now)
        port.rx = unhexlify(w[1])
        host.rx.poll(now)
        sys.stdout.write("R %s\\n" % " ".join(hexlify(f).decode() for f in port.tx))
        port.tx = []
    elif w[0] == "H":
        micropython.heap_lock()
        try:
            for _ in range(200):
                now += 2
                host.tick(now)
        finally:
            micropython.heap_unlock()
        sys.stdout.write("H %d\\n" % host.period_ms)
    elif w[0] == "T":
        now += 100
        host.tick(now)
        sys.stdout.write(".\\n")
    elif w[0] == "S":
        report(host.refused)
"""


class Board:
    """A board script (PACK + its loop) in the 32-bit MicroPython, driven line
    by line."""

    def __init__(self, exe, loop, old, heap="1M", path=(), slot=SLOT):
        """path: directories before firmware/ and lib/ (frozen modules come first on a board);
        slot: the partition's slot size."""
        env = dict(os.environ, MICROPYPATH=os.pathsep.join(
            list(path) + [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "lib")]))
        code = "SLOT = %d\nPUB = %r\nSECRET = %r\nADDR = %d\nOLD = %r\n" % (slot, PUB, SECRET, ADDR, old) + PACK + loop
        self.p = subprocess.Popen([exe, "-X", "heapsize=" + heap, "-c", code], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)

    def _line(self):
        line = self.p.stdout.readline()
        if not line:
            raise AssertionError("the board ended: %s" % self.p.stderr.read())
        return line

    def state(self):
        self.p.stdin.write("S\n")
        return eval(self._line())

    def close(self):
        self.p.stdin.close()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


# the new image: real ROMFS with a module of ~4 KB besides the two that name the slot
EXTRA = {"lib/big.py": b"".join(b"X%03d = %r\n" % (i, bytes(range(i % 7, 40))) for i in range(40))}
FILES = dict({"bms_main.py": b"from slotlib import SLOT\n", "lib/slotlib.py": b"SLOT = 'B'\n"}, **EXTRA)


def _bundle(tmp_path):
    old, img = T._image(tmp_path, "A"), T._image(tmp_path, "B", EXTRA)
    return old, img, tool.pack(tool.manifest("host_sim", "2.0.0", 5, img, FILES), img, KEY)


class UdsBoard(Board):
    """To test_uds_update's SimConnection this looks like its Pack:
    svc.on_frame() queues a frame for the board, svc.tick() sends the queue
    and one tick line, and the frames the board sent land in can.sent."""

    def __init__(self, exe, old):
        Board.__init__(self, exe, UDS_LOOP, old)
        self._uds_state()

    def _uds_state(self):
        self.svc = self
        self.can = self
        self.sent = []
        self.out = []
        self.frames = 0

    def on_frame(self, bus, fr):
        self.out.append("F %x %s\n" % (fr[0], bytes(fr[1]).hex()))

    def tick(self, now_ms):
        self.p.stdin.write("".join(self.out) + "T %d\n" % now_ms)
        self.frames += len(self.out)
        self.out = []
        while True:
            w = self._line().split()
            if w == ["."]:
                return
            self.sent.append((int(w[1], 16), bytes.fromhex(w[2]), 2))


class ModbusBoard(Board):
    """bmsctl's transport API (exchange(unit, pdu)) onto the board's Host.pdu;
    .t as test_modbus_update's raw() wants it."""

    def __init__(self, exe, old):
        Board.__init__(self, exe, MODBUS_LOOP, old)
        self.t = self
        self.requests = 0

    def exchange(self, unit, pdu):
        self.p.stdin.write("P %d %s\n" % (unit, bytes(pdu).hex()))
        self.requests += 1
        w = self._line().split()
        if len(w) < 2:
            raise TransportError("no answer from unit %d" % unit)
        return bytes.fromhex(w[1])

    def tick(self):
        self.p.stdin.write("T\n")
        assert self._line() == ".\n"

    def rtu(self, adu):
        """RTU bytes into the board's Link IN; the frames its host wrote."""
        self.p.stdin.write("U %s\n" % bytes(adu).hex())
        return [bytes.fromhex(x) for x in self._line().split()[1:]]

    def locked_ticks(self):
        """200 host ticks under heap_lock (a MemoryError ends the board); the period it asks."""
        self.p.stdin.write("H\n")
        w = self._line().split()
        assert w[0] == "H", w
        return int(w[1])


@pytest.fixture
def board32(mpy32):
    exe = ram.interpreter()  # mpy32 skipped already where there is none
    made = []

    def start(kind, old):
        b = kind(exe, old)
        made.append(b)
        return b
    yield start
    for b in made:
        b.close()


def test_udsoncan_updates_the_board_side_running_in_32_bit_micropython(tmp_path, board32):
    old, img, data = _bundle(tmp_path)
    board = board32(UdsBoard, old)
    c, conn = client(board)
    # refused on the wire: a bad signature (the key byte in the signature flipped) ...
    bad = bytearray(data)
    n = fmt.header_length(data[:fmt.HEAD])  # the header ends with the manifest's signature
    bad[n - 1] ^= 1
    with pytest.raises(U.UpdateError) as e:
        U.update(c, bytes(bad), activate=False)
    assert "TransferData" in str(e.value) and "NRC 0x72" in str(e.value)
    t = c.read_data_by_identifier([U.DID_TRANSFER]).service_data.values[U.DID_TRANSFER]
    assert t["state"] == "failed" and t["reason"] == "signature"
    # ... a wrong block counter, a repeated block
    c.change_session(2)
    c.unlock_security_access(1)
    blk = c.request_download(udsoncan.MemoryLocation(0, len(data), 32, 32)).service_data.max_length - 2
    c.transfer_data(1, data[:blk])
    assert nrc_of(c.transfer_data, 3, data[blk:2 * blk]) == 0x73
    assert nrc_of(c.transfer_data, 1, data[:blk]) == 0x73
    c.change_session(1)
    pending, _, _, refused, _, _, hold = board.state()
    assert pending == S.NONE and refused == 3 and not hold  # nothing staged
    # the good bundle: written, every file checked through VfsRom, staged, then activated
    seen = []
    ident = U.update(c, data, lambda done, total: seen.append(done))
    assert seen[-1] == len(data)
    assert ident["slots"]["pending"] == "B" and ident["transfer"]["state"] == "staged"
    for _ in range(5):
        conn.step()
    pending, counter1, confirmed, refused, slot_b, resets, hold = board.state()
    assert (pending, counter1, confirmed, refused, resets) == (1, 5, 0, 3, 1)
    assert slot_b == hashlib.sha256(img + b"\xff" * (SLOT - len(img))).hexdigest()
    print("%d bytes of bundle in %d CAN frames into the 32-bit MicroPython, %d ms of virtual time"
          % (len(data), board.frames, conn.now))


def test_pymodbus_file_records_update_the_board_side_running_in_32_bit_micropython(tmp_path, board32):
    old, img, data = _bundle(tmp_path)
    board = board32(ModbusBoard, old)
    c = Client(board, 1, load_map())
    c.login(A.INSTALLER, SECRET)
    # refused on the wire: a bad signature (its last byte flipped): exception 03 and the DIAG reason ...
    bad = bytearray(data)
    bad[fmt.header_length(data[:fmt.HEAD]) - 1] ^= 1
    for fast in (False, True):  # FC 0x15 blocks, then FC 0x41's
        with pytest.raises(CtlError) as e:
            M.update(c, bytes(bad), fast=fast)
        assert "update block" in str(e.value) and "exception 03" in str(e.value)
        assert "update refused: signature" in str(e.value)
    # ... a block out of order and a repeated one (pymodbus's FC 0x15 requests, then FC 0x41): exception 02
    assert raw(board, M.FILE_CTL, 0, begin(len(data))) == (0, "")
    assert raw(board, M.FILE_DATA, 0, data[:M_BLOCK]) == (0, "")
    code, text = raw(board, M.FILE_DATA, 2, data[2 * M_BLOCK:3 * M_BLOCK])
    assert code == 2 and "not the next block (1)" in text
    assert raw(board, M.FILE_DATA, 0, data[:M_BLOCK])[0] == 2
    code, text = raw_block(board, 2, data[2 * M_BLOCK:3 * M_BLOCK])
    assert code == 2 and "not the next block (1)" in text
    assert raw_block(board, 0, data[:M_BLOCK])[0] == 2
    code, text = raw_block(board, 1, data[M_BLOCK:M_BLOCK + 9])
    assert code == 3 and "240 bytes" in text
    # FC 0x41 as RTU frames through app.router and the host's framer (proto.modbus's length of 0x41)
    from tools.bmsctl.mbpdu import UpdateBlockRequest, UpdateBlockResponse
    from tools.fuzz_host import adu, crc_ok
    assert board.rtu(adu(1, bytes([0x41]) + UpdateBlockRequest(1, data[M_BLOCK:2 * M_BLOCK]).encode())) == [
        adu(1, bytes([0x41]) + UpdateBlockResponse(1).encode())]
    assert board.locked_ticks() == UPDATE_MS == 1  # reading Link IN every 1 ms now, without an allocation
    pending, _, _, refused, _, _, _ = board.state()
    assert pending == S.NONE and refused == 7
    # the good bundle: begun again, written by FC 0x41, every file checked through VfsRom, staged, activated
    assert M.update(c, data)["via"] == 0x41
    board.tick()  # the reset comes RESET_DELAY_MS (200) after the reply went out
    board.tick()
    pending, counter1, confirmed, refused, slot_b, resets, hold = board.state()
    assert (pending, counter1, confirmed, refused, resets) == (1, 5, 0, 7, 1)
    assert slot_b == hashlib.sha256(img + b"\xff" * (SLOT - len(img))).hexdigest()
    print("%d bytes of bundle in %d Modbus requests into the 32-bit MicroPython" % (len(data), board.requests))


def test_the_broadcast_reaches_the_board_side_running_in_32_bit_micropython(tmp_path, board32):
    # bmsctl's broadcast frames (3 per 1 ms tick, as the bus carries them) into app.uds in the
    # interpreter, one frame lost on the way: the rest over UDS from there, every file checked
    old, img, data = _bundle(tmp_path)
    board = board32(UdsBoard, old)
    c, conn = client(board)
    assert U.prepare(c, data) == 0
    frames = [f for _, f in U.broadcast_frames(data) if isinstance(f, bytes)]
    lost = len(frames) * 2 // 3
    if frames[lost][:2] == b"\xff\xff":
        lost += 1  # a data frame, not an announce
    seq = int.from_bytes(frames[lost][:2], "big")
    for i, f in enumerate(frames):
        if i != lost:
            board.on_frame("can", [U.broadcast_id(), f])
        if i % 3 == 2:
            conn.step(1)
    conn.step(1)
    t = c.read_data_by_identifier([U.DID_TRANSFER, U.DID_BROADCAST]).service_data.values
    got = t[U.DID_TRANSFER]["received"]
    assert t[U.DID_TRANSFER]["state"] == "image" and got == seq * 6  # up to the lost frame
    assert t[U.DID_BROADCAST]["taken"] == seq and t[U.DID_BROADCAST]["ignored"] == sum(
        1 for f in frames[lost + 1:] if f[:2] != b"\xff\xff")  # every data frame after it (announces re-arm)
    seen = []
    ident = U.update(c, data, lambda done, total: seen.append(done), activate=False)
    assert ident["slots"]["pending"] == "B" and seen[0] == got + 256
    pending, counter1, confirmed, refused, slot_b, resets, hold = board.state()
    assert (pending, counter1, refused) == (1, 5, 0)
    assert slot_b == hashlib.sha256(img + b"\xff" * (SLOT - len(img))).hexdigest()


# ---- recovery in the 32-bit MicroPython, from the frozen copies ---------------------
# The forced-update mode's UDS server as the custom firmware holds it: the
# recovery package of tools/frozen.py's lower part (recovery.app.uds,
# recovery.bms.auth, ... with their imports renamed) first on the path, as frozen
# modules come first on a board's sys.path (the rest of the staged part has its
# public constants inlined into the image's modules, so lib's own copies run
# beside it here); recovery.serve.services on a board of fakes (an AFE that
# switches its FETs off, the LEDs, a CAN port fed from stdin), the update key
# an owner's build freezes into update.trust (test_deploy checks the build);
# the tester is udsoncan as above.
RECOVERY_LOOP = """
from recovery import mode, serve
from update import trust
trust.PUBLIC_KEY = PUB
class Can:
    FLAG_EXT_ID = 2
    MODE_NORMAL = 0
    MODE_SILENT = 3
    def __init__(self):
        self.q = []
        self.mode = self.MODE_SILENT  # as the board starts it (boards/bq_board.py)
        self.msg_errors = 0
    def init(self, bitrate, mode=0):
        self.mode = mode
    def send(self, id_, data, flags):
        if self.mode != self.MODE_NORMAL:
            raise OSError(5)  # listen-only (app.canrate confirms the rate at the tester's first frame)
        sys.stdout.write("F %x %s\\n" % (id_, hexlify(data).decode()))
        return 0
    def any(self):
        return len(self.q)
    def recv(self, fr):
        i, d = self.q.pop(0)
        fr[0] = i
        fr[1] = memoryview(d)
        fr[2] = 2
        fr[3] = 0
        return fr
    def set_filters(self, f):
        self.filters = f
class Afe:
    fets = 3
    def all_fets_off(self):
        self.fets = 0
    def set_fets(self, chg, dsg, pchg):
        self.fets = chg | dsg << 1 | pchg << 2
class Leds:
    def __init__(self):
        self.v = [1] * 8
    def set(self, i, v):
        self.v[i] = v
board.name = "host_sim"
board.pack_address = ADDR  # a DIP address (0: recovery.serve.DEFAULT_ADDRESS)
board.can = Can()
board.afe = Afe()
board.leds = Leds()
board.led_pins = [0] * 8
svcs = serve.services(board, fs, restart, mode.NO_SLOT)
sys.stdout.write("K %s %d %s\\n" % (hexlify(trust.PUBLIC_KEY).decode(), board.afe.fets,
                                     type(svcs[-1]).__module__))
while True:
    w = sys.stdin.readline().split()
    if not w:
        break
    if w[0] == "F":
        board.can.q.append((int(w[1], 16), unhexlify(w[2])))
    elif w[0] == "T":
        for s in svcs:
            s.tick(int(w[1]))
        sys.stdout.write(".\\n")
    elif w[0] == "S":
        report(svcs[-1].refused)
"""


class RecoveryBoard(UdsBoard):
    """UdsBoard on RECOVERY_LOOP, with the staged lower part first on the path."""

    def __init__(self, exe, old, lower):
        # the board's 256 KiB slots: recovery's updater is update.updater.for_board's
        Board.__init__(self, exe, RECOVERY_LOOP, old, heap="2M", path=[lower], slot=B.SLOT_BYTES)
        self._uds_state()


def test_recovery_serves_the_update_session_from_the_frozen_copies_in_32_bit_micropython(tmp_path, board32):
    from tools import frozen
    dev_pub = tool.DEV_KEY[:-len(".pem")] + ".pub"
    frozen.stage("esp32_bq", "lower", str(tmp_path / "lower"), owner_key=dev_pub)
    only = tmp_path / "path"
    only.mkdir()
    (only / "recovery").symlink_to(tmp_path / "lower" / "src" / "recovery")
    old, img, data = _bundle(tmp_path)
    b = board32(lambda exe, o: RecoveryBoard(exe, o, str(only)), old)
    said = b._line()
    assert said.startswith("bms: recovery (no valid image slot): FETs off, RUN+ALM blinking, UDS update "
                           "session on CAN at address %d" % ADDR), said
    w = b._line().split()
    assert w[0] == "K" and bytes.fromhex(w[1]) == PUB
    assert w[2] == "0" and w[3] == "recovery.app.uds"  # FETs off; the server is the frozen copy
    c, conn = client(b)
    ident = U.update(c, data)
    assert ident["slots"]["pending"] == "B" and ident["version"].startswith("R")
    for _ in range(5):
        conn.step()
    pending, counter1, confirmed, refused, slot_b, resets, hold = b.state()
    assert (pending, counter1, refused, resets) == (1, 5, 0, 1)
    assert slot_b == hashlib.sha256(img + b"\xff" * (B.SLOT_BYTES - len(img))).hexdigest()
