# The firmware update session (issue 15) as an installer's tool drives it:
# udsoncan's client (tools/bmsctl/update.py's configuration and sequence) on
# can-isotp's transport layer, both independent of the board's code, talking
# to the board side (app.uds on bms.auth, update.updater, update.slotwrite) on
# a simulated CAN link in virtual time (as test_hostcan connects can-isotp to
# the firmware's port). The slot is a simulated ROMFS partition
# (simflash.SimPartition, NOR semantics) and the slot record lives on a
# simulated flash with power cuts (simflash.SimFlash). Shown: a good bundle is
# written into the inactive slot, verified, staged, and the boot part then
# runs it; every refusal of the negative set comes back with its NRC and
# stages nothing; the pack is idle meanwhile (FETs held open, CCL = DCL = 0);
# a power cut at every write unit of the update leaves a record that boots
# the old image or the new pending one, never nothing.
import hashlib

import pytest
import isotp
import udsoncan
from udsoncan.client import Client
from udsoncan.exceptions import NegativeResponseException, TimeoutException
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simflash import PowerCut, SimFlash, SimPartition
from tools import authkit
from tools.bmsctl import bundle as tool
from tools.bmsctl import update as U
from tools.benchupdate import TpConnection
from app import uds as board_uds
from bms import auth as A
from bms.params import Params
from bms.state import PackState
from store import cred as C
from store.slotstore import SlotStore
from update import boot as B
from update import slots as S
from update import updater as W

SECRET = bytes(range(32))
FILES = {"app/app.mpy": b"\x4d\x06" + bytes(range(200)) * 3, "lib/bms/soc.mpy": b"\x4d\x06soc" * 100}
IMAGE = b"\xd2\xcd\x31" + bytes((i * 7) & 0xFF for i in range(5000))  # a ROMFS header, then bytes
SLOT = 64 * 1024  # the test partition's slots (the board's are 256 KiB)
ADDR = 3


def _key():
    k = Ed25519PrivateKey.generate()
    return k, bytes.fromhex(tool.public_hex(k))


KEY, PUB = _key()


def bundle(key=KEY, board="host_sim", counter=5, image=IMAGE, files=FILES, manifest=None):
    m = manifest if manifest is not None else tool.manifest(board, "2.0.0", counter, image, files)
    return tool.pack(m, image, key)


class Can:
    FLAG_EXT_ID = 2

    def __init__(self):
        self.sent = []

    def send(self, id_, data, flags):
        self.sent.append((id_, bytes(data), flags))
        return 0


class Pack:
    """One pack's board side: app.uds with a real bms.auth (installer secret
    provisioned), the slot record on a SimFlash, slot A confirmed (counter 3)."""

    def __init__(self, budget=None, fs=None, part=None):
        self.fs = fs if fs is not None else SimFlash()
        self.st = PackState()
        self.params = Params()
        if fs is None:
            C.CredStore(self.fs).save({A.INSTALLER: SECRET})
            rec = B.factory()
            rec[S.COUNTER0] = rec[S.FLOOR] = 3
            SlotStore(self.fs).save(rec)
        self.fs.budget = budget if budget is None else self.fs.used + budget
        self.part = part if part is not None else SimPartition(self.fs, 2 * SLOT)
        self.part.power = self.fs
        self.auth = A.Auth(C.CredStore(self.fs), self.params, _Rng())
        self.can = Can()
        self.resets = 0
        self.defaults = 0
        self.svc = board_uds.Uds(self.st, self.params, self.auth, self.can, lambda: ADDR,
                                 make_updater=self.updater, slot_store=SlotStore(self.fs), running=0,
                                 version=b"1.0", restart=lambda: self._reset, defaults=self._defaults,
                                 file_digest=self._digest)
        self.files = dict(FILES)

    def updater(self):
        return W.Updater(self.part, SlotStore(self.fs), PUB, "host_sim", 1, slot_bytes=SLOT)

    def _reset(self):
        self.resets += 1

    def _defaults(self):
        self.defaults += 1

    def _digest(self, slot, name):
        b = self.files.get(name)
        return hashlib.sha256(b).hexdigest() if b is not None else None

    def record(self):
        return SlotStore(self.fs.remount()).load()[0]


class _Rng:
    def __init__(self):
        self.n = 0

    def __call__(self, n):
        self.n += 1
        return hashlib.sha256(b"nonce%d" % self.n).digest()[:n]


class SimConnection(TpConnection):
    """udsoncan's connection on can-isotp's transport layer logic, pumping the
    pack's service in virtual time (10 ms per step) while it waits."""

    def __init__(self, pack, sa=0xF1):
        self.pack = pack
        tx, rx = U.uds_ids(ADDR, sa)
        self.rx_id = rx
        self.now = 0
        TpConnection.__init__(self, "sim", isotp.TransportLayerLogic(
            rxfn=self._rx, txfn=lambda m: pack.svc.on_frame("can", [m.arbitration_id, bytes(m.data), 2, 0]),
            address=isotp.Address(isotp.AddressingMode.Normal_29bits, txid=tx, rxid=rx),
            params={"tx_padding": 0x55, "override_receiver_stmin": 0}))  # STmin is wall time to can-isotp

    def _rx(self, timeout=0):
        sent = self.pack.can.sent
        while sent:
            id_, data, _ = sent.pop(0)
            if id_ == self.rx_id:
                return isotp.CanMessage(arbitration_id=id_, data=data, extended_id=True)
        return None

    def step(self, ms=10):
        self.tp.process()
        self.pack.svc.tick(self.now)
        self.now += ms
        self.tp.process()

    def specific_wait_frame(self, timeout=None):
        for _ in range(int((timeout or 2) * 100)):
            self.step()
            if self.tp.available():
                return bytes(self.tp.recv())
        raise TimeoutException("no answer within %s s of virtual time" % timeout)


def client(pack, secret=SECRET, sa=0xF1):
    conn = SimConnection(pack, sa)
    c = Client(conn, config=U.client_config(secret))
    c.open()
    return c, conn


def nrc_of(fn, *a):
    with pytest.raises(NegativeResponseException) as e:
        fn(*a)
    return e.value.response.code


def test_a_good_bundle_is_written_verified_staged_and_the_pack_stays_idle_meanwhile():
    pack = Pack()
    c, conn = client(pack)
    data = bundle()
    seen = []

    def progress(done, total):
        seen.append(done)
        if len(seen) == 3:  # mid-transfer: the pack is held idle
            assert pack.st.update_hold
    ident = U.update(c, data, progress)
    assert seen[-1] == len(data) and seen == sorted(seen)
    assert ident["version"] == "1.0"
    assert ident["slots"] == {"running": "A", "confirmed": "A", "pending": "B", "tries": 0}
    assert ident["counters"] == {"floor": 3, "running": 3}
    assert ident["transfer"]["state"] == "staged" and ident["transfer"]["received"] == len(data)
    # slot B holds the image, padded with erased flash; slot A untouched
    assert bytes(pack.part.buf[SLOT:SLOT + len(IMAGE)]) == IMAGE
    assert set(pack.part.buf[SLOT + len(IMAGE):2 * SLOT]) <= {0xFF}
    rec = pack.record()
    assert rec[S.PENDING] == 1 and rec[S.COUNTER1] == 5 and rec[S.CONFIRMED] == 0
    # activate: the reset comes after the positive answer went out
    for _ in range(5):
        conn.step()
    assert pack.resets == 1
    # the boot part's decision on that record: the new image, on trial
    assert B.choose(rec, False, {0, 1}.__contains__)[0] == 1
    assert pack.svc.refused == 0


IDLE = '''{"packs": 1, "duration_s": 600, "seed": 3, "initial": {"soc_pct": 60, "ambient_c": 25}, "events": []}'''


def test_the_programming_session_holds_the_fets_open_and_tells_the_inverter_zero_limits():
    # the bench pack's real composition: app.uds asks (state.update_hold), control and the limits act
    import simworld
    from sim import scenario as scn
    from sim.mock_afe import FAULTS
    w = simworld.World(scn.parse(IDLE, FAULTS), lambda line: None)
    w.run_until(8000)
    app = w.packs[0].app
    st = app.state
    assert st.chg_fet and st.dsg_fet and st.ccl_ma > 0 and st.dcl_ma > 0
    svc = app.uds
    tx, _ = U.uds_ids(st.link_address or 1)

    def ask(*payload):
        svc.on_frame("can", [tx, bytes((len(payload),) + payload + (0,) * (7 - len(payload))), 2, 0])
        w.run_until(w.clock_ms() + 1500)
    assert svc.server is None  # nothing built before a tester speaks
    ask(0x10, 0x02)
    assert svc.server.session == 2 and st.update_hold
    assert not st.chg_fet and not st.dsg_fet and st.ccl_ma == 0 and st.dcl_ma == 0
    from defs.leds import RUN, ALM, UPDATE_MODE
    assert st.leds[RUN] == st.leds[ALM] == UPDATE_MODE  # the update pattern, RUN and ALM together
    assert not any(st.leds[k] for k in range(len(st.leds)) if k not in (RUN, ALM))
    ask(0x10, 0x01)
    assert not st.update_hold
    assert st.leds[ALM] != UPDATE_MODE
    w.run_until(w.clock_ms() + 4000)  # the discharge FET after a new pre-charge
    assert st.chg_fet and st.dsg_fet and st.ccl_ma > 0


def test_a_session_refused_while_current_flows():
    # `004` 7.3: the battery idle or its relays cut off before an upgrade: refused, nothing switched
    pack = Pack()
    pack.st.current_ma = -5000
    c, _ = client(pack)
    assert nrc_of(c.change_session, 2) == 0x22
    assert not pack.st.update_hold and pack.svc.refused == 1


def test_s3_timeout_ends_the_programming_session_and_its_security():
    pack = Pack()
    c, conn = client(pack)
    c.change_session(2)
    c.unlock_security_access(1)
    for _ in range(600):  # 6 s without a request
        conn.step()
    assert pack.svc.session == 1 and not pack.st.update_hold
    assert nrc_of(c.request_download, udsoncan.MemoryLocation(0, 100, 32, 32)) == 0x7F


def _staged_nothing(pack):
    rec = pack.record()
    assert rec[S.PENDING] == S.NONE and rec[S.CONFIRMED] == 0


NEGATIVE = [
    ("bad signature", lambda: bundle()[:-len(IMAGE) - 3] + b"\x00\x00\x00" + IMAGE, "transfer", 0x72, "signature"),
    ("unknown key", lambda: bundle(key=_key()[0]), "transfer", 0x72, "signature"),
    ("wrong board", lambda: bundle(board="esp32_bq"), "transfer", 0x72, "board"),
    ("older security counter", lambda: bundle(counter=2), "transfer", 0x72, "downgrade"),
    ("truncated image", lambda: bundle()[:-100], "transfer", 0x72, "length"),
    ("flipped byte", lambda: bundle()[:-10] + bytes([bundle()[-10] ^ 1]) + bundle()[-9:], "check", 0x72, "hash"),
    ("file hash mismatch", lambda: bundle(manifest=tool.manifest(
        "host_sim", "2.0.0", 5, IMAGE, dict(FILES, **{"app/app.mpy": b"other"}))), "check", 0x72, "file"),
]


@pytest.mark.parametrize("case,make,where,nrc,reason", NEGATIVE, ids=[n[0] for n in NEGATIVE])
def test_refused_with_its_nrc_and_nothing_staged(case, make, where, nrc, reason):
    pack = Pack()
    c, _ = client(pack)
    data = make()
    with pytest.raises(U.UpdateError) as e:
        U.update(c, data)
    assert "NRC 0x%02X" % nrc in str(e.value)
    assert ("TransferData" if where == "transfer" else "RoutineControl") in str(e.value)
    t = c.read_data_by_identifier([U.DID_TRANSFER]).service_data.values[U.DID_TRANSFER]
    assert t["state"] == "failed" and t["reason"] == reason
    _staged_nothing(pack)
    assert pack.svc.refused >= 1 and pack.resets == 0


def test_a_pack_given_no_update_key_refuses_the_download_before_touching_its_slot():
    # update.trust as shipped (no key built in) and nothing commissioned: no bundle is trusted
    pack = Pack()
    pack.updater = lambda: W.Updater(pack.part, SlotStore(pack.fs), None, "host_sim", 1, slot_bytes=SLOT)
    pack.svc.hold.make_updater = pack.updater
    c, _ = client(pack)
    c.change_session(2)
    c.unlock_security_access(1)
    before = bytes(pack.part.buf)
    assert nrc_of(c.request_download, udsoncan.MemoryLocation(0, len(bundle()), 32, 32)) == 0x70
    t = c.read_data_by_identifier([U.DID_TRANSFER]).service_data.values[U.DID_TRANSFER]
    assert t["state"] == "failed" and t["reason"] == "no key"
    assert bytes(pack.part.buf) == before  # no erase
    _staged_nothing(pack)


def _open(pack, c, total, addr=0):
    c.change_session(2)
    c.unlock_security_access(1)
    return c.request_download(udsoncan.MemoryLocation(addr, total, 32, 32)).service_data.max_length - 2


def test_blocks_out_of_order_repeated_or_with_a_wrong_counter_are_refused():
    pack = Pack()
    c, _ = client(pack)
    data = bundle()
    blk = _open(pack, c, len(data))
    assert blk == 256
    c.transfer_data(1, data[:blk])
    assert nrc_of(c.transfer_data, 1, data[:blk]) == 0x73  # repeated
    assert nrc_of(c.transfer_data, 3, data[2 * blk:3 * blk]) == 0x73  # one skipped
    assert nrc_of(c.transfer_data, 0, data[blk:2 * blk]) == 0x73  # a wrong counter
    c.transfer_data(2, data[blk:2 * blk])  # the right one still goes on
    assert nrc_of(c.request_transfer_exit) == 0x24  # not all bytes: a truncated transfer
    assert nrc_of(c.start_routine, U.RT_CHECK) == 0x24
    assert pack.svc.by_nrc[board_uds.U.NRCS.index(0x73)] == 3
    _staged_nothing(pack)


def test_without_installer_authentication_nothing_is_accepted():
    pack = Pack()
    c, _ = client(pack)
    mem = udsoncan.MemoryLocation(0, 1000, 32, 32)
    assert nrc_of(c.request_download, mem) == 0x7F  # default session
    assert nrc_of(c.unlock_security_access, 1) == 0x7F
    c.change_session(2)
    assert nrc_of(c.request_download, mem) == 0x33  # no security access
    assert nrc_of(c.transfer_data, 1, b"x") == 0x33
    assert nrc_of(c.start_routine, U.RT_ACTIVATE) == 0x33
    assert nrc_of(c.ecu_reset, 1) == 0x33
    assert pack.auth.by_reason[A.R_NO_SESSION] == 4
    bad, _ = client(pack, secret=bytes(32))
    assert nrc_of(bad.unlock_security_access, 1) == 0x35  # invalid key
    assert pack.resets == 0


def test_wrong_keys_lock_out_and_a_replayed_key_is_refused():
    pack = Pack()
    c, conn = client(pack, secret=bytes(32))
    c.change_session(2)
    codes = [nrc_of(c.unlock_security_access, 1) for _ in range(5)]
    assert codes == [0x35] * 4 + [0x36]  # auth.FAIL_MAX wrong answers
    assert nrc_of(c.unlock_security_access, 1) == 0x37  # no seed during the lock-out
    # a replay: the right key for a seed already answered
    pack2 = Pack()
    c2, _ = client(pack2)
    c2.change_session(2)
    seed = c2.request_seed(1).service_data.seed
    key = authkit.response(SECRET, bytes(seed), 2)
    c2.send_key(2, key)
    pack2.auth.logout(board_uds.PORT_BASE + 0xF1)
    assert nrc_of(c2.send_key, 2, key) == 0x24  # the nonce is spent: requestSequenceError


def test_identification_works_in_the_default_session_and_unknown_things_are_refused():
    pack = Pack()
    c, _ = client(pack)
    ident = U.identify(c)
    assert ident["version"] == "1.0" and ident["slots"]["running"] == "A"
    assert ident["transfer"]["state"] == "idle"
    c.tester_present()
    assert nrc_of(c.change_session, 3) == 0x12
    c.change_session(2)
    c.unlock_security_access(1)
    assert nrc_of(c.start_routine, 0x1234) == 0x31
    assert nrc_of(c.start_routine, U.RT_ACTIVATE) == 0x24  # nothing staged
    c.start_routine(U.RT_DEFAULTS)
    assert pack.defaults == 1


@pytest.mark.parametrize("exc", [ValueError, MemoryError])
def test_defaults_that_cannot_be_restored_are_refused_and_the_server_goes_on(exc):
    # restore_defaults raises ValueError when the kept values do not validate
    # (nothing changed); MemoryError when the rows' module (imported per use)
    # does not fit: conditionsNotCorrect, not a service failure
    pack = Pack()

    def fail():
        raise exc
    pack.svc.defaults = fail
    c, _ = client(pack)
    c.change_session(2)
    c.unlock_security_access(1)
    assert nrc_of(c.start_routine, U.RT_DEFAULTS) == 0x22
    assert U.identify(c)["version"] == "1.0"


def test_an_interrupted_transfer_resumes_where_it_stopped():
    pack = Pack()
    c, conn = client(pack)
    data = bundle()
    blk = _open(pack, c, len(data))
    for i in range(4):
        c.transfer_data(i + 1, data[i * blk:(i + 1) * blk])
    for _ in range(600):  # the tester went away: S3 ends the session
        conn.step()
    assert pack.svc.session == 1
    c2, _ = client(pack)
    got = []
    U.update(c2, data, lambda done, total: got.append(done), activate=False)
    assert got[0] == 5 * blk  # resumed after the 4 blocks already in
    assert pack.record()[S.PENDING] == 1


def test_a_second_tester_is_kept_out_of_an_open_session():
    pack = Pack()
    c, conn = client(pack)
    c.change_session(2)
    other, _ = client(pack, sa=0xF2)
    other.config["request_timeout"] = 1
    with pytest.raises(TimeoutException):
        other.tester_present()
    assert pack.svc.busy >= 1


# ---- power cuts ------------------------------------------------------------------

def _run_update(pack, data):
    """The board side's calls of one session, as app.uds makes them."""
    u = pack.updater()

    def ok(r):
        if pack.fs.dead:
            raise PowerCut("the updater saw the cut as a flash failure (%d)" % r)
        assert r == 0
    ok(u.begin(len(data), 0))
    for i in range(0, len(data), 256):
        ok(u.feed(data, i, min(i + 256, len(data))))
    ok(u.end())
    ok(u.check(pack._digest))


OLD_A = b"\xd2\xcd\x31" + bytes(range(256)) * 8  # the confirmed image in slot A
OLD_B = b"\xd2\xcd\x31" + b"earlier" * 300  # an earlier update, staged and never run


def _start(pack, earlier):
    pack.part.buf[:len(OLD_A)] = OLD_A
    if earlier:  # slot B holds an image staged before: the new transfer must drop it first
        pack.part.buf[SLOT:SLOT + len(OLD_B)] = OLD_B
        SlotStore(pack.fs).save(S.stage(pack.record(), 1, 4))


def _cuts(prepare, data):
    """One update after prepare(pack), cut at every write unit of it in turn:
    yields (cut, the pack after the cut, the number of write units)."""
    ref = Pack()
    prepare(ref)
    start = ref.fs.used
    _run_update(ref, data)
    units = ref.fs.used - start
    for cut in range(units + 1):
        pack = Pack()
        prepare(pack)
        pack.fs.budget = pack.fs.used + cut
        try:
            _run_update(pack, data)
            assert cut == units
        except PowerCut:
            assert cut < units
        yield cut, pack, units


def _boots(pack):
    """(the slot the boot part picks after a restart on pack's flash, the record)."""
    rec = SlotStore(pack.fs.remount()).load()[0]
    return B.choose(rec, False, lambda s: pack.part.buf[s * SLOT:s * SLOT + 3] == b"\xd2\xcd\x31")[0], rec


@pytest.mark.parametrize("earlier", [False, True], ids=["B empty", "B staged before"])
def test_a_power_cut_at_every_write_unit_leaves_the_old_image_or_the_new_one_pending(earlier):
    data = bundle()
    seen = set()
    for cut, pack, units in _cuts(lambda p: _start(p, earlier), data):
        slot, rec = _boots(pack)
        b = bytes(pack.part.buf[SLOT:SLOT + len(IMAGE)])
        if slot == 0:
            assert bytes(pack.part.buf[:len(OLD_A)]) == OLD_A and rec[S.PENDING] == S.NONE
            seen.add("old")
        elif b == IMAGE and rec[S.COUNTER1] == 5:
            seen.add("new")
        else:
            assert earlier and b[:len(OLD_B)] == OLD_B and rec[S.COUNTER1] == 4, cut
            seen.add("earlier")
        assert slot in (0, 1), cut  # never recovery, never nothing
        if cut % 13 == 0:  # and an update after the cut succeeds
            again = Pack(fs=pack.fs.remount(), part=pack.part)
            _run_update(again, data)
            assert again.record()[S.PENDING] == 1
    assert seen == ({"old", "new", "earlier"} if earlier else {"old", "new"})
    print("%s: %d power cuts tried (%d write units: block erases, 256-byte pages, record bytes)"
          % ("B staged before" if earlier else "B empty", units + 1, units))


def test_the_staged_image_is_booted_by_the_boot_part(tmp_path, mpy32):
    # the real boot part (update.boot) in the 32-bit MicroPython on the partition the session wrote
    import test_boot_slots as T
    a, b = T._image(tmp_path, "A"), T._image(tmp_path, "B")
    data = tool.pack(tool.manifest("host_sim", "2.0.0", 5, b, {}), b, KEY)
    pack = Pack()
    part = bytearray(b"\xff" * T.PART_BYTES)
    part[:len(a)] = a
    pack.part = SimPartition(pack.fs, T.PART_BYTES, data=part)
    pack.updater = lambda: W.Updater(pack.part, SlotStore(pack.fs), PUB, "host_sim", 1)
    pack.svc.hold.make_updater = pack.updater
    pack.files = {}
    c, _ = client(pack)
    U.update(c, data, activate=False)
    (tmp_path / "p").write_bytes(bytes(pack.part.buf))
    boot = T.Pack(tmp_path, str(tmp_path / "p"))
    boot.write(pack.record())
    assert boot.boot()[:3] == [B.RUN, 1, "B"]


# ---- the command line, over python-can ----------------------------------------------

class PcanPort:
    """The board side's CAN port on a python-can bus."""
    FLAG_EXT_ID = 2

    def __init__(self, bus):
        self.bus = bus

    def send(self, id_, data, flags):
        import can
        self.bus.send(can.Message(arbitration_id=id_, data=bytes(data), is_extended_id=True))
        return 0


def test_bmsctl_update_over_a_python_can_bus(tmp_path, capsys):
    # the board side on a python-can virtual bus in its own thread (real time: 10 ms ticks)
    import threading
    import time
    import can
    from tools.bmsctl.cli import main as bmsctl
    small = b"\xd2\xcd\x31" + bytes(600)
    (tmp_path / "fw.bmsu").write_bytes(bundle(image=small, files={}))
    (tmp_path / "inst.key").write_text(SECRET.hex())
    pack = Pack()
    pack.files = {}
    chan = "uds-%d" % id(pack)
    bus = can.Bus(interface="virtual", channel=chan)
    pack.svc.can = PcanPort(bus)
    stop = []

    def board():
        t0 = time.monotonic()
        next_tick = 0
        while not stop:
            m = bus.recv(0.002)
            now = int((time.monotonic() - t0) * 1000)
            if m is not None:
                pack.svc.now_ms = now
                pack.svc.on_frame("can", [m.arbitration_id, m.data, 2, 0])
            if now >= next_tick:
                pack.svc.tick(now)
                next_tick = now + 10
    th = threading.Thread(target=board, daemon=True)
    th.start()
    try:
        assert bmsctl(["--via", "can:virtual:" + chan, "--unit", str(ADDR), "--secret-file", str(tmp_path / "inst.key"),
                       "update", str(tmp_path / "fw.bmsu")]) == 0
        time.sleep(0.1)
    finally:
        stop.append(1)
        th.join()
        bus.shutdown()
    out = capsys.readouterr().out
    assert "pack 3: staged in slot B" in out
    assert pack.record()[S.PENDING] == 1 and pack.resets == 1
    # and its one-line errors
    assert bmsctl(["--via", "can:virtual:" + chan, "update", str(tmp_path / "fw.bmsu")]) == 1
    assert "needs the installer secret" in capsys.readouterr().err
    assert bmsctl(["--via", "serial:/dev/x", "--secret-file", str(tmp_path / "inst.key"), "update",
                   str(tmp_path / "fw.bmsu")]) == 1
    assert "update runs over CAN" in capsys.readouterr().err


# ---- the board side in the 32-bit MicroPython -------------------------------------------

# the board's ROMFS partition and board object in MicroPython (test_update_gate shares them)
MPY_PARTITION = """
class Part(bytearray):  # the partition object: the buffer protocol and the block-device calls
    def ioctl(self, op, arg):
        if op == 5:
            return 4096
        if op == 6:
            self[arg * 4096:(arg + 1) * 4096] = b"\\xff" * 4096
        return 0
    def writeblocks(self, n, buf, off):
        self[n * 4096 + off:n * 4096 + off + len(buf)] = buf

class Board:
    rom = None
"""

MPY_UPDATE = """
import micropython, time, vfs
from store.memfs import MemFs
from store.slotstore import SlotStore
from update import boot, slots, updater as W
""" + MPY_PARTITION + """
def run(path, part):
    board = Board()
    board.rom = part
    fs = MemFs()
    st = SlotStore(fs)
    st.save(boot.factory())
    u = W.Updater(part, SlotStore(fs), PUB, "host_sim", 1, SLOT)
    data = open(path, "rb").read()
    if u.begin(len(data), 0):
        return "begin", u.reason
    t0 = time.ticks_ms()
    sig_ms = 0
    for i in range(0, len(data), 256):
        t = time.ticks_ms()
        hc = u.header_completes(min(256, len(data) - i))
        if u.feed(data, i, min(i + 256, len(data))):
            return "feed", u.reason
        if hc:
            sig_ms = time.ticks_diff(time.ticks_ms(), t)
    if u.end() or u.check(lambda slot, name: W.romfs_digest(vfs, board, slot, name, SLOT)):
        return "check", W.REASONS[u.reason]
    return "staged", SlotStore(fs).load()[0][slots.PENDING], sig_ms

print(run(GOOD, Part(b"\\xff" * (2 * SLOT))))
print(run(BAD, Part(b"\\xff" * (2 * SLOT))))

# the per-frame path of app.uds: ISO-TP reassembly of a TransferData
from app.uds import Uds
from bms.state import PackState
from bms.params import Params
from bms.auth import Auth
class Can:
    FLAG_EXT_ID = 2
    def send(self, i, d, f):
        return 0
u = Uds(PackState(), Params(), Auth(None, Params(), None), Can(), lambda: 3)
ff = [0x18DA03F1, bytearray(b"\\x10\\x0a\\x36\\x01\\x00\\x00\\x00\\x00"), 2, 0]
cf = [0x18DA03F1, bytearray(b"\\x21\\x00\\x00\\x00\\x00\\xcc\\xcc\\xcc"), 2, 0]
other = [0x18EF03F1, bytearray(8), 2, 0]
u.on_frame("can", ff)
def frames():
    # heap_probe.locked(fn) calls fn(*args): that call allocates itself in the 32-bit unix 1.27
    micropython.heap_lock()
    try:
        for _ in range(50):
            u.on_frame("can", ff)
            u.on_frame("can", cf)
            u.on_frame("can", other)
        r = u._n
    except MemoryError:
        r = "allocates"
    micropython.heap_unlock()
    return r
def can_fail():
    micropython.heap_lock()
    try:
        x = [1]
        r = False
    except MemoryError:
        r = True
    micropython.heap_unlock()
    return r
print(can_fail(), frames())
"""


def test_the_board_side_in_32_bit_micropython(tmp_path, mpy32):
    import test_boot_slots as T
    img = T._image(tmp_path, "B")
    files = {"bms_main.py": b"from slotlib import SLOT\n", "lib/slotlib.py": b"SLOT = 'B'\n"}
    good = tool.pack(tool.manifest("host_sim", "2.0.0", 5, img, files), img, KEY)
    bad = tool.pack(tool.manifest("host_sim", "2.0.0", 5, img, dict(files, **{"lib/slotlib.py": b"x"})), img, KEY)
    (tmp_path / "good").write_bytes(good)
    (tmp_path / "bad").write_bytes(bad)
    code = "SLOT = %d\nPUB = %r\nGOOD = %r\nBAD = %r\n" % (SLOT, PUB, str(tmp_path / "good"), str(tmp_path / "bad")) + MPY_UPDATE
    r = mpy32(code, heap="1M")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    staged = eval(lines[0])
    assert staged[:2] == ("staged", 1)  # the real VfsRom read every file of the written slot
    print("signature check + header in the 32-bit MicroPython: %d ms" % staged[2])
    assert eval(lines[1]) == ("check", "file")
    assert lines[2] == "True 10"  # the lock catches an allocation, and 150 frames reassembled without an allocation


def test_a_power_cut_during_a_recovery_update_leaves_recovery_or_the_new_image_pending():
    # slot A's image is gone (its header erased: the pack boots recovery, update.boot.choose), and
    # recovery's session writes slot B with the same Updater: a cut at every write unit of it
    def damaged(pack):
        pack.part.buf[:len(OLD_A)] = b"\xff" * len(OLD_A)
    ref = Pack()
    damaged(ref)
    assert _boots(ref)[0] == S.RECOVERY
    data = bundle()
    seen = set()
    for cut, pack, units in _cuts(damaged, data):
        slot, rec = _boots(pack)
        if slot == S.RECOVERY:
            seen.add("recovery")  # nothing staged: recovery again, which takes the update again
        else:
            assert slot == 1 and bytes(pack.part.buf[SLOT:SLOT + len(IMAGE)]) == IMAGE, cut
            assert rec[S.PENDING] == 1
            seen.add("new")
        if slot == S.RECOVERY and cut % 7 == 0:
            again = Pack(fs=pack.fs.remount(), part=pack.part)
            _run_update(again, data)
            assert again.record()[S.PENDING] == 1 and _boots(again)[0] == 1
    assert seen == {"recovery", "new"}
    print("recovery: %d power cuts tried (%d write units)" % (units + 1, units))
