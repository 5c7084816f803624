# Owns the fuzzing campaign (make fuzz): structure-aware generators for the
# receive paths a foreign node reaches (the host protocol's three targets,
# modbus-rtu, modbus-pdu and isotp, are in tools/fuzz_host.py), fed through the services' public
# entry points (Link.tick, Inverter.tick, wired as firmware/app/app.py wires
# them), so the harness survives changes inside the parsers:
#   link      29-bit link CAN frames and RS485 link frames on Link IN / Link OUT
#             (lib/proto/link.py, lib/bms/parallel.py, firmware/app/link.py)
#   pylon     Pylontech RS485 requests `~...\r` on the master's Link IN
#             (lib/proto/pylon_rs485.py, firmware/app/inverter.py)
#   inverter  CAN frames from inverters, handed by the link to the inverter
#             (firmware/app/inverter.py, lib/proto/pylon_can.py)
# Every input is framed correctly (CRC/checksums computed here, from the
# protocol documents, not with the firmware's encoders) and then has fields
# mutated; a share is broken on purpose (checksum, length, hex, id). Checked
# after every input: no exception; the containers of the services and the
# state never grow; no input changes the pack's protections, alarms, faults or
# FETs; a malformed input (and, for the inverter listener, any frame that is
# not an 11-bit 0x305/0x306/0x307) changes nothing else either, compared with
# the same tick without it. Prints per target the inputs, inputs/s and the
# branch coverage (coverage.py) of each module of the target.
import argparse
import binascii
import operator
import os
import random
import sys
import time

from tools import paths
from tools.fuzzkit import Finding, INTERESTING

EXT = 2  # the CAN ports' FLAG_EXT_ID (lib/sim/bus.py, drivers.mcp2515)
PREFIX = 0x1A  # link CAN ids: PREFIX << 24 | type << 16 | dst << 8 | src (lib/proto/link.py header)
LINK_LEN = {0x01: 2, 0x02: 8, 0x10: 8, 0x11: 8, 0x12: 8, 0x13: 8, 0x14: 8, 0x15: 8, 0x20: 2, 0x21: 2}
ADDRS = (0, 1, 2, 3, 5, 31, 32, 33, 0x7F, 0xFE, 0xFF)
PYLON_CID2 = (0x42, 0x44, 0x47, 0x4F, 0x51, 0x61, 0x62, 0x63, 0x92, 0x93, 0x96)  # PROTOCOLS 2
INVERTER_IDS = (0x305, 0x306, 0x307)  # PROTOCOLS 1: what inverters send, 11-bit
GOOD, BAD, MIXED = "good", "bad", "mixed"  # an input's kind: what may change
# PackState fields the fuzzed services may write on a well-formed input; all others are protected
OWN_PREFIXES = ("link_", "inverter_", "seq")
OWN_FIELDS = ("protect_reset_req",)


class Board:
    """The pack's ports on the bench's wiring (sim.bus): a CAN bus shared with
    the fuzzer's node, and RS485 segments into Link IN and Link OUT."""

    def __init__(self, master, clock_ms):
        from sim.bus import CanBus, SerialLink
        bus = CanBus("link", clock_ms)
        self.can = bus.attach("pack", 0)
        self.node = bus.attach("fuzzer", 1)  # a foreign node on the bus
        self.up, self.down = SerialLink(), SerialLink()
        self.link_in = self.up.b  # the fuzzer writes into up.a: bytes from upstream
        self.link_out = self.down.a  # and into down.b: bytes from downstream
        self.link_dip_master = master


def _view():
    from bms.system import SystemView
    v = SystemView()
    v.packs_online, v.voltage_mv, v.current_ma, v.soc_pct, v.soh_pct = 1, 53120, -12340, 57, 98
    v.capacity_mah, v.cvl_mv, v.ccl_ma, v.dcl_ma, v.dvl_mv = 100000, 56000, 70000, 100000, 48000
    v.min_cell_mv, v.max_cell_mv, v.min_temp_dc, v.max_temp_dc = 3311, 3325, 231, 287
    v.valid = True
    return v


class Pack:
    """Link and Inverter of one pack, wired as app.compose wires them."""

    def __init__(self, master):
        from app import compose
        from bms.params import Params
        from bms.state import PackState
        st = PackState()
        st.snap.reads = 1
        for i in range(len(st.snap.cell_mv)):
            st.snap.cell_mv[i] = 3300 + i
        st.snap.stack_mv = sum(st.snap.cell_mv)
        st.chg_fet = st.dsg_fet = True
        self.st = st
        self.now_ms = 0
        self.board = Board(master, lambda: self.now_ms)
        params = Params()
        ports = compose.Ports(self.board)
        self.link = compose.link(st, params, self.board, ports)
        self.inverter = compose.inverter(st, params, _view(), self.board, ports, self.link)
        # built at the first RS485 request on a board (app.invrs485): here at once, so
        # that the footprint's base holds it
        self.inverter.server = self.inverter._server()
        self.link.table.build().build_series()  # the pack table's rows: built at the first report, likewise

    def tick(self):
        self.inverter.tick(self.now_ms)
        self.link.tick(self.now_ms)
        b = self.board
        while b.node.any():  # what the pack sent: dropped
            b.node.recv()
        b.up.a.read()
        b.down.b.read()

    def deliver(self, where, item):
        b = self.board
        if where == "can":
            b.node.send(*item)
        elif where == "in":
            b.up.a.write(item)
        else:
            b.down.b.write(item)


# --- fingerprints --------------------------------------------------------------

def _scalars(obj, skip=()):
    """The names of obj's int/bool/None attributes not starting with skip, and their getter."""
    names = [k for k, v in sorted(vars(obj).items())
             if isinstance(v, (int, bool, type(None))) and not k.startswith(skip)]
    return names, operator.attrgetter(*names)


def _arrays(obj):
    return tuple(bytes(v) for _, v in sorted(vars(obj).items()) if hasattr(v, "itemsize") or isinstance(v, bytearray))


class Look:
    """The fingerprints of a pack: protected (the PackState fields no foreign
    frame may change) and everything (what a malformed input may not change:
    the state but the error counters, the master's table, the roles, the
    inverter's presence)."""

    def __init__(self, p):
        self.p = p
        self.prot_names, self._prot = _scalars(p.st, OWN_PREFIXES + OWN_FIELDS)
        self.st_names, self._st = _scalars(p.st, ("inverter_errors",))
        self.roles_names, self._roles = _scalars(p.link.roles)

    def protected(self):
        return self._prot(self.p.st)

    def everything(self):
        p = self.p
        return (self._st(p.st), _arrays(p.link.table), p.link.table.conflicts, self._roles(p.link.roles),
                p.inverter._heard, p.inverter.bus)

    def diff(self, a, b):
        """What changed, by name."""
        if len(a) != 6:
            return _named(self.prot_names, a, b)
        out = [_named(self.st_names, a[0], b[0]), _named(self.roles_names, a[3], b[3])]
        for name, x, y in (("the master's table", a[1], b[1]), ("table.conflicts", a[2], b[2]),
                           ("inverter heard at", a[4], b[4]), ("inverter bus", a[5], b[5])):
            if x != y:
                out.append(name)
        return "; ".join(o for o in out if o)


def _named(names, a, b):
    return ", ".join("%s %r -> %r" % (n, x, y) for n, x, y in zip(names, a, b) if x != y)


def footprint(p):
    """Total length of every container held by the services and the state."""
    from app import service
    n = 0
    srv = p.inverter.server
    for obj in (p.st, p.st.snap, p.board.can, p.board.link_in, p.board.link_out, p.link, p.link.table, p.link.roles, p.inverter,
                srv, srv.framer, srv.req):
        for k, v in vars(obj).items():
            if obj is srv and k == "_views":
                # a cache bounded by design (one view per reply length): counted at its bound
                if len(v) > service._VIEWS:
                    raise Finding("the inverter's reply-view cache passed its bound %d" % service._VIEWS)
                n += service._VIEWS
            elif isinstance(v, (list, tuple, dict, set, bytes, bytearray, str)) or hasattr(v, "itemsize"):
                n += len(v)
    return n


# --- generators -------------------------------------------------------------------

def _mutate_bytes(rng, data):
    data = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        if not data:
            break
        i = rng.randrange(len(data))
        data[i] = rng.choice((rng.randrange(256), data[i] ^ (1 << rng.randrange(8)), rng.choice(INTERESTING)))
    return data


def _payload(rng, n):
    if rng.random() < 0.3:
        return bytearray(rng.choice(INTERESTING) for _ in range(n))
    return bytearray(rng.getrandbits(8) for _ in range(n))


def _link_message(rng):
    typ = rng.choice(tuple(LINK_LEN)) if rng.random() < 0.9 else rng.randrange(256)
    src = rng.choice(ADDRS) if rng.random() < 0.8 else rng.randrange(256)
    dst = rng.choice(ADDRS) if rng.random() < 0.8 else rng.randrange(256)
    n = LINK_LEN.get(typ, rng.randrange(9))
    d = _payload(rng, n)
    if typ in (0x14, 0x15) and rng.random() < 0.7:  # CELLS/TEMPS: first index, count
        d[1] = rng.choice((16, 7, 6, 3, 0, 17, 255))
        d[0] = min(255, rng.randrange(0, d[1] + 3))
    if typ in (0x20, 0x21) and rng.random() < 0.7:
        d[0] = rng.choice((0, 1, 2))
    return typ, src, dst, d


def gen_link(rng):
    """(where, item, kind): a link frame on CAN, Link IN or Link OUT; kind
    GOOD (well-formed), BAD (malformed) or MIXED (bytes of both)."""
    typ, src, dst, d = _link_message(rng)
    if rng.random() < 0.5:  # CAN
        if rng.random() < 0.15:  # a wrong length
            d = d[:rng.randrange(len(d))] if d and rng.random() < 0.5 else (d + _payload(rng, 8))[:rng.randrange(len(d) + 1, 9)] if len(d) < 8 else d[:-1]
        fid = PREFIX << 24 | typ << 16 | dst << 8 | src
        return "can", (fid, bytes(d), EXT), GOOD if LINK_LEN.get(typ) == len(d) else BAD
    # RS485: SOF 0x7E, len, type, src, dst, payload, CRC-16/CCITT-FALSE hi lo over len..payload
    body = bytearray((len(d), typ, src, dst)) + d
    crc = binascii.crc_hqx(bytes(body), 0xFFFF)
    frame = bytearray((0x7E,)) + body + bytearray((crc >> 8, crc & 0xFF))
    r = rng.random()
    if r < 0.1:
        frame[-1 - rng.randrange(2)] ^= 1 << rng.randrange(8)  # bad CRC
    elif r < 0.2:
        frame = _mutate_bytes(rng, frame)
    kind = GOOD if _link_ok(frame) else BAD
    if r > 0.95:
        frame = frame[:rng.randrange(1, len(frame))] + frame  # a cut-off frame, then a whole one
        kind = MIXED
    if rng.random() < 0.1:  # noise before (no 0x7E: that would start a frame)
        frame = bytearray(b if b != 0x7E else 0 for b in _payload(rng, rng.randrange(1, 6))) + frame
    return ("in" if rng.random() < 0.6 else "out"), frame, kind


def _link_ok(frame):
    """A whole, well-formed RS485 link frame (from the lib/proto/link.py header)."""
    if len(frame) < 7 or frame[0] != 0x7E or frame[1] > 8 or len(frame) != 7 + frame[1]:
        return False
    if LINK_LEN.get(frame[2]) != frame[1]:
        return False
    return binascii.crc_hqx(bytes(frame[1:-2]), 0xFFFF) == frame[-2] << 8 | frame[-1]


def _pylon_sum(body):
    return (-sum(body)) & 0xFFFF  # CHKSUM: two's complement of the ASCII sum mod 65536 (PROTOCOLS 2)


def _lenid(n):
    return ((-((n & 15) + ((n >> 4) & 15) + ((n >> 8) & 15))) & 15) << 12 | n  # LCHKSUM + LENID


def gen_pylon(rng):
    """(where, item, malformed): a Pylontech request on the master's Link IN."""
    ver = rng.choice((0x20, 0x25, 0x35)) if rng.random() < 0.9 else rng.randrange(256)
    adr = rng.choice((2, 2, 2, 3, 0, 1, 0xFF)) if rng.random() < 0.9 else rng.randrange(256)
    cid1 = 0x46 if rng.random() < 0.9 else rng.randrange(256)
    cid2 = rng.choice(PYLON_CID2) if rng.random() < 0.9 else rng.randrange(256)
    info = bytearray((rng.choice((2, 2, 0, 1, 3, 0xFF)),)) if rng.random() < 0.7 else _payload(rng, rng.randrange(0, 6))
    h = info.hex().upper().encode()
    body = b"%02X%02X%02X%02X%04X" % (ver, adr, cid1, cid2, _lenid(len(h))) + h
    frame = bytearray(b"~" + body + b"%04X" % _pylon_sum(body) + b"\r")
    kind = GOOD
    r = rng.random()
    if r < 0.08:
        frame[-2] = ord(rng.choice("0123456789ABCDEF".replace(chr(frame[-2]), "")))  # bad CHKSUM
        kind = BAD
    elif r < 0.16:  # a field byte mutated: bad hex, lower case, or the checksum no longer fits
        i = rng.randrange(1, len(frame) - 5)
        frame[i] = rng.choice((ord("g"), ord("a"), ord("~"), 0x0D, 0, 0xFF, rng.randrange(256)))
        kind = BAD
    elif r < 0.22:  # LENID says another length, CHKSUM recomputed
        b2 = bytearray(body)
        b2[8:12] = b"%04X" % _lenid((len(h) + rng.choice((-2, 2, 4))) & 0xFFF)
        frame = bytearray(b"~" + bytes(b2) + b"%04X" % _pylon_sum(b2) + b"\r")
        kind = BAD
    elif r < 0.27:
        frame = frame[:rng.randrange(1, len(frame))]  # cut off; the next request ends it
        kind = MIXED
    if kind == BAD and _pylon_ok(frame):
        kind = GOOD  # the mutation kept it a request (a byte replaced by itself)
    if rng.random() < 0.05:
        frame = bytearray(rng.choice((b"\x00", b"\xff", b"~", b"\r", b"hello"))) + frame
        kind = MIXED
    return "in", frame, kind


def _pylon_ok(frame):
    """A whole request with good framing, LENGTH and CHKSUM (PROTOCOLS 2)."""
    if len(frame) < 18 or frame[0] != 0x7E or frame[-1] != 0x0D or frame.count(b"~") != 1 or frame.count(b"\r") != 1:
        return False
    body = bytes(frame[1:-5])
    if any(c not in b"0123456789ABCDEF" for c in frame[1:-1]) or len(body) % 2:
        return False
    ln = int(body[8:12], 16)
    return _lenid(ln & 0xFFF) == ln and ln & 0xFFF == len(body) - 12 and int(frame[-5:-1], 16) == _pylon_sum(body)


def gen_inverter(rng):
    """(where, item, malformed): a CAN frame from an inverter (or something like one)."""
    r = rng.random()
    if r < 0.6:
        fid = rng.choice(INVERTER_IDS)
    elif r < 0.8:
        fid = rng.choice((0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E, 0x304, 0x308, 0x7FF, 0))
    else:
        fid = rng.randrange(1 << 11)
    ext = rng.random() < 0.15
    if ext and rng.random() < 0.5:
        fid |= rng.choice((0, 1 << 11, 0x1B << 24))  # never the link PREFIX: those are link frames
    n = rng.choice((8, 8, 8, 0, 1, 4, 7))
    data = bytes(_payload(rng, n))
    if fid == 0x307 and n == 8 and rng.random() < 0.5:
        data = b"\x12\x40\x00\x00VIC\x00"  # Victron GX (PROTOCOLS 1)
    kind = GOOD if not ext and fid in INVERTER_IDS else BAD
    return "can", (fid, data, EXT if ext else 0), kind


TARGETS = {
    "link": (gen_link, ("lib/proto/link.py", "lib/bms/linkrows.py", "lib/bms/parallel.py", "firmware/app/link.py",
              "firmware/app/linkpeer.py")),
    "pylon": (gen_pylon, ("lib/proto/pylon_rs485.py", "firmware/app/inverter.py")),
    "inverter": (gen_inverter, ("firmware/app/inverter.py", "lib/proto/pylon_can.py")),
}
# the host protocol's targets (tools/fuzz_host.py: their own generators and checks)
HOST_TARGETS = {
    "modbus-rtu": ("firmware/app/host.py", "lib/proto/modbus.py", "firmware/app/hostctl.py", "lib/bms/auth.py"),
    "modbus-pdu": ("firmware/app/host.py", "firmware/app/hostctl.py", "firmware/app/hostfile.py",
                   "lib/proto/modbus.py", "lib/bms/auth.py"),
    "isotp": ("lib/proto/isotp.py", "firmware/app/hostcan.py", "firmware/app/host.py"),
}
TARGETS.update((k, (None, v)) for k, v in HOST_TARGETS.items())


def _packs(target):
    if target == "link":
        # the master takes reports; the other pack becomes a slave once an
        # ADDR frame reaches its Link IN, and then takes commands
        return [Pack(True), Pack(False)]
    return [Pack(False)]  # alone: it serves the inverter (Inverter.is_master)


def run(target, n, seed, check_every=1000):
    """Feed n inputs of target; raise Finding (with the input) on a broken
    property. Returns the count."""
    if target in HOST_TARGETS:
        from tools import fuzz_host
        return fuzz_host.RUNS[target](n, seed)
    gen = TARGETS[target][0]
    rng = random.Random(seed)
    packs = _packs(target)
    for p in packs:
        for _ in range(30):  # settle: roles decided, boot hold over
            p.now_ms += 100
            p.tick()
    base = [footprint(p) for p in packs]
    looks = [Look(p) for p in packs]
    for i in range(n):
        k = i % len(packs)
        p = packs[k]
        where, item, kind = gen(rng)
        p.now_ms += 100
        p.tick()  # the tick without the input, at the same time
        look = looks[k].everything if kind == BAD else looks[k].protected
        before = look()
        p.deliver(where, item)
        try:
            p.tick()
        except Exception as e:
            raise Finding("%s input %d (seed %d): %s raised %r" % (target, i, seed, _show(where, item), e))
        after = look()
        if after != before:
            raise Finding("%s input %d (seed %d): %s input %s changed %s" % (
                target, i, seed, kind, _show(where, item),
                looks[k].diff(before, after)))
        if i % check_every == 0 and footprint(p) > base[k]:
            raise Finding("%s input %d (seed %d): the services' containers grew from %d to %d" % (
                target, i, seed, base[k], footprint(p)))
    return n


def _show(where, item):
    if where == "can":
        return "CAN id 0x%X flags %d data %s" % (item[0], item[2], item[1].hex())
    return "Link %s bytes %s" % ("IN" if where == "in" else "OUT", bytes(item).hex())


def _branches(cov, files):
    """{file: (branches covered, branches)} from coverage's JSON report."""
    import json
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cov.json")
        cov.json_report(morfs=files, outfile=out)
        with open(out, encoding="utf-8") as fh:
            rep = json.load(fh)["files"]
    got = {}
    for f in files:
        s = next((v["summary"] for k, v in rep.items() if os.path.abspath(os.path.join(paths.ROOT, k)) == f
                  or os.path.abspath(k) == f), None)
        got[f] = (s["covered_branches"], s["num_branches"]) if s else (0, 0)
    return got


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.fuzz", description="structure-aware fuzzing of the receive paths")
    ap.add_argument("--n", type=int, default=10 ** 6, help="inputs per target (default 10**6)")
    ap.add_argument("--seed", type=int, help="replay a seed (default: a fresh one, printed)")
    ap.add_argument("--target", choices=sorted(TARGETS), action="append", help="only these (default all)")
    ap.add_argument("--no-coverage", action="store_true", help="skip coverage (faster)")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print("fuzz: seed %d (replay: make fuzz SEED=%d)" % (seed, seed), flush=True)
    failed = 0
    for target in args.target or sorted(TARGETS):
        files = [os.path.join(paths.ROOT, f) for f in TARGETS[target][1]]
        cov = None
        if not args.no_coverage:
            try:
                import coverage
            except ImportError:
                print("fuzz: error: coverage is not installed (requirements.txt; make setup), or use --no-coverage",
                      file=sys.stderr)
                return 2
            cov = coverage.Coverage(branch=True, include=files, data_file=None)
            cov.start()
        t0 = time.perf_counter()
        try:
            count = run(target, args.n, seed)
            err = None
        except Finding as e:
            count, err = None, e
        dt = time.perf_counter() - t0
        if cov is not None:
            cov.stop()
        if err is not None:
            print("fuzz: %s: FAILED: %s" % (target, err), flush=True)
            failed += 1
            continue
        line = "fuzz: %-10s %d inputs, %.0f inputs/s" % (target, count, count / dt)
        if cov is not None:
            parts = []
            rep = _branches(cov, files)
            for f in files:
                got, total = rep[f]
                parts.append("%s %d/%d branches (%.0f%%)" % (os.path.relpath(f, paths.ROOT), got, total,
                                                             100.0 * got / max(1, total)))
            line += "; " + ", ".join(parts)
        print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
