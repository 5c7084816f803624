# Owns bmsctl's command line: what an installer types, and every failure as
# one plain line naming the pack and the reason (no traceback). The commands
# sit on tools/bmsctl/transport (how a pack is reached) and sunspec (the
# telemetry map, decoded by pysunspec2).
import argparse
import csv
import json
import sys
import time

from tools.bmsctl import sunspec
from tools.bmsctl.transport import TransportError, open_transport

MAX_UNIT = 33  # unit 1 = the system (master), packs 1..32 at their link address + 1
DEFAULT_VIA = "tcp:127.0.0.1:5020"


class CtlError(Exception):
    pass


def _summary(unit, dev):
    row = {"unit": unit}
    common = dev.models.get("common")
    if common:
        c = common[0]
        for k in ("Mn", "Md", "Vr", "SN"):
            row[k] = sunspec.point(c, k)
    bat = dev.models.get("battery")
    if bat:
        b = bat[0]
        for k in ("SoC", "SoH", "V", "A", "CellVMax", "CellVMin", "State"):
            row[k] = sunspec.point(b, k)
    return row


def cmd_scan(t, args, out):
    found = []
    for unit in range(1, args.last + 1):
        dev = sunspec.scan(t, unit)
        if dev is None:
            continue
        found.append(_summary(unit, dev))
    if args.json:
        json.dump(found, out)
        out.write("\n")
        return 0
    if not found:
        raise CtlError("no pack answered on units 1..%d" % args.last)
    for r in found:
        out.write("unit %-3d %s %s %s SN %s  SoC %s %%  %s V  %s A\n" % (
            r["unit"], r.get("Mn"), r.get("Md"), r.get("Vr"), r.get("SN"), r.get("SoC"), r.get("V"), r.get("A")))
    return 0


def cmd_live(t, args, out):
    units = [args.pack] if args.pack else list(range(1, MAX_UNIT + 1))
    devs = {}
    for u in units:
        d = sunspec.scan(t, u)
        if d is not None:
            devs[u] = d
    if not devs:
        raise CtlError("no pack answered on unit%s %s" % ("" if len(units) == 1 else "s",
                                                         ",".join(str(u) for u in units)))
    writer = None
    n = 0
    while args.count == 0 or n < args.count:
        for u, d in devs.items():
            for group in d.models.get("battery", []):
                group.read()
            row = dict(_summary(u, d), t=round(time.time(), 3))
            if args.json:
                out.write(json.dumps(row) + "\n")
            elif args.csv:
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
            else:
                out.write("unit %-3d SoC %5s %%  %7s V  %8s A  cells %s..%s V  state %s\n" % (
                    u, row.get("SoC"), row.get("V"), row.get("A"), row.get("CellVMin"), row.get("CellVMax"),
                    row.get("State")))
        out.flush()
        n += 1
        if args.count == 0 or n < args.count:
            time.sleep(args.period)
    return 0


def cmd_keys_new(args, out):
    from tools.bmsctl import bundle
    try:
        pub = bundle.new_keys(args.out)
    except FileExistsError:
        raise CtlError("%s.pem exists: not overwritten" % args.out)
    out.write("wrote %s.pem (private: keep it offline) and %s.pub\npublic key %s\n" % (args.out, args.out, pub))
    return 0


def cmd_bundle(args, out):
    from tools.bmsctl import bundle
    try:
        total, image, files = bundle.make(args.board, args.version, args.counter, args.key, args.out)
    except bundle.BundleToolError as e:
        raise CtlError(str(e))
    out.write("wrote %s: %d bytes (image %d bytes, %d files), board %s, version %s, counter %d\n" % (
        args.out, total, image, files, args.board, args.version, args.counter))
    return 0


def build_parser():
    ap = argparse.ArgumentParser(prog="bmsctl", description="Read, configure and control the packs "
                                 "of a battery system through its master.")
    ap.add_argument("--via", default=DEFAULT_VIA,
                    help="tcp:HOST:PORT, rtu:DEVICE[:BAUD] or can:INTERFACE:CHANNEL[:BITRATE] (default %s, "
                    "the bench's --modbus-tcp)" % DEFAULT_VIA)
    ap.add_argument("--timeout", type=float, help="seconds to wait for an answer")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("scan", help="list the units that answer (model, version, serial, SoC)")
    p.add_argument("--last", type=int, default=MAX_UNIT, help="highest unit id to try")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_scan)
    p = sub.add_parser("live", help="telemetry, refreshed")
    p.add_argument("--pack", type=int, help="one unit id (default: every unit that answers)")
    p.add_argument("--period", type=float, default=1.0, help="seconds between refreshes")
    p.add_argument("--count", type=int, default=0, help="refreshes, 0 = until Ctrl-C")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="one JSON object per line")
    g.add_argument("--csv", action="store_true")
    p.set_defaults(fn=cmd_live)
    p = sub.add_parser("keys", help="update signing keys")
    ks = p.add_subparsers(dest="keys_cmd", required=True)
    q = ks.add_parser("new", help="a new Ed25519 key pair: OUT.pem (private) and OUT.pub")
    q.add_argument("--out", required=True, help="file name prefix")
    q.set_defaults(fn=cmd_keys_new, local=True)
    from tools.bmsctl.bundle import DEV_KEY
    p = sub.add_parser("bundle", help="a signed update bundle of one board's firmware")
    p.add_argument("--board", required=True, help="boards/NAME.py")
    p.add_argument("--version", required=True)
    p.add_argument("--counter", type=int, default=0,
                   help="security counter: a pack refuses bundles below its confirmed one")
    p.add_argument("--key", default=DEV_KEY, help="private key (default: the public development key)")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_bundle, local=True)
    return ap


def main(argv=None, out=None):
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    t = None
    try:
        if getattr(args, "local", False):
            return args.fn(args, out)
        t = open_transport(args.via, args.timeout)
        return args.fn(t, args, out)
    except (CtlError, TransportError, sunspec.ModbusException) as e:
        print("bmsctl: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if t is not None:
            t.close()
