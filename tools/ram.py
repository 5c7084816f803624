# Owns the RAM figures of the real boards (boards/esp32_bq.py,
# boards/rp2040_bq.py) in the 32-bit unix MicroPython 1.27, whose heap has a
# hard cap (-X heapsize), run from the very artefacts tools/deploy.py
# installs: the ROMFS image (mounted at /rom, bytecode run in place) or the
# .mpy tree (each module loaded into the heap, as from littlefs); and, where
# tools/build_frozen_unix.sh has built them, the firmware frozen into the
# interpreter as a custom board firmware would hold it (tools/frozen.py):
# store `frozen` (everything), `frozen+romfs` (the lower part frozen, the rest
# from the ROMFS image).
#
# The board's `machine` is host_tests/fake_machine.py backed by the chip
# models (sim_bq76952, sim_mcp2515), compiled with the harness
# (sim.vtime.VirtualRunner) into a second ROMFS image. What the fakes cost
# (their image bytes and objects, measured before the firmware is imported)
# and the app image's own bytes (in the unix port the image sits on the heap;
# a board maps it from flash) are taken off: "firmware" below is what the
# board's own heap would hold.
#
#   python -m tools.ram            the figures (make perf calls figures())
#   python -m tools.ram --steps [--depth N] [--store romfs|mpy|frozen]
#                                  only the heap per construction step of the
#                                  boot (esp32_bq), N levels deep (default 3)
import json
import os
import subprocess
import sys
import tempfile

from tools import deploy, frozen

ROOT = deploy.REPO_ROOT
HOST_TESTS = os.path.join(ROOT, "host_tests")
DEFAULT_INTERPRETER = os.path.join(os.path.dirname(ROOT), "shared", "tools", "micropython",
                                   "micropython-1.27.0-unix-i386")
HOWTO = ("32-bit MicroPython not found: set MICROPYTHON_UNIX to a micropython-1.27.0 unix binary "
         "built with MICROPY_FORCE_32BIT=1, or put it at ../shared/tools/micropython/"
         "micropython-1.27.0-unix-i386 (its README and build.sh say how)")
REAL_BOARDS = ("esp32_bq", "rp2040_bq")
ESP32_HEAP = 64000  # ESP32 without PSRAM, MicroPython >= 1.21: the heap it starts with
RP2040_HEAP = 190 * 1024  # an RP2040's heap, about (issue 12)
BIG_HEAP = 4 * 1024 * 1024  # for measuring: no cap in the way
FROZEN_DIR = os.path.join(ROOT, "build", "micropython-frozen")
# store -> the tools/frozen.py part frozen into the interpreter
FROZEN_STORES = {"frozen": "all", "frozen+romfs": "lower"}


def interpreter():
    """The 32-bit unix MicroPython: $MICROPYTHON_UNIX, else the shared one; None if neither."""
    for path in (os.environ.get("MICROPYTHON_UNIX"), DEFAULT_INTERPRETER):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def frozen_interpreter(board, store):
    """The unix MicroPython with board's part for store frozen in
    (tools/build_frozen_unix.sh): <dir>/<board>-<part>/micropython, dir
    $MICROPYTHON_FROZEN else build/micropython-frozen; None if absent."""
    path = os.path.join(os.environ.get("MICROPYTHON_FROZEN") or FROZEN_DIR,
                        "%s-%s" % (board, FROZEN_STORES[store]), "micropython")
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def main_module(store):
    return "main" if store == "mpy" else deploy.ROMFS_MAIN


# ---- the artefacts -------------------------------------------------------------

def build_app(board, store, build_root=None):
    """Build what `make deploy --store STORE` installs on board: returns
    (plan, path): the ROMFS image, or the .mpy tree's directory. Store
    `frozen`: (None, None), all of it is in the interpreter; `frozen+romfs`:
    the ROMFS image without the modules frozen in (`make deploy` on a
    firmware that holds them: --frozen)."""
    if store == "frozen":
        return None, None
    mpremote = deploy.find_mpremote() or "mpremote"
    build_dir = os.path.join(build_root or os.path.join(ROOT, "build", "ram"), board + "-" + store)
    p = deploy.plan(ROOT, board, "-", build_dir=build_dir, mpremote=mpremote,
                    mpy_cross=deploy.mpy_cross_exe(), store="mpy" if store == "mpy" else "romfs",
                    frozen=frozen.LOWER if store == "frozen+romfs" else ())
    deploy.build(p)
    return p, (p.build_dir if store == "mpy" else p.image)


FAKE_FILES = (("machine", "fake_machine.py"), ("sim_bq76952", "sim_bq76952.py"),
              ("sim_mcp2515", "sim_mcp2515.py"), ("bq_rig", "bq_rig.py"))


def build_fakes(out_dir, arch="xtensawin"):
    """The fakes and the harness as one ROMFS image in out_dir: machine,
    esp32, sim_bq76952, sim_mcp2515, bq_rig and sim/vtime (.mpy). Returns its path."""
    sys.path.insert(0, HOST_TESTS)
    try:
        import fake_machine
    finally:
        sys.path.remove(HOST_TESTS)
    src = os.path.join(out_dir, "fakes-src")
    tree = os.path.join(out_dir, "fakes")
    os.makedirs(os.path.join(tree, "sim"), exist_ok=True)
    os.makedirs(src, exist_ok=True)
    jobs = [(os.path.join(HOST_TESTS, f), os.path.join(tree, m + ".mpy")) for m, f in FAKE_FILES]
    with open(os.path.join(src, "esp32.py"), "w") as f:
        f.write(fake_machine.FAKE_ESP32)
    jobs.append((os.path.join(src, "esp32.py"), os.path.join(tree, "esp32.mpy")))
    with open(os.path.join(src, "empty.py"), "w") as f:
        f.write("")
    jobs.append((os.path.join(src, "empty.py"), os.path.join(tree, "sim", "__init__.mpy")))
    jobs.append((os.path.join(ROOT, "lib", "sim", "vtime.py"), os.path.join(tree, "sim", "vtime.mpy")))
    for s, o in jobs:
        deploy.compile_file(s, o, arch, os.path.basename(s))
    image = os.path.join(out_dir, "fakes.romfs")
    mpremote = deploy.find_mpremote() or "mpremote"
    deploy._run([mpremote, "romfs", "--no-mpy", "-o", image, "build", tree], out_dir, "mpremote romfs build")
    return image


# ---- the script run in MicroPython -----------------------------------------------

# Both scripts mount a romfs image (the fakes, the firmware) from a host file
# with mount(path, at); it returns the image's size in bytes.
MOUNT = r"""
def mount(path, at):
    n = os.stat(path)[6]
    buf = bytearray(n)
    with open(path, "rb") as f:
        f.readinto(buf)
    vfs.mount(vfs.VfsRom(memoryview(buf)), at)
    return n
"""

# Sets up the fakes: mounts their image at /fk and builds the real-board rig
# (host_tests/bq_rig.py: the BQ76952 and PCA9555 models on I2C, the MCP2515
# model and a peer's on a CAN bus). Returns the Rig.
FAKES_SETUP = r"""
def fakes():
    mount(FAKES, "/fk")
    sys.path[:] = [".frozen", "/fk"]
    from bq_rig import Rig
    return Rig()

def app_path():
    if STORE == "mpy":
        sys.path[:] = [".frozen", "/fk", APP, APP + "/lib"]
        return 0
    sys.path[:] = [".frozen", "/fk"]
    if APP is None:  # all of it frozen
        return 0
    n = mount(APP, "/rom")
    sys.path += ["/rom", "/rom/lib"]
    return n

"""

# Boots the board as main.py does (main.start(board.build()) with the store
# on a host directory and the RTC clock), then runs STRETCH: a list of
# [seconds, pack current mA] phases with a peer on the CAN bus sending the
# inverter's 0x305 heartbeat every second and draining what the pack sends.
# Prints one JSON line; a MemoryError anywhere is {"error": "MemoryError", ...}.
SCRIPT = r"""
import gc, os, sys, vfs, json, binascii, micropython
gc.collect()
BASE = gc.mem_alloc()
R = {"base": BASE}
micropython.qstr_info()  # the interpreter's and this script's qstrs (run_board: "qstr")
""" + MOUNT + FAKES_SETUP + r"""
def used():
    gc.collect()
    return gc.mem_alloc() - BASE

def run():
    rig = fakes()
    import machine  # the fake machine, from the fakes' image
    bq, bus = rig.bq, rig.bus
    slot = [0, memoryview(bytearray(8)), 0, 0]
    hb = bytes(8)
    micropython.qstr_info()  # + the fakes'
    R["fakes"] = used()
    R["image"] = app_path()
    import board
    rig.wire(board)
    main = __import__(MAIN)
    R["imports"] = used() - R["fakes"] - R["image"]
    from store.fs import OsFs
    from store.store import Store
    import store.slotstore, update.boot  # what firmware/boot.py leaves imported
    app, sup = main.start(board.build(), store=Store(OsFs(DATA)), clock=main._clock())
    # main.main's runner: app.runner (and asyncio) with one task per service as
    # Runner.run makes them (a generator's state is allocated whole when it is
    # made); queued, never run: the rig's runner ticks the services
    import asyncio
    from app.runner import Runner
    R["tasks"] = Runner(app).start(asyncio.Event().set)
    micropython.qstr_info()  # + the firmware's, booted
    u = used()
    # the harness, after the boot so that the firmware's own imports count as
    # its own: the inverter's node (the firmware's driver) and the runner
    from sim.vtime import VirtualRunner
    peer = rig.peer()
    r = VirtualRunner()
    R["harness"] = used() - u
    for svc in app.services:
        r.add(svc)
    fakes_b = R["fakes"] + R["image"] + R["harness"]
    R["boot"] = used() - fakes_b
    R["peak"] = R["boot"]
    frames = 0
    t = 0
    uarts = (app.board.link_in.uart, app.board.link_out.uart)
    for secs, ma in STRETCH:
        bq.current_ma = ma
        bq.render()
        for _ in range(secs):
            t += 1000
            peer.send(0x305, hb, 0)
            for ms in range(100, 1001, 100):
                r.run_until(t - 1000 + ms)
                bus.step()
                del bus.log[:]  # the fakes' own records: not the firmware's
                del machine.LOG[:]
                for u in uarts:  # what the pack sent on RS485 (its link frames)
                    u.sent = bytearray()
                while peer.recv(slot) is not None:
                    frames += 1
            u = used() - fakes_b
            if u > R["peak"]:
                R["peak"] = u
    R["frames"] = frames
    R["reads"] = app.state.snap.reads
    R["soc_pct"] = app.state.soc_pct
    R["counters"] = list(app.persist.now) if app.persist is not None else None  # store.counters' fields
    R["inverter_heard"] = app.state.inverter_frames
    R["end"] = used() - fakes_b
    if HOST is not None:
        host_session(app, r, bus, peer, slot, t, fakes_b)

def ask(r, bus, peer, slot, t, uarts, rtu, can_id, can_data):
    # one request (RTU bytes on Link IN, or a CAN frame from the peer) and
    # 500 ms of the pack's time; (RTU reply bytes, CAN reply frames, time,
    # peak). uarts: Link IN's and Link OUT's fake UARTs (what the pack sends
    # on Link OUT is dropped each step: the fake's buffer is not the firmware's)
    uart = uarts[0]
    uart.sent = bytearray()
    if rtu:
        uart.rx.extend(rtu)
    if can_data:
        peer.send(can_id, can_data, 2)
    rep = []
    peak = 0
    for ms in range(10, 501, 10):
        r.run_until(t + ms)
        bus.step()
        del bus.log[:]
        uarts[1].sent = bytearray()
        while peer.recv(slot) is not None:
            if slot[0] == (can_id & 0xFFFF0000) | (can_id & 0xFF) << 8 | (can_id >> 8) & 0xFF:
                rep.append(binascii.hexlify(bytes(slot[1])).decode())
        u = used()
        if u > peak:
            peak = u
    return binascii.hexlify(uart.sent).decode(), rep, t + 500, peak

def host_session(app, r, bus, peer, slot, t, fakes_b):
    # HOST: the PC tool's first requests after the stretch: an RTU read on
    # Link IN (HOST["rtu"]), then an ISO-TP single frame on CAN from the
    # tester's SA 0xF1 to the pack's address (HOST["can"]); HOST["oom"]: the
    # first RTU request with the heap filled to that many free bytes
    R["host_mods"] = [m for m in ("app.host", "app.hostcan", "app.relay", "bms.auth", "proto.modbus",
                                  "proto.isotp", "proto.sunspec") if m in sys.modules]
    R["host_built"] = app.host.services is not None
    uart = (app.board.link_in.uart, app.board.link_out.uart)
    uart[1].sent = bytearray()
    can_id = 0x18EF00F1 | app.link.roles.address << 8
    peak = 0
    if HOST.get("oom"):
        ballast = []
        n = gc.mem_free() // 2
        while n >= 16 and gc.mem_free() > HOST["oom"]:
            try:
                ballast.append(bytearray(n))
            except MemoryError:
                n //= 2
        R["oom_reply"], _, t, _ = ask(r, bus, peer, slot, t, uart, HOST["rtu"], 0, None)
        R["oom_failed"] = app.host.failed
        R["oom_built"] = app.host.services is not None
        ballast = None
    R["rtu_reply"], _, t, p = ask(r, bus, peer, slot, t, uart, HOST["rtu"], 0, None)
    peak = max(peak, p)
    _, R["can_reply"], t, p = ask(r, bus, peer, slot, t, uart, None, can_id, HOST["can"])
    peak = max(peak, p)
    R["host_peak"] = peak - fakes_b
    R["host"] = used() - fakes_b
    R["failed"] = app.host.failed

try:
    run()
except MemoryError as e:
    R["error"] = "MemoryError"
R.pop("tasks", None)
print(json.dumps(R))
"""

# a charge, a rest, a discharge (seconds, mA): what CI affords
STRETCH = ((20, 30000), (5, 0), (20, -40000))


# the PC tool's first requests (run_board(host=...)): FC 03 of INFO registers
# 0..4 for unit 1 on Link IN (its CRC low byte first), FC 03 of registers
# 0..1 as an ISO-TP single frame
HOST_RTU = bytes.fromhex("010300000005" "85c9")
HOST_CAN = bytes((5, 3, 0, 0, 0, 2, 0, 0))
HOST_SESSION = {"rtu": HOST_RTU, "can": HOST_CAN}


def run_board(board, store, heap_bytes, app_path, fakes_image, stretch=STRETCH, exe=None, timeout_s=120,
              host=None, data=None):
    """Boot board from app_path (store 'romfs' or 'mpy') under -X heapsize
    and run stretch; the script's JSON figures (plus 'heap'). host (e.g.
    HOST_SESSION, "oom": free bytes left for the first request): then the PC
    tool's first requests (host_session in SCRIPT: 'host', 'host_peak', the
    replies as hex). data: the store's directory (a board's flash: what an
    earlier run left there is loaded, as at every boot but the first); else
    an empty one."""
    exe = exe or interpreter()
    with tempfile.TemporaryDirectory() as tmp:
        code = "APP = %r\nFAKES = %r\nSTORE = %r\nMAIN = %r\nDATA = %r\nSTRETCH = %r\nHOST = %r\n" % (
            app_path, fakes_image, store, main_module(store),
            data or os.path.join(tmp, "data"), [list(s) for s in stretch], host) + SCRIPT
        path = os.path.join(tmp, "ram.py")
        with open(path, "w") as f:
            f.write(code)
        env = dict(os.environ, MICROPYPATH="")
        r = subprocess.run([exe, "-X", "heapsize=%d" % heap_bytes, path], capture_output=True, text=True,
                           timeout=timeout_s, cwd=tmp, env=env)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        err = (r.stderr or r.stdout).strip().splitlines()
        if any("MemoryError" in e for e in err[-2:]):
            return {"error": "MemoryError", "heap": heap_bytes}
        raise RuntimeError("%s %s: %s" % (board, store, err[-1] if err else "exit %d" % r.returncode))
    out = json.loads(lines[-1])
    out["heap"] = heap_bytes
    out["qstr"] = _qstr_pools(lines)
    return out


# ---- heap per construction step ------------------------------------------------------

# Boots as SCRIPT does, after importing every firmware module (NAMES, so that
# no import falls inside a step), with every project function and every
# project class's own __init__ wrapped: each call records its depth and the
# gc.collect'd mem_alloc delta around it (what it leaves allocated: its
# result and what it stored elsewhere; a class's instance header, allocated
# before __init__, is not counted). The records go into preallocated arrays
# so that recording allocates nothing. Prints one JSON line:
# {"imports": bytes, "steps": [[name, depth, bytes], ...]} in call order.
STEPS_SCRIPT = r"""
import gc, os, sys, vfs, json, array
""" + MOUNT + FAKES_SETUP + r"""
rig = fakes()
app_path()
import board
rig.wire(board)
main = __import__(MAIN)
gc.collect()
a0 = gc.mem_alloc()
for n in NAMES:
    __import__(n)
gc.collect()
IMPORTS = gc.mem_alloc() - a0
N = 20000
NAME = array.array("H", bytes(2 * N))
DEPTH = array.array("B", bytes(N))
DELTA = array.array("i", bytes(4 * N))
K = array.array("i", [0, 0])  # records so far, current depth
LABELS = []

def wrap(f, label):
    i = len(LABELS)
    LABELS.append(label)

    def w(*a, **kw):
        k = K[0]
        K[0] = k + 1
        NAME[k] = i
        DEPTH[k] = K[1]
        K[1] += 1
        gc.collect()
        b = gc.mem_alloc()
        try:
            r = f(*a, **kw)
        finally:
            K[1] -= 1
        gc.collect()
        DELTA[k] = gc.mem_alloc() - b
        return r
    return w

FN = type(wrap)
# frozen modules' __file__ is their bare name: NAMES picks the firmware's
mods = [(m, n) for n, m in sys.modules.items()
        if ((n in NAMES or n == MAIN) if ROOT_PREFIX is None
            else getattr(m, "__file__", "").startswith(ROOT_PREFIX))]
home = {id(m.__dict__): n for m, n in mods}
done = {}
for m, n in mods:
    for k, v in list(m.__dict__.items()):
        if type(v) is FN:
            w = done.get(id(v))
            if w is None:
                w = done[id(v)] = wrap(v, home.get(id(v.__globals__), n) + "." + k)
            setattr(m, k, w)
        elif type(v) is type and id(v) not in done and "__init__" in v.__dict__:
            init = v.__dict__["__init__"]
            if type(init) is FN and id(init.__globals__) in home:
                done[id(v)] = v
                v.__init__ = wrap(init, home[id(init.__globals__)] + "." + k)
from store.fs import OsFs
from store.store import Store
main.start(board.build(), store=Store(OsFs(DATA)), clock=main._clock())
print(json.dumps({"imports": IMPORTS, "steps": [[LABELS[NAME[k]], DEPTH[k], DELTA[k]] for k in range(K[0])]}))
"""


def steps(board, store, app_path, fakes_image, exe=None):
    """(import bytes, [(name, depth, bytes)] in call order): the boot's
    construction steps (STEPS_SCRIPT)."""
    exe = exe or interpreter()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "steps.py")
        with open(path, "w") as f:
            f.write("APP = %r\nFAKES = %r\nSTORE = %r\nMAIN = %r\nDATA = %r\nNAMES = %r\nROOT_PREFIX = %r\n" % (
                app_path, fakes_image, store, main_module(store),
                os.path.join(tmp, "data"), firmware_modules(board),
                {"romfs": "/rom", "mpy": app_path}.get(store)) + STEPS_SCRIPT)
        r = subprocess.run([exe, "-X", "heapsize=%d" % BIG_HEAP, path], capture_output=True, text=True,
                           timeout=300, cwd=tmp, env=dict(os.environ, MICROPYPATH=""))
    if r.returncode != 0:
        raise RuntimeError("steps failed: %s" % r.stderr.strip().splitlines()[-3:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return out["imports"], [tuple(s) for s in out["steps"]]


def step_tree(records, depth=3, min_bytes=256):
    """Lines of the step table: calls to the same function under one parent
    summed (xN), down to depth, those under min_bytes left out."""
    lines = []

    def walk(recs, d):
        # recs: records at depth >= d, the first at d
        groups = {}
        i = 0
        while i < len(recs):
            j = i + 1
            while j < len(recs) and recs[j][1] > d:
                j += 1
            g = groups.setdefault(recs[i][0], [0, 0, []])
            g[0] += recs[i][2]
            g[1] += 1
            g[2] += recs[i + 1:j]
            i = j
        for name, (b, count, sub) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
            if b >= min_bytes:
                lines.append("  %-60s %8d" % ("  " * d + name + (" x%d" % count if count > 1 else ""), b))
                if sub and d + 1 < depth:
                    walk(sub, d + 1)

    walk(list(records), 0)
    return lines


# ---- heap per module ---------------------------------------------------------------

# Imports each module alone after its dependencies: for each name, gc.collect
# and mem_alloc before and after `import name` (its deps were imported first,
# in the order given), under the fakes so the board module and drivers load.
# After each import micropython.qstr_info() prints the qstr pool (the
# interned names: their entries sit on the heap, their text stays in the
# image from ROMFS); the pool grows by doubling, so the module that crosses
# a size pays for the next pool.
MODULE_SCRIPT = r"""
import gc, os, sys, vfs, json, micropython
""" + MOUNT + FAKES_SETUP + r"""
mount(FAKES, "/fk")
app_path()
import machine, esp32
out = []
micropython.qstr_info()
for name in NAMES:
    gc.collect()
    a = gc.mem_alloc()
    __import__(name)
    gc.collect()
    out.append([name, gc.mem_alloc() - a])
    micropython.qstr_info()
print(json.dumps(out))
"""


def _qstr_pools(lines):
    """[(n_qstr, pool bytes)] from micropython.qstr_info() lines."""
    out = []
    for line in lines:
        if line.startswith("qstr pool:"):
            f = dict(kv.split("=") for kv in line.split(":", 1)[1].replace(",", " ").split())
            out.append((int(f["n_qstr"]), int(f["n_total_bytes"]) - int(f["n_str_data_bytes"])))
    return out


# A dynamic qstr pool (py/qstr.c, 1.27): a header of 24 bytes, then per entry
# a pointer, a 2-byte hash and a 1-byte length (MICROPY_QSTR_BYTES_IN_HASH 2:
# the unix and ESP32 builds; rp2 has 1), in 16-byte heap blocks; the first
# holds 20 (twice the const pools' 10), each next one twice the last.
_POOL_HEADER = 24
_POOL_ENTRY = 7


def _pools(n_qstr):
    """The entries of each dynamic pool that n_qstr qstrs fill: 20, 40, ..."""
    sizes, alloc = [], 20
    while sum(sizes) < n_qstr:
        sizes.append(alloc)
        alloc *= 2
    return sizes


def _pool_heap(entries):
    return (_POOL_HEADER + _POOL_ENTRY * entries + 15) // 16 * 16


def pool_bytes(n_qstr):
    """Heap bytes of the dynamic qstr pools that hold n_qstr qstrs."""
    return sum(_pool_heap(a) for a in _pools(n_qstr))


def pool_step(n_qstr):
    """(k, bytes): k fewer qstrs than n_qstr would spare the last dynamic
    pool, of that many bytes (the step is a cliff: one qstr short of it
    spares nothing)."""
    sizes = _pools(n_qstr)
    return n_qstr - sum(sizes[:-1]), _pool_heap(sizes[-1])


def board_qstrs(r):
    """The qstrs in a board's dynamic pools after boot (board_pools' count:
    the rig's start, then the firmware's); 0 if not measured."""
    q = r.get("qstr")
    if not q or len(q) < 3:
        return 0
    (n0, _), (n1, _), (n2, _) = q[:3]
    return n0 + n2 - n1


def board_pools(r):
    """Bytes to add to run_board's figures for the qstr pools a board holds:
    in the rig the fakes' qstrs fill the small pools first, so the firmware's
    share (pools made after the fakes) is less than the pools the firmware's
    qstrs need with only the interpreter's start before them, unless the
    fakes' qstrs take the rig over a pool the board stays under (then this
    is negative: a whole pool less; pool_bytes;
    it reproduces the measured pools, host_tests/test_ram_gate.py). The start
    counted is the rig's, its script's names included: a board's boot.py and
    main stub intern fewer, so a board may hold up to ~0.6 KB more."""
    q = r.get("qstr")
    if not q or len(q) < 3:
        return 0
    (n0, _), (_, p1), (_, p2) = q[:3]
    return pool_bytes(board_qstrs(r)) - pool_bytes(n0) - (p2 - p1)


# the modules whose functions run at every boot: their lazy imports count too
BOOT_LAZY = ("main", "board", "bq_board", "bq_build", "app.app", "app.compose", "app.ports")


def _all_imports(path):
    """Every module a source file names in an import, lazy ones included."""
    import ast
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name


def firmware_modules(board):
    """Every project module the board's firmware imports when it boots
    (main.start and what the board's build() pulls in), in dependency
    order, the lazy imports of BOOT_LAZY included."""
    srcs = {}
    for src, label in deploy.firmware_sources(ROOT):
        parts = label[:-3].split("/")
        if parts[0] == "lib":
            parts = parts[1:]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        srcs[".".join(parts)] = src
    boards = os.path.join(ROOT, "boards")
    srcs["board"] = os.path.join(boards, board + ".py")
    for m in deploy.board_imports(boards, board):
        srcs[m] = os.path.join(boards, m + ".py")
    order, seen = [], set()

    def visit(name):
        if name in seen or name not in srcs:
            return
        seen.add(name)
        if "." in name:
            visit(name.rpartition(".")[0])
        deps = list(deploy.module_imports(srcs[name]))
        if name in BOOT_LAZY:
            deps += list(_all_imports(srcs[name]))
        for dep in deps:
            for i in range(1, dep.count(".") + 2):
                visit(".".join(dep.split(".")[:i]))
        order.append(name)

    visit("board")
    visit("main")
    return [m for m in order if m not in ("main", "board")] + ["board"]


def per_module(board, store, app_path, fakes_image, exe=None):
    """[(module, heap bytes, new qstrs, qstr pool growth bytes)] importing
    each module alone after its deps."""
    exe = exe or interpreter()
    names = firmware_modules(board)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mods.py")
        with open(path, "w") as f:
            f.write("APP = %r\nFAKES = %r\nSTORE = %r\nNAMES = %r\n" % (app_path, fakes_image, store, names)
                    + MODULE_SCRIPT)
        r = subprocess.run([exe, "-X", "heapsize=%d" % BIG_HEAP, path], capture_output=True, text=True,
                           timeout=120, cwd=tmp, env=dict(os.environ, MICROPYPATH=""))
    if r.returncode != 0:
        raise RuntimeError("per-module import failed: %s" % r.stderr.strip().splitlines()[-1:])
    lines = r.stdout.strip().splitlines()
    q = _qstr_pools(lines)
    return [(m, b, q[i + 1][0] - q[i][0], q[i + 1][1] - q[i][1])
            for i, (m, b) in enumerate(json.loads(lines[-1]))]


# ---- the figures -----------------------------------------------------------------

def _kb(n):
    return "%.1f KB" % (n / 1024)


# the budgets, KiB: (after boot, peak over the stretch or None), each
# against the board column (the qstr pools as a board holds them)
BUDGETS_KB = {("esp32_bq", "romfs"): (48, 56), ("rp2040_bq", "mpy"): (150, None)}


def budget_line(board, store, r, after_kb, peak_kb):
    """One line of `make perf`: run_board's figures r against the budgets."""
    pools = board_pools(r)

    def verdict(n, kb):
        d = n - kb * 1024
        return "%s of %d KB: %s" % (_kb(n), kb, "met" if d <= 0 else "over by " + _kb(d))
    line = "budget %s %s (with the board's qstr pools): after boot %s" % (board, store,
                                                                          verdict(r["boot"] + pools, after_kb))
    if peak_kb is not None:
        line += "; peak " + verdict(r["peak"] + pools, peak_kb)
    n = board_qstrs(r)
    if n:
        k, b = pool_step(n)
        line += "; %d qstrs in the pools, %d fewer would spare a pool of %s" % (n, k, _kb(b))
    return line


def frozen_bytes(exe):
    """The flash the frozen content takes (text + data of frozen_content.o,
    written beside the binary by tools/build_frozen_unix.sh); 0 if unknown."""
    try:
        with open(os.path.join(os.path.dirname(exe), "frozen_bytes")) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def figures(out=print):
    """What `make perf` prints: per real board and store, the heap after boot
    and its peak over the stretch (firmware only), the ROMFS image size, and
    the heap per module."""
    exe = interpreter()
    if exe is None:
        out("RAM on the board: not measured (%s)" % HOWTO)
        return None
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        fakes = build_fakes(tmp)
        out("RAM on the board (32-bit unix MicroPython 1.27, %s; fakes and image bytes taken off;"
            " budgets: ESP32 from ROMFS <= 48 KB after boot, <= 56 KB peak; .mpy <= 150 KB; imports: board"
            " and main at module level, main.start's lazy imports count in boot):" % exe)
        out("  (host: after the stretch, the PC tool's first requests, one RTU read on Link IN and one"
            " ISO-TP read on CAN, build the host protocol (app.hostport); its peak over them)")
        out("  (board: after boot with the qstr pools a board holds for the firmware's qstrs, not the rig's"
            " share of them: board_pools)")
        out("  %-10s %-12s %10s %10s %10s %10s %10s %10s %10s %10s %10s" % (
            "board", "store", "imports", "boot", "board", "peak", "host", "host peak", "fakes", "image", "frozen"))
        missing = []
        for board in REAL_BOARDS:
            for store in ("romfs", "mpy") + tuple(FROZEN_STORES):
                bexe = frozen_interpreter(board, store) if store in FROZEN_STORES else exe
                if bexe is None:
                    missing.append("%s %s" % (board, store))
                    continue
                plan, path = build_app(board, store, tmp)
                r = run_board(board, store, BIG_HEAP, path, fakes, exe=bexe, host=HOST_SESSION)
                res[(board, store)] = (r, path, bexe, plan)
                if "error" in r:
                    out("  %-10s %-12s %s" % (board, store, r["error"]))
                    continue
                out("  %-10s %-12s %10s %10s %10s %10s %10s %10s %10s %10s %10s" % (
                    board, store, _kb(r["imports"]), _kb(r["boot"]), _kb(r["boot"] + board_pools(r)),
                    _kb(r["peak"]), _kb(r["host"]),
                    _kb(r["host_peak"]), _kb(r["fakes"] + r["harness"]), _kb(r["image"]) if r["image"] else "-",
                    _kb(frozen_bytes(bexe)) if store in FROZEN_STORES else "-"))
        if missing:
            out("  not measured (no frozen interpreter: make micropython-frozen MICROPYTHON_DIR=...): "
                + ", ".join(missing))
        for (board, store), (after_kb, peak_kb) in BUDGETS_KB.items():
            r = res.get((board, store), ({"error": "not run"},))[0]
            if "error" not in r:
                out("  " + budget_line(board, store, r, after_kb, peak_kb))
        board = REAL_BOARDS[0]
        stores = [s for s in ("romfs", "mpy", "frozen") if (board, s) in res]
        rows = {s: {m[0]: m[1:] for m in per_module(board, s, res[(board, s)][1], fakes, res[(board, s)][2])}
                for s in stores}
        out("heap per module, %s (import alone after its deps, gc.collect, mem_alloc delta; new qstrs"
            " and the qstr pool's growth, part of the romfs figure):" % board)
        out("  %-24s %9s %9s %9s %7s %9s" % ("module", "romfs", "mpy", "frozen", "qstrs", "pool"))
        order = sorted(rows["mpy"], key=lambda m: -rows["mpy"][m][0])
        for m in order:
            b, nq, pool = rows["romfs"].get(m, (0, 0, 0))
            fz = "%9d" % rows["frozen"].get(m, (0,))[0] if "frozen" in rows else "%9s" % "-"
            out("  %-24s %9d %9d %s %7d %9d" % (m, b, rows["mpy"][m][0], fz, nq, pool))
        tot = [sum(v[i] for v in rows["romfs"].values()) for i in range(3)]
        fz = "%9d" % sum(v[0] for v in rows["frozen"].values()) if "frozen" in rows else "%9s" % "-"
        out("  %-24s %9d %9d %s %7d %9d" % ("total", tot[0], sum(v[0] for v in rows["mpy"].values()), fz,
                                            tot[1], tot[2]))
        print_steps(board, "romfs", res[(board, "romfs")][1], fakes, exe, out=out, plan=res[(board, "romfs")][3])
        if (board, "frozen") in res:
            print_steps(board, "frozen", None, fakes, res[(board, "frozen")][2], out=out)
    return res


def print_steps(board, store, app_path, fakes_image, exe=None, depth=3, out=print, plan=None):
    """The step tree; plan (the deploy plan of app_path): its labels as the
    sources spell them, not as the compacted copies do."""
    imports, recs = steps(board, store, app_path, fakes_image, exe)
    if plan is not None:
        recs = [(plan.original(n), d, b) for n, d, b in recs]
    top = sum(b for _, d, b in recs if d == 0)
    out("heap per construction step, %s from %s (boot: all imports %d B first, then each call's"
        " gc.collect'd mem_alloc delta; nested calls indented, included in their caller's; >= 256 B):"
        % (board, store, imports))
    for line in step_tree(recs, depth):
        out(line)
    out("  %-60s %8d" % ("total of the top-level steps", top))


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m tools.ram")
    ap.add_argument("--steps", action="store_true", help="only the heap per construction step")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--store", choices=("romfs", "mpy", "frozen"), default="romfs")
    ap.add_argument("--board", choices=REAL_BOARDS, default=REAL_BOARDS[0])
    a = ap.parse_args(argv)
    if not a.steps:
        figures()
        return 0
    exe = frozen_interpreter(a.board, a.store) if a.store in FROZEN_STORES else interpreter()
    if exe is None:
        print("no frozen interpreter: tools/build_frozen_unix.sh" if a.store in FROZEN_STORES else HOWTO)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        plan, path = build_app(a.board, a.store, tmp)
        print_steps(a.board, a.store, path, build_fakes(tmp), exe, depth=a.depth, plan=plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
