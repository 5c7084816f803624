# Owns the host-protocol targets of the fuzzing campaign (tools/fuzz.py, make
# fuzz): the Modbus handler (firmware/app/host.py with hostctl, hostfile,
# lib/proto/modbus.py and the real lib/bms/auth.Auth) of a bench pack wired by
# app.compose (simworld: its persist service, store and event log), reached
#   modbus-rtu  byte streams into Host.on_rs485: RTU requests built by pymodbus
#               and by the PDU generator below, mutated (bit flips, truncation,
#               splicing, garbage, back-to-back), half of them with the CRC
#               fixed up afterwards so the PDU parser is reached
#   modbus-pdu  PDUs into Host.pdu (framing bypassed): every function code,
#               every block's edges, writes, logins, commands and file records,
#               the update blocks of the user-defined FC 0x41,
#               on ports with no session, a user and an installer session
#   isotp       CAN frames into app.hostcan.HostCan (proto.isotp): requests
#               segmented as ISO 15765-2 says, then mutated; PCI garbage, wrong
#               sequence numbers, other ids and testers, flow control games
# Checked after every input: nothing raised, host.errors stays 0 (an internal
# error answered with 04 is a bug), the replies are well-formed (CRC and unit,
# function code or fc | 0x80 with a code, ISO-TP ids and PCI), and the pack's
# state (PackState, params.v, the event log, the clock, every store write) is
# unchanged unless a write was accepted: a refused request, any read, a port
# without a session change nothing; an accepted parameter write changes only
# the rows it addresses. Replies are decoded here from the Modbus documents,
# not with the firmware's encoder.
import hashlib
import hmac
import random
import struct

from tools import paths  # noqa: F401  (lib/, firmware/ on sys.path)
from tools.fuzzkit import Finding, INTERESTING

SCENARIO = '{"packs": 1, "duration_s": 3600, "seed": 5, "initial": {"soc_pct": 60, "ambient_c": 25}}'
SECRETS = {1: bytes(range(32)), 2: bytes(range(100, 132))}  # provisioned user and installer secrets
BLOCK_INPUTS = 1500  # inputs per session mode (none, user, installer) before the next
UNITS = (1, 1, 1, 1, 1, 1, 1, 0, 2, 247, 255)
OTHER_FCS = (0x01, 0x02, 0x05, 0x07, 0x08, 0x0B, 0x0C, 0x0F, 0x11, 0x16, 0x17, 0x18, 0x2B, 0x5A, 0x80, 0xFF)


# --- CRC-16/MODBUS: pymodbus's (an implementation independent of proto.modbus)

def adu(unit, pdu):
    """The RTU frame: unit, PDU, CRC (pymodbus's framer gives it high byte first, the
    bytes on the wire low byte first)."""
    from pymodbus.framer import FramerRTU
    b = bytes((unit,)) + bytes(pdu)
    return b + FramerRTU.compute_CRC(b).to_bytes(2, "big")


def crc_ok(frame):
    from pymodbus.framer import FramerRTU
    return len(frame) >= 4 and FramerRTU.check_CRC(frame[:-2], int.from_bytes(frame[-2:], "big"))


# --- the rig ---------------------------------------------------------------------

class Rig:
    """One bench pack (simworld) as app.compose wires it; its Host's RTU
    replies captured, both levels provisioned, store writes counted."""

    def __init__(self):
        import simworld
        from sim import scenario as scn
        from sim.mock_afe import FAULTS
        from app import host as H
        from bms import params as P
        from bms import prows
        self.H = H
        w = simworld.World(scn.parse(SCENARIO, FAULTS), lambda line: None)
        w.run_until(8000)
        self.app = app = w.packs[0].app
        self.host, self.can_svc = app.host.build()[:2]  # [Host, HostCan, Relay] (app.hostbuild.services)
        self.host.port = self  # RTU replies land in self.out
        self.out = []
        self.auth = self.host.auth
        for level, secret in SECRETS.items():
            if not self.auth.provision(level, secret, True):
                raise Finding("the rig could not provision level %d" % level)
        self.now = w.runner.now_ms
        self.store_writes = 0
        fs = app.store.fs
        for name in ("_write", "_truncate", "rename", "remove"):
            setattr(fs, name, self._counted(getattr(fs, name)))
        st = app.state
        self._st = _getter(st, ACTIVITY)
        self._snap = _getter(st.snap)
        self.rows = [(P.row_int(prows.MIN, i), P.row_int(prows.MAX, i)) for i in range(prows.N)]
        self.blocks = self._blocks()

    def write(self, b):  # the RTU port
        self.out.append(bytes(b))
        return len(b)

    def _counted(self, fn):
        def f(*a):
            self.store_writes += 1
            return fn(*a)
        return f

    def _blocks(self):
        from proto import sunspec as ss
        H = self.H
        return ((H.INFO, H.INFO + H.INFO_REGS), (H.DIAG, H.DIAG + H.DIAG_REGS),
                (H.CHALLENGE, H.CHALLENGE + H.CHALLENGE_REGS), (H.LOGIN, H.LOGIN + 1),
                (H.CTL, H.CTL + H.CTL_REGS), (H.PARAM, H.PARAM + H.PARAM_REGS), (ss.SUNS, ss.TOP),
                (ss.AT_802, ss.AT_805), (ss.AT_805, ss.AT_END))

    def fingerprint(self):
        """Everything an accepted write may change: the state, the parameters,
        the event log, the clock, the store."""
        a = self.app
        st = a.state
        log = a.persist.store.log
        return (self._st(st), self._snap(st.snap), _arrays(st), _arrays(st.snap), tuple(a.params.v),
                st.events.next_seq, log.next_seq, log.oldest_seq(), a.persist.clock.base_s, self.store_writes)

    def tick(self, dt_ms):
        from defs.ticks import ticks_add
        self.now = ticks_add(self.now, dt_ms)
        self.host.tick(self.now)

    # sessions: the real protocol (challenge read, HMAC-SHA-256 login write)
    def login(self, port, level):
        out = bytearray(256)
        H = self.H
        req = struct.pack(">BHH", 3, H.CHALLENGE, H.CHALLENGE_REGS)
        k = self.host.pdu(1, bytearray(req), len(req), out, port)
        if k != 18 or out[0] != 3:
            return False
        mac = hmac.new(SECRETS[level], bytes(out[2:18]) + bytes((level,)), hashlib.sha256).digest()
        req = struct.pack(">BHHB", 0x10, H.LOGIN, H.LOGIN_REGS, 2 * H.LOGIN_REGS) + struct.pack(">H", level) + mac
        k = self.host.pdu(1, bytearray(req), len(req), out, port)
        return k == 5 and out[0] == 0x10

    def hold(self, port, level):
        """Keep port at level (0: logged out); lifts a lock-out by waiting it out."""
        auth = self.auth
        have = auth.level(port, self.now)
        if have == level:
            return 0
        if level == 0:
            auth.logout(port)
            return 0
        if auth.locked:
            self.tick(auth.lock_remaining_ms(self.now) + 1)
        if not self.login(port, level):
            raise Finding("the harness could not log in at level %d on port %r (auth refused %d, reason %d)"
                          % (level, port, auth.refused, auth.last_reason))
        return 1


# PackState fields every request moves, refused or not: not "state" a refusal may not change
ACTIVITY = ("host_requests",)  # app.host: activity on the PC port wakes a sleeping pack


def _getter(obj, skip=()):
    import operator
    names = [k for k, v in sorted(vars(obj).items()) if isinstance(v, (int, bool, type(None))) and k not in skip]
    return operator.attrgetter(*names)


def _arrays(obj):
    return tuple(bytes(v) for _, v in sorted(vars(obj).items()) if hasattr(v, "itemsize") or isinstance(v, bytearray))


# --- the PDU generator --------------------------------------------------------------

def _addr(rng, rig):
    if rng.random() < 0.08:
        return rng.randrange(0x10000)
    lo, hi = rng.choice(rig.blocks)
    return max(0, min(0xFFFF, rng.choice((lo - 1, lo, lo, lo + 1, hi - 1, hi - 2, hi, rng.randrange(lo, hi)))))


def _write_addr(rng, rig):
    """Mostly a parameter row (its first word) or a command register: the writes that can land."""
    H = rig.H
    r = rng.random()
    if r < 0.5:
        return H.PARAM + 2 * rng.randrange(H.PARAM_REGS // 2) + (rng.random() < 0.1)
    if r < 0.75:
        return H.CTL + rng.randrange(H.CTL_REGS)
    return _addr(rng, rig)


def _count(rng, a, rig, most):
    for lo, hi in rig.blocks:
        if lo <= a < hi and rng.random() < 0.3:
            return min(most + 1, hi - a + rng.choice((0, 0, 1)))
    return rng.choice((1, 1, 2, 2, 3, 4, 8, 16, 17, 36, most, most + 1, 0, rng.randrange(1, most + 1),
                       rng.randrange(0x10000)))


def _param_words(rng, rig, i):
    lo, hi = rig.rows[i]
    v = rng.choice((lo, hi, lo + 1, hi - 1, (lo + hi) // 2, rng.randint(lo, hi), rng.randint(lo, hi),
                    rng.randint(lo, hi), rng.randint(lo, hi), lo - 1, hi + 1, rng.randrange(-1 << 31, 1 << 31)))
    v &= 0xFFFFFFFF
    return [v >> 16, v & 0xFFFF]


def _ctl_words(rng, rig, k, n):
    import app.hostctl as C
    if k == C.H_CLOCK:
        v = rng.choice((C.CLOCK_MIN_S, 1767225600, C.CLOCK_MIN_S - 1, 0x7FFFFFFF, 0x80000000))
    elif k in (C.H_I_OFFSET, C.H_FCC, C.H_SOC, C.H_CYCLES):
        v = rng.choice((0, 1, -1, 50, -50, 100000, 50000, 110000, 500000, 1000000, 1000001, C.MAX_CYCLES,
                        rng.randrange(-1 << 31, 1 << 31))) & 0xFFFFFFFF
    else:
        v = rng.choice((0, 1, 1, 2, 3, 4, 0xFFFF))
    w = [v >> 16, v & 0xFFFF] if n == 2 else [v & 0xFFFF]
    return (w + [rng.randrange(0x10000) for _ in range(n)])[:n]


def _words(rng, rig, a, c):
    H = rig.H
    if H.PARAM <= a < H.PARAM + H.PARAM_REGS and rng.random() < 0.8:
        first = (a - H.PARAM) & ~1
        w = []
        for i in range(first // 2, min(H.PARAM_REGS // 2, (a - H.PARAM + c + 1) // 2 + 1)):
            w += _param_words(rng, rig, i)
        w = w[(a - H.PARAM) - first:]
        return (w + [0] * c)[:c]
    if H.CTL <= a < H.CTL + H.CTL_REGS and rng.random() < 0.8:
        return _ctl_words(rng, rig, a - H.CTL, c)
    return [rng.choice((0, 1, 2, 0x7FFF, 0x8000, 0xFFFF, rng.randrange(0x10000))) for _ in range(c)]


def _file_subs(rng, rig, write):
    log = rig.app.persist.store.log
    subs = bytearray()
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        ref = 6 if rng.random() < 0.92 else rng.choice((0, 5, 7, 255))
        f = rng.choice((1, 1, 2, 2, 2, 3, 0, 0xFFFF, rng.randrange(0x10000)))
        if f == 1:
            rec, n = rng.randrange(0, 7), rng.choice((1, 2, 3, 6, 7, 0))
        else:
            seq = max(0, log.next_seq - rng.choice((1, 2, 5, 13, 0, -1, 300, 3000)))
            if f == 2 and rng.random() < 0.7:
                f = 2 + seq // 10000
            rec = rng.choice((seq % 10000, seq % 10000, 0, 9999, 10000, rng.randrange(0x10000)))
            n = rng.choice((9, 18, 9 * rng.randrange(1, 14), 9 * 14, 8, 0, rng.randrange(0x10000)))
        subs += struct.pack(">BHHH", ref, f, rec, n & 0xFFFF)
        if write:
            subs += bytes(2 * min(n, 8))
    return subs


def gen_pdu(rng, rig):
    """One request PDU (bytes), most of them well-formed for their function code."""
    r = rng.random()
    if r < 0.03:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 24)))
    if r < 0.28:
        a = _addr(rng, rig)
        if rng.random() < 0.1:
            a, c = rig.H.CHALLENGE, rig.H.CHALLENGE_REGS
        else:
            c = _count(rng, a, rig, 125)
        pdu = struct.pack(">BHH", rng.choice((3, 3, 4)), a, c & 0xFFFF)
    elif r < 0.43:
        a = _write_addr(rng, rig)
        pdu = struct.pack(">BHH", 6, a, _words(rng, rig, a, 1)[0])
    elif r < 0.68:
        a = _write_addr(rng, rig)
        if rng.random() < 0.08:
            a = rig.H.LOGIN
            c = rig.H.LOGIN_REGS
            w = [rng.choice((0, 1, 2, 3))] + [rng.randrange(0x10000) for _ in range(16)]
        else:
            c = _count(rng, a, rig, 123) if rng.random() < 0.3 else rng.choice((1, 2, 2, 2, 2, 4, 6))
            c &= 0xFFFF
            w = _words(rng, rig, a, min(c, 127))
        data = struct.pack(">%dH" % len(w), *w)
        bc = len(data) if rng.random() < 0.93 else rng.randrange(256)
        pdu = struct.pack(">BHHB", 0x10, a, c, bc & 0xFF) + data
    elif r < 0.80:
        subs = _file_subs(rng, rig, False)
        pdu = bytes((0x14, len(subs) & 0xFF)) + subs
    elif r < 0.83:
        subs = _file_subs(rng, rig, True)
        pdu = bytes((0x15, len(subs) & 0xFF)) + subs
    elif r < 0.86:
        pdu = _update_block(rng)
    elif r < 0.92:
        pdu = bytes((0x2B, 0x0E if rng.random() < 0.9 else rng.choice((0x0D, 0, 0xFF)),
                     rng.choice((1, 2, 3, 4, 0, 5, 255)), rng.choice((0, 1, 2, 3, 4, 0x80, 255))))
    else:
        fc = rng.choice(OTHER_FCS) if rng.random() < 0.7 else rng.randrange(256)
        pdu = bytes((fc,)) + bytes(rng.getrandbits(8) for _ in range(rng.choice((0, 1, 2, 4, 4, 5, 6, 9))))
    if rng.random() < 0.12:
        pdu = _mutate(rng, pdu)
    return pdu[:253]


def _update_block(rng):
    """FC 0x41 (app.hostupd's update block, user-defined): byte count, block
    number, bundle bytes; the byte count mostly right, the lengths around a
    block's 240 bytes."""
    data = bytes(rng.getrandbits(8) for _ in range(rng.choice((240, 240, 240, 1, 17, 239, 241, 0, 249))))
    block = rng.choice((0, 0, 1, 2, 0xFFFF, rng.randrange(0x10000)))
    bc = 2 + len(data) if rng.random() < 0.85 else rng.randrange(256)
    return bytes((0x41, bc & 0xFF)) + struct.pack(">H", block) + data


def _mutate(rng, data):
    d = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        op = rng.random()
        if op < 0.5 and d:
            i = rng.randrange(len(d))
            d[i] = rng.choice((d[i] ^ (1 << rng.randrange(8)), rng.randrange(256), rng.choice(INTERESTING)))
        elif op < 0.7 and d:
            d = d[:rng.randrange(len(d))]
        elif op < 0.85:
            i = rng.randrange(len(d) + 1)
            d[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 4)))
        elif d:
            i = rng.randrange(len(d))
            del d[i:i + rng.randrange(1, 4)]
    return bytes(d)


# --- RTU seeds from pymodbus ---------------------------------------------------------

def pymodbus_seeds(rig, rng, n=400):
    """Real RTU requests of every function code pymodbus builds, at the map's addresses."""
    from pymodbus.framer import FramerRTU
    from pymodbus.pdu import FileRecord
    from pymodbus.pdu import bit_message as bm, register_message as rm, file_message as fm
    from pymodbus.pdu import mei_message as mm, other_message as om, diag_message as dm
    from tools.bmsctl.mbpdu import UpdateBlockRequest, decoder
    framer = FramerRTU(decoder(True))
    out = []
    makers = (
        lambda a, u: rm.ReadHoldingRegistersRequest(address=a, count=_count(rng, a, rig, 125) % 126 or 1, dev_id=u),
        lambda a, u: rm.ReadInputRegistersRequest(address=a, count=_count(rng, a, rig, 125) % 126 or 1, dev_id=u),
        lambda a, u: rm.WriteSingleRegisterRequest(address=a, registers=_words(rng, rig, a, 1), dev_id=u),
        lambda a, u: rm.WriteMultipleRegistersRequest(address=a, registers=_words(rng, rig, a, rng.choice((1, 2, 2, 4, 17))), dev_id=u),
        lambda a, u: rm.MaskWriteRegisterRequest(address=a, and_mask=0xFF00, or_mask=0x0012, dev_id=u),
        lambda a, u: rm.ReadWriteMultipleRegistersRequest(read_address=a, read_count=2, write_address=a, write_registers=[1, 2], dev_id=u),
        lambda a, u: bm.ReadCoilsRequest(address=a, count=8, dev_id=u),
        lambda a, u: bm.ReadDiscreteInputsRequest(address=a, count=8, dev_id=u),
        lambda a, u: bm.WriteSingleCoilRequest(address=a, bits=[True], dev_id=u),
        lambda a, u: bm.WriteMultipleCoilsRequest(address=a, bits=[True, False, True], dev_id=u),
        lambda a, u: fm.ReadFileRecordRequest(records=[FileRecord(file_number=rng.choice((1, 2)), record_number=a % 10000, record_length=rng.choice((6, 9, 18)))], dev_id=u),
        lambda a, u: fm.WriteFileRecordRequest(records=[FileRecord(file_number=2, record_number=a % 10000, record_data=b"\x00\x01\x00\x02")], dev_id=u),
        lambda a, u: fm.ReadFifoQueueRequest(address=a, dev_id=u),
        lambda a, u: UpdateBlockRequest(a % 4, bytes(rng.choice((240, 13))), dev_id=u),
        lambda a, u: mm.ReadDeviceInformationRequest(read_code=rng.choice((1, 2, 3, 4)), object_id=a % 4, dev_id=u),
        lambda a, u: om.ReadExceptionStatusRequest(dev_id=u),
        lambda a, u: om.GetCommEventCounterRequest(dev_id=u),
        lambda a, u: om.GetCommEventLogRequest(dev_id=u),
        lambda a, u: om.ReportDeviceIdRequest(dev_id=u),
        lambda a, u: dm.ReturnQueryDataRequest(message=b"\x12\x34", dev_id=u),
        lambda a, u: dm.RestartCommunicationsOptionRequest(dev_id=u),
    )
    while len(out) < n:
        mk = rng.choice(makers)
        try:
            out.append(bytes(framer.buildFrame(mk(_addr(rng, rig), rng.choice(UNITS)))))
        except Exception:  # a maker this pymodbus version builds differently: the others remain
            continue
    return out


def gen_rtu(rng, rig, seeds, session):
    """One byte stream for Host.on_rs485."""
    unit = rng.choice(UNITS) if not session else rng.choice((1, 1, 1, 1, 2, 247))
    r = rng.random()
    if r < 0.45:
        s = bytearray(rng.choice(seeds))
        s[0] = unit if rng.random() < 0.8 else s[0]
    else:
        s = bytearray(adu(unit, gen_pdu(rng, rig)))
    r = rng.random()
    if r < 0.45:
        s = bytearray(_mutate(rng, s))
        if len(s) >= 4 and rng.random() < 0.6:  # CRC fixed up: the parser gets the mutated PDU
            s = bytearray(adu(s[0], s[1:-2]))
    elif r < 0.55:  # splice: a cut-off request, then a whole one (no gap between)
        t = bytearray(rng.choice(seeds))
        s = s[:rng.randrange(1, len(s) + 1)] + t
    elif r < 0.62:  # two whole requests back to back
        s = s + bytearray(adu(unit, gen_pdu(rng, rig)))
    elif r < 0.67:
        s = bytearray(rng.getrandbits(8) for _ in range(rng.randrange(1, 40)))
    elif r < 0.70:
        s = bytearray(rng.getrandbits(8) for _ in range(rng.randrange(250, 300)))
    if session and s and s[0] == 0:
        s[0] = 1  # no broadcast with a session: every frame's outcome is seen
    return bytes(s)


# --- replies, decoded from Application Protocol 4.1 / 7 and Serial Line 2.5.1 ------------

def _rtu_replies(rig, stream_units):
    """The PDUs of the captured RTU replies (checked: CRC, unit, exception code)."""
    pdus = []
    for f in rig.out:
        if len(f) < 5 or not crc_ok(f):
            raise Finding("a reply with a bad CRC or too short: %s" % f.hex())
        if f[0] not in stream_units or f[0] == 0:
            raise Finding("a reply for unit %d, not asked: %s" % (f[0], f.hex()))
        pdus.append(f[1:-2])
    rig.out.clear()
    return pdus


def _verdict(pdus, exc_ok=(1, 2, 3, 6)):
    """'refused' (all exceptions), 'read' (reads answered, no write accepted) or
    a list of the accepted writes' (fc, address, count) from their echoes."""
    writes = []
    for p in pdus:
        if p[0] & 0x80:
            if len(p) != 2 or p[1] not in exc_ok:
                raise Finding("exception reply %s: not one of the codes %s" % (p.hex(), exc_ok))
        elif p[0] in (0x06, 0x10):
            if len(p) != 5:
                raise Finding("a write reply of %d bytes: %s" % (len(p), p.hex()))
            a, x = struct.unpack(">HH", p[1:5])
            writes.append((p[0], a, 1 if p[0] == 0x06 else x))
    if writes:
        return writes
    return "read" if any(not p[0] & 0x80 for p in pdus) else "refused"


def _check(rig, before, verdict, what, unknown=False):
    after = rig.fingerprint()
    if after == before:
        return
    if unknown:
        return
    if not isinstance(verdict, list):
        raise Finding("%s (%s) changed the state: %s" % (what, verdict, _diff(rig, before, after)))
    H = rig.H
    allowed = set()
    for fc, a, c in verdict:
        if H.PARAM <= a < H.PARAM + H.PARAM_REGS:
            allowed.update(range((a - H.PARAM) // 2, (a + c - 1 - H.PARAM) // 2 + 1))
        elif H.CTL <= a < H.CTL + H.CTL_REGS:
            return  # commands (defaults, buzzer, calibration, ...) change what they name
        elif a == H.LOGIN:
            continue
    changed = {i for i, (x, y) in enumerate(zip(before[4], after[4])) if x != y}
    if not changed <= allowed:
        raise Finding("%s: an accepted parameter write to rows %s changed rows %s" % (
            what, sorted(allowed), sorted(changed - allowed)))
    if before[:4] != after[:4]:
        raise Finding("%s: an accepted parameter write changed the pack's state: %s" % (
            what, _diff(rig, before, after)))


def _diff(rig, a, b):
    names = ("PackState", "snapshot", "PackState arrays", "snapshot arrays", "params.v", "state events",
             "log next_seq", "log oldest_seq", "clock base_s", "store writes")
    return ", ".join(n for n, x, y in zip(names, a, b) if x != y)


def _errors(rig, what):
    if rig.host.errors:
        raise Finding("%s: the handler counted an internal error (answered 04)" % what)
    from app import service
    if len(rig.host._views) > service._VIEWS:
        raise Finding("the RTU reply-view cache passed its bound")


# --- the runs ---------------------------------------------------------------------------

def run_rtu(n, seed, rig=None):
    from app.host import PORT_RTU
    rng = random.Random(seed)
    rig = rig or Rig()
    seeds = pymodbus_seeds(rig, rng)
    host = rig.host
    framer = host.framer
    s = b""
    for i in range(n):
        level = (i // BLOCK_INPUTS) % 3
        held = s  # bytes the framer may still hold: back to back, no gap
        if rng.random() > 0.05:  # else back to back with the previous input
            rig.tick(rng.choice((1, 5, 20)))
            rig.tick(rng.choice((1, 5, 20, 50)) + rig.H.GAP_MS)  # the framer's gap: it holds nothing now
            rig.hold(PORT_RTU, level)
            held = b""
        s = gen_rtu(rng, rig, seeds, level > 0)
        before = rig.fingerprint()
        frames, replies = framer.frames, host.replies
        what = "modbus-rtu input %d (seed %d, session level %d): %s" % (i, seed, level, s.hex())
        try:
            host.on_rs485(bytearray(s), len(s))
        except Exception as e:
            raise Finding("%s raised %r" % (what, e))
        _errors(rig, what)
        # the master relays other units (app.relay): 0x0A no path, 0x0B no answer (Application Protocol 7)
        verdict = _verdict(_rtu_replies(rig, set(s) | set(held)), (1, 2, 3, 6, 0x0A, 0x0B))
        # a frame without a reply (broadcast, another unit) may have acted unseen: only without a session it may not
        unseen = framer.frames - frames != host.replies - replies
        _check(rig, before, verdict, what, unknown=unseen and level > 0)
    return n


PDU_PORTS = ((0x7001, 0), (0x7002, 1), (0x7003, 2))  # (port, session level)


def run_pdu(n, seed, rig=None):
    rng = random.Random(seed)
    rig = rig or Rig()
    host = rig.host
    out = bytearray(256)
    for i in range(n):
        port, level = rng.choice(PDU_PORTS)
        if i % 50 == 0:
            rig.tick(rng.choice((1, 10, 100)))
        rig.hold(port, level)
        unit = rng.choice(UNITS) if level == 0 else rng.choice((1, 1, 1, 1, 1, 2, 0))
        pdu = gen_pdu(rng, rig)
        req = bytearray(pdu)
        before = rig.fingerprint()
        what = "modbus-pdu input %d (seed %d, unit %d, port level %d): %s" % (i, seed, unit, level, pdu.hex())
        try:
            k = host.pdu(unit, req, len(req), out, port)
        except Exception as e:
            raise Finding("%s raised %r" % (what, e))
        _errors(rig, what)
        if unit not in (0, 1) and k:
            raise Finding("%s: a reply for another unit" % what)
        if unit == 0 and k:
            raise Finding("%s: a reply to a broadcast" % what)
        if k > 253:
            raise Finding("%s: a reply PDU of %d bytes" % (what, k))
        verdict = _verdict([bytes(out[:k])] if k else [])
        if k and not out[0] & 0x80 and (out[0] & 0x7F) != req[0]:
            raise Finding("%s: the reply's function code %02x" % (what, out[0]))
        _check(rig, before, verdict if unit == 1 else "refused", what, unknown=unit == 0 and level > 0)
    return n


# ISO-TP on CAN (ISO 15765-2 9.6; the ids app.hostcan documents: 0x18EF_TA_SA)
CAN_BASE = 0x18EF0000
TESTERS = (0xF1, 0xF1, 0xF1, 0xF2, 0x00, 0xFE)


class Can:
    """The CAN port HostCan sends on: takes, sometimes refuses (full) or fails."""

    def __init__(self, rng):
        self.rng = rng
        self.sent = []
        self.failed = 0

    def send(self, id_, data, flags):
        r = self.rng.random()
        if r < 0.03:
            return None
        if r < 0.04:
            self.failed += 1
            raise OSError(5)
        self.sent.append((id_, bytes(data), flags))
        return 0


def _segment(rng, pdu):
    """A request as the tester's frames (SF, or FF + CFs), padded to 8 bytes."""
    n = len(pdu)
    if n <= 7:
        return [bytes((n,)) + pdu + b"\xcc" * (7 - n)]
    frames = [bytes((0x10 | n >> 8, n & 0xFF)) + pdu[:6]]
    sn, p = 1, 6
    while p < n:
        chunk = pdu[p:p + 7]
        frames.append(bytes((0x20 | sn,)) + chunk + b"\xcc" * (7 - len(chunk)))
        sn, p = (sn + 1) & 15, p + 7
    return frames


def gen_isotp(rng, rig, ta):
    """(SA, [(id, data, flags)]): one tester's message, well-formed or broken."""
    sa = rng.choice(TESTERS) if rng.random() < 0.95 else rng.randrange(256)
    frames = _segment(rng, gen_pdu(rng, rig)) if rng.random() < 0.9 else [
        bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 9))) for _ in range(rng.randrange(1, 5))]
    r = rng.random()
    if r < 0.3:
        frames = [bytes(_mutate(rng, f))[:8] if rng.random() < 0.3 else f for f in frames]
    elif r < 0.4 and len(frames) > 1:
        del frames[rng.randrange(len(frames))]  # a lost frame
    elif r < 0.45:
        frames.insert(rng.randrange(len(frames) + 1), bytes((0x30 | rng.randrange(16), rng.randrange(256), rng.randrange(256))) + b"\xcc" * 5)
    elif r < 0.5:
        frames = frames[:rng.randrange(1, len(frames) + 1)]  # cut off: the board's N_Cr ends it
    if rng.random() < 0.1:
        frames = [f[:rng.randrange(len(f) + 1)] for f in frames]  # short DLCs
    ids = []
    for f in frames:
        fid = CAN_BASE | ta << 8 | sa
        x = rng.random()
        if x < 0.04:
            fid = CAN_BASE | rng.randrange(256) << 8 | sa  # another pack's
        elif x < 0.06:
            fid = (fid & ~0xFF0000) | rng.randrange(256) << 16  # another PGN
        elif x < 0.07:
            fid = rng.randrange(1 << 29)
        ids.append((fid, f, 2))
    return sa, ids


def _reassemble(frames):
    """The reply PDU from the board's frames (SF or FF + CFs), None if incomplete;
    raises on a PCI the standard does not allow."""
    if not frames:
        return None
    f = frames[0]
    if f[0] >> 4 == 0:
        n = f[0] & 15
        if not 1 <= n <= 7:
            raise Finding("board SF with length %d" % n)
        return f[1:1 + n]
    if f[0] >> 4 != 1:
        raise Finding("board message starts with PCI %02x" % f[0])
    n = (f[0] & 15) << 8 | f[1]
    data = bytearray(f[2:8])
    sn = 1
    for c in frames[1:]:
        if c[0] != 0x20 | sn:
            raise Finding("board CF %02x, expected SN %d" % (c[0], sn))
        data += c[1:8]
        sn = (sn + 1) & 15
    return bytes(data[:n]) if len(data) >= n else None


def _board_frames(can, svc, ta, what):
    """The frames the board sent since the last call, each checked: to the
    tester holding the channel, 8 bytes (padded), 29-bit, a known PCI."""
    got = []
    for fid, d, fl in can.sent:
        if fid != CAN_BASE | svc.tester << 8 | ta or len(d) != 8 or fl != 2 or d[0] >> 4 > 3:
            raise Finding("%s: the board sent %x#%s flags %d" % (what, fid, d.hex(), fl))
        got.append(d)
    can.sent.clear()
    return got


def run_isotp(n, seed, rig=None):
    rng = random.Random(seed)
    rig = rig or Rig()
    svc = rig.can_svc
    can = Can(rng)
    svc.can = can
    host = rig.host
    ta = svc.address() & 0xFF
    for i in range(n):
        sa, frames = gen_isotp(rng, rig, ta)
        before = rig.fingerprint()
        what = "isotp input %d (seed %d, SA %02x): %s" % (i, seed, sa, " ".join("%x#%s" % (f, d.hex()) for f, d, _ in frames))
        got = []
        failed = can.failed
        try:
            for fid, data, flags in frames:
                svc.on_frame("link", [fid, data, flags, 0])
                for _ in range(rng.choice((0, 1, 1, 2))):
                    rig.tick(rng.choice((0, 1, 3)))
                    svc.tick(rig.now)
            for _ in range(rng.choice((2, 10, 40))):  # the reply: flow control from the tester, or not
                rig.tick(rng.choice((1, 3, 10)))
                svc.tick(rig.now)
                if can.sent:
                    got += _board_frames(can, svc, ta, what)
                    if got[-1][0] >> 4 == 1 or (got[-1][0] >> 4 == 2 and rng.random() < 0.2):
                        fc = b"\x30\x00\x00" if rng.random() < 0.9 else bytes((0x30 | rng.randrange(4), rng.randrange(4), rng.randrange(256)))
                        svc.on_frame("link", [CAN_BASE | ta << 8 | svc.tester, fc + b"\xcc" * 5, 2, 0])
            if rng.random() < 0.05:
                rig.tick(rng.choice((1100, 2100)))  # N_Cr / N_Bs and the tester's idle time run out
                svc.tick(rig.now)
                _board_frames(can, svc, ta, what)
        except Finding:
            raise
        except Exception as e:
            raise Finding("%s raised %r" % (what, e))
        _errors(rig, what)
        msg = [g for g in got if g[0] >> 4 != 3]
        if msg and msg[0][0] >> 4 in (0, 1) and can.failed == failed:  # a frame the port failed is lost
            pdu = _reassemble(msg)
            if pdu is not None:
                _verdict([pdu])
        _check(rig, before, "refused", what)  # no tester holds a session: nothing may change
    return n


RUNS = {"modbus-rtu": run_rtu, "modbus-pdu": run_pdu, "isotp": run_isotp}
