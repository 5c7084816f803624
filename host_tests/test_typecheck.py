"""Drivers and board modules type-check against the MicroPython stubs of each
port (ESP32 and RP2040), so a wrong `machine` API call is caught before a
board sees it. The stubs are installed per port by the Makefile."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUBS = os.path.join(ROOT, ".venv", "stubs")
PORTS = ("esp32", "rp2")


PORT_ARCH = {"esp32": "xtensawin", "rp2": "armv6m"}


def checked_files(port=None):
    """Drivers and the bench board for every port; a board module with an
    ARCH constant only against its own port's stubs (it may use that port's
    modules, e.g. esp32), one without ARCH against every port."""
    from tools.deploy import module_constants
    out = [os.path.join("lib", "drivers", f) for f in sorted(os.listdir(os.path.join(ROOT, "lib", "drivers")))
           if f.endswith(".py")]
    for f in sorted(os.listdir(os.path.join(ROOT, "boards"))):
        if not f.endswith(".py") or f == "host_sim.py":
            continue
        arch = module_constants(os.path.join(ROOT, "boards", f)).get("ARCH")
        if port is None or arch is None or arch == PORT_ARCH[port]:
            out.append(os.path.join("boards", f))
    out.append(os.path.join("lib", "sim", "benchboard.py"))
    return out


def mypy(port, files):
    stubs = os.path.join(STUBS, port)
    if not os.path.isdir(stubs):
        pytest.fail("port stubs missing in %s: run `make stubs`" % stubs)
    env = dict(os.environ, MYPYPATH=os.pathsep.join([stubs, os.path.join(ROOT, "lib"), os.path.join(ROOT, "firmware")]))
    r = subprocess.run([sys.executable, "-m", "mypy", "--python-version", "3.11", "--check-untyped-defs",
                        "--follow-imports=silent", "--no-error-summary", "--cache-dir",
                        os.path.join(ROOT, ".venv", ".mypy_cache_" + port), *files],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    # the stubs themselves have a few findings of their own; only ours count
    rel = os.path.relpath(stubs, ROOT)
    return [ln for ln in r.stdout.splitlines()
            if ": error:" in ln and not ln.startswith((stubs, rel))]


@pytest.mark.parametrize("port", PORTS)
def test_drivers_and_boards_typecheck(port):
    errors = mypy(port, checked_files(port))
    assert errors == [], "\n".join(errors)


def test_the_check_catches_a_wrong_machine_call(tmp_path):
    bad = tmp_path / "bad_board.py"
    bad.write_text("from machine import Pin\n\ndef build(n):\n    return Pin(n, Pin.OUTPUT)\n")
    errors = mypy("esp32", [str(bad)])
    assert any('has no attribute "OUTPUT"' in e for e in errors), errors
