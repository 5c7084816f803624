# tools/deploy inlines a public `NAME = const(N)` and removes the imports of
# it, so in the deployed copies a module that only imported NAME (from A
# import NAME) no longer has it: another module's `B.NAME` would then raise
# AttributeError on the board (and only on the board: the host tests run the
# sources). No deployed source may read an inlined constant through a module
# that re-exports it.
import ast

from tools import deploy


def _sources():
    out = [(deploy.module_name(label), open(src, encoding="utf-8").read())
           for src, label in deploy.deployed_sources() if not label.startswith("boards/")]
    return out


def _own_names(tree):
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _module_aliases(tree, modules):
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in modules:
                    out[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                sub = node.module + "." + a.name
                if sub in modules:
                    out[a.asname or a.name] = sub
    return out


def reexported_reads(sources):
    """[(reader, 'B.NAME', defining module)] for every read of an inlined
    constant through a module B that does not define it."""
    trees = {m: ast.parse(t) for m, t in sources}
    plan = deploy.inline_plan(sources)
    where = {n: m for m, c in plan.items() for n in c}
    own = {m: _own_names(t) for m, t in trees.items()}
    bad = []
    for m, t in trees.items():
        aliases = _module_aliases(t, trees)
        for node in ast.walk(t):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases:
                b = aliases[node.value.id]
                if node.attr in where and node.attr not in own[b]:
                    bad.append((m, "%s.%s" % (b, node.attr), where[node.attr]))
    return bad


def test_no_inlined_constant_is_read_through_a_module_that_reexports_it():
    assert reexported_reads(_sources()) == []


def test_a_read_through_a_reexporting_module_is_found():
    srcs = [("pkg.defs", "from defs.const import const\nOFF = const(0)\n"),
            ("pkg.mid", "from defs.const import const\nfrom pkg.defs import OFF\nON = const(1)\n"
                        "def f():\n    return OFF\n"),
            ("pkg.user", "from pkg import mid\ndef g():\n    return mid.OFF\n")]
    assert reexported_reads(srcs) == [("pkg.user", "pkg.mid.OFF", "pkg.defs")]
