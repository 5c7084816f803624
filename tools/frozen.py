# Owns what is frozen into a MicroPython firmware (FROZEN_MANIFEST, the
# bytecode and its qstrs compiled into the firmware's flash by mpy-tool):
# stages the deployed copies tools/deploy.py makes (public const() inlined,
# board module as `board`, firmware/main.py as bms_main) of one part of the
# firmware into a directory with a manifest.py that freezes them.
#
#   python -m tools.frozen --board esp32_bq --part all|lower --out DIR [--owner-key F.pub]
#
# Parts: `all` is everything `make deploy` ships but boot.py and the main.py
# stub (which stay source on littlefs) and NOT_FROZEN; `lower` is the stable
# lower layers (LOWER): the same on every board of an architecture, and what
# a recovery needs (drivers, store, update, recovery); the app (app/, bms/, the
# board module, main as bms_main) then stays in the ROMFS image. Frozen modules
# come first on a board's sys.path ('', '.frozen', '/lib', '/rom', '/rom/lib'):
# their copies in the image are shadowed. Both parts also freeze RECOVERY: the
# board module and the modules the recovery's UDS server needs, copied under
# recovery/ with their imports of each other renamed (recovery.board,
# recovery.app.uds, ...), so the recovery mode needs nothing from the image
# and an update still replaces the app's own board module, server and tables.
import argparse
import ast
import os
import re
import shutil
import sys

from tools import deploy

PARTS = ("all", "lower")
# top-level names (board-side paths without lib/) that the lower part freezes
LOWER = deploy.FROZEN_LOWER
# copied under recovery/ for recovery.mode (targets as staged(): lib/ taken off)
RECOVERY = ("board.py", "bq_board.py", "bq_build.py", "app/__init__.py", "app/service.py", "app/canport.py",
            "app/canrate.py", "app/hostcan.py", "app/hostport.py", "app/updsess.py", "app/uds.py", "bms/__init__.py", "bms/auth.py",
            "bms/canrate.py", "bms/params.py", "bms/prows.py", "bms/pnames.py")
_RENAMED = ("app", "bms", "board", "bq_board", "bq_build")  # the top-level names the copies import each other by
# deployed but never imported on the board: the simulator, the host-side table
NOT_FROZEN = ("sim", "bms/ptable.py")


def _in_part(target, part):
    if target.split("/")[0] in NOT_FROZEN or target in NOT_FROZEN:
        return False
    return part == "all" or target.split("/")[0] in LOWER


def staged(board, part, root=deploy.REPO_ROOT):
    """[(source path, target path in the frozen tree)] of the part: the
    deploy plan's files, each from its inlined copy where deploy makes one
    (their text in the returned rewrites {path: text})."""
    if part not in PARTS:
        raise deploy.DeployError("part %r is not one of %s" % (part, ", ".join(PARTS)))
    # not compacted (tools/qstrnames.py): a frozen module's names are in flash
    # already, and each side of the frozen boundary is compacted apart, so the
    # frozen lower part agrees with a compacted image
    p = deploy.plan(root, board, "-", build_dir=os.path.join(root, "build", "frozen", board + "-plan"),
                    store="romfs", compact=False)
    rewrites = dict(p.rewrites)
    out = []
    copies = []
    for f in p.files:
        if f.src is None or not f.compiled:
            continue
        target = f.build[len(deploy.ROMFS_DIR) + 1:-4] + ".py"
        if target.startswith("lib/"):
            target = target[4:]
        if _in_part(target, part):
            src = os.path.join(p.build_dir, "src", f.build[:-4] + ".py")
            out.append((src if src in rewrites else f.src, target, rewrites.get(src)))
        elif target in RECOVERY:
            src = os.path.join(p.build_dir, "src", f.build[:-4] + ".py")
            copies.append((src if src in rewrites else f.src, target, rewrites.get(src)))
    return out + recovery_copies(copies + out)


def _module(target):
    return target[:-3].replace("/", ".").replace(".__init__", "")


def _project_imports(text):
    """[(module name, is a plain `import X`)] of every import in text (module
    level and in functions), relative imports excluded."""
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.module + "." + a.name, False) for a in node.names] + [(node.module, False)]
        elif isinstance(node, ast.Import):
            out += [(a.name, True) for a in node.names]
    return out


_IMPORT = re.compile(r"^(\s*from\s+)(%s)\b" % "|".join(_RENAMED), re.M)


def recovery_copies(files):
    """[(source, recovery/target, text)] from the staged files (source, target,
    text or None) of RECOVERY whose imports all resolve to the lower part or to
    each other (a bench board module needs the simulator: no board copy, the
    recovery then builds the deployed board); raises DeployError when the UDS
    server's set does not close."""
    by_target = {t: (src, text) for src, t, text in files}
    texts = {}
    for t in RECOVERY:
        if t not in by_target:
            continue
        src, text = by_target[t]
        if text is None:
            with open(src, encoding="utf-8") as f:
                text = f.read()
        texts[t] = (src, text)
    mods = set(_module(t) for t in texts)
    boards = ("board.py", "bq_board.py", "bq_build.py")
    for t in [t for t in RECOVERY if t in texts]:
        if t not in texts:
            continue  # a board copy dropped above
        for name, plain in _project_imports(texts[t][1]):
            top = name.split(".")[0]
            if top in NOT_FROZEN and t in boards:  # a bench board module: the simulator
                for b in boards:
                    texts.pop(b, None)
                break
            if top in LOWER or top not in _RENAMED or any(
                    (name + ".").startswith(_module(x) + ".") for x in NOT_FROZEN if x.endswith(".py")):
                continue  # frozen already, not ours, or host-side only (never imported on a board)
            if plain:
                raise deploy.DeployError("%s: `import %s` cannot be renamed for the recovery copy" % (t, name))
            if name not in mods and name.rsplit(".", 1)[0] not in mods:
                if t in boards:
                    for b in boards:
                        texts.pop(b, None)
                    break
                raise deploy.DeployError("%s imports %s, which RECOVERY does not copy" % (t, name))
    return [(src, "recovery/" + t, _IMPORT.sub(r"\1recovery.\2", text)) for t, (src, text) in
            ((t, texts[t]) for t in RECOVERY if t in texts)]


MANIFEST = ('# written by tools/frozen.py: the %s part of board %s, deployed copies\n'
            'include("$(MPY_DIR)/extmod/asyncio")\n'
            'freeze("%s")\n')


TRUST = "update/trust.py"
_NO_KEY = "PUBLIC_KEY = None"


def trust_source(text, key):
    """update/trust.py's text with the owner's 32-byte public key built in."""
    if text.count(_NO_KEY) != 1 or len(key) != 32:
        raise deploy.DeployError("%s: cannot build the owner's key in (no single %r line)" % (TRUST, _NO_KEY))
    return text.replace(_NO_KEY, "PUBLIC_KEY = bytes.fromhex(%r)" % key.hex())


def stage(board, part, out_dir, root=deploy.REPO_ROOT, owner_key=None):
    """Write the part's sources under out_dir/src and out_dir/manifest.py;
    returns the manifest's path. owner_key: a .pub file (bmsctl keys new)
    whose key the frozen update/trust.py then holds (None: no key built in,
    the pack trusts no bundle until commissioned with one)."""
    key = None
    if owner_key:
        from tools.bmsctl.bundle import BundleToolError, read_public
        try:
            key = read_public(owner_key)
        except BundleToolError as e:
            raise deploy.DeployError(str(e))
    src_dir = os.path.join(os.path.abspath(out_dir), "src")
    shutil.rmtree(src_dir, ignore_errors=True)
    for src, target, text in staged(board, part, root):
        dst = os.path.join(src_dir, target)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if target == TRUST and key is not None:
            if text is None:
                with open(src, encoding="utf-8") as f:
                    text = f.read()
            text = trust_source(text, key)
        if text is None:
            shutil.copyfile(src, dst)
        else:
            with open(dst, "w", encoding="utf-8") as f:
                f.write(text)
    man = os.path.join(os.path.abspath(out_dir), "manifest.py")
    with open(man, "w") as f:
        f.write(MANIFEST % (part, board, src_dir))
    return man


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.frozen")
    ap.add_argument("--board", required=True)
    ap.add_argument("--part", choices=PARTS, default="all")
    ap.add_argument("--out", required=True)
    ap.add_argument("--owner-key", help="the owner's public key (.pub) the frozen boot part trusts")
    a = ap.parse_args(argv)
    try:
        print(stage(a.board, a.part, a.out, owner_key=a.owner_key))
    except deploy.DeployError as e:
        print("frozen: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
