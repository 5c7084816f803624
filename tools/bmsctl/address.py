# Owns `bmsctl control address`: a pack's link address, fixed (1..32) or
# automatic (the chain hands it down), as the parameter link_fixed_address_count
# the pack reads at start (bms.parallel.Roles). Every check comes before the
# write: an address outside 1..32, one another pack of the system holds (the
# master's 803 string rows: online or lost), a second master, or the master
# made a slave is refused with nothing written. The write is read back (an
# installer session on that pack); --restart restarts the pack (the control
# block's restart), waits for it at its new address,
# then removes from the master's table (remove_pack, the master's installer
# session) every address that was online before and is lost now: the pack's
# old one, and those of the packs after it with automatic addresses, which
# follow it (A + 1, A + 2, ...). Also the address words other commands show.
import time

from tools import authkit
from tools.bmsctl import sunspec
from tools.bmsctl.client import MAX_UNIT, CtlError, Pack, block, fields
from tools.bmsctl.secrets import read_secret

PARAM = "link_fixed_address_count"
MASTER = 1
WAIT_S = 30.0  # wall time for the pack to come back and the master to see every pack again
POLL_S = 0.3
SHARED_SERIAL = "BMS-MPY-00000001"  # app.inverter.SERIAL: what every board without a unique id reports


def parse_target(text):
    """0 for 'auto', else the address 1..MAX_UNIT."""
    t = text.strip().lower()
    if t in ("auto", "automatic", "0"):
        return 0
    try:
        a = int(t)
    except ValueError:
        raise CtlError("address %r: a number 1..%d or auto; nothing written" % (text, MAX_UNIT))
    if not 1 <= a <= MAX_UNIT:
        raise CtlError("address %d outside 1..%d (or auto); nothing written" % (a, MAX_UNIT))
    return a


def mode_words(value):
    return "automatic" if value == 0 else "fixed at %d" % value


def info(pack):
    """The INFO block as a dict (unit, serial, address_fixed, address_conflict where the map has them)."""
    return pack.read_block(pack.need("info"))


def info_or_none(pack):
    try:
        return info(pack)
    except CtlError:
        return None


def address_words(row):
    """'fixed' / 'automatic' (and a conflict) from an INFO block dict, '' for a map without them."""
    if "address_fixed" not in row:
        return ""
    s = "fixed" if row["address_fixed"] else "automatic"
    if row.get("address_conflict"):
        s += "; address conflict: another pack also uses address %d" % row["address_conflict"]
    return s


def system(t):
    """{address: 'online' | 'lost'} of the packs in the master's table (unit 1's
    SunSpec 803 string rows: StrNMod 0 no pack; a lost pack's row has its
    module count and events only, no SoC)."""
    dev = sunspec.scan(t, MASTER)
    if dev is None:
        raise CtlError("unit 1 (the master) has no SunSpec map: cannot read the system's addresses")
    bank = dev.models.get(803)
    if not bank:
        return {MASTER: "online"}  # no parallel table: the master alone
    out = {}
    for k, s in enumerate(bank[0].groups.get("string", []), start=1):
        if sunspec.point(s, "StrNMod"):
            out[k] = "online" if sunspec.point(s, "StrSoC") is not None else "lost"
    out.setdefault(MASTER, "online")
    return out


def _refusal(unit, target, rows):
    """Why unit may not take target (0 auto), or None."""
    if unit not in rows or rows[unit] != "online":
        return "unit %d is not a pack online in the system (online: %s)" % (
            unit, ", ".join(str(a) for a in sorted(rows) if rows[a] == "online"))
    if unit == MASTER and target not in (0, MASTER):
        return ("unit 1 is the master (nothing upstream of it): as a slave at %d it would reach no master and "
                "the system would have none; it can be fixed at 1 or automatic" % target)
    if target == MASTER and unit != MASTER:
        return ("address 1 is the master's and the system has one (unit 1): a second master would split the "
                "system; only the pack at the head of the chain can be the master")
    if target and target != unit and target in rows:
        how = "online" if rows[target] == "online" else (
            "lost, still in the master's table: remove it first with bmsctl --unit 1 control set "
            "remove_pack=%d" % target)
        return "address %d is in use by another pack of the system (%s)" % (target, how)
    return None


def _try(fn, *a):
    try:
        return fn(*a)
    except (CtlError, sunspec.ModbusException, OSError):
        return None


def _restarted(pack, deadline):
    """The pack at its old address no longer holds our session (it restarted,
    or no longer answers there)."""
    while time.monotonic() < deadline:
        if _try(pack.level) != authkit.INSTALLER:
            return True
        time.sleep(POLL_S)
    return False


def _find(t, regmap, unit, target, before, deadline, serial=None):
    """The address where the restarted pack answers again, or None by the
    deadline: target when fixed; automatic, an address the master has online
    that it had not before, or its old one again: the one that reports the
    pack's serial number (serial; each board's own, from its MCU's unique id),
    else the lowest new one (the packs after it with automatic addresses
    follow it, higher)."""
    while time.monotonic() < deadline:
        rows = _try(system, t) or {}
        new = sorted(a for a in rows if rows[a] == "online" and a not in before)
        for a in [target] if target else (new + [unit] if serial else new[:1] + [unit]):
            if rows.get(a) != "online":
                continue
            row = _try(info, Pack(t, a, regmap))
            if row and row.get("unit") == a and (serial is None or row.get("serial") == serial):
                return a
        time.sleep(POLL_S)
    return None


def _remove(t, regmap, secret, gone, out):
    """Remove the addresses `gone` from the master's table (its installer session)."""
    if not gone:
        return
    m = Pack(t, MASTER, regmap)
    try:
        m.login(authkit.INSTALLER, secret)
    except CtlError as e:
        raise CtlError("%s; address%s %s stay%s in the master's table as lost: remove with bmsctl --unit 1 "
                       "--login installer --secret-file F control set remove_pack=A" % (
                           e, "es" if len(gone) > 1 else "", ", ".join(str(a) for a in gone),
                           "" if len(gone) > 1 else "s"))
    try:
        ctl = m.need("control")
        f = next((f for f in fields(ctl) if f["name"] == "remove_pack"), None)
        if f is None:
            raise CtlError("unit 1: the control block has no remove_pack field (firmware without it?)")
        for a in gone:
            m.write(ctl["register"] + f["offset"], [a], "control.remove_pack=%d" % a)
            out.write("unit 1: address %d removed from the system (no pack there since the change)\n" % a)
    finally:
        _try(m.logout)


def cmd_address(pack, args, console):
    out = console.file
    t = pack.t
    p = pack.param(PARAM)
    unit = pack.unit
    if args.to is None:
        current = pack.read_params([p])[PARAM]
        row = info(pack)
        out.write("unit %d: address %d, %s (%s %d: %s after a restart)\n" % (
            unit, row.get("unit", unit), address_words(row) or "mode unknown", PARAM, current, mode_words(current)))
        return 0
    target = parse_target(args.to)
    rows = system(t)
    why = _refusal(unit, target, rows)
    if why:
        raise CtlError("unit %d: %s; nothing written" % (unit, why))
    current = pack.read_params([p])[PARAM]
    row = info(pack)
    # after a restart the pack is at `target` (fixed) or wherever the chain hands it (auto)
    moves = (target or unit) != unit or (target == 0 and row.get("address_fixed"))
    secret = None
    if args.restart and moves:
        if not args.master_secret_file:
            raise CtlError("unit %d: --restart moves the pack, and its old address must then leave the master's "
                           "table: give the master's installer secret with --master-secret-file F; nothing "
                           "written" % unit)
        secret = read_secret(args.master_secret_file)
    online_before = {a for a in rows if rows[a] == "online"}
    got = pack.write_param(p, target)
    out.write("unit %d: %s %d -> %d (address %s, was %s); takes effect after a restart\n" % (
        unit, PARAM, current, got, mode_words(target), mode_words(current)))
    if not args.restart:
        out.write("unit %d: to take it now, run this again with --restart%s\n" % (
            unit, " --master-secret-file F (the old address then leaves the master's table)" if moves else ""))
        return 0
    restart = next((f for f in fields(pack.need("control")) if f["name"] == "restart"), None)
    if restart is None:
        raise CtlError("unit %d: the control block has no restart field: switch the pack off and on" % unit)
    pack.write(block(pack.map, "control")["register"] + restart["offset"], [1], "control.restart")
    out.write("unit %d: restarting\n" % unit)
    wait_s = args.wait or WAIT_S
    deadline = time.monotonic() + wait_s
    _restarted(pack, deadline)
    pack.session = 0  # the restart ended it
    sn = row.get("serial")
    shared = sn in (None, "", SHARED_SERIAL)  # a board without a unique id: every such pack says the same
    new = _find(t, pack.map, unit, target, online_before - {unit}, deadline, None if shared else sn)
    if new is None:
        raise CtlError("unit %d: did not answer at %s within %g s after the restart" % (
            unit, "address %d" % target if target else "any address", wait_s))
    out.write("unit %d: back at address %d (%s)\n" % (
        unit, new, address_words(info_or_none(Pack(t, new, pack.map)) or {}) or "mode unknown"))
    if new == unit:
        return 0
    # wait until the old address is lost (bms.parallel.OFFLINE_MS) and every pack online
    # before is online again (those after it with automatic addresses move too), then
    # remove the addresses online before and lost now
    rows = {}
    while time.monotonic() < deadline:
        rows = _try(system, t) or {}
        now = {a for a in rows if rows[a] == "online"}
        if unit not in now and len(now) >= len(online_before):
            break
        time.sleep(POLL_S)
    gone = sorted(a for a in online_before if rows.get(a) == "lost")
    _remove(t, pack.map, secret, gone, out)
    rows = system(t)
    lost = [str(a) for a in sorted(rows) if rows[a] == "lost"]
    out.write("system: packs online at %s%s\n" % (", ".join(str(a) for a in sorted(rows) if rows[a] == "online"),
                                                  "; lost: " + ", ".join(lost) if lost else ""))
    return 0
