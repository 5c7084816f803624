# Owns the deployed copies' names (issue 12): every name of a deployed module
# that MicroPython interns as a qstr costs the board a pool entry (7 bytes) at
# import (and its text, from .mpy), and the pools double (py/qstr.c), so a few
# hundred names are a whole pool of 8.8 KiB. A name the deployed modules alone
# use (a private `_x`, or a public name no outside code, no string and no part
# of MicroPython names) is renamed in the deployed copies to a donor: a name
# MicroPython already holds as a static qstr in flash (a method of str, list,
# dict or set, a builtin, an exception; listed in DONORS), or past those a
# spare (q0, q1, ...: one qstr for every name it takes), that no deployed
# source and no outside code (the harness that runs the deployed artefact)
# uses. Two names may share a donor when no module names both (nor a module
# and one its classes derive from). A name is renamed only where the deployed
# sources define it (assigned, def'd, imported, an argument, self's
# attribute), never when a string names it (getattr) or the outside code does,
# never a const() (MicroPython folds those itself). The two sides of the
# frozen boundary are compacted apart and a public name both sides use is
# kept: a firmware's frozen lower layer and a later ROMFS image need not
# agree. Tokens are replaced in place: line numbers stay (the map is
# <build>/names.map).
import ast
import io
import keyword
import os
import re
import tokenize

# Static qstrs of MicroPython 1.27 core (MP_QSTR_ in py/*.c, present in every
# port at the ESP32's and the RP2040's feature level; the dir() of str,
# bytes, list, dict, set, int, the builtins, sys, gc and micropython in the
# 32-bit unix port). Not the unix port's own (execfile, executable), nor those
# of a feature a board may leave out (ringio, viper, the native emitter).
DONORS = (
    "ArithmeticError AssertionError BaseException EOFError Ellipsis GeneratorExit IndentationError "
    "KeyError LookupError NameError NotImplemented OverflowError RuntimeError StopAsyncIteration "
    "StopIteration SyntaxError SystemExit UnicodeError ZeroDivisionError "
    "abs add all any append argv atexit bin bool byteorder bytearray callable center chr classmethod "
    "clear close collect compile complex copy count decode delattr deleter dict difference "
    "difference_update dir disable discard divmod enable encode endswith enumerate eval exc_info exec "
    "exit extend filter find float format from_bytes fromhex fromkeys frozenset get getattr getter "
    "globals hasattr hash heap_lock heap_unlock help hex id implementation index input insert int "
    "intersection intersection_update isalpha isdigit isdisjoint isenabled isinstance islower isspace "
    "issubclass issubset issuperset isupper items iter join keys len list locals lower lstrip map max "
    "maxsize mem_alloc mem_current mem_free mem_info mem_peak mem_total memoryview min modules next "
    "object oct open opt_level ord partition path pend_throw platform pop popitem pow print "
    "print_exception property ps1 ps2 qstr_info range remove replace repr reverse reversed rfind "
    "rindex round rpartition rsplit rstrip schedule send set setattr setdefault setter slice sort "
    "sorted split splitlines stack_use startswith staticmethod stderr stdin stdout str strip sum "
    "super symmetric_difference symmetric_difference_update threshold throw to_bytes tuple type "
    "union update upper values version version_info zip").split()

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# the donors after DONORS: each costs one qstr, shared by every name it takes
_SPARE = "q%d"


def micropython_names(path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpnames.txt")):
    """The names MicroPython 1.27 holds or looks up (tools/mpnames.txt)."""
    with open(path, encoding="utf-8") as f:
        return {w for w in f.read().split() if not w.startswith("#") and _WORD.fullmatch(w)}


def private(name):
    """A name the compaction may rename: `_x`, not `_` nor a dunder."""
    return len(name) > 1 and name[0] == "_" and name[1] != "_"


class _Scan(ast.NodeVisitor):
    """Per module: the names it defines (self's attributes apart), the
    attributes it reaches on other objects, its const() names, the
    identifiers in its strings (not docstrings) and f-string fields, its
    classes and their bases, the module paths and names it imports."""

    def __init__(self):
        self.defined, self.self_attr, self.other_attr = set(), set(), set()
        self.consts, self.in_strings, self.bases, self.classes = set(), set(), set(), set()
        self.modules = set()  # the parts of every module path it imports
        self.imported = set()  # (module, name) of every `from module import name`
        self._docs = set()

    def _body_doc(self, node):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)):
            self._docs.add(id(body[0].value))

    def generic_visit(self, node):
        self._body_doc(node)
        super().generic_visit(node)

    def visit_Module(self, node):
        self._body_doc(node)
        for n in node.body:
            if (isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
                    and isinstance(n.value, ast.Call) and isinstance(n.value.func, ast.Name)
                    and n.value.func.id == "const"):
                self.consts.add(n.targets[0].id)
        self.generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, str) and id(node) not in self._docs:
            self.in_strings.update(_WORD.findall(node.value))

    def visit_JoinedStr(self, node):  # tokenize (3.11) sees an f-string as one token
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                self.in_strings.add(sub.id)
            elif isinstance(sub, ast.Attribute):
                self.in_strings.add(sub.attr)
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                self.in_strings.update(_WORD.findall(sub.value))

    def visit_Name(self, node):
        if not isinstance(node.ctx, ast.Load):
            self.defined.add(node.id)

    def visit_Attribute(self, node):
        base = node.value
        if isinstance(base, ast.Name) and base.id in ("self", "cls"):
            self.self_attr.add(node.attr)
        else:
            self.other_attr.add(node.attr)
        self.generic_visit(node)

    def _defs(self, node):
        self.defined.add(node.name)
        a = node.args
        for arg in a.posonlyargs + a.args + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x]:
            self.defined.add(arg.arg)
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = _defs

    def visit_ClassDef(self, node):
        self.defined.add(node.name)
        self.classes.add(node.name)
        for b in node.bases:
            if isinstance(b, (ast.Name, ast.Attribute)):
                self.bases.add(b.id if isinstance(b, ast.Name) else b.attr)
        self.generic_visit(node)

    def visit_alias(self, node):
        self.defined.add(node.asname or node.name.split(".")[0])

    def visit_Import(self, node):
        for a in node.names:
            self.modules.update(a.name.split("."))
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        self.modules.update((node.module or "").split("."))
        for a in node.names:  # a name of that module (or a submodule): kept unless the module is ours
            self.imported.add((node.module if not node.level else None, a.name))
        self.generic_visit(node)

    def visit_Global(self, node):
        self.defined.update(node.names)

    visit_Nonlocal = visit_Global


def _tokens(text):
    return [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.NAME]


def plan_names(modules, layer, outside, mp_names=None):
    """{layer: {name: donor}} for the deployed modules {module name: text}.
    layer(module) -> its side of the frozen boundary; each side is compacted
    apart: its private names (one both sides use is renamed on each, or on
    none when a module reaches it as another object's attribute: that object
    may come from the other side) and the public names that its modules
    alone mention, but no name MicroPython holds or looks up (mp_names,
    tools/mpnames.txt), no part of a module's path, no name imported from a
    module that is not deployed. outside: texts of code that runs against
    the deployed artefact without being compacted (their identifiers are
    neither renamed nor donors)."""
    mp_names = micropython_names() if mp_names is None else mp_names
    outside_words = set()
    for t in outside:
        outside_words.update(_WORD.findall(t))
    scans, names_in = {}, {}
    every_word = set(outside_words)
    for m, text in modules.items():
        s = _Scan()
        s.visit(ast.parse(text))
        scans[m] = s
        names_in[m] = {t.string for t in _tokens(text) if not t.string.startswith("__")}
        every_word.update(_WORD.findall(text))
    donors = [d for d in DONORS if d not in every_word and not keyword.iskeyword(d)]
    donors += [w for w in (_SPARE % i for i in range(1000)) if w not in every_word]
    defined, barred, foreign, sides = set(), set(outside_words), set(), {}
    for m, s in scans.items():
        defined |= s.defined | s.self_attr
        barred |= s.in_strings | s.consts | s.modules
        barred.update(m.split("."))
        barred.update(n for mod, n in s.imported if mod not in modules)
        foreign |= s.other_attr
        for n in names_in[m]:
            sides.setdefault(n, set()).add(layer(m))
    barred |= {n for n, ls in sides.items() if len(ls) > 1 and n in foreign}
    # a class deriving from one of the other side: its instances hold names
    # of both sides, whose donors are chosen apart, so its module keeps its own
    side_of = {c: layer(m) for m, s in scans.items() for c in s.classes}
    for m, s in scans.items():
        if any(side_of.get(b, layer(m)) != layer(m) for b in s.bases):
            barred |= names_in[m]
    eligible = {n for n in defined - barred if n in sides and (
        private(n) or (n[0] != "_" and len(sides[n]) == 1 and n not in mp_names and not keyword.iskeyword(n)))}
    out = {}
    for side in sorted({layer(m) for m in modules}):
        mods = {m: names_in[m] & eligible for m in modules if layer(m) == side}
        out[side] = _colour(mods, scans, donors)
    return out


def _colour(names_in, scans, donors):
    """{name: donor}: names that one module holds (or one module and a module
    its classes derive from) get different donors; the rest may share."""
    provides = {}
    for m in names_in:
        for c in scans[m].classes:
            provides.setdefault(c, set()).add(m)
    conflicts = {}
    for m in names_in:
        group = set(names_in[m])
        for b in scans[m].bases:
            for other in provides.get(b, ()):
                group |= names_in[other]
        for n in group:
            conflicts.setdefault(n, set()).update(group)
    out = {}
    for n in sorted(conflicts, key=lambda n: (-len(conflicts[n]), n)):
        taken = {out[c] for c in conflicts[n] if c in out}
        free = [d for d in donors if d not in taken]
        if free:  # else the name stays: the donors ran out for it
            out[n] = free[0]
    return out


def rename(text, mapping):
    """text with every NAME token in mapping replaced (positions kept per line)."""
    if not mapping:
        return text
    lines = text.splitlines(keepends=True)
    edits = {}
    for t in _tokens(text):
        if t.string in mapping:
            edits.setdefault(t.start[0], []).append((t.start[1], t.end[1], mapping[t.string]))
    for row, es in edits.items():
        line = lines[row - 1]
        for a, b, new in sorted(es, reverse=True):
            line = line[:a] + new + line[b:]
        lines[row - 1] = line
    return "".join(lines)


def donors_in(text, mapping):
    """{donor: private name} for the names of mapping that text holds."""
    return {mapping[t.string]: t.string for t in _tokens(text) if t.string in mapping}


def names_map(mapping):
    """The map a traceback from the board is read with: per side of the
    frozen boundary, 'donor <- names' lines."""
    out = []
    for side, m in sorted(mapping.items()):
        by = {}
        for n, d in m.items():
            by.setdefault(d, []).append(n)
        out.append("[%s]\n" % side)
        out += ["%s <- %s\n" % (d, " ".join(sorted(ns))) for d, ns in sorted(by.items())]
    return "".join(out)
