# Owns `bmsctl control can-bitrate 250|500 [--all]`: the CAN bit rate
# (parameter can_bitrate_count, read at start) written on every pack online in
# the master's table (--all: the packs share one bus; each pack's own secret with
# --secret-pattern) or on one pack, each write read back; with --all the
# restarts that apply it, the slaves first and the master last (it relays the
# others' restarts); and what the installer must change by hand: the
# inverter's CAN port and the PC's CAN adapter. A pack listens before
# it sends after a start and follows a bus it hears at the other rate
# (app.canrate), which `bmsctl info` shows as can_kbps against can_stored_kbps.
import getpass

from tools import authkit
from tools.bmsctl import address, blocks
from tools.bmsctl.client import CtlError, Pack, fields
from tools.bmsctl.secrets import do_login

PARAM = "can_bitrate_count"
RATES = {500: 0, 250: 1}  # kbit/s -> can_bitrate_count (bms.canrate.RATES_KBPS)


def parse_rate(text):
    kbps = text.strip().lower().rstrip("k")
    if not kbps.isdigit() or int(kbps) not in RATES:
        raise CtlError("can-bitrate: %r is not a rate the packs support: 250 or 500 (kbit/s)" % text)
    return int(kbps)


def _need_installer(pack):
    if pack.session != authkit.INSTALLER:
        raise CtlError("%s: the CAN bit rate needs an installer session: bmsctl --login installer "
                       "--secret-file F control can-bitrate ..." % pack.who())


def _others(pack, args):
    """(the packs online behind the master, each logged in as installer with
    the run's secret; the addresses the master's table holds as lost)."""
    rows = address.system(pack.t)
    text = None
    if args.g_passphrase:
        text = getpass.getpass("installer passphrase (every pack): ")
    out = []
    for u in sorted(a for a in rows if rows[a] == "online" and a != pack.unit):
        p = Pack(pack.t, u, pack.map)
        f = args.secret_pattern.replace("{unit}", str(u)) if args.secret_pattern else args.g_secret_file
        do_login(p, "installer", f, text)
        out.append(p)
    return out, sorted(a for a in rows if rows[a] == "lost")


def _write(pack, value):
    row = pack.param(PARAM)
    old = pack.read_params([row])[PARAM]
    pack.write_param(row, value)
    return old


def _restart(pack):
    blk = pack.need("control")
    for f in fields(blk):
        if f["name"] == "restart":
            blocks.write_field(pack, blk, f, 1)
            return
    raise CtlError("%s: the register map has no control.restart field" % pack.who())


def cmd_can_bitrate(pack, args, console):
    out = console.file
    kbps = parse_rate(args.kbps)
    value = RATES[kbps]
    _need_installer(pack)
    if not args.all:
        old = _write(pack, value)
        out.write("%s: can_bitrate_count %d -> %d (%d kbit/s), applied at its next start (control set "
                  "restart=1)\n" % (pack.who(), old, value, kbps))
        out.write("warning: a pack listens first after a start and follows the rate it hears on the bus: on "
                  "a bus running at another rate it keeps that rate (bmsctl info: can_kbps, can_stored_kbps). "
                  "Packs on one bus: use --all.\n")
        return 0
    if args.secret_pattern and "{unit}" not in args.secret_pattern:
        raise CtlError("--secret-pattern %r has no {unit} (e.g. keys/unit{unit}-installer.key)" % args.secret_pattern)
    if pack.unit != address.MASTER:
        raise CtlError("can-bitrate --all goes through the master: --unit %d (the default), not %d" % (
            address.MASTER, pack.unit))
    others, lost = _others(pack, args)
    done = []
    for p in [pack] + others:
        try:
            old = _write(p, value)
        except CtlError as e:
            raise CtlError("%s; nothing restarted%s" % (e, "" if not done else ", %s already store%s "
                           "%d kbit/s (from their next start)" % (", ".join(d.who() for d in done),
                                                                  "s" if len(done) == 1 else "", kbps)))
        done.append(p)
        out.write("%s: can_bitrate_count %d -> %d (%d kbit/s), read back\n" % (p.who(), old, value, kbps))
    for u in lost:
        out.write("unit %d: lost (in the master's table, not answering): not written; back on the bus it "
                  "follows the rate it hears: set it then (--unit %d control can-bitrate %d)\n" % (u, u, kbps))
    if args.no_restart:
        out.write("not restarted: the packs take %d kbit/s at their next start; set the inverter and this PC's "
                  "CAN adapter to %d kbit/s, then restart or power-cycle the system.\n" % (kbps, kbps))
        return 0
    for p in others:  # the master relays these: it restarts last
        _restart(p)
    _restart(pack)
    out.write("restarted %d pack%s (the master last): each listens at %d kbit/s before it sends and joins "
              "the bus at the rate it hears.\n" % (len(done), "" if len(done) == 1 else "s", kbps))
    out.write("Now set the inverter's CAN port and this PC's CAN adapter to %d kbit/s too: every node on "
              "the bus must use the same rate (a node at another rate disturbs the bus with error frames). "
              "A pack that heard the bus at the old rate follows it (bmsctl info: can_kbps differs from "
              "can_stored_kbps): restart it once the bus runs at %d kbit/s.\n" % (kbps, kbps))
    return 0
