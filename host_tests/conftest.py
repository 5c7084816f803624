# Owns the host test setup: the board's module path on CPython (lib/ as /lib,
# firmware/ as the board's root, boards/ for board modules; tools/ for the host
# modules imported by name, as tools/paths.py does; the repo root for
# `from tools import ...`), Hypothesis profiles, the `mpy` fixture: the
# real MicroPython (WebAssembly) runner, tools/mpy_wasm.py, and the `mpy32`
# fixture: the 32-bit unix MicroPython with a hard heap cap (tools/ram.py).
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# sys.path ends up: lib, firmware, boards, tools, repo root, ... (lib first)
for _d in (ROOT, os.path.join(ROOT, "tools"), os.path.join(ROOT, "boards"),
           os.path.join(ROOT, "firmware"), os.path.join(ROOT, "lib")):
    if _d in sys.path:
        sys.path.remove(_d)
    sys.path.insert(0, _d)

try:
    from hypothesis import HealthCheck, settings

    # No per-example deadline: 2 shared cores make timings noisy. CI runs are
    # derandomized so a red CI is reproducible.
    settings.register_profile("dev", deadline=None)
    settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("ci" if os.environ.get("CI") else "dev")
except ImportError:  # pragma: no cover - hypothesis is in requirements.txt
    pass


@pytest.fixture(scope="session")
def mpy():
    """The tools.mpy_wasm module: mpy.run(code, timeout_s=..., asyncio=False)
    -> CompletedProcess; mpy.popen(code, timeout_s=...) -> streaming process.
    Fails (never skips) when Node or the npm package is missing: `make test`
    installs them, and a gate that skips proves nothing."""
    from tools import mpy_wasm

    reason = mpy_wasm.unavailable_reason()
    if reason:
        pytest.fail("real MicroPython (WebAssembly) unavailable: %s" % reason, pytrace=False)
    return mpy_wasm


@pytest.fixture(scope="session")
def mpy32():
    """run(code, heap="96K", timeout_s=120) -> CompletedProcess: code in the
    32-bit unix MicroPython ($MICROPYTHON_UNIX, else the shared one: tools.ram)
    with firmware/ and lib/ on its path, under -X heapsize=heap. Skips with
    one line where the interpreter is not on this machine (README, "RAM and
    CPU on the board")."""
    import subprocess
    from tools import ram

    exe = ram.interpreter()
    if exe is None:
        pytest.skip("32-bit unix MicroPython not here: set MICROPYTHON_UNIX (README, RAM and CPU on the board)")
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([os.path.join(ROOT, "firmware"), os.path.join(ROOT, "lib")]))

    def run(code, heap="96K", timeout_s=120):
        return subprocess.run([exe, "-X", "heapsize=" + heap, "-c", code], env=env, capture_output=True,
                              text=True, timeout=timeout_s)
    return run


# drivers.once: three rounds of a driver's set-up calls leave the heap as it
# was and its set-up module not imported (nothing of it stays referenced),
# and importing that module to keep costs more than its code's bytes (it was
# really gone); the calls run after SETUP, indented into the rounds' loop
_DROPPED = """
import gc, sys
import drivers
%s
held = []
for _ in range(3):
%s
    gc.collect()
    held.append(gc.mem_alloc())
gone = %r not in sys.modules and not hasattr(drivers, %r)
import %s
gc.collect()
code = gc.mem_alloc() - held[-1]
print("ok" if gone and max(held) - min(held) <= 64 and code > %d else (gone, held, code))
"""


@pytest.fixture(scope="session")
def dropped_after_each_call(mpy32):
    """check(setup, calls, module, code_bytes, heap): _DROPPED in the 32-bit
    MicroPython, asserted."""
    def check(setup, calls, module, code_bytes, heap):
        body = "\n".join("    " + ln for ln in calls.strip().splitlines())
        r = mpy32(_DROPPED % (setup, body, module, module.rpartition(".")[2], module, code_bytes), heap=heap)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "ok", r.stdout
    return check


@pytest.fixture(scope="session")
def repo_root():
    return ROOT


@pytest.fixture
def make_tree(tmp_path):
    """make_tree({relative path: text}) writes the files under tmp_path and
    returns its path: a small repository-shaped tree for a test."""
    def make(files):
        for rel, text in files.items():
            p = tmp_path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        return str(tmp_path)
    return make
