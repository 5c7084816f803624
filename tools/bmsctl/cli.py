# Owns bmsctl's command line: what an installer types, and every failure as
# one plain line naming the pack and the reason (no traceback). The commands
# sit on tools/bmsctl/transport (how a pack is reached), sunspec (the
# telemetry map, decoded by pysunspec2), client (the vendor registers from
# tools.regmap's JSON, the login), params and blocks (what the commands do).
# A session belongs to the connection, so --login logs in before the command
# in the same run.
import argparse
import csv
import getpass
import json
import sys
import time

from tools import authkit
from tools.bmsctl import address, blocks, canbaud, params, sunspec, words
from tools.bmsctl.client import LEVELS, MAX_UNIT, CtlError, Pack, load_map, regs_of
from tools.bmsctl.secrets import do_login, read_secret, serial_of
from tools.bmsctl.transport import TransportError, open_transport

DEFAULT_VIA = "tcp:127.0.0.1:5020"


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
        row = _summary(unit, dev)
        ia = address.info_or_none(Pack(t, unit, args.regmap))
        if ia and "address_fixed" in ia:
            row["address_mode"] = "fixed" if ia["address_fixed"] else "automatic"
            row["address_conflict"] = ia.get("address_conflict", 0)
            row["address"] = address.address_words(ia)
        found.append(row)
    if args.json:
        json.dump(found, out)
        out.write("\n")
        return 0
    if not found:
        raise CtlError("no pack answered on units 1..%d" % args.last)
    for r in found:
        out.write("unit %-3d %s %s %s SN %s  SoC %s %%  %s V  %s A%s\n" % (
            r["unit"], r.get("Mn"), r.get("Md"), r.get("Vr"), r.get("SN"), r.get("SoC"), r.get("V"), r.get("A"),
            "  address %s" % r["address"] if r.get("address") else ""))
    return 0


def _where(what, bat, mod):
    """Words for the measurement behind an alarm: which cell, pack or sensor, and its value
    (SunSpec 805 cell and 802 module indices are one-based)."""
    if what in ("cell_max", "cell_min"):
        k = "Max" if what == "cell_max" else "Min"
        v = sunspec.point(bat, "CellV" + k)
        cell = sunspec.point(mod, "CellV%sCell" % k) if mod is not None else None
        pk = sunspec.point(bat, "CellV%sMod" % k)
        return "%s%s at %s V" % ("cell %d" % cell if cell is not None else "the %s cell" % (
            "highest" if k == "Max" else "lowest"), " of pack %d" % pk if pk else "", v)
    if what == "pack":
        return "pack at %s V" % sunspec.point(bat, "V")
    if what == "current":
        return "%s A" % sunspec.point(bat, "A")
    if what == "spread":
        return "cells %s..%s V" % (sunspec.point(bat, "CellVMin"), sunspec.point(bat, "CellVMax"))
    if what in ("temp_max", "temp_min") and mod is not None:
        k = "Max" if what == "temp_max" else "Min"
        cell = sunspec.point(mod, "CellTmp%sCell" % k)
        return "sensor %s at %s degC" % (cell if cell is not None else "?", sunspec.point(mod, "CellTmp" + k))
    return None


def _alarms(t, unit, dev, regmap):
    """The unit's active alarms, protections and faults in plain words, with
    the cell and the threshold parameter."""
    bat = dev.models.get("battery", [None])[0]
    if bat is None:
        return []
    mod = dev.models.get("lithium-ion-module", [None])[0]
    if mod is not None:
        mod.read()
    out = []
    pack = Pack(t, unit, regmap)
    for kind, name in words.active(sunspec.point(bat, "EvtVnd1"), sunspec.point(bat, "EvtVnd2")):
        th = None
        pname = words.threshold_param(kind, name)
        if pname in pack.by_name:
            try:
                th = (pname, params.display(pack.by_name[pname], pack.read_params([pack.by_name[pname]])[pname]))
            except CtlError:
                th = None
        what = words.THRESHOLDS.get(name, (None, None))[1]
        where = _where(what, bat, mod)
        if name == "PARALLEL":
            ia = address.info_or_none(pack)
            if ia and ia.get("address_conflict"):
                where = "address conflict: another pack also uses address %d" % ia["address_conflict"]
        out.append(words.alarm_line(kind, name, where, th))
    return out


def cmd_live(t, args, out):
    units = [args.pack] if args.pack else list(range(1, MAX_UNIT + 1))  # --all: every unit that answers
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
    def read(d):
        for group in d.models.get("battery", []) + d.models.get("lithium-ion-module", []):
            group.read()
    while args.count == 0 or n < args.count:
        # over CAN every pack answers for itself: a few at a time (transport.parallel;
        # README "Benchmarks": 4 packs at once, flow control block size 0, refresh 32 packs at ~1.7 Hz)
        k = getattr(t, "parallel", 1)
        if k > 1 and len(devs) > 1:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(max_workers=k) as pool:
                list(pool.map(read, devs.values()))
        else:
            for d in devs.values():
                read(d)
        for u, d in devs.items():
            row = dict(_summary(u, d), t=round(time.time(), 3))
            row["alarms"] = _alarms(t, u, d, args.regmap)
            if args.json:
                out.write(json.dumps(row) + "\n")
            elif args.csv:
                row["alarms"] = "; ".join(row["alarms"])
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
            else:
                out.write("unit %-3d SoC %5s %%  %7s V  %8s A  cells %s..%s V  state %s\n" % (
                    u, row.get("SoC"), row.get("V"), row.get("A"), row.get("CellVMin"), row.get("CellVMax"),
                    row.get("State")))
                for a in row["alarms"]:
                    out.write("         %s\n" % a)
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


def _tui(t, args, out):
    from tools.bmsctl.tui import cmd_tui  # textual only for this command
    return cmd_tui(t, args, out)


def cmd_info(pack, args, console):
    """The info block, then the CAN bit rate in words where the map has it."""
    blocks.cmd_show(pack, args, console)
    v = pack.read_block(pack.need(*args.blocks))
    run, stored = v.get("can_kbps"), v.get("can_stored_kbps")
    if stored is None:
        return 0
    if not run:
        state = "still listening (sends nothing until it hears the bus or finds it silent)"
    elif run == stored:
        state = "runs at the stored rate"
    else:
        state = "follows the bus it heard at start: restart it once the bus runs at the stored rate"
    console.file.write("CAN: %s kbit/s running, %d kbit/s stored: %s\n" % (run or "-", stored, state))
    return 0


def cmd_login(pack, args, console):
    if pack.session != LEVELS[args.level] or args.secret_file or args.passphrase:
        do_login(pack, args.level, args.secret_file or args.g_secret_file, args.passphrase or args.g_passphrase)
    console.file.write("%s: logged in as %s; the session stays until auth_idle_ms or `bmsctl logout` (to log "
                       "in for one command only: bmsctl --login %s --secret-file F COMMAND)\n" % (
                           pack.who(), args.level, args.level))
    return 0


def cmd_logout(pack, args, console):
    pack.logout()
    console.file.write("%s: logged out\n" % pack.who())
    return 0


def _new_secret(pack, args, cmd):
    """The new secret of passwd / commission: --new-secret-file, or a passphrase asked twice."""
    if args.new_secret_file:
        return read_secret(args.new_secret_file)
    if args.new_passphrase:
        sn = serial_of(pack.t, pack.unit)
        a = getpass.getpass("new %s passphrase (pack %s): " % (args.level, sn))
        if a != getpass.getpass("again: "):
            raise CtlError("the two passphrases differ: nothing written")
        return authkit.secret_from_passphrase(a, sn)
    raise CtlError("%s needs --new-secret-file F or --new-passphrase" % cmd)


def cmd_passwd(pack, args, console):
    blk = pack.need("set_secret", "secret", "passwd")
    if pack.session != authkit.INSTALLER:
        raise CtlError("%s: changing a secret needs an installer session: bmsctl --login installer "
                       "--secret-file F passwd ..." % pack.who())
    level = LEVELS[args.level]
    new = _new_secret(pack, args, "passwd")
    blob = authkit.set_secret_blob(pack.secret, pack.login_nonce, level, new)
    pack.write(blk["register"], [level] + regs_of(blob), "%s secret" % args.level)
    console.file.write("%s: %s secret changed; sessions of that level ended\n" % (pack.who(), args.level))
    return 0


def cmd_commission(pack, args, console):
    """The first secret of a level (or a forgotten one replaced), or the
    owner's update key (--update-key), in clear: the pack takes it only in
    maintenance mode with its button held."""
    if (args.level is None) == (args.update_key is None):
        raise CtlError("commission needs --level LEVEL (a secret) or --update-key F.pub (the owner's update key)")
    if args.update_key is not None:
        from tools.bmsctl.bundle import BundleToolError, read_public
        try:
            new = read_public(args.update_key)
        except BundleToolError as e:
            raise CtlError(str(e))
        level, what = authkit.UPDATE_KEY, "update key"
    else:
        level, what = LEVELS[args.level], "%s secret" % args.level
    blk = pack.need("provision", "commissioning", "commission")
    if args.update_key is None:
        new = _new_secret(pack, args, "commission")
    pack.write(blk["register"], [level] + regs_of(new), "%s (commissioning: the pack must be in "
               "maintenance mode, jumper fitted at boot, with its button held)" % what)
    if args.update_key is not None:
        console.file.write("%s: update key %s commissioned: the pack now takes bundles signed with its "
                           "private key only\n" % (pack.who(), new.hex()))
    else:
        console.file.write("%s: %s commissioned\n" % (pack.who(), what))
    return 0


def _pack_cmd(sub, name, fn, help, **kw):
    p = sub.add_parser(name, help=help)
    p.set_defaults(fn=fn, on_pack=True, **kw)
    return p


def _block_cmds(sub, name, names, help):
    p = sub.add_parser(name, help=help)
    s = p.add_subparsers(dest=name + "_cmd", required=True)
    _pack_cmd(s, "get", blocks.cmd_show, "read the %s registers" % name, blocks=names)
    q = _pack_cmd(s, "set", blocks.cmd_set, "write FIELD=VALUE (range-checked, read back)", blocks=names)
    q.add_argument("assignments", nargs="+", metavar="FIELD=VALUE")
    return s


def build_parser():
    ap = argparse.ArgumentParser(prog="bmsctl", description="Read, configure and control the packs "
                                 "of a battery system through its master.")
    ap.add_argument("--via", default=DEFAULT_VIA,
                    help="tcp:HOST:PORT, rtu:DEVICE[:BAUD] or can:INTERFACE:CHANNEL[:BITRATE] (default %s, "
                    "the bench's --modbus-tcp)" % DEFAULT_VIA)
    ap.add_argument("--timeout", type=float, help="seconds to wait for an answer")
    ap.add_argument("--unit", type=int, default=1, help="unit id of the pack (1 = the system, the master)")
    ap.add_argument("--map", dest="map_file", help="register map JSON (python -m tools.regmap --json); "
                    "default: this checkout's")
    ap.add_argument("--login", choices=sorted(LEVELS), help="log in at this level before the command")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--secret-file", dest="g_secret_file", metavar="F", help="the level's secret: 64 hex digits or 32 bytes")
    g.add_argument("--passphrase", dest="g_passphrase", action="store_true", help="ask for the passphrase")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("scan", help="list the units that answer (model, version, serial, SoC)")
    p.add_argument("--last", type=int, default=MAX_UNIT, help="highest unit id to try")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_scan)
    p = sub.add_parser("live", help="telemetry and active alarms, refreshed")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--pack", type=int, help="one unit id (default: every unit that answers)")
    g.add_argument("--all", action="store_true", help="every pack through the master and the system (unit 1)")
    p.add_argument("--period", type=float, default=1.0, help="seconds between refreshes")
    p.add_argument("--count", type=int, default=0, help="refreshes, 0 = until Ctrl-C")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="one JSON object per line")
    g.add_argument("--csv", action="store_true")
    p.set_defaults(fn=cmd_live)

    p = sub.add_parser("tui", help="full-screen view: pack tiles; Enter: a pack's cells, plots, events, "
                       "parameter editor, unlock dialog")
    p.add_argument("--pack", type=int, help="one unit id (default: every unit that answers)")
    p.add_argument("--last", type=int, default=MAX_UNIT, help="highest unit id to try")
    p.add_argument("--period", type=float, default=1.0, help="seconds between refreshes")
    p.add_argument("--samples", type=int, default=120, help="refreshes the live plots keep")
    p.set_defaults(fn=_tui)

    p = _pack_cmd(sub, "login", cmd_login, "log in (checks a secret; the session lasts this run)")
    p.add_argument("--level", choices=sorted(LEVELS), required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--secret-file")
    g.add_argument("--passphrase", action="store_true")
    _pack_cmd(sub, "logout", cmd_logout, "end this port's session")
    p = _pack_cmd(sub, "passwd", cmd_passwd, "change a level's secret (needs --login installer)")
    p.add_argument("--level", choices=sorted(LEVELS), required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--new-secret-file")
    g.add_argument("--new-passphrase", action="store_true")

    p = _pack_cmd(sub, "commission", cmd_commission, "set a level's first secret or the owner's update key "
                  "(maintenance mode, the pack's button held)")
    p.add_argument("--level", choices=sorted(LEVELS))
    p.add_argument("--update-key", metavar="F.pub", help="the owner's update key (bmsctl keys new) instead of a secret")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--new-secret-file")
    g.add_argument("--new-passphrase", action="store_true")

    p = sub.add_parser("params", help="parameters: get, set, diff, backup, restore")
    ps = p.add_subparsers(dest="params_cmd", required=True)
    q = _pack_cmd(ps, "get", params.cmd_get, "read parameters (all, or the ones named)")
    q.add_argument("names", nargs="*", metavar="NAME")
    q.add_argument("--json", action="store_true")
    q = _pack_cmd(ps, "set", params.cmd_set, "write NAME=VALUE (checked first, read back, old -> new)")
    q.add_argument("assignments", nargs="+", metavar="NAME=VALUE")
    q.add_argument("--dry-run", action="store_true")
    q = _pack_cmd(ps, "diff", params.cmd_diff, "what differs from the defaults or from a backup")
    q.add_argument("file", nargs="?")
    q = _pack_cmd(ps, "backup", params.cmd_backup, "save every parameter to a JSON file")
    q.add_argument("file")
    q = _pack_cmd(ps, "restore", params.cmd_restore, "write a backup's writable parameters back")
    q.add_argument("file")
    q.add_argument("--dry-run", action="store_true")
    p = _pack_cmd(sub, "defaults", params.cmd_defaults, "set every writable parameter to its default")
    p.add_argument("--dry-run", action="store_true")
    _pack_cmd(sub, "info", cmd_info, "map version, parameter count, firmware version, CAN bit rate",
              blocks=("info",))

    p = sub.add_parser("history", help="the event history")
    hs = p.add_subparsers(dest="history_cmd", required=True)
    q = _pack_cmd(hs, "pull", blocks.cmd_history_pull, "read the records (time, code, kind, value, words)")
    q.add_argument("--from", dest="t_from", help="YYYY-MM-DD[THH:MM[:SS]] UTC or Unix seconds")
    q.add_argument("--to", dest="t_to")
    q.add_argument("--csv", action="store_true")
    _pack_cmd(hs, "clear", blocks.cmd_history_clear, "clear the history (installer)")
    p = sub.add_parser("clock", help="the pack's clock")
    cs = p.add_subparsers(dest="clock_cmd", required=True)
    _pack_cmd(cs, "get", blocks.cmd_show, "read the clock", blocks=("clock",))
    _pack_cmd(cs, "sync", blocks.cmd_clock_sync, "set it to this computer's time (installer)")
    _block_cmds(sub, "calib", ("calib", "calibration", "control"),
                "calibration: current offset, voltage and current gain, capacity, SOC, cycle count "
                "(the map's calibration fields)")
    s = _block_cmds(sub, "control", ("control",), "FETs, buzzer, sleep, protection reset, remove a pack, MCU "
                    "restart, a pack's address, CAN bit rate, ...")
    q = _pack_cmd(s, "address", address.cmd_address, "a pack's link address: fixed 1..32 or automatic (the "
                  "chain hands it down); the pack reads it at start")
    q.add_argument("--pack", dest="unit", type=int, required=True, metavar="N", help="the pack's unit id (its "
                   "address now)")
    q.add_argument("--to", metavar="A|auto", help="the new address, or auto (without: show the address and mode)")
    q.add_argument("--restart", action="store_true", help="restart the pack, wait for it at its new address, "
                   "remove the old address from the master's table")
    q.add_argument("--master-secret-file", metavar="F", help="the master's installer secret (--restart: the "
                   "removal of the old address)")
    q.add_argument("--wait", type=float, metavar="S", help="seconds to wait for the pack after the restart "
                   "(default %g)" % address.WAIT_S)
    q = _pack_cmd(s, "can-bitrate", canbaud.cmd_can_bitrate, "the CAN bit rate (parameter can_bitrate_count; "
                  "installer): with --all on every pack, then each restarts (the master last)")
    q.add_argument("kbps", metavar="250|500", help="kbit/s")
    q.add_argument("--all", action="store_true", help="every pack through the master (packs on one bus)")
    q.add_argument("--no-restart", action="store_true", help="with --all: write only, apply at the next start")
    q.add_argument("--secret-pattern", metavar="F", help="with --all: each pack's own installer secret file, "
                   "{unit} replaced by its unit id (default: the run's --secret-file or --passphrase for all)")

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
    p = sub.add_parser("update", help="update one pack's firmware over CAN (UDS; --via can:...) or Modbus file "
                       "records (--via rtu:/tcp:), --unit, --secret-file with the installer secret")
    p.add_argument("file", help="a bundle from bmsctl bundle")
    p.add_argument("--no-activate", action="store_true", help="stage the image, do not restart into it")
    p.add_argument("--all", action="store_true", help="every unit 1..32 that answers (instead of --unit)")
    p.add_argument("--parallel", type=int, help="packs updated at a time with --all (default 4)")
    p.add_argument("--no-broadcast", action="store_true",
                   help="with --all: every pack gets every block over UDS (no broadcast of the image)")
    p.add_argument("--rate", type=int, help="with --all: broadcast frames per second (default 1000)")
    p.set_defaults(fn=_update, local=True)
    return ap


def _update(args, out):
    """bmsctl update: over CAN (UDS, tools.bmsctl.update; udsoncan only for this
    command) or as Modbus file records (FC 0x15, tools.bmsctl.mbupdate)."""
    transport = getattr(args, "transport", None)
    if args.via.split(":")[0] in ("rtu", "tcp") or transport is not None:
        from tools.bmsctl.mbupdate import cmd_update_modbus
        from tools.bmsctl.update import read_inputs
        data, secret = read_inputs(args)
        return cmd_update_modbus(args, out, data, secret, transport)
    from tools.bmsctl.update import cmd_update
    return cmd_update(args, out)


def _logout(pack):
    """End the session with the run: behind a TCP/RTU gateway every client
    shares the master's one serial port, and so would a session left open."""
    try:
        pack.logout()
    except CtlError as e:
        print("bmsctl: %s (the session ends by itself after auth_idle_ms)" % e, file=sys.stderr)


def main(argv=None, out=None, transport=None):
    """transport: an object with exchange(unit, pdu) and close() instead of --via (tests)."""
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    t = None
    try:
        if getattr(args, "local", False):
            args.transport = transport
            return args.fn(args, out)
        args.regmap = load_map(args.map_file)
        t = transport or open_transport(args.via, args.timeout)
        if args.login and not (args.g_secret_file or args.g_passphrase):
            raise CtlError("--login needs --secret-file F or --passphrase")
        if not getattr(args, "on_pack", False):
            if args.login:
                raise CtlError("%s needs no login" % args.cmd)
            return args.fn(t, args, out)
        from rich.console import Console
        console = Console(file=out, width=120, highlight=False, soft_wrap=True)
        pack = Pack(t, args.unit, args.regmap)
        if args.login:
            do_login(pack, args.login, args.g_secret_file, args.g_passphrase)
        try:
            return args.fn(pack, args, console)
        finally:
            if pack.session and args.cmd != "login":
                _logout(pack)
    except (CtlError, TransportError, sunspec.ModbusException) as e:
        print("bmsctl: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if t is not None and transport is None:
            t.close()
