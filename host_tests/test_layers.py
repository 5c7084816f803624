# The layer rule of the deployed tree (README "How the firmware is built"):
# every import of every module in lib/, firmware/ and boards/ (module level
# and inside functions, read with ast) goes down or within its own folder,
# never up or sideways where the table below does not allow it.
#
#   defs < drivers        defs < proto < bms < store < app < firmware root
#   update (signature check of firmware updates): imports nothing, used by app and the root
#   recovery (the forced-update mode, frozen): defs, drivers, store, update, the board module; used by the root
#   sim (bench only): anything but app and the firmware root
#   boards: defs, drivers, bms, sim and the shared board modules of boards/
#
# Two extra rules: bms/state.py (the pack's record) imports only defs, and
# the pure folders (defs, proto, bms) never touch the hardware or the clock.
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# folder -> the project folders its modules may import (its own always)
ALLOWED = {
    "defs": (),
    "drivers": ("defs",),
    "proto": ("defs",),
    "bms": ("defs", "proto"),
    "store": ("defs", "bms"),
    "sim": ("defs", "drivers", "proto", "bms", "store"),
    "update": (),
    "app": ("defs", "proto", "bms", "store", "update"),
    "boards": ("defs", "drivers", "bms", "sim"),
    "recovery": ("defs", "drivers", "store", "update", "boards"),  # its frozen copies (recovery.app, .bms, .board) are its own
    "root": ("defs", "drivers", "proto", "bms", "store", "app", "boards", "update", "recovery"),  # main.py, boot.py
}
ONLY = {"lib/bms/state.py": ("defs",)}
PURE = ("defs", "proto", "bms", "update")
HARDWARE = ("machine", "time", "utime", "esp32", "rp2")


def _sources(root):
    """(repo-relative path, folder) of every deployed module."""
    out = []
    lib = os.path.join(root, "lib")
    for pkg in sorted(os.listdir(lib)) if os.path.isdir(lib) else ():
        for dirpath, dirnames, files in os.walk(os.path.join(lib, pkg)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            out += [(os.path.relpath(os.path.join(dirpath, f), root), pkg) for f in sorted(files) if f.endswith(".py")]
    fw = os.path.join(root, "firmware")
    for dirpath, dirnames, files in os.walk(fw):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        folder = "root" if dirpath == fw else os.path.relpath(dirpath, fw).split(os.sep)[0]
        out += [(os.path.relpath(os.path.join(dirpath, f), root), folder) for f in sorted(files) if f.endswith(".py")]
    bd = os.path.join(root, "boards")
    if os.path.isdir(bd):
        out += [(os.path.join("boards", f), "boards") for f in sorted(os.listdir(bd)) if f.endswith(".py")]
    return out


def _folder_of(name, root):
    """The project folder a top-level import name lives in, or None for the
    standard library and the port's modules."""
    if os.path.isdir(os.path.join(root, "lib", name)):
        return name
    if os.path.isdir(os.path.join(root, "firmware", name)):
        return name  # app
    if os.path.isfile(os.path.join(root, "firmware", name + ".py")):
        return "root"
    if name == "board" or os.path.isfile(os.path.join(root, "boards", name + ".py")):
        return "boards"  # `board` is the board module as deployed (boards/NAME.py -> /board.mpy)
    return None


def _imports(path):
    """(line, top-level name) of every import in the file, at any depth."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def violations(root=ROOT):
    bad = []
    for rel, folder in _sources(root):
        for line, name in _imports(os.path.join(root, rel)):
            where = "%s:%d" % (rel.replace(os.sep, "/"), line)
            if folder in PURE and name in HARDWARE:
                bad.append("%s: %s imports %s (hardware/clock in a pure folder)" % (where, folder, name))
                continue
            target = _folder_of(name, root)
            key = rel.replace(os.sep, "/")
            who = key if key in ONLY else folder
            allowed = ONLY[key] if key in ONLY else ALLOWED[folder] + (folder,)
            if target is not None and target not in allowed:
                bad.append("%s: %s imports %s (%s may import only %s)"
                           % (where, folder, name, who, ", ".join(a for a in allowed if a != folder) or "nothing"))
    return bad


def test_every_import_goes_down_the_layers():
    assert violations() == []


def test_the_walk_sees_every_folder_of_the_tree():
    folders = {f for _, f in _sources(ROOT)}
    assert folders == set(ALLOWED), folders


def test_an_import_up_or_sideways_is_named_with_file_and_line(make_tree):
    root = make_tree({
        "lib/defs/ticks.py": "X = 1\n",
        "lib/drivers/chip.py": "from defs.ticks import X\n\ndef f():\n    from bms import logic\n",
        "lib/proto/wire.py": "import drivers.chip\n",
        "lib/bms/logic.py": "from proto import wire\nfrom defs import ticks\n",
        "lib/bms/state.py": "from defs import ticks\nfrom bms import logic\n",
        "lib/bms/clock.py": "def rtc():\n    import machine\n",
        "lib/store/s.py": "from bms import logic\n",
        "lib/sim/x.py": "from app import svc\n",
        "firmware/app/svc.py": "from bms import logic\nimport board\n",
        "firmware/main.py": "from app import svc\nimport board\n",
        "boards/b.py": "from drivers import chip\nimport sim.x\n",
    })
    assert violations(root) == [
        "lib/bms/clock.py:2: bms imports machine (hardware/clock in a pure folder)",
        "lib/bms/state.py:2: bms imports bms (lib/bms/state.py may import only defs)",
        "lib/drivers/chip.py:4: drivers imports bms (drivers may import only defs)",
        "lib/proto/wire.py:1: proto imports drivers (proto may import only defs)",
        "lib/sim/x.py:1: sim imports app (sim may import only defs, drivers, proto, bms, store)",
        "firmware/app/svc.py:2: app imports board (app may import only defs, proto, bms, store, update)",
    ]
