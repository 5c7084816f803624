# Owns putting MicroPython itself on a board (the image is supplied by the
# user; we never download one): esptool for an ESP32, the UF2 drag-and-drop
# for an RP2040.
#
#   python -m tools.flash --board NAME --port PORT --firmware IMAGE [--dry-run] [--drive DIR]
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
