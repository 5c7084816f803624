# tools/deploy: public const() inlined in the deployed copies (deploy.inline_plan,
# deploy.inline_consts): the rewritten modules, run in CPython, compute what
# the originals do, the defining module no longer has the public attribute,
# line numbers stay, and a constant named in a way the rewrite cannot follow
# stays public.
import importlib
import os
import sys

from tools import deploy

CONST = "def const(x):\n    return x\n"
SOURCES = {
    "pkg/__init__.py": "",
    "pkg/defs.py": CONST + "A = const(3)\nB = const(40)\n_C = const(5)\nD = const(7)\nE = const(9)\n"
                           "def both():\n    return A + B + _C\n",
    "pkg/user.py": "from pkg import defs as P\nfrom pkg.defs import (B,\n    both)\n"
                   "def f(v):\n    return v[P.A], B, P.D, both(), P.A.bit_length()\n",
    "pkg/dyn.py": "import pkg.defs\ndef g(o):\n    return o.D, getattr(pkg.defs, 'E')\n",
}


def rewritten():
    srcs = [(deploy.module_name("lib/" + n), t) for n, t in SOURCES.items()]
    table = deploy.inline_plan(srcs)
    return table, {n: deploy.inline_consts(t, deploy.module_name("lib/" + n), table) for n, t in SOURCES.items()}


def load(root, files):
    for n, t in files.items():
        os.makedirs(os.path.join(root, os.path.dirname(n)), exist_ok=True)
        with open(os.path.join(root, n), "w") as f:
            f.write(t)
    for m in [m for m in sys.modules if m == "pkg" or m.startswith("pkg.")]:
        del sys.modules[m]
    sys.path.insert(0, root)
    try:
        return {m: importlib.import_module("pkg." + m) for m in ("defs", "user", "dyn")}
    finally:
        sys.path.remove(root)


def test_what_is_inlined():
    table, out = rewritten()
    # D: `o.D` on something that is not the imported module; E: named as a string
    assert table == {"pkg.defs": {"A": 3, "B": 40}}
    assert "\n_A = const(3)\n_B = const(40)\n_C = const(5)\nD = const(7)\n" in out["pkg/defs.py"]
    assert "return 3 + 40 + _C" in out["pkg/defs.py"]
    assert "v[3], 40, P.D, both(), (3).bit_length()" in out["pkg/user.py"]
    assert out["pkg/dyn.py"] == SOURCES["pkg/dyn.py"]
    for n in SOURCES:  # tracebacks point at the same lines
        assert out[n].count("\n") == SOURCES[n].count("\n")


def test_rewritten_modules_compute_the_same(tmp_path):
    _, out = rewritten()
    before = load(str(tmp_path / "a"), SOURCES)
    got = (before["user"].f(list(range(10))), before["dyn"].g(before["defs"]))
    after = load(str(tmp_path / "b"), out)
    assert (after["user"].f(list(range(10))), after["dyn"].g(after["defs"])) == got == ((3, 40, 7, 48, 2), (7, 9))
    assert not hasattr(after["defs"], "A") and after["defs"].D == 7


def test_board_plan_inlines_the_parameter_indices(tmp_path):
    p = deploy.plan(deploy.REPO_ROOT, "esp32_bq", "-", build_dir=str(tmp_path), store="romfs")
    texts = {os.path.relpath(path, str(tmp_path)): t for path, t in p.rewrites}
    params = texts[os.path.join("src", "rom", "lib", "bms", "params.py")]
    assert "\n_CYCLE_MS = const(0)\n" in params and "\nCYCLE_MS = const(" not in params
    # the compile command of a rewritten file compiles the copy, named as the source
    cmd = [c for c in p.compile_cmds if c[c.index("-s") + 1] == "bms.params"][0]
    assert cmd[-1].endswith("src/rom/lib/bms/params.py")


def test_a_public_constant_whose_private_name_is_taken_stays_public():
    """app.hostcan had `_IDLE_MS = 2000` and `IDLE_MS = const(100)`: renamed to
    `_IDLE_MS = const(100)`, the compiler gave every later `_IDLE_MS` 100 (the
    tester's 2 s hold became 100 ms on the board)."""
    src = CONST + "_HOLD_MS = 2000\nHOLD_MS = const(100)\nUSED = const(3)\n" \
                  "def held(dt):\n    return dt < _HOLD_MS, HOLD_MS, USED\n"
    table = deploy.inline_plan([("pkg.svc", src)])
    assert table == {"pkg.svc": {"USED": 3}}
    out = deploy.inline_consts(src, "pkg.svc", table)
    assert "\n_HOLD_MS = 2000\nHOLD_MS = const(100)\n_USED = const(3)\n" in out
    assert "return dt < _HOLD_MS, HOLD_MS, 3" in out
