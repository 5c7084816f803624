# Owns what is frozen into a MicroPython firmware (FROZEN_MANIFEST, the
# bytecode and its qstrs compiled into the firmware's flash by mpy-tool):
# stages the deployed copies tools/deploy.py makes (public const() inlined,
# board module as `board`, firmware/main.py as bms_main) of one part of the
# firmware into a directory with a manifest.py that freezes them.
#
#   python -m tools.frozen --board esp32_bq --part all|lower --out DIR
#
# Parts: `all` is everything `make deploy` ships but boot.py and the main.py
# stub (which stay source on littlefs) and NOT_FROZEN; `lower` is the stable
# lower layers (LOWER): the same on every board of an architecture, and what
# a recovery needs (drivers, store, update); the app (app/, bms/, the board
# module, main as bms_main) then stays in the ROMFS image. Frozen modules come
# first on a board's sys.path ('', '.frozen', '/lib', '/rom', '/rom/lib'):
# their copies in the image are shadowed.
import argparse
import os
import shutil
import sys

from tools import deploy

PARTS = ("all", "lower")
# top-level names (board-side paths without lib/) that the lower part freezes
LOWER = deploy.FROZEN_LOWER
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
    p = deploy.plan(root, board, "-", build_dir=os.path.join(root, "build", "frozen", board + "-plan"),
                    store="romfs")
    rewrites = dict(p.rewrites)
    out = []
    for f in p.files:
        if f.src is None or not f.compiled:
            continue
        target = f.build[len(deploy.ROMFS_DIR) + 1:-4] + ".py"
        if target.startswith("lib/"):
            target = target[4:]
        if _in_part(target, part):
            src = os.path.join(p.build_dir, "src", f.build[:-4] + ".py")
            out.append((src if src in rewrites else f.src, target, rewrites.get(src)))
    return out


MANIFEST = ('# written by tools/frozen.py: the %s part of board %s, deployed copies\n'
            'include("$(MPY_DIR)/extmod/asyncio")\n'
            'freeze("%s")\n')


def stage(board, part, out_dir, root=deploy.REPO_ROOT):
    """Write the part's sources under out_dir/src and out_dir/manifest.py;
    returns the manifest's path."""
    src_dir = os.path.join(os.path.abspath(out_dir), "src")
    shutil.rmtree(src_dir, ignore_errors=True)
    for src, target, text in staged(board, part, root):
        dst = os.path.join(src_dir, target)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
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
    a = ap.parse_args(argv)
    try:
        print(stage(a.board, a.part, a.out))
    except deploy.DeployError as e:
        print("frozen: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
