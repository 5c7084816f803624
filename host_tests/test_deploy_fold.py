# tools/deploy folds module-level ints into const() in the deployed copies
# (deploy.fold_ints; README "RAM and CPU on the board"): what is folded and
# what is left alone, the copies compute what the sources do in CPython and in
# the 32-bit MicroPython, whose compiler then drops the private names from
# the module's globals, and line numbers stay.
import os
import subprocess

import pytest

from tools import deploy, ram

CONST = "def const(x):\n    return x\n"
SOURCES = {
    "pkg/__init__.py": "",
    "pkg/const.py": CONST,
    "pkg/codes.py": "from pkg.const import const\nNAMES = ('a', 'b', 'c', 'd')\n"
                    "def bit(name):\n    return 1 << NAMES.index(name)\n"
                    "LIMIT = 7\nWIDE = 1 << 30\n",
    "pkg/user.py": (
        "import time\n"
        "from pkg.const import const\n"
        "from pkg import codes\n"
        "from pkg.codes import bit, LIMIT\n"
        "def early():\n    return _LATE\n"               # used above its assignment: stays
        "_B = bit('b')\n"                                  # an expression: folded
        "_MASK = (bit('a')\n         | _B)\n"              # two lines: folded, lines kept
        "_LATE = 5\n"
        "_LO, _HI = bit('a'), bit('d')\n"                 # a tuple unpacked: folded, one line
        "_P, _SHARED2 = 1, 2\n"                           # one of them read elsewhere: both stay
        "_T0 = int(time.time()) & 0\n"                     # names a non-project module: stays
        "_TWICE = 1\n_TWICE = 2\n"                         # two assignments: stay
        "_G = 3\n"                                         # declared global below: stays
        "_ARG = 4\n"                                       # a parameter of that name: stays
        "_SHARED = 6\n"                                    # another module reads it: stays
        "_BIG = codes.WIDE\n"                              # not a small int: stays
        "_NAME = 'n'\n"                                    # not an int: stays
        "def f(x):\n    return x & _MASK, _B + LIMIT + _LO + _HI + _P, early()\n"
        "def g():\n    global _G\n    _G += 1\n    return _G\n"
        "def h(_ARG=0):\n    return _ARG\n"),
    "pkg/other.py": "from pkg import user\ndef peek():\n    return user._SHARED + user._SHARED2\n",
}


@pytest.fixture
def tree(tmp_path):
    root = str(tmp_path / "src")
    for n, t in SOURCES.items():
        path = os.path.join(root, n)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(t)
    return root


def fold(root):
    mods = {deploy.module_name("lib/" + n): t for n, t in SOURCES.items()}
    return deploy.fold_ints(mods, set(mods), [root])


def test_what_is_folded(tree):
    out = fold(tree)
    assert set(out) == {"pkg.user", "pkg.codes"}
    user = out["pkg.user"]
    assert "\n_B = const(2)\n_MASK = (const(3)\n)\n" in user
    assert "\n_LO = const(1); _HI = const(8)\n" in user
    for kept in ("_LATE = 5", "_P, _SHARED2 = 1, 2", "_T0 = int(time.time()) & 0", "_TWICE = 1\n_TWICE = 2", "_G = 3", "_ARG = 4",
                 "_SHARED = 6", "_BIG = codes.WIDE", "_NAME = 'n'"):
        assert "\n" + kept + "\n" in user, kept
    # public: in a module that binds const, left for the inliner (deploy.inline_plan)
    assert "\nLIMIT = const(7)\nWIDE = 1 << 30\n" in out["pkg.codes"]
    for n, t in out.items():
        assert t.count("\n") == SOURCES[n.replace(".", "/") + ".py"].count("\n")


def test_a_module_without_const_is_left_alone(tree):
    assert deploy.fold_ints({"pkg.plain": "X = 1\n_Y = 2\n_Z = X + 1\n"}, {"pkg.plain"}, [tree]) == {}


def write(root, files):
    for n, t in files.items():
        path = os.path.join(root, n)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(t)


CALLS = "from pkg import user, other\nprint(user.f(255), user.g(), user.h(9), other.peek())\n"


def test_folded_copies_compute_the_same_in_cpython(tree, tmp_path):
    out = fold(tree)
    after = str(tmp_path / "after")
    write(after, {n: out.get(deploy.module_name("lib/" + n), t) for n, t in SOURCES.items()})
    got = [subprocess.run([__import__("sys").executable, "-c", CALLS], cwd=d, capture_output=True, text=True,
                          check=True).stdout for d in (tree, after)]
    assert got[0] == got[1] == "(3, 19, 5) 4 9 8\n"


def test_micropython_drops_the_folded_private_names(tree, tmp_path):
    exe = ram.interpreter()
    if exe is None:
        pytest.skip(ram.HOWTO)
    out = fold(tree)
    after = str(tmp_path / "after")
    write(after, {n: out.get(deploy.module_name("lib/" + n), t) for n, t in SOURCES.items()})
    code = CALLS + "print(sorted(k for k in user.__dict__ if k.startswith('_') and k[1].isupper()))\n"
    got = [subprocess.run([exe, "-c", code], env=dict(os.environ, MICROPYPATH=d), capture_output=True, text=True,
                          timeout=60).stdout for d in (tree, after)]
    assert got[0].splitlines()[0] == got[1].splitlines()[0] == "(3, 19, 5) 4 9 8"
    assert got[0].splitlines()[1] == "['_ARG', '_B', '_BIG', '_G', '_HI', '_LATE', '_LO', '_MASK', '_NAME', '_P', '_SHARED', '_SHARED2', '_T0', '_TWICE']"
    assert got[1].splitlines()[1] == "['_ARG', '_BIG', '_G', '_LATE', '_NAME', '_P', '_SHARED', '_SHARED2', '_T0', '_TWICE']"


def test_the_deployed_tree_folds_and_keeps_line_numbers():
    p = deploy.plan(deploy.REPO_ROOT, "esp32_bq", "-", build_dir="/nonexistent/build", store="romfs")
    srcs = {os.path.join(p.build_dir, "src", f.build[:-4] + ".py"): f.src for f in p.files if f.compiled}
    folded = 0
    for path, text in p.rewrites:
        with open(srcs[path], encoding="utf-8") as f:
            orig = f.read()
        assert text.count("\n") == orig.count("\n"), path
        folded += sum(1 for a, b in zip(orig.splitlines(), text.splitlines())
                      if "const(" in b and "const(" not in a)
    assert folded > 50  # bms.protect's code bits, bms.indicate's masks, proto.pylon_can's flags, ...
