# Owns bmsctl's commands on the map's field blocks, built from the block
# descriptions in tools.regmap's JSON so new fields need no code here:
# `info`, `calib get|set`, `control get|set`, `clock get|sync`, and the
# history (`history pull|clear`: the index block, then the records by Modbus
# file records, FC 0x14, decoded into time, code, kind, value and plain words).
import csv
import time

from tools.bmsctl import words
from tools.bmsctl.client import CtlError, block, decode, encode, fields
from tools.bmsctl.params import parse_value

CLOCK_FIELDS = ("clock_s", "unix_s")
CLEAR_FIELDS = ("clear_history", "history_clear", "clear")


def _field(pack, blk, name):
    for f in fields(blk):
        if f["name"] == name:
            return f
    raise CtlError("%s: %s has no field %r (it has: %s)" % (pack.who(), blk["name"], name,
                                                            ", ".join(f["name"] for f in fields(blk))))


def _show(f, v):
    if f["type"] == "text" or not f.get("unit"):
        return str(v)
    return "%s  (%g %s)" % (v, v * f.get("scale", 1), f["unit"])


def cmd_show(pack, args, console):
    blk = pack.need(*args.blocks)
    values = pack.read_block(blk)
    out = console.file
    for f in fields(blk):
        if "R" in f.get("access", blk.get("access", "R")):
            out.write("%-24s %s\n" % (f["name"], _show(f, values[f["name"]])))
    return 0


def write_field(pack, blk, f, value):
    """Check value against the field's access and numeric range (a range given
    as an expression of parameters is the board's to check), write it; the
    value it reads afterwards where the field is readable (a command or a
    calibration the pack applies later may read otherwise), else None."""
    access = f.get("access", blk.get("access", "R"))
    what = "%s.%s (register %d)" % (blk["name"], f["name"], blk["register"] + f["offset"])
    if "W" not in access:
        raise CtlError("%s: %s is read-only" % (pack.who(), what))
    lo, hi = f.get("min"), f.get("max")
    if (isinstance(lo, int) and value < lo) or (isinstance(hi, int) and value > hi):
        raise CtlError("%s: %s: %d outside %s..%s, nothing written" % (pack.who(), what, value, lo, hi))
    pack.write(blk["register"] + f["offset"], encode(f, value), what)
    if "R" not in access:
        return None
    return decode(f, pack.read(blk["register"] + f["offset"], f["regs"], what))


def cmd_set(pack, args, console):
    blk = pack.need(*args.blocks)
    plan = []
    for a in args.assignments:
        name, eq, text = a.partition("=")
        if not eq:
            raise CtlError("%s set wants NAME=VALUE, got %r" % (blk["name"], a))
        f = _field(pack, blk, name.strip())
        plan.append((f, parse_value(dict(f, name="%s.%s" % (blk["name"], f["name"]), scale=f.get("scale", 1)),
                                    text)))
    for f, v in plan:
        got = write_field(pack, blk, f, v)
        console.file.write("%s.%s: wrote %s%s\n" % (blk["name"], f["name"], _show(f, v),
                                                   "" if got is None else ", reads %s" % _show(f, got)))
    return 0


def _clock(pack):
    for name in ("clock", "control"):
        blk = block(pack.map, name)
        for f in fields(blk) if blk else ():
            if f["name"] in CLOCK_FIELDS:
                return blk, f
    raise CtlError("%s: the register map has no clock field (%s)" % (pack.who(), "/".join(CLOCK_FIELDS)))


def cmd_clock_sync(pack, args, console):
    blk, f = _clock(pack)
    before = pack.read_block(blk)[f["name"]]
    now = int(time.time())
    write_field(pack, blk, f, now)
    after = pack.read_block(blk)[f["name"]]
    console.file.write("%s: clock was %s (%+d s), set to %s\n" % (
        pack.who(), words.when(before), before - now, words.when(after)))
    return 0


# -- history ---------------------------------------------------------------------
# The map's "files" (FC 0x14): history_index (fields [name, type] from record
# 0) and history (one event per record_regs registers, big-endian fields in
# order; event seq s at file + s // records_per_file, record s % records_per_file).
SIZES = {"uint8": 1, "uint16": 2, "uint32": 4, "int32": 4}
FORMATS = {"uint8": "B", "uint16": "H", "uint32": "I", "int32": "i"}
EMPTY = 0xFFFFFFFF


def _file(pack, name):
    for f in pack.map.get("files", []):
        if f["name"] == name:
            return f
    raise CtlError("%s: the register map has no %s file (firmware without it?)" % (pack.who(), name))


def _unpack(desc, data, o=0):
    import struct
    fmt = ">" + "".join(FORMATS[t] for _n, t in desc["fields"])
    return dict(zip((n for n, _t in desc["fields"]), struct.unpack_from(fmt, data, o)))


def _index(pack):
    ix = _file(pack, "history_index")
    return _unpack(ix, pack.read_file(ix["file"], 0, ix["records"], "history index"))


def pull(pack, t_from=None, t_to=None, last=None):
    """[record dict] of the pack's history, oldest first, within [t_from, t_to]
    (Unix s); last: only the newest `last` records are read."""
    h = _file(pack, "history")
    ix = _index(pack)
    if not ix.get("count") or ix.get("newest_seq") == EMPTY:
        return []
    regs = h["record_regs"]
    per_file = h.get("records_per_file", 10000)
    per_req = max(1, 240 // (2 * regs))  # a FC 0x14 reply carries at most 253 bytes of PDU
    out = []
    s = ix["oldest_seq"] if last is None else max(ix["oldest_seq"], ix["newest_seq"] - last + 1)
    while s <= ix["newest_seq"]:
        n = min(per_req, ix["newest_seq"] - s + 1, per_file - s % per_file)
        data = pack.read_file(h["file"] + s // per_file, s % per_file, n * regs,
                              "history events %d..%d" % (s, s + n - 1))
        for j in range(n):
            rec = words.record(_unpack(h, data, 2 * regs * j), h, pack)
            if (t_from is not None and rec["t_s"] < t_from) or (t_to is not None and rec["t_s"] > t_to):
                continue
            out.append(rec)
        s += n
    return out


def cmd_history_pull(pack, args, console):
    recs = pull(pack, words.parse_time(args.t_from), words.parse_time(args.t_to))
    out = console.file
    if args.csv:
        w = csv.DictWriter(out, fieldnames=words.RECORD_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in recs:
            w.writerow(r)
        return 0
    for r in recs:
        out.write("%6s  %-20s %-10s %s\n" % (r["seq"], r["time"], r["kind"], r["words"]))
    out.write("%s: %d record%s\n" % (pack.who(), len(recs), "" if len(recs) == 1 else "s"))
    return 0


def cmd_history_clear(pack, args, console):
    for name in ("history_index", "control", "history"):
        blk = block(pack.map, name)
        for f in fields(blk) if blk else ():
            if f["name"] in CLEAR_FIELDS:
                before = _index(pack)
                write_field(pack, blk, f, 1)
                after = _index(pack)
                console.file.write("%s: history cleared (%s records before, %s now)\n" % (
                    pack.who(), before.get("count"), after.get("count")))
                return 0
    raise CtlError("%s: the register map has no history clear field (%s)" % (pack.who(), "/".join(CLEAR_FIELDS)))
