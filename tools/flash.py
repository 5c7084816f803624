# Owns putting MicroPython itself on a board (the image is supplied by the
# user; we never download one): esptool for an ESP32, the UF2 drag-and-drop
# for an RP2040.
#
#   python -m tools.flash --board NAME --port PORT --firmware IMAGE [--dry-run] [--drive DIR]
#   python -m tools.flash build --board NAME [--micropython DIR] [--owner-key F.pub] [--dry-run]
#
# `build` (make firmware) builds MicroPython with the board definition of
# boards/micropython/ (a ROMFS partition) out of tree, with the port's own
# Makefile and BOARD_DIR, in a MicroPython v1.27.0 checkout ($MICROPYTHON_DIR
# or --micropython; never fetched here). The ESP32 needs ESP-IDF (idf.py on
# PATH), the RP2040 arm-none-eabi-gcc and cmake (the pico-sdk comes with
# `make submodules`); where they are missing it prints the commands it would
# run and exits 1. NAME is a definition (BMS_ESP32_ROMFS) or an app board
# (esp32_bq: by its ARCH). --owner-key: the public key the frozen boot part
# trusts for update bundles (BMS_OWNER_KEY for the board's manifest.py,
# tools/frozen.py); without it the firmware trusts none until a key is
# commissioned (bmsctl commission --update-key).
#
# ESP32 (ARCH xtensawin): erase, then write the .bin at 0x1000, the offset
# MicroPython's ESP32 download page gives for the original ESP32
# ("esptool.py --chip esp32 ... write_flash -z 0x1000 ESP32_GENERIC-...bin").
# RP2040 (ARCH armv6m): hold BOOTSEL while plugging in, the board mounts as a
# drive (RPI-RP2); copying the .uf2 onto it flashes and reboots it. With
# --drive the copy is done here, otherwise the steps are printed.
import argparse
import os
import shutil
import subprocess
import sys

from tools import deploy

ESP32_OFFSET = "0x1000"
ESP32_BAUD = "460800"
DEFS_DIR = os.path.join("boards", "micropython")
DEF_OF_ARCH = {"xtensawin": "BMS_ESP32_ROMFS", "armv6m": "BMS_RP2040_ROMFS"}
# port, tools it needs, the image it leaves in the build dir
PORT_OF_DEF = {"BMS_ESP32_ROMFS": ("esp32", ("idf.py",), "firmware.bin"),
               "BMS_RP2040_ROMFS": ("rp2", ("arm-none-eabi-gcc", "cmake"), "firmware.uf2")}


def firmware_plan(root, board, micropython_dir):
    """(definition dir, port dir, [argv ...], image path, tools needed) of
    `make firmware BOARD=board`."""
    if not board:
        raise deploy.DeployError("BOARD is required (one of: %s, or an app board)" % ", ".join(sorted(PORT_OF_DEF)))
    name = board
    if name not in PORT_OF_DEF:
        name = DEF_OF_ARCH[deploy.board_arch(os.path.join(root, "boards"), board)]
    defn = os.path.join(root, DEFS_DIR, name)
    if not os.path.isfile(os.path.join(defn, "mpconfigboard.cmake")):
        raise deploy.DeployError("board definition %s has no mpconfigboard.cmake" % defn)
    if not micropython_dir:
        raise deploy.DeployError("no MicroPython source: set MICROPYTHON_DIR (or --micropython) to a "
                                 "v1.27.0 checkout of micropython/micropython")
    port, tools, image = PORT_OF_DEF[name]
    port_dir = os.path.join(os.path.abspath(micropython_dir), "ports", port)
    mp = os.path.abspath(micropython_dir)
    cmds = [["make", "-C", os.path.join(mp, "mpy-cross")],
            ["make", "-C", port_dir, "BOARD_DIR=" + defn, "submodules"],
            ["make", "-C", port_dir, "BOARD_DIR=" + defn]]
    return defn, port_dir, cmds, os.path.join(port_dir, "build-" + name, image), tools


def build_main(argv):
    ap = argparse.ArgumentParser(prog="python -m tools.flash build",
                                 description="Build MicroPython with a ROMFS partition (boards/micropython/).")
    ap.add_argument("--board")
    ap.add_argument("--micropython", default=os.environ.get("MICROPYTHON_DIR"))
    ap.add_argument("--owner-key", default=os.environ.get("OWNER_KEY") or None,
                    help="the owner's update key (.pub, bmsctl keys new) built into the firmware")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    try:
        defn, port_dir, cmds, image, tools = firmware_plan(deploy.REPO_ROOT, args.board, args.micropython)
        env = dict(os.environ)
        env.pop("BMS_OWNER_KEY", None)
        if args.owner_key:
            from tools.bmsctl.bundle import BundleToolError, read_public
            try:
                key = read_public(args.owner_key)
            except BundleToolError as e:
                raise deploy.DeployError(str(e))
            env["BMS_OWNER_KEY"] = os.path.abspath(args.owner_key)
            print("# update key built in: %s (%s)" % (key.hex(), args.owner_key))
        else:
            print("# no OWNER_KEY: the firmware trusts no update key until one is commissioned "
                  "(bmsctl commission --update-key F.pub)")
        lines = [("BMS_OWNER_KEY=%s " % env["BMS_OWNER_KEY"] if "BMS_OWNER_KEY" in env else "") + " ".join(c)
                 for c in cmds]
        missing = [t for t in tools if shutil.which(t) is None]
        if args.dry_run or missing:
            print("\n".join(lines))
            print("# image: %s (flash it with make flash-micropython FIRMWARE=...)" % image)
            if missing and not args.dry_run:
                raise deploy.DeployError("%s not found: install the toolchain for %s (ESP-IDF for the ESP32, "
                                         "arm-none-eabi-gcc and cmake for the RP2040) and run again"
                                         % (", ".join(missing), os.path.basename(port_dir)))
            return 0
        if not os.path.isdir(port_dir):
            raise deploy.DeployError("%s not found: MICROPYTHON_DIR is not a MicroPython checkout" % port_dir)
        for c in cmds:
            if subprocess.call(c, env=env) != 0:
                raise deploy.DeployError("%s failed" % " ".join(c))
        print("built %s" % image)
        return 0
    except deploy.DeployError as e:
        print("firmware: %s" % e, file=sys.stderr)
        return 1


def plan(root, board, port, firmware, esptool="esptool"):
    """('esptool', [argv, ...]) or ('uf2', [steps]) for the board's arch."""
    if not board:
        raise deploy.DeployError("BOARD is required (one of: %s)" % ", ".join(
            deploy.board_names(os.path.join(root, "boards"))))
    arch = deploy.board_arch(os.path.join(root, "boards"), board)
    if not firmware:
        raise deploy.DeployError("FIRMWARE=path/to/micropython image is required (we never download one)")
    if not os.path.isfile(firmware):
        raise deploy.DeployError("firmware image not found: %s" % firmware)
    if arch == "xtensawin":
        if not firmware.endswith(".bin"):
            raise deploy.DeployError("an ESP32 image is a .bin file, not %s" % os.path.basename(firmware))
        if not port:
            raise deploy.DeployError("PORT is required for esptool (e.g. /dev/ttyUSB0)")
        base = [esptool, "--chip", "esp32", "--port", port]
        return "esptool", [base + ["erase-flash"],
                           base + ["--baud", ESP32_BAUD, "write-flash", "-z", ESP32_OFFSET, firmware]]
    if not firmware.endswith(".uf2"):
        raise deploy.DeployError("an RP2040 image is a .uf2 file, not %s" % os.path.basename(firmware))
    return "uf2", ["hold BOOTSEL while plugging the board in: it mounts as a drive named RPI-RP2",
                   "copy %s onto that drive; the board flashes and reboots by itself" % firmware,
                   "or run again with --drive /path/to/RPI-RP2 to copy it from here"]


def main(argv=None, root=deploy.REPO_ROOT):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["build"]:
        return build_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m tools.flash", description="Flash MicroPython onto a board.")
    ap.add_argument("--board")
    ap.add_argument("--port")
    ap.add_argument("--firmware")
    ap.add_argument("--drive", help="RP2040: the mounted RPI-RP2 drive to copy the .uf2 onto")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    try:
        esptool = shutil.which("esptool") or shutil.which("esptool.py")
        kind, steps = plan(root, args.board, args.port, args.firmware, esptool or "esptool")
        if kind == "esptool":
            if args.dry_run:
                print("\n".join(" ".join(s) for s in steps))
                return 0
            if esptool is None:
                raise deploy.DeployError("esptool not found: run `make` (installs it into .venv)")
            for argv_ in steps:
                if subprocess.call(argv_) != 0:
                    raise deploy.DeployError("%s failed" % " ".join(argv_[4:6]))
            return 0
        if args.drive and not args.dry_run:
            if not os.path.isdir(args.drive):
                raise deploy.DeployError("drive %s is not mounted" % args.drive)
            shutil.copy(args.firmware, args.drive)
            print("copied %s to %s; the board reboots into MicroPython" % (args.firmware, args.drive))
            return 0
        print("\n".join(steps))
        return 0
    except deploy.DeployError as e:
        print("flash: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
