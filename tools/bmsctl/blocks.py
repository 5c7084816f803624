# Owns bmsctl's commands on the map's field blocks, built from the block
# descriptions in tools.regmap's JSON so new fields need no code here:
# `info`, `calib get|set`, `control get|set`, `clock get|sync`, and the
# history (`history pull|clear`: the index block, then the records by Modbus
# file records, FC 0x14, decoded into time, code, kind, value and plain words).
import csv
import time

from tools.bmsctl import words
from tools.bmsctl.client import CtlError, decode, encode, fields
from tools.bmsctl.params import parse_value

CLOCK_FIELDS = ("unix_s", "time_s", "epoch_s", "clock_s")
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
    """Check value against the field's access and range, write it, read it
    back where the field is readable; the value read back (or value)."""
    access = f.get("access", blk.get("access", "R"))
    what = "%s.%s (register %d)" % (blk["name"], f["name"], blk["register"] + f["offset"])
    if "W" not in access:
        raise CtlError("%s: %s is read-only" % (pack.who(), what))
    lo, hi = f.get("min"), f.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise CtlError("%s: %s: %d outside %s..%s, nothing written" % (pack.who(), what, value, lo, hi))
    pack.write(blk["register"] + f["offset"], encode(f, value), what)
    if "R" not in access:
        return value
    got = decode(f, pack.read(blk["register"] + f["offset"], f["regs"], what))
    if got != value and not f.get("command"):
        raise CtlError("%s: %s: wrote %d, read back %d" % (pack.who(), what, value, got))
    return got


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
        console.file.write("%s.%s = %s\n" % (blk["name"], f["name"], _show(f, got)))
    return 0


def _clock(pack):
    blk = pack.need("clock")
    for f in fields(blk):
        if f["name"] in CLOCK_FIELDS:
            return blk, f
    raise CtlError("%s: the clock block has none of the fields %s" % (pack.who(), ", ".join(CLOCK_FIELDS)))


def cmd_clock_sync(pack, args, console):
    blk, f = _clock(pack)
    before = pack.read_block(blk)[f["name"]]
    now = int(time.time())
    write_field(pack, blk, dict(f, command=True), now)
    after = pack.read_block(blk)[f["name"]]
    console.file.write("%s: clock was %s (%+d s), set to %s\n" % (
        pack.who(), words.when(before), before - now, words.when(after)))
    return 0


# -- history ---------------------------------------------------------------------

def _index(pack):
    idx = pack.need("history_index")
    return idx, pack.read_block(idx)


def pull(pack, t_from=None, t_to=None):
    """[record dict] of the pack's history, oldest first, within [t_from, t_to] (Unix s)."""
    from store.eventlog import REC_SIZE, unpack_record
    hist = pack.need("history")
    _idx, ix = _index(pack)
    count = ix.get("count", 0)
    per_req = max(1, 240 // REC_SIZE)  # a FC 0x14 reply carries at most 253 bytes of PDU
    rec_regs = hist.get("record_regs", REC_SIZE // 2)
    out = []
    k = 0
    while k < count:
        n = min(per_req, count - k)
        data = pack.read_file(hist.get("file", 1), k, n * rec_regs, "history records %d..%d" % (k, k + n - 1))
        for j in range(n):
            r = unpack_record(data, j * 2 * rec_regs)
            rec = words.record(r) if r else {"seq": None, "words": "record %d: CRC error" % (k + j)}
            if r and ((t_from is not None and rec["t_s"] < t_from) or (t_to is not None and rec["t_s"] > t_to)):
                continue
            out.append(rec)
        k += n
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
        blk = pack.map and next((b for b in pack.map["blocks"] if b["name"] == name), None)
        for f in fields(blk) if blk else ():
            if f["name"] in CLEAR_FIELDS:
                _idx, before = _index(pack)
                write_field(pack, blk, dict(f, command=True), 1)
                _idx, after = _index(pack)
                console.file.write("%s: history cleared (%s records before, %s now)\n" % (
                    pack.who(), before.get("count"), after.get("count")))
                return 0
    raise CtlError("%s: the register map has no history clear field (%s)" % (pack.who(), "/".join(CLEAR_FIELDS)))
