# Owns the split of the control step in the 32-bit unix MicroPython
# (tools.ram.interpreter; `make perf` prints figures(), tools/perf.py keeps
# today's total): each stage of app.cycle timed alone, the bench's own share
# of the step (the mock AFE's read and read_alerts, the host board's
# ticks_us: lib/sim, boards/host_sim.py) measured and taken off, as
# tools/ram.py takes the fakes' share off the heap; the BQ76952 driver's read
# (what the board runs in place of the mock's) on the tests' chip model, the
# model's time taken off; the real board's step (esp32_bq on the fake
# machine, the chip model's bytes replayed); and micro-benchmarks of the Python constructs the
# stages are made of, in microseconds per operation.
#
# The machine is shared and noisy: every figure is the fastest of many short
# windows, taken in turns, so that each item gets the same quiet moments; and
# the script collects once before it measures (tools.perf.UNIX_STEP, which
# does not, reads 2-3x more in a fresh process). A stage's figure also moves
# with what else runs: the same firmware measured 117 and 146 us per step
# with two ways of drawing the mock's noise (likely MicroPython's attribute
# lookup cache, one table of 128 entries for every map: py/map.c).
#
#   python -m tools.mpstep           the stage table and the driver's read
#   python -m tools.mpstep --ops     the micro-benchmarks
import os
import shutil
import subprocess
import sys
import tempfile

from tools import paths, ram

WINDOW = 50  # cycles (or calls) per timed window
ROUNDS = 100  # windows per item, in turns; each figure is the fastest window

# An I2C that answers each register with the bytes the chip model gave it
# first (writes go to the model): the driver does all its work, the bus next
# to nothing. The bytes through an io.BytesIO: a slice assignment would
# allocate (a slice object), and the collections that brings would land in
# the timed windows.
REPLAY = """
class Replay:
    def __init__(self, chip):
        self.chip = chip
        self.got = {}

    def readfrom_mem_into(self, addr, reg, buf):
        got = self.got.get(reg)
        if got is None:
            self.chip.readfrom_mem_into(addr, reg, buf)
            got = self.got[reg] = io.BytesIO(bytes(buf))
        got.seek(0)
        got.readinto(buf)

    def writeto_mem(self, addr, reg, buf):
        self.chip.writeto_mem(addr, reg, buf)
"""

# Each stage of n cycles timed alone (us per stage, summed); move() (the
# script's: the physics between cycles, or nothing) runs untimed.
STAGED = """
def staged(n):
    acc = [0] * len(stages)
    now = clock[0]
    for _ in range(n):
        move()
        i = 0
        for s in stages:
            t0 = tu()
            s.tick(now)
            acc[i] += td(tu(), t0)
            i += 1
        now += 100
    clock[0] = now
    return acc
"""

# Prints one line: name value pairs (us per cycle or per call). The world is
# the one of tools.perf.UNIX_STEP (one pack at 5 s, no physics between the
# cycles: the readings stay put); MOVING: the pack charges at 20 A with +-2 mV
# of cell noise, the physics stepped between the cycles, untimed.
STAGES = """
import sys
sys.path[:] = ["", ".frozen", ROOT + "/lib", ROOT + "/firmware", ROOT + "/boards", ROOT + "/tools",
               ROOT + "/host_tests"]
import gc, io, time, simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS
from defs.snapshot import Snapshot
from drivers.bq76952 import BQ76952
from sim_bq76952 import SimBQ76952

tu = time.ticks_us
td = time.ticks_diff
w = simworld.World(scn.parse('{"duration_s": 10}', FAULTS), lambda line: None,
                   afe_errors={"cell_noise_mv": 2} if MOVING else None)
w.run_until(5000)
pack = w.packs[0]
app = pack.app
afe = pack.afe
stages = app.cycle.stages
names = [type(s).__name__.lower() for s in stages]
S = len(stages)
clock = [w.runner.now_ms]


def move():
    if MOVING:
        afe.step(100, 20000)


# STAGED


def step(n):
    tick = app.cycle.tick
    now = clock[0]
    d = 0
    for _ in range(n):
        move()
        t0 = tu()
        tick(now)
        d += td(tu(), t0)
        now += 100
    clock[0] = now
    return d


def calls(fn, n):
    t0 = tu()
    for _ in range(n):
        fn()
    return td(tu(), t0)


def empty():
    pass


def timer_pair(n):
    d = 0
    for _ in range(n):
        t0 = tu()
        d += td(tu(), t0)
    return d


scratch = Snapshot()
read = afe.read
alerts = afe.read_alerts
board_ticks = pack.board.ticks_us
# the driver's read: on the tests' register model of the chip (CRC on, as the
# boards run it), and on a replay of the bytes that model gave (the driver's
# own work plus one copy per transfer: REPLAY)
chip = SimBQ76952(crc=True)
chip.cell_mv = [3300 + c for c in range(16)]
chip.render()
drv = BQ76952(chip, crc=True)


# REPLAY


rep = Replay(chip)
drv_rep = BQ76952(rep, crc=True)
drv_rep.read(scratch)
bufs = [(reg, memoryview(bytearray(len(b.getvalue())))) for reg, b in rep.got.items()]
addr = drv_rep.addr


def replay_only():
    for reg, b in bufs:
        rep.readfrom_mem_into(addr, reg, b)


def chip_only():
    for reg, b in bufs:
        chip.readfrom_mem_into(addr, reg, b)


items = (
    ("step", lambda: step(WINDOW)),
    ("staged", lambda: staged(WINDOW)),
    ("mock_read", lambda: calls(lambda: read(scratch), WINDOW)),
    ("mock_alerts", lambda: calls(alerts, WINDOW)),
    ("board_ticks_us", lambda: calls(board_ticks, WINDOW)),
    ("ticks_us", lambda: calls(tu, WINDOW)),
    ("call", lambda: calls(empty, WINDOW)),
    ("timer_pair", lambda: timer_pair(WINDOW)),
    ("driver_chip", lambda: calls(lambda: drv.read(scratch), WINDOW)),
    ("chip_only", lambda: calls(chip_only, WINDOW)),
    ("driver_replay", lambda: calls(lambda: drv_rep.read(scratch), WINDOW)),
    ("replay_only", lambda: calls(replay_only, WINDOW)),
)
# a fresh process runs the cycle 2-3x slower until its first collection
# (seen with today's world: not an allocation, the cycle runs heap-locked)
gc.collect()
best = {}
order = [name for name, fn in items if name != "staged"] + ["stage_" + n for n in names]
for _ in range(ROUNDS):
    for name, fn in items:
        d = fn()
        if name == "staged":
            for i in range(S):
                k = "stage_" + names[i]
                best[k] = min(best.get(k, 1 << 30), d[i])
        else:
            best[name] = min(best.get(name, 1 << 30), d)

# the parts of the stages: each method (or module function) below wrapped in
# a timer; the wrapper's own cost (around an empty function) is taken off
import sys as _sys
by = {type(s).__name__: s for s in stages}
PARTS = (
    ("protect._measure", by["Protect"].prot, "_measure"),
    ("protect._levels", by["Protect"].prot, "_levels"),
    ("protect._sensors", by["Protect"].prot, "_sensors"),
    ("protect._sensors._ntc_stuck", by["Protect"].prot, "_ntc_stuck"),
    ("protect._special", by["Protect"].prot, "_special"),
    ("protect._commit", by["Protect"].prot, "_commit"),
    ("control.sleep.check", by["Control"].sleep, "check"),
    ("control._drive", by["Control"], "_drive"),
    ("control._outputs", by["Control"], "_outputs"),
    ("estimate.est.update", by["Estimate"].est, "update"),
    ("estimate.limits.update", by["Estimate"].limits, "update"),
    ("balance.bal.update", by["Balance"].bal, "update"),
    ("system.from_pack", _sys.modules["app.system"], "from_pack"),
    ("system.aggregate", _sys.modules["app.system"], "aggregate"),
)
P = len(PARTS)
part_acc = [0] * (P + 1)
part_calls = [0] * (P + 1)


def wrap(k, f):
    def timed(*a):
        t0 = tu()
        r = f(*a)
        part_acc[k] += td(tu(), t0)
        part_calls[k] += 1
        return r
    return timed


missing = []  # parts renamed or gone: named in the output
for k in range(P):
    label, obj, attr = PARTS[k]
    f = getattr(obj, attr, None)
    if f is None:
        missing.append(label)
    else:
        setattr(obj, attr, wrap(k, f))
probe = wrap(P, lambda x: None)
part_best = [1 << 30] * (P + 1)
for _ in range(ROUNDS):
    for k in range(P + 1):
        part_acc[k] = 0
    staged(WINDOW)
    for _ in range(WINDOW):
        probe(0)
    for k in range(P + 1):
        part_best[k] = min(part_best[k], part_acc[k])
for k in range(P):
    if part_calls[k]:  # a part never called (system.from_pack on a master) is left out
        best["part_" + PARTS[k][0]] = part_best[k] - part_best[P] * part_calls[k] // (ROUNDS * WINDOW)
        order.append("part_" + PARTS[k][0])
print(" ".join("%s %.3f" % (k, best[k] / WINDOW) for k in order), "missing", ",".join(missing) or "-",
      "stages", ",".join(names))
""".replace("# REPLAY", REPLAY).replace("# STAGED", STAGED)


# The real board's control step: boards/esp32_bq.py built from source as
# main.py builds it, on host_tests/fake_machine.py (as `machine`; FAKES: a
# directory with the fake `esp32` module) with the rig of tools/ram.py
# (host_tests/bq_rig.py: the BQ76952 model on I2C); the step timed with the
# model's bytes replayed (the driver does all its work), the replay's copies
# taken off. Prints: name value pairs, us.
BOARD = """
import sys
sys.path[:] = ["", ".frozen", FAKES, ROOT + "/host_tests", ROOT + "/lib", ROOT + "/firmware", ROOT + "/boards"]
import fake_machine
sys.modules["machine"] = fake_machine
import gc, io, time
from bq_rig import Rig
rig = Rig()
import esp32_bq as board
rig.wire(board)
import main
app, sup = main.start(board.build())
tu = time.ticks_us
td = time.ticks_diff
chip = rig.bq
stages = app.cycle.stages
clock = [10000]


# REPLAY


def step(n):
    tick = app.cycle.tick
    now = clock[0]
    t0 = tu()
    for _ in range(n):
        tick(now)
        now += 100
    clock[0] = now
    return td(tu(), t0)


def move():
    pass


# STAGED


rep = Replay(chip)
step(WINDOW)
fake_machine.I2C_DEVICES[chip.addr] = rep
step(1)
bufs = [(reg, memoryview(bytearray(len(b.getvalue())))) for reg, b in rep.got.items()]


def copies(n):
    t0 = tu()
    for _ in range(n):
        for reg, b in bufs:
            rep.readfrom_mem_into(chip.addr, reg, b)
    return td(tu(), t0)


gc.collect()
best = {}
names = [type(s).__name__.lower() for s in stages]
for _ in range(ROUNDS):
    for k, d in (("step", step(WINDOW)), ("copies", copies(WINDOW))):
        best[k] = min(best.get(k, 1 << 30), d)
    a = staged(WINDOW)
    for i in range(len(stages)):
        k = "stage_" + names[i]
        best[k] = min(best.get(k, 1 << 30), a[i])
print(" ".join("%s %.3f" % (k, best[k] / WINDOW) for k in ["step", "copies"] + ["stage_" + n for n in names]),
      "afe", type(stages[0].afe).__name__)
""".replace("# REPLAY", REPLAY).replace("# STAGED", STAGED)


# Micro-benchmarks: each operation 10 times in a loop of N, the fastest of
# ROUNDS runs, less the empty loop's time: us per operation. The names, the
# instance and the module are what the stages use (bms.params as P, P.v).
OPS = """
import sys, time, array, micropython
sys.path[:] = ["", ".frozen", ROOT + "/lib"]
from bms import params as P
tu = time.ticks_us
td = time.ticks_diff


class K:
    k = 5

    def __init__(self):
        self.a = 5
        self.arr = array.array("H", [1] * 16)

    def m(self):
        pass

    def m3(self, a, b, c):
        pass


def f():
    pass


def f3(a, b, c):
    pass


OPS = (
    ("empty loop body", "pass"),
    ("local load", "x = a"),
    ("const() name (folded: a literal)", "x = 5"),
    ("global load", "x = G"),
    ("self.attr load", "x = s.a"),
    ("self.attr store", "s.a = 5"),
    ("class attribute via self", "x = s.k"),
    ("global object attribute", "x = GS.a"),
    ("module attribute P.NAME", "x = P.CURRENT_DEADBAND_MA"),
    ("params v[P.NAME]", "x = v[P.CURRENT_DEADBAND_MA]"),
    ("params v[1] (v a local)", "x = v[1]"),
    ("array('H') index load", "x = arr[i]"),
    ("array('H') index store", "arr[i] = 5"),
    ("self.arr[i] load", "x = s.arr[i]"),
    ("list index load", "x = lst[i]"),
    ("bytearray index load", "x = ba[i]"),
    ("dict lookup", "x = d[3]"),
    ("a + b", "x = a + b"),
    ("a * b // 1000000", "x = a * b // 1000000"),
    ("if a < b: x = a", "if a < b: x = a"),
    ("x = a if a < b else b", "x = a if a < b else b"),
    ("min(a, b)", "x = min(a, b)"),
    ("len(arr)", "x = len(arr)"),
    ("function call f()", "f()"),
    ("function call f(a, b, i)", "f3(a, b, i)"),
    ("method call s.m()", "s.m()"),
    ("method call s.m3(a, b, i)", "s.m3(a, b, i)"),
    ("bound method in a local m()", "m()"),
    ("tuple (a, b) (allocates)", "x = (a, b)"),
)
SRC = ("def bench(n, s, arr, lst, ba, v, m):\\n    a = 7\\n    b = 9\\n    i = 3\\n    x = 0\\n    d = {3: 4}\\n"
       "    for _ in range(n):\\n")
N = 200


def fastest(fn, *args):
    best = 1 << 30
    for _ in range(ROUNDS):
        t0 = tu()
        fn(*args)
        d = td(tu(), t0)
        best = d if d < best else best
    return best


out = []
s = K()
for name, op in OPS:
    ns = {"G": 5, "GS": K(), "P": P, "f": f, "f3": f3}
    exec(SRC + ("        " + op + "\\n") * 10, ns)
    out.append((name, fastest(ns["bench"], N, s, s.arr, [1] * 16, bytearray(16), P.Params().v, s.m) / (N * 10)))
base = out[0][1]
out = [(name, us - base) for name, us in out[1:]]


def for_range(arr):
    for c in range(16):
        x = arr[c]


def while_loop(arr):
    c = 0
    while c < 16:
        x = arr[c]
        c += 1


def for_in(arr):
    for x in arr:
        pass


@micropython.native
def native_for(arr):
    for c in range(16):
        x = arr[c]


@micropython.viper
def viper_while(arr):
    p = ptr16(arr)
    c = 0
    while c < 16:
        x = p[c]
        c += 1


def loops(fn, arr, n):
    for _ in range(n):
        fn(arr)


arr = array.array("H", [1] * 16)
for name, fn in (("for c in range(16): x = arr[c]", for_range), ("while c < 16: x = arr[c]; c += 1", while_loop),
                 ("for x in arr (16)", for_in), ("the same for-range, @micropython.native", native_for),
                 ("the same, @micropython.viper ptr16", viper_while)):
    out.append((name + " (a call included)", fastest(loops, fn, arr, 20) / 20))
for name, us in out:
    print("%s|%.4f" % (name, us))
"""


def _run(script, lines=False, **consts):
    """Run script in the interpreter with consts defined (and ROOT): its
    output's words (lines: its lines), None without the interpreter."""
    exe = ram.interpreter()
    if exe is None:
        return None
    head = "".join("%s = %r\n" % kv for kv in sorted(dict(consts, ROOT=paths.ROOT).items()))
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(head + script)
    try:
        r = subprocess.run([exe, "-X", "heapsize=%d" % ram.BIG_HEAP, f.name], capture_output=True, text=True,
                           timeout=600, env=dict(os.environ, MICROPYPATH=""))
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        raise RuntimeError((r.stderr or r.stdout).strip().splitlines()[-1:])
    return r.stdout.splitlines() if lines else r.stdout.split()


def stages(moving=False):
    """{item: us} of one run of STAGES (None without the interpreter): step,
    stage_<name> for each stage in the cycle's order (the list: "order"),
    part_<name> for the parts, the bench's share and the driver items (see
    split()); "missing": the parts the stages no longer have."""
    out = _run(STAGES, MOVING=moving, WINDOW=WINDOW, ROUNDS=ROUNDS)
    if out is None:
        return None
    r = {out[i]: float(out[i + 1]) for i in range(0, len(out) - 4, 2)}
    r["missing"] = [] if out[-3] == "-" else out[-3].split(",")
    r["order"] = out[-1].split(",")
    return r


def board():
    """{item: us} of one run of BOARD (None without the interpreter): step
    (whole steps), stages (the stages' sum), copies (the replay's), own
    (the lower of the two less the copies), stage_<name>; "afe": the
    driver's class."""
    sys.path.insert(0, ram.HOST_TESTS)
    try:
        import fake_machine
    finally:
        sys.path.remove(ram.HOST_TESTS)
    d = tempfile.mkdtemp()
    try:
        with open(os.path.join(d, "esp32.py"), "w") as f:
            f.write(fake_machine.FAKE_ESP32)
        out = _run(BOARD, FAKES=d, WINDOW=WINDOW, ROUNDS=ROUNDS)
    finally:
        shutil.rmtree(d)
    if out is None:
        return None
    r = {out[i]: float(out[i + 1]) for i in range(0, len(out) - 2, 2)}
    r["afe"] = out[-1]
    # as split(): the whole step or the stages' sum, the lower, less the copies
    r["stages"] = sum(v for k, v in r.items() if k.startswith("stage_"))
    r["own"] = min(r["step"], r["stages"]) - r["copies"]
    return r


def split(r):
    """The derived figures of a stages() result, us: stages (the sum of each
    stage's fastest, its timer taken off), step (the fastest window of whole
    steps or that sum, the lower: on a loaded machine a whole window is
    seldom quiet), bench (the mock AFE's read and read_alerts, the host
    board's ticks_us twice less the board's builtin: what the bench adds to
    a step), own (step less bench), driver (the BQ76952 driver's read less
    the replay's copies), chip (what the tests' chip model adds to the
    driver's read), board (own + driver: the step's CPU on a BQ board, the
    I2C transfers' bus time not counted)."""
    stages_us = sum(r["stage_" + n] - r["timer_pair"] for n in r["order"])
    step = min(r["step"], stages_us)
    bench = r["mock_read"] + r["mock_alerts"] + 2 * (r["board_ticks_us"] - r["ticks_us"])
    driver = r["driver_replay"] - r["replay_only"]
    return {"stages": stages_us, "step": step, "bench": bench, "own": step - bench, "driver": driver,
            "chip": r["driver_chip"] - r["driver_replay"], "board": step - bench + driver}


def figures():
    """Print the split (steady and moving) for `make perf`."""
    runs = [(label, stages(moving)) for label, moving in
            (("steady pack (today's world)", False), ("charging 20 A, +-2 mV cell noise", True))]
    if runs[0][1] is None:
        print("  the split: not measured: " + ram.HOWTO)
        return
    for label, r in runs:
        s = split(r)
        pair = r["timer_pair"]
        print("  %s: step %.0f us (whole steps %.0f, the stages' sum %.0f) = the firmware's own %.0f us + the "
              "bench's %.1f us (mock AFE read %.1f, read_alerts %.2f, host_sim ticks_us 2 x %.2f); with the "
              "BQ76952 driver's read (%.1f us; its chip model's %.0f us and the I2C bus time not counted) "
              "%.0f us on a board"
              % (label, s["step"], r["step"], s["stages"], s["own"], s["bench"], r["mock_read"], r["mock_alerts"],
                 r["board_ticks_us"], s["driver"], s["chip"], s["board"]))
        print("    stages alone (timer %.2f us taken off): %s" % (pair, ", ".join(
            "%s %.1f" % (n, r["stage_" + n] - pair) for n in r["order"])))
        print("    parts (timed alone; calls made by the timed part included): %s%s" % (", ".join(
            "%s %.1f" % (k[5:], v) for k, v in r.items() if k.startswith("part_")),
            "; not found (renamed?): " + ", ".join(r["missing"]) if r["missing"] else ""))
    b = board()
    print("  the real board (esp32_bq built from source on the fake machine, %s on the chip model's bytes "
          "replayed, their copies (%.1f us) taken off): step %.0f us (whole steps %.0f, the stages' sum %.0f); "
          "stages alone: %s" % (b["afe"], b["copies"], b["own"], b["step"], b["stages"],
                                ", ".join("%s %.1f" % (n, b["stage_" + n]) for n in runs[0][1]["order"])))


def ops():
    """[(operation, us)] of OPS, None without the interpreter."""
    out = _run(OPS, True, ROUNDS=ROUNDS)
    if out is None:
        return None
    return [(name, float(us)) for name, us in (line.rsplit("|", 1) for line in out)]


def main(argv):
    if "--ops" in argv:
        r = ops()
        if r is None:
            print(ram.HOWTO)
            return 1
        print("us per operation, 32-bit unix MicroPython 1.27 (the fastest of %d runs, the empty loop taken off):"
              % ROUNDS)
        for name, us in r:
            print("  %-56s %6.3f" % (name, us))
        return 0
    figures()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
