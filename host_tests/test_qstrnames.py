# tools/qstrnames.py: the deployed copies' private names renamed to static
# qstrs. What is renamed, what is kept and why, and (in the 32-bit MicroPython
# when present) that a compacted program behaves the same with fewer qstrs.
import json
import os
import re
import subprocess
import sys

import pytest

from tools import qstrnames, ram

UPPER = "upper"


def one_side(m):
    return UPPER


def test_rename_replaces_names_only_and_keeps_the_lines():
    text = ('x = _a  # _a in a comment\n'
            's = "_a"\n'
            'def f(self, _a=1):\n'
            '    return self._a + _ab\n')
    out = qstrnames.rename(text, {"_a": "center"})
    assert out.splitlines() == ['x = center  # _a in a comment', 's = "_a"',
                                'def f(self, center=1):', '    return self.center + _ab']


def test_names_one_module_holds_get_donors_of_their_own():
    a = ("class A:\n    def __init__(self):\n        self._x = 1\n        self._y = 2\n"
         "    def _get(self):\n        return self._x\n")
    b = "_z = 3\ndef f():\n    return _z\n"
    m = qstrnames.plan_names({"a": a, "b": b}, one_side, [])[UPPER]
    assert set(m) == {"_x", "_y", "_get", "_z", "f"}  # f: b alone names it
    assert len({m["_x"], m["_y"], m["_get"]}) == 3
    words = set(re.findall(r"\w+", a + b))
    for d in m.values():
        assert d in qstrnames.DONORS and d not in words
    # b shares no module with a: its names take donors a uses
    assert m["_z"] in {m["_x"], m["_y"], m["_get"]} and m["_z"] != m["f"]


def test_a_public_name_is_renamed_where_one_side_alone_names_it():
    a = ("import machine\n"
         "from bms import helper\n"
         "class Port:\n"
         "    def __init__(self, uart):\n"
         "        self.uart = uart\n"
         "        self.frames_seen = 0\n"
         "        self.rx_count = 1\n"
         "    def readinto(self, buf):\n"  # MicroPython calls it by name
         "        self.frames_seen += 1\n"
         "        return self.uart.readinto(buf)\n"
         "    def helper(self):\n"  # a module's name
         "        return machine\n")
    b = "def pick_rx(rack):\n    return rack.rx_count\n"
    lower = "def low(rack):\n    return rack.frames_seen\n"

    def side(m):
        return "lower" if m == "low" else UPPER

    m = qstrnames.plan_names({"a": a, "b": b, "low": lower}, side, [])[UPPER]
    assert {"Port", "uart", "pick_rx", "rx_count"} <= set(m)
    for kept in ("frames_seen", "rack", "readinto", "helper", "machine"):  # both sides, MicroPython's, imported
        assert kept not in m, kept
    assert "pick_rx" not in qstrnames.plan_names({"b": b}, one_side, ["b.pick_rx(x)\n"])[UPPER]


def test_a_class_deriving_from_the_other_sides_keeps_its_modules_names():
    base = "class Afe:\n    def __init__(self):\n        self._raw = 0\n"
    sub = "from defs.afe import Afe\nclass Mock(Afe):\n    def __init__(self):\n        self._model = 1\n"

    def side(m):
        return "lower" if m.startswith("defs") else UPPER

    m = qstrnames.plan_names({"defs.afe": base, "sim.mock": sub}, side, [])
    assert "_raw" in m["lower"] and "_model" not in m[UPPER]


def test_past_the_static_donors_a_spare_name_serves_many():
    n = len(qstrnames.DONORS) + 5
    a = "".join("cell_%d = %d\n" % (i, i) for i in range(n))
    b = "".join("ntc_%d = %d\n" % (i, i) for i in range(n))
    m = qstrnames.plan_names({"a": a, "b": b}, one_side, [])[UPPER]
    assert len(m) == 2 * n and len(set(m.values())) == n
    spare = sorted(d for d in set(m.values()) if d not in qstrnames.DONORS)
    assert spare and all(re.fullmatch(r"q\d+", d) for d in spare)


def test_a_donor_is_never_a_name_the_sources_or_the_outside_use():
    first = qstrnames.DONORS[0]
    a = "_x = 1\ny = %s\n" % first
    m = qstrnames.plan_names({"a": a}, one_side, ["%s = 2\n" % qstrnames.DONORS[1]])[UPPER]
    assert m["_x"] not in (first, qstrnames.DONORS[1])


def test_names_a_string_a_const_or_the_outside_code_names_are_kept():
    a = ("from micropython import const\n"
         "_K = const(4)\n"
         "class A:\n"
         "    def __init__(self):\n"
         "        self._by_name = 1\n"
         "        self._seen_outside = 2\n"
         "        self._plain = 3\n"
         "    def get(self):\n"
         "        return getattr(self, '_by_name') + self._seen_outside + self._plain + _K\n"
         "def g(pin):\n"
         "    return pin._hw  # the driver's object: never defined here\n")
    m = qstrnames.plan_names({"a": a}, one_side, ["print(a._seen_outside)\n"])[UPPER]
    assert set(m) == {"_plain"}


def test_a_docstring_naming_a_private_name_does_not_keep_it():
    a = 'def f():\n    """Returns _n."""\n    return _n\n_n = 1\n'
    assert "_n" in qstrnames.plan_names({"a": a}, one_side, [])[UPPER]


def test_a_subclass_from_another_module_shares_no_donor_with_its_base():
    base = "class Base:\n    def __init__(self):\n        self._b = 1\n"
    sub = ("from base import Base\nclass Sub(Base):\n    def __init__(self):\n"
           "        Base.__init__(self)\n        self._s = 2\n")
    m = qstrnames.plan_names({"base": base, "sub": sub}, one_side, [])[UPPER]
    assert m["_b"] != m["_s"]
    # without the derivation the two could share one
    other = sub.replace("Sub(Base)", "Sub")
    m = qstrnames.plan_names({"base": base, "sub": other}, one_side, [])[UPPER]
    assert m["_b"] == m["_s"]


def test_the_frozen_boundary_is_compacted_apart():
    lower = "class D:\n    def __init__(self):\n        self._spi = 1\n        self._mode = 0\n"
    upper_own = "class U:\n    def __init__(self):\n        self._mode = 5\n"
    upper_reach = "def peek(d):\n    return d._spi\n"

    def side(m):
        return "lower" if m == "d" else UPPER

    m = qstrnames.plan_names({"d": lower, "u": upper_own, "r": upper_reach}, side, [])
    # _mode: each side its own (no module reaches another object's _mode)
    assert "_mode" in m["lower"] and "_mode" in m[UPPER]
    # _spi: an upper module reads it off an object that may be the lower's
    assert "_spi" not in m["lower"] and "_spi" not in m[UPPER]


def test_the_deploy_plan_compacts_and_writes_the_map(tmp_path):
    from tools import deploy
    p = deploy.plan(deploy.REPO_ROOT, "esp32_bq", "-", build_dir=str(tmp_path), store="romfs")
    plain = deploy.plan(deploy.REPO_ROOT, "esp32_bq", "-", build_dir=str(tmp_path / "plain"), store="romfs",
                        compact=False)
    assert not plain.names_map
    # the same sources give the same map (a board's traceback is read with a map built again),
    # whatever the process's string hashing
    code = ("import json; from tools import deploy; print(json.dumps(deploy.plan(deploy.REPO_ROOT, 'esp32_bq', '-',"
            " build_dir=%r, store='romfs').names_map, sort_keys=True))" % str(tmp_path / "again"))
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=deploy.REPO_ROOT,
                             env=dict(os.environ, PYTHONHASHSEED=seed), timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == p.names_map
    assert len(p.names_map["upper"]) > 200 and len(p.names_map["lower"]) > 100
    text = qstrnames.names_map(p.names_map)
    assert text.startswith("[lower]\n") and "\n[upper]\n" in text
    # the copies keep every line where it was (tracebacks name the source's lines)
    copies = dict(p.rewrites)
    n = 0
    for f in p.files:
        path = os.path.join(p.build_dir, "src", f.build[:-4] + ".py")
        if f.compiled and f.src and path in copies:
            with open(f.src, encoding="utf-8") as fh:
                assert len(fh.read().splitlines()) == len(copies[path].splitlines()), f.name
            n += 1
    assert n > 50
    # a label from the board (the step tree's, a traceback's) read back
    donor = p.names_map["upper"]["_fill"]
    assert p.original("bq_build." + donor) == "bq_build._fill"
    assert p.original("bq_build.build_bq_board") == "bq_build.build_bq_board"


PROGRAM_A = '''
class Counter:
    def __init__(self):
        self._n = 0
        self._step = 2
    def _bump(self):
        self._n += self._step
    def run(self, k):
        for _ in range(k):
            self._bump()
        return self._n
'''
PROGRAM_B = '''
import sys, micropython
sys.path.insert(0, DIR)
from a import Counter
_total = Counter().run(5)
def _show(_v):
    print("total", _v)
_show(_total)
micropython.qstr_info()
'''


def test_a_compacted_program_runs_the_same_with_fewer_qstrs(tmp_path):
    exe = ram.interpreter()
    if exe is None:
        pytest.skip("no 32-bit MicroPython (MICROPYTHON_UNIX, ../shared/tools/micropython)")

    def run(d, a, b):
        d.mkdir()
        (d / "a.py").write_text(a)
        (d / "main.py").write_text("DIR = %r\n" % str(d) + b)
        r = subprocess.run([exe, str(d / "main.py")], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, MICROPYPATH=""))
        assert r.returncode == 0, r.stderr
        out = r.stdout.splitlines()
        return out[0], int(re.search(r"n_qstr=(\d+)", out[-1]).group(1))

    m = qstrnames.plan_names({"a": PROGRAM_A, "main": PROGRAM_B}, one_side, [])[UPPER]
    assert {"_n", "_step", "_bump", "_total", "_show", "_v"} <= set(m)
    plain = run(tmp_path / "plain", PROGRAM_A, PROGRAM_B)
    compact = run(tmp_path / "compact", qstrnames.rename(PROGRAM_A, m), qstrnames.rename(PROGRAM_B, m))
    assert plain[0] == compact[0] == "total 10"
    assert compact[1] <= plain[1] - 6, (plain, compact)
