# The MicroPython gate: what is deployed must run in the real MicroPython
# (the WebAssembly port, 1.27), not only on CPython.
#
# Sections:
#   1. the runner itself (tools/mpy_wasm): layout, output, errors, timeouts
#   2. imports: every deployed module imports, in ONE interpreter run;
#      firmware/boot.py and main.py are only compiled (importing runs them);
#      board modules that need `machine` are skipped for now
#   (further gate steps, e.g. trace identity and the heap_lock control step,
#   go below as their own sections, using the `mpy` fixture)
import json
import os
import textwrap

import pytest

from heap_probe import LOCKED, assert_prints_ok
from tools import deploy, mpy_wasm

ROOT = mpy_wasm.REPO_ROOT
GATE_TIMEOUT_S = 120


# ---- 1. the runner ----------------------------------------------------------

@pytest.fixture
def tiny_tree(tmp_path):
    """A project tree in tmp_path laid out like the repo."""
    files = {
        "firmware/boot.py": "BOOT = 1\n",
        "firmware/app/__init__.py": "",
        "firmware/app/svc.py": "from pkg.mod import VALUE\n",
        "firmware/app/__pycache__/svc.cpython-311.py": "raise Exception\n",
        "lib/pkg/__init__.py": "",
        "lib/pkg/mod.py": "VALUE = 42\n",
        "lib/pkg/notes.txt": "not copied\n",
        "boards/tb.py": "from app.svc import VALUE\n",
        "boards/sub/deep.py": "not copied\n",
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_runner_lays_out_the_tree_like_a_board(mpy, tiny_tree):
    code = textwrap.dedent("""
        import os, sys, json
        def walk(p):
            out = []
            for e in os.ilistdir(p):
                q = (p.rstrip('/') + '/' + e[0])
                if q in ('/tmp', '/home', '/dev', '/proc'):
                    continue
                out += walk(q) if e[1] & 0x4000 else [q]
            return out
        import tb
        print(json.dumps({"path": sys.path, "cwd": os.getcwd(), "files": sorted(walk('/')), "v": tb.VALUE}))
    """)
    r = mpy.run(code, timeout_s=30, root=tiny_tree)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["path"] == ["", ".frozen", "/lib", "/boards"]
    assert got["cwd"] == "/"
    assert got["v"] == 42
    assert got["files"] == ["/app/__init__.py", "/app/svc.py", "/boards/tb.py", "/boot.py",
                            "/lib/pkg/__init__.py", "/lib/pkg/mod.py"]


def test_runner_passes_stdout_through_exactly(mpy):
    code = ('import sys\nprint(\'{"t": 1, "s": "\\u00b0C"}\')\nprint()\n'
            'sys.stdout.write("a\\r\\nb")\nprint("err", file=sys.stderr)\n')
    r = mpy.run(code, timeout_s=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == '{"t": 1, "s": "\u00b0C"}\n\na\r\nb'
    assert r.stderr == "err\n"


def test_runner_exception_is_exit_1_with_traceback(mpy):
    r = mpy.run("def f():\n    raise ValueError('boom')\nprint('before')\nf()\n", timeout_s=30)
    assert r.returncode == 1
    assert r.stdout == "before\n"
    assert "Traceback (most recent call last):" in r.stderr
    assert r.stderr.rstrip().endswith("ValueError: boom")


def test_runner_system_exit_code(mpy):
    assert mpy.run("import sys\nsys.exit(3)", timeout_s=30).returncode == 3
    assert mpy.run("raise SystemExit", timeout_s=30).returncode == 0


def test_runner_asyncio_mode_allows_top_level_await(mpy):
    code = textwrap.dedent("""
        import asyncio
        async def tick(n):
            for i in range(n):
                print(i)
                await asyncio.sleep_ms(1)
        await asyncio.gather(tick(2), tick(1))
        print("done")
    """)
    r = mpy.run(code, timeout_s=30, asyncio=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0", "1", "done"]


def test_runner_kills_a_hang(mpy):
    # The known hang of this port: a module-level exception while the heap is
    # locked. The timeout must kill Node.
    code = "import micropython\nmicropython.heap_lock()\nx = [1, 2]\n"
    with pytest.raises(mpy.WasmTimeout):
        mpy.run(code, timeout_s=2)


def test_runner_streams_lines(mpy):
    code = "for i in range(3):\n    print('{\"i\": %d}' % i)\nwhile True:\n    pass\n"
    with mpy.popen(code, timeout_s=1.5) as p:
        lines = [json.loads(p.stdout.readline()) for _ in range(3)]
        assert lines == [{"i": 0}, {"i": 1}, {"i": 2}]
        p.wait()
        assert p.timed_out


# ---- 2. imports ---------------------------------------------------------------

class Module:
    """A deployed module: name (import name), label (path in the repo),
    action ('import' or 'compile'), skip (reason or None)."""

    def __init__(self, name, label, path, action, skip=None):
        self.name, self.label, self.path, self.action, self.skip = name, label, path, action, skip

    def __repr__(self):
        return self.label


def _module_name(label):
    """Repo label -> import name on the board: app/x.py -> app.x,
    lib/bms/__init__.py -> bms, boards/host_sim.py -> host_sim."""
    parts = label[:-3].split("/")
    if parts[0] in ("lib", "boards"):
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _needs_machine(name, by_name, seen=None):
    """True when importing `name` imports `machine`, directly or through
    project modules."""
    seen = set() if seen is None else seen
    if name in seen or name not in by_name:
        return False
    seen.add(name)
    for imp in deploy.module_imports(by_name[name].path):
        if imp == "machine" or imp.startswith("machine."):
            return True
        parts = imp.split(".")
        for i in range(1, len(parts) + 1):
            if _needs_machine(".".join(parts[:i]), by_name, seen):
                return True
    return False


def discover_modules(root=ROOT):
    """Every deployed module, found in the tree (new modules join by
    themselves)."""
    mods = []
    for src, label in deploy.deployed_sources(root):
        if label in deploy.ROOT_SCRIPTS:
            mods.append(Module("/" + label, "firmware/" + label, src, "compile"))
        else:
            name = _module_name(label)
            shown = label if label.startswith(("lib/", "boards/")) else "firmware/" + label
            mods.append(Module(name, shown, src, "import"))
    by_name = {m.name: m for m in mods if m.action == "import"}
    for m in mods:
        if m.label.startswith("boards/") and _needs_machine(m.name, by_name):
            m.skip = ("board module imports `machine`, which the WebAssembly port lacks: "
                      "section 6 imports and starts it with fake machine pins")
    return mods


GATE_SCRIPT = textwrap.dedent("""
    def _gate(todo):
        import sys, gc, io, json
        for action, name in todo:
            print(json.dumps(["start", name]))
            before = set(sys.modules)
            try:
                if action == "compile":
                    with open(name) as f:
                        compile(f.read(), name, "exec")
                else:
                    __import__(name)
                print(json.dumps(["ok", name]))
            except BaseException as e:
                buf = io.StringIO()
                sys.print_exception(e, buf)
                print(json.dumps(["fail", name, buf.getvalue()]))
                for m in list(sys.modules):
                    if m not in before:
                        del sys.modules[m]
            gc.collect()
        print(json.dumps(["done"]))
    _gate(%s)
""")


def run_import_gate(mpy, mods, root=None, timeout_s=GATE_TIMEOUT_S):
    """Import/compile mods in one MicroPython run: {name: None (ok) or error
    text}. A hang (killed by the timeout) fails the module that was running
    and the run goes on with the rest."""
    results = {}
    todo = [(m.action, m.name) for m in mods]
    while todo:
        try:
            r = mpy.run(GATE_SCRIPT % json.dumps(todo), timeout_s=timeout_s, root=root)
            out, err, hung = r.stdout, r.stderr, False
        except mpy.WasmTimeout as e:
            out, err, hung = e.output or "", e.stderr or "", True
        current = None
        for line in out.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a module printed something at import
            if not isinstance(rec, list) or not rec or rec[0] not in ("start", "ok", "fail", "done"):
                continue
            if rec[0] == "start":
                current = rec[1]
            elif rec[0] == "ok":
                results[rec[1]] = None
                current = None
            elif rec[0] == "fail":
                results[rec[1]] = rec[2]
                current = None
        done = {n for n in results}
        if current is not None:
            results[current] = ("MicroPython hung while importing this module and was killed after %ss "
                                "(in this port a module-level exception under micropython.heap_lock() "
                                "hangs)" % timeout_s if hung else
                                "the interpreter stopped while importing this module:\n" + err)
            done.add(current)
        elif any(a_n[1] not in done for a_n in todo):
            for _, n in todo:
                if n not in done:
                    results[n] = "not reached: the interpreter stopped (exit %s)\n%s" % (
                        "timeout" if hung else r.returncode, err)
            break
        todo = [t for t in todo if t[1] not in done]
    return results


MODULES = discover_modules()


@pytest.fixture(scope="module")
def import_results(mpy):
    return run_import_gate(mpy, [m for m in MODULES if not m.skip])


def test_gate_finds_modules():
    labels = {m.label for m in MODULES}
    assert "firmware/app/__init__.py" in labels
    assert any(label.startswith("lib/bms/") for label in labels)
    assert all(m.action == "compile" for m in MODULES if m.label in ("firmware/boot.py", "firmware/main.py"))


@pytest.mark.parametrize("mod", MODULES, ids=[m.label for m in MODULES])
def test_imports_in_micropython(mod, import_results):
    if mod.skip:
        pytest.skip(mod.skip)
    error = import_results.get(mod.name, "no result")
    if error is not None:
        what = "compile" if mod.action == "compile" else "import %s" % mod.name
        pytest.fail("%s: cannot %s in MicroPython:\n%s" % (mod.label, what, error), pytrace=False)


def test_gate_reports_failing_modules_by_name(mpy, make_tree):
    root = make_tree({
        "firmware/main.py": "print('main must not run')\n",
        "lib/good.py": "X = 1\n",
        "lib/bad.py": "import does_not_exist\n",
        "lib/uses_bad.py": "from good import X\nY = X + 1\n",
        "boards/needs_pin.py": "import machine\n",
        "boards/plain.py": "from good import X\n",
    })
    mods = discover_modules(root)
    assert {m.name: m.skip is not None for m in mods} == {
        "/main.py": False, "bad": False, "good": False, "uses_bad": False,
        "needs_pin": True, "plain": False}
    res = run_import_gate(mpy, [m for m in mods if not m.skip], root=root, timeout_s=30)
    assert res["/main.py"] is None and res["good"] is None and res["uses_bad"] is None
    assert res["plain"] is None
    assert "does_not_exist" in res["bad"]


# ---- 3. the same scenario gives the same trace in MicroPython and CPython ----

IDENTITY_SCENARIO = {
    "packs": 2, "duration_s": 90, "seed": 5,
    "initial": {"soc_pct": [20, 90], "ambient_c": 31.5},
    "events": [
        {"t_s": 5, "set": "current_a", "value": 42.5},
        {"t_s": 20, "sensor": "cell_mv", "pack": 1, "index": 7, "value": 3333},
        {"t_s": 30, "fault": "afe_crc", "pack": 0, "on": True, "value": 300},
        {"t_s": 40, "set": "current_a", "value": -75},
        {"t_s": 50, "fault": "short_circuit", "pack": 1, "on": True},
        {"t_s": 60, "fault": "ntc_open", "pack": 0, "index": 2, "on": True},
        {"t_s": 70, "set": "ambient_c", "value": -5},
    ],
}


def test_trace_is_identical_in_micropython_and_cpython(mpy):
    import simworld
    from sim import scenario as scn
    from sim.mock_afe import FAULTS

    text = json.dumps(IDENTITY_SCENARIO)
    cpy = []
    simworld.World(scn.parse(text, FAULTS), cpy.append).run()
    r = mpy.run("import simworld\nsimworld.run_text(%r, print)\n" % text, timeout_s=GATE_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    mpy_lines = r.stdout.splitlines()
    assert len(cpy) > 180  # both packs, every second plus changes
    assert any('"SCD"' in ln for ln in cpy)  # the scenario reached the hardware channel
    for i, (a, b) in enumerate(zip(cpy, mpy_lines)):
        assert a == b, "first difference at trace line %d" % i
    assert len(mpy_lines) == len(cpy)


# ---- 4. the periodic control step allocates nothing (heap locked) -------------

HEAP_LOCK_STEP = """
import micropython, simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS

w = simworld.World(scn.parse('{"duration_s": 100, "initial": {"soc_pct": 60}}', FAULTS), lambda line: None)
w.run_until(3000)
pack = w.packs[0]
app = pack.app
stages = list(app.cycle.stages) + [app.indicate]
""" + LOCKED + """
def probe():
    if not lock_works():
        return "heap_lock does not catch allocation"
    for current_ma in (0, 30000, -30000, 200):
        w.system_request_ma = current_ma
        for _ in range(20):
            now = w.runner.now_ms
            pack.afe.step(100, w.request_ma(pack))
            for st in stages:
                err = locked(st.tick, now)
                if err:
                    return type(st).__name__ + " " + err + " at current " + str(current_ma)
            w.runner.now_ms = now + 100
    return "ok"

print(probe())
"""


def test_control_step_runs_under_heap_lock(mpy):
    assert_prints_ok(mpy, HEAP_LOCK_STEP, GATE_TIMEOUT_S)


# ---- 5. the board runner (asyncio) makes the pack safe when a service fails ---

ASYNC_RUNNER = """
import simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS
from app.runner import Runner

w = simworld.World(scn.parse('{"duration_s": 10}', FAULTS), lambda line: None)
w.run_until(1000)
pack = w.packs[0]
app = pack.app

class Flaky:
    name = "flaky"
    period_ms = 20
    n = 0
    def tick(self, now_ms):
        self.n += 1
        if self.n == 5:
            raise OSError(5)

app.services.append(Flaky())
failed = await Runner(app).run()
print(failed[0], app.state.chg_fet, app.state.dsg_fet, pack.model.cmd_chg, pack.model.cmd_dsg,
      pack.board.led_pins[1].level, app.state.safe_reason)
"""


def test_board_runner_failure_opens_fets_in_micropython(mpy):
    r = mpy.run(ASYNC_RUNNER, timeout_s=GATE_TIMEOUT_S, asyncio=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["flaky", "False", "False", "False", "False", "1", "flaky"]


# ---- 6. the bench and real boards start in MicroPython with fake machine pins

BENCH_BOARD = """
FAKE_MACHINE = '''
class Pin:
    OUT = 1
    IN = 0
    log = []
    def __init__(self, n, mode=-1, value=None):
        self.n = n
        self.v = 0 if value is None else value
    def value(self, v=None):
        if v is None:
            return self.v
        if v != self.v:
            Pin.log.append((self.n, v))
        self.v = v
'''
with open('/lib/machine.py', 'w') as f:
    f.write(FAKE_MACHINE)
import machine
import %(board)s as board
from app.compose import pack
from sim.vtime import VirtualRunner
app = pack(board.build())
r = VirtualRunner()
for svc in app.services:
    r.add(svc)
r.run_until(10000)
run_pin = board.LED_PINS[0]
edges = [e for e in machine.Pin.log if e[0] == run_pin]
print(app.state.snap.reads, app.state.mode, app.state.soc_valid, len(edges))
"""


@pytest.mark.parametrize("board", ["esp32_bench", "rp2040_bench"])
def test_bench_board_starts_with_fake_pins(mpy, board):
    r = mpy.run(BENCH_BOARD % {"board": board}, timeout_s=GATE_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    reads, mode, soc_valid, run_edges = r.stdout.split()
    assert int(reads) == 100  # 10 s of 100 ms cycles against the mock AFE
    assert soc_valid == "True"
    # at 08:00 the sun already beats the base load (sim.profile): charging,
    # so RUN is steadily on (SPEC 4): one rising edge, then no blinking
    assert int(mode) == 2
    assert int(run_edges) == 1


# the real boards: a fake machine (host_tests/fake_machine.py) whose I2C is the
# BQ76952 model (CRC on) and a PCA9555 model, whose SPI, CS and INT are an
# MCP2515 model on a simulated bus with a second node; the firmware reads the
# cells through the real driver and a CAN frame goes out through the real one
REAL_BOARD = """
for name, src in FILES:
    with open('/lib/' + name, 'w') as f:
        f.write(src)
import machine
from bq_rig import Rig
import %(board)s as board
rig = Rig()
bq, bus = rig.bq, rig.bus
peer = rig.peer()
rig.wire(board)
import main
from sim.vtime import VirtualRunner
app, sup = main.start(board.build())
r = VirtualRunner()
for svc in app.services:
    r.add(svc)
r.run_until(3000)
snap = app.state.snap
sent = app.board.can.send(0x351, b'\\x01\\x02', 0)
bus.step()
got = peer.recv([0, memoryview(bytearray(8)), 0, 0])
print(snap.reads, snap.cell_mv[0], snap.cell_mv[15], app.board.afe.comm_errors, machine.WDTS[0].feeds,
      hex(got[0]), bytes(got[1]) == b'\\x01\\x02', bq.dm_get(0x9261, '<B'))
"""


@pytest.mark.parametrize("board", ["esp32_bq", "rp2040_bq"])
def test_real_board_starts_with_fake_pins_and_chip_models(mpy, board):
    import fake_machine
    from tools import ram
    files = []
    for module, name in ram.FAKE_FILES:
        with open(os.path.join(ram.HOST_TESTS, name), encoding="utf-8") as f:
            files.append((module + ".py", f.read()))
    files.append(("esp32.py", fake_machine.FAKE_ESP32))
    code = "FILES = %r\n" % (files,) + REAL_BOARD % {"board": board}
    r = mpy.run(code, timeout_s=GATE_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    reads, c1, c16, errors, feeds, can_id, data_ok, prot = r.stdout.split()
    assert int(reads) == 30  # 3 s of 100 ms cycles against the BQ76952 model
    assert (int(c1), int(c16)) == (3300, 3315) and int(errors) == 0
    assert int(feeds) == 3  # the watchdog supervisor fed machine.WDT each second
    assert can_id == "0x351" and data_ok == "True"
    assert int(prot) == 0xBC  # App programmed the hardware protections


# ---- 7. tick arithmetic near the wrap stays in small ints ---------------------

TICKS_NEAR_WRAP = """
import micropython
from defs.ticks import ticks_add, ticks_diff, TICKS_MASK

def probe():
    cases = ((TICKS_MASK, 0), (0, TICKS_MASK), (TICKS_MASK - 5, 10), ((1 << 29) + 7, 3))
    out = []
    for a, b in cases:
        micropython.heap_lock()
        try:
            d = ticks_diff(a, b)
            s = ticks_add(a, 300)
        except MemoryError:
            d = s = None
        finally:
            micropython.heap_unlock()
        out.append((d, s))
    return out

print(probe())
"""


def test_tick_arithmetic_does_not_allocate_near_the_wrap(mpy):
    r = mpy.run(TICKS_NEAR_WRAP, timeout_s=GATE_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    # None would mean a MemoryError: the arithmetic left the small-int range
    assert r.stdout.strip() == str([(-1, 299), (1, 300), (-16, 294), ((1 << 29) + 4 - (1 << 30), (1 << 29) + 307)])


# ---- 8. counters of the periodic path stay small ints (issue 14) -------------
# Each case runs one periodic call under heap_lock at the edge where a counter
# used to leave the small-int range (2**30 on a 32-bit board; the wasm port has
# the same 30-bit small ints, checked by the first case). The same script runs
# in the 32-bit unix MicroPython when it is there.

SMALL_INT_COUNTERS = """
import micropython
from bms import params as P
from bms.params import Params
from bms.soc import SocEstimator
from bms.state import PackState
from app.acquire import Acquire

def locked(fn):
    # fn: a closure made before the lock (a call with *args would allocate)
    micropython.heap_lock()
    try:
        fn()
        return True
    except MemoryError:
        return False
    finally:
        micropython.heap_unlock()

def bump(x):
    return lambda: x + 1

class Afe:
    ok = True
    def read(self, snap):
        return self.ok

def plateau(st, ma):
    for c in range(16):
        st.snap.cell_mv[c] = 3300
    st.snap.stack_mv = 16 * 3300
    st.snap.min_cell_mv = st.snap.max_cell_mv = 3300
    st.snap.current_ma = st.current_ma = ma

def estimator():
    st = PackState()
    st.soc_restore_ppm = 500000
    st.chg_fet = st.dsg_fet = True
    est = SocEstimator(Params().v)
    plateau(st, 0)
    est.update(st, 0, 100)
    return st, est

out = []
big = (1 << 30) - 1
out.append(locked(bump(big - 1)) and not locked(bump(big)))  # the port's small ints end here

st = PackState()
acq = Acquire(Afe(), st, lambda: 0, Params())
st.snap.reads = big - 1
ok = locked(lambda: acq.tick(100)) and locked(lambda: acq.tick(200)) and locked(lambda: acq.tick(300))
out.append((ok, st.snap.reads))
acq.afe.ok = False
st.afe_errors = big
out.append((locked(lambda: acq.tick(400)), st.afe_errors))

st, est = estimator()
st.dsg_ah = 1073742  # x 1000 passes 2**30
plateau(st, -100000)
ok = True
step = lambda: est.update(st, -100000, 1000)
for _ in range(36):  # 100 A for 36 s = 1 Ah
    ok = locked(step) and ok
out.append((ok, st.dsg_ah, st.cycles))

for ma in (-300000, 300000):  # one read after 12 s of AFE errors
    st, est = estimator()
    plateau(st, ma)
    out.append((locked(lambda: est.update(st, ma, 12000)), st.dsg_wh, st.chg_wh))

# from a full point 1,100 Ah counted out (a count that drifted for years) before
# the empty end: the capacity learned from it stays a small-int computation
from defs.codes import PROTECTIONS
st, est = estimator()
st.protections = 1 << PROTECTIONS.index("COVP")
est.update(st, 0, 100)
st.protections = 0
plateau(st, -1000000)
est.update(st, -1000000, 3600000)
est.update(st, -1000000, 360000)
st.protections = 1 << PROTECTIONS.index("CUVP")
out.append((locked(lambda: est.update(st, -1000000, 100)), st.soc_ppm, est.learn_count, st.fcc_mah))
print(out)
"""


def _small_int_counters_expected():
    e = [True, (True, 2), (True, (1 << 30) - 1)]  # reads: 2**30 - 2, - 1, then 1, 2
    e.append((True, 1073743, 1073743 * 1000 // 100000))  # cycles of a 100 Ah pack
    wh = 16 * 3300 * 300 * 12 // 3600 // 1000  # 52.8 V x 300 A x 12 s, whole Wh
    e.append((True, wh, 0))
    e.append((True, 0, wh))
    e.append((True, 0, 1, 110000))  # at 0 %, capacity clamped to rated + 10 % (soc.py)
    return str(e)


def test_counters_stay_small_ints_under_heap_lock(mpy):
    r = mpy.run(SMALL_INT_COUNTERS, timeout_s=GATE_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == _small_int_counters_expected()


def test_counters_stay_small_ints_under_heap_lock_on_32_bit(mpy32):
    r = mpy32(SMALL_INT_COUNTERS, heap="512K", timeout_s=GATE_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == _small_int_counters_expected()


# ---- 9. the link service ticks allocate nothing while link frames flow ---------
# three packs chained Link OUT -> Link IN, once on a shared CAN bus and once
# CAN-less (reports relayed up the RS485 chain); the ports are preallocated
# rings (the bench's sim ports allocate, the board's machine.CAN/UART do not
# when given a buffer), so only the link service itself is under test

LINK_HEAP_LOCK = """
import micropython
from array import array
from bms.state import PackState
from bms.params import Params
from app import compose
from proto import link

Q = 64

class Bus:
    def __init__(self):
        self.ports = []
        self.sent = 0

class Can:
    FLAG_EXT_ID = 2
    def __init__(self, bus):
        self.bus = bus
        bus.ports.append(self)
        self.ids = array('i', [0] * Q)
        self.fl = bytearray(Q)
        self.ln = bytearray(Q)
        self.data = bytearray(8 * Q)
        mv = memoryview(self.data)
        self.views = [[mv[8 * k:8 * k + n] for n in range(9)] for k in range(Q)]
        self.head = 0
        self.count = 0
    def send(self, id_, data, flags):
        b = self.bus
        b.sent += 1
        for p in b.ports:
            if p is not self and p.count < Q:
                k = (p.head + p.count) % Q
                p.ids[k] = id_
                p.fl[k] = flags
                n = len(data)
                p.ln[k] = n
                for i in range(n):
                    p.data[8 * k + i] = data[i]
                p.count += 1
    def any(self):
        return self.count > 0
    def recv(self, fr):
        k = self.head
        fr[0] = self.ids[k]
        fr[1] = self.views[k][self.ln[k]]
        fr[2] = self.fl[k]
        fr[3] = 0
        self.head = (k + 1) % Q
        self.count -= 1
        return fr

class End:
    def __init__(self):
        self.rx = bytearray(1024)
        self.head = 0
        self.count = 0
        self.peer = None
        self.written = 0
    def write(self, data):
        p = self.peer
        n = len(data)
        self.written += n
        if p is None:
            return n
        for i in range(n):
            if p.count < 1024:
                p.rx[(p.head + p.count) % 1024] = data[i]
                p.count += 1
        return n
    def any(self):
        return self.count
    def readinto(self, buf):
        n = self.count if self.count < len(buf) else len(buf)
        if not n:
            return None
        for i in range(n):
            buf[i] = self.rx[(self.head + i) % 1024]
        self.head = (self.head + n) % 1024
        self.count -= n
        return n

class Board:
    pass

def chain(with_can):
    bus = Bus()
    svcs = []
    prev_out = None
    for k in range(3):
        b = Board()
        b.can = Can(bus) if with_can else None
        b.link_in = End()
        b.link_out = End()
        if prev_out is not None:
            prev_out.peer = b.link_in
            b.link_in.peer = prev_out
        prev_out = b.link_out
        st = PackState()
        snap = st.snap
        snap.reads = 1
        for i in range(len(snap.cell_mv)):
            snap.cell_mv[i] = 3300 + i + k
        for i in range(len(snap.temp_dc)):
            snap.temp_dc[i] = 250 + i
        snap.stack_mv = 16 * 3310
        svcs.append(compose.link(st, Params(), b, compose.Ports(b)))
    return bus, svcs

""" + LOCKED + """
def probe(with_can):
    if not lock_works():
        return "heap_lock does not catch allocation"
    bus, svcs = chain(with_can)
    now = 0
    for k in range(100):  # roles, addresses, formation, the master's first cells reply: unlocked
        if k == 80:
            svcs[0].ask_cells(2)  # the master's cells/NTC block is built at the first reply
        for s in svcs:
            s.tick(now)
        now += 100
    m = svcs[0]
    before = (bus.sent, svcs[1].relayed, svcs[2].rx_in.port.written)
    for step in range(120):
        if step % 20 == 0:
            m.ask_cells(2)
            m.ask_cells(3)
        for k in range(3):
            err = locked(svcs[k].tick, now)
            if err:
                return "pack %d %s at step %d" % (k, err, step)
        now += 100
    roles = [(s.state.link_role, s.state.link_address) for s in svcs]
    cells = (m.table.cells_ms[2] >= 0) + (m.table.cells_ms[3] >= 0)
    return "ok %s online %d cells %d can %d relayed %d up %d" % (
        roles, m.state.link_online, cells, bus.sent - before[0], svcs[1].relayed - before[1],
        svcs[2].rx_in.port.written - before[2])

print(probe(True))
print(probe(False))
"""


def test_link_ticks_run_under_heap_lock_with_frames_flowing(mpy):
    r = mpy.run(LINK_HEAP_LOCK, timeout_s=GATE_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2, r.stdout
    roles = "[(2, 1), (3, 2), (3, 3)]"  # parallel.MASTER at 1, SLAVE at 2 and 3
    for ln, with_can in zip(lines, (True, False)):
        words = ln.split(" online ")
        assert words[0] == "ok " + roles, ln
        online, _, cells, _, can, _, relayed, _, up = words[1].split()
        assert int(online) == 3 and int(cells) == 2, ln  # every slave's reports and cells arrived
        if with_can:
            assert int(can) > 100, ln  # 12 s of reports, HELLOs, requests, cells on the bus
        else:
            assert int(can) == 0 and int(up) > 0, ln  # pack 3's reports go up its Link IN
            assert int(relayed) > 20, ln  # pack 2 relayed pack 3's reports up and the master's frames down


# ---- 10. the inverter service allocates nothing per request / frame (heap locked) --

HEAP_LOCK_INVERTER = """
import micropython
from bms.params import Params
from bms.state import PackState
from app.inverter import Inverter
from app.canport import CanPort
from app.router import Router
from proto import pylon_rs485 as pr
from proto import pylon_can

class View:
    valid = True
    voltage_mv = 53000
    current_ma = -20000
    soc_pct = 62
    soh_pct = 100
    packs_online = 1
    cvl_mv = 56000
    dvl_mv = 48000
    ccl_ma = 70000
    dcl_ma = 100000
    force_charge = 0
    max_cell_mv = 3310
    min_cell_mv = 3300
    max_cell_pack = max_cell_index = min_cell_pack = min_cell_index = 1
    max_temp_dc = 300
    min_temp_dc = 250
    max_temp_pack = max_temp_index = min_temp_pack = min_temp_index = 1
    protections = alarms = faults = 0
    capacity_mah = 100000
    packs_blocking_charge = packs_blocking_discharge = packs_offline = 0

class Port:
    # a UART that neither allocates nor keeps what it is given
    def __init__(self):
        self.n = 0
    def write(self, b):
        self.n += 1
        return len(b)
    def any(self):
        return 0

class Uart(Port):
    # Link IN: what load() put there, read into the router's buffer
    def __init__(self):
        Port.__init__(self)
        self.rx = bytearray(256)
        self.end = self.pos = 0
    def load(self, b):
        for i in range(len(b)):
            self.rx[i] = b[i]
        self.end = len(b)
        self.pos = 0
    def any(self):
        return self.end - self.pos
    def readinto(self, buf):
        n = self.end - self.pos
        if n > len(buf):
            n = len(buf)
        for i in range(n):
            buf[i] = self.rx[self.pos + i]
        self.pos += n
        return n

class Can:
    FLAG_EXT_ID = 2
    def __init__(self):
        self.rx = 0
        self.sent = 0
    def any(self):
        return self.rx > 0
    def recv(self, slot):
        self.rx -= 1
        slot[0] = 0x305
        slot[2] = 0
        return slot
    def send(self, fid, buf, flags):
        self.sent += 1
        return 1

def requests(p):
    out = []
    for cid2, info in ((0x4F, b""), (0x51, b""), (0x42, b"\\x02"), (0x42, b"\\xff"), (0x44, b"\\x02"),
                       (0x47, b""), (0x92, b"\\x02"), (0x93, b"\\x02"), (0x96, b"\\x02"), (0x61, b""),
                       (0x62, b""), (0x63, b""), (0x77, b""), (0x42, b"\\x09")):
        out.append(bytearray(pr.build_request(0x20, 2, cid2, info)))
    bad = bytearray(out[2])
    bad[-2] ^= 1  # checksum error
    out.append(bad)
    out.append(bytearray(b"garbage~~\\r"))
    return out

""" + LOCKED + """
def probe():
    if not lock_works():
        return "heap_lock does not catch allocation"
    for pid in (0, 1):
        st = PackState()
        st.snap.reads = 1
        for i in range(16):
            st.snap.cell_mv[i] = 3300 + i
        st.snap.stack_mv = 52800
        can = Can()
        port = Uart()
        p = Params()
        p.set_by_name("inv_protocol_count", pid)
        inv = Inverter(st, p, View(), can, port)
        rx = Router(port)  # as app.compose wires them: the port's readers
        rx.subscribe_ascii(inv)
        can_rx = CanPort(can)
        can_rx.subscribe(inv, pylon_can.CAN_FILTER)
        reqs = requests(p)
        for r in reqs:  # warm-up: one reply of each length
            port.load(r)
            rx.poll(0)
        before = port.n
        for k in range(3):
            st.current_ma = (-20000, 30000, 5)[k]
            st.soc_pct = (62, 100, 0)[k]
            for r in reqs:
                port.load(r)
                err = locked(rx.poll, 0)
                if err:
                    return "router and on_rs485 " + err + " for " + str(bytes(r))
        if port.n - before != 3 * (len(reqs) - 1):
            return "replies: " + str(port.n - before)
        # CAN: the inverter's frames heard, the frame set sent every period
        t = 0
        def step(t):
            can_rx.poll()
            inv.tick(t)
        for k in range(60):
            can.rx = 1
            err = locked(step, t)
            if err:
                return "tick " + err + " at " + str(t)
            t += 50
        if can.sent < 2 * len(inv.enc.frames):
            return "CAN frames sent: " + str(can.sent)
    return "ok"

print(probe())
"""


def test_inverter_serves_rs485_and_can_under_heap_lock(mpy):
    assert_prints_ok(mpy, HEAP_LOCK_INVERTER, GATE_TIMEOUT_S)


# The host protocol handler (app.host): after one warm-up request of each reply
# length, RTU reads of every block of the map (SunSpec models, INFO, DIAG,
# control, parameters), an out-of-map read, FC 0x2B/0x0E and an unknown function code run
# under heap_lock, and each is answered (no exception 04 from a MemoryError).
HEAP_LOCK_HOST = LOCKED + """
from app.host import Host, PARAM
from app.hostctl import CTL_REGS
from bms import parallel
from bms.params import Params
from proto import sunspec as ss

class Link:
    def __init__(self):
        self.table = parallel.Table().build()  # every row, as a heard peer builds them (app.link)

from bms.state import PackState
from bms.system import SystemView, from_pack
from proto import modbus as mb

class Port:
    def __init__(self):
        self.n = 0
    def write(self, b):
        self.n += 1
        return len(b)

def frame(pdu):
    b = bytearray([1]) + pdu
    c = mb.crc16(b, len(b))
    b.append(c & 0xFF)
    b.append(c >> 8)
    return b

def probe():
    if not lock_works():
        return "heap_lock does not catch allocation"
    st = PackState()
    st.snap.reads = 1
    st.snap.stack_mv = 52800
    st.current_ma = -20000
    p = Params()
    v = SystemView()
    from_pack(v, st, p)
    port = Port()
    h = Host(st, p, v, port, None)
    # the master's pack table (803): itself, a slave online, one lost
    st.link_role = parallel.MASTER
    st.link_address = 1
    lk = Link()
    for a in (1, 2, 3):
        lk.table.seen[a] = 1
        lk.table.online[a] = 1 if a < 3 else 0
        lk.table.voltage_mv[a] = 52800 + a
    h.link = lk
    reqs = [frame(bytearray([3, 0x9c, 0x40, 0, 125])), frame(bytearray([3, 0x9c, 0x40 + 120, 0, 125])),
            frame(bytearray([4, 0x9c, 0x40 + 68, 0, 64])), frame(bytearray([3, 0, 0, 0, 5])),
            frame(bytearray([3, 0, 100, 0, 36])), frame(bytearray([3, PARAM >> 8, PARAM & 255, 0, 125])),
            frame(bytearray([3, 0x13, 0x88, 0, 1])), frame(bytearray([0x2b, 0x0e, 1, 0])),
            frame(bytearray([3, 1, 44, 0, CTL_REGS])), frame(bytearray([3, 0, 0, 0, 13])),
            frame(bytearray([0x42])), frame(bytearray([0x41, 3, 0, 0, 0xAA]))]  # unknown; the update block
    for a in (ss.AT_803, ss.AT_803 + 100, ss.AT_804 - 60, ss.AT_804, ss.AT_805 - 10, ss.TOP - 125):
        reqs.append(frame(bytearray([3, a >> 8, a & 255, 0, 125])))
    for r in reqs:
        h.on_rs485(r, len(r))
    n0 = port.n
    for r in reqs:
        failed = False
        micropython.heap_lock()
        try:
            h.on_rs485(r, len(r))
            h.tick(50)
        except MemoryError:
            failed = True
        micropython.heap_unlock()
        if failed:
            return "allocates for " + str(bytes(r))
    if h.errors or port.n - n0 != len(reqs):
        return "errors %d replies %d" % (h.errors, port.n - n0)
    return "ok"

print(probe())
"""


def test_host_reads_run_under_heap_lock(mpy):
    assert_prints_ok(mpy, HEAP_LOCK_HOST, GATE_TIMEOUT_S)
