# Owns bmsctl's parameter commands: get, set (checked against the map's
# min/max and access before anything is written, read back after every
# write, old -> new), diff (against the defaults or a backup), backup and
# restore (a JSON file of every row), defaults. Values are the table's
# integers (units in the names: _mv, _ma, _ms, _dc, ...); `set` also takes a
# value in the map's display unit (3.6V for cell_ov_alarm_mv).
import json
import re
import time

from tools.bmsctl.client import CtlError

BACKUP_FORMAT = "bmsctl-params-1"


def display(p, value):
    """value in the map's unit ('3.55 V'), '' where the row has none."""
    if value is None or not p.get("unit"):
        return ""
    return "%g %s" % (value * p["scale"], p["unit"])


def parse_value(p, text):
    """The integer for text: an integer in the row's own unit, or a number
    followed by the map's display unit."""
    t = text.strip()
    unit = p.get("unit") or ""
    m = re.fullmatch(r"([-+]?[0-9]*\.?[0-9]+)\s*([A-Za-z%]*)", t)
    if m and unit and m.group(2).lower() == unit.lower():
        return int(round(float(m.group(1)) / p["scale"]))
    if m and not m.group(2):
        try:
            return int(m.group(1))
        except ValueError:
            pass
    raise CtlError("%s: %r is not an integer%s" % (p["name"], text, " or a value in %s" % unit if unit else ""))


def check(p, value):
    """The reason value may not be written to p, or None."""
    if p["access"] != "RW":
        return "%s is read-only (%s)" % (p["name"], "factory row" if p["access"] == "R" else p["access"])
    if not p["min"] <= value <= p["max"]:
        return "%s: %d outside %d..%d%s" % (p["name"], value, p["min"], p["max"],
                                              " (%s .. %s)" % (display(p, p["min"]), display(p, p["max"]))
                                              if p.get("unit") else "")
    return None


def _table(console, rows):
    from rich.table import Table
    t = Table(box=None, header_style="bold")
    for h in ("parameter", "value", "", "default", "range", "access"):
        t.add_column(h, justify="right" if h in ("value", "default") else "left")
    for p, v in rows:
        t.add_row(p["name"], str(v), display(p, v), str(p["default"]), "%d..%d" % (p["min"], p["max"]),
                  p["access"])
    console.print(t)


def cmd_get(pack, args, console):
    rows = [pack.param(n) for n in args.names] if args.names else pack.params
    values = pack.read_params(rows)
    if args.json:
        console.file.write(json.dumps(values) + "\n")
    else:
        _table(console, [(p, values[p["name"]]) for p in rows])
    return 0


def _plan(pack, wanted):
    """[(row, old, new)] for {name: new}; every value checked before any is written."""
    rows = [pack.param(n) for n in wanted]
    bad = [r for r in (check(p, wanted[p["name"]]) for p in rows) if r]
    if bad:
        raise CtlError("%s: nothing written: %s" % (pack.who(), "; ".join(bad)))
    old = pack.read_params(rows)
    return [(p, old[p["name"]], wanted[p["name"]]) for p in rows]


def _apply(pack, plan, dry_run, out):
    """Write plan's changes one by one (read back each); rows the pack refuses
    for now are tried again after the others (validate() checks the table as
    a whole: a threshold may have to move before its neighbour). Returns the
    number written."""
    todo = [(p, o, n) for p, o, n in plan if o != n]
    for p, o, n in plan:
        if o == n:
            out.write("%s: %d unchanged\n" % (p["name"], o))
    if dry_run:
        for p, o, n in todo:
            out.write("%s: %d -> %d %s(dry run)\n" % (p["name"], o, n, "(%s) " % display(p, n) if p.get("unit")
                                                       else ""))
        return 0
    done = 0
    while todo:
        left = []
        last = None
        for p, o, n in todo:
            try:
                got = pack.write_param(p, n)
            except CtlError as e:
                left.append((p, o, n))
                last = e
                continue
            done += 1
            out.write("%s: %d -> %d%s\n" % (p["name"], o, got, " (%s)" % display(p, got) if p.get("unit") else ""))
        if len(left) == len(todo):
            raise CtlError("%s%s" % (last, "" if len(left) == 1 else " (and %d more not written: %s)" % (
                len(left) - 1, ", ".join(p["name"] for p, _, _ in left[1:]))))
        todo = left
    return done


def set_values(pack, texts, dry_run, out):
    """{name: text}: each value parsed (an integer or a value in the display
    unit), all checked against the map's range and access before any is
    written, then written one by one and read back, `name: old -> new` to out
    (`params set` and the TUI's editor). The number written; CtlError (one
    line) when the map or the pack refuses."""
    wanted = {name: parse_value(pack.param(name), text) for name, text in texts.items()}
    return _apply(pack, _plan(pack, wanted), dry_run, out)


def cmd_set(pack, args, console):
    texts = {}
    for a in args.assignments:
        name, eq, text = a.partition("=")
        if not eq:
            raise CtlError("params set wants NAME=VALUE, got %r" % a)
        texts[name.strip()] = text
    set_values(pack, texts, args.dry_run, console.file)
    return 0


def load_backup(path):
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        raise CtlError("cannot read %s: %s" % (path, e))
    if not isinstance(d, dict) or d.get("format") != BACKUP_FORMAT or not isinstance(d.get("params"), dict):
        raise CtlError("%s is not a bmsctl parameter backup (format %s)" % (path, BACKUP_FORMAT))
    return d


def cmd_diff(pack, args, console):
    if args.file:
        ref = load_backup(args.file)["params"]
        label = args.file
    else:
        ref = {p["name"]: p["default"] for p in pack.params}
        label = "default"
    now = pack.read_params()
    out = console.file
    n = 0
    for p in pack.params:
        name = p["name"]
        if name in ref and ref[name] != now[name]:
            out.write("%-28s %12d   %s %d%s\n" % (name, now[name], label, ref[name],
                                                 "  (%s vs %s)" % (display(p, now[name]), display(p, ref[name]))
                                                 if p.get("unit") else ""))
            n += 1
    missing = [p["name"] for p in pack.params if p["name"] not in ref]
    if missing:
        out.write("not in %s: %s\n" % (label, ", ".join(missing)))
    out.write("%d parameter%s differ%s from %s\n" % (n, "" if n == 1 else "s", "s" if n == 1 else "", label))
    return 0


def cmd_backup(pack, args, console):
    values = pack.read_params()
    d = {"format": BACKUP_FORMAT, "map_version": pack.map.get("map_version"), "unit": pack.unit,
         "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "params": values}
    try:
        with open(args.file, "w") as f:
            json.dump(d, f, indent=1)
            f.write("\n")
    except OSError as e:
        raise CtlError("cannot write %s: %s" % (args.file, e))
    console.file.write("%s: %d parameters saved to %s\n" % (pack.who(), len(values), args.file))
    return 0


def _restore(pack, target, dry_run, out, label):
    """Bring every writable row to target {name: value}; read-only rows that
    differ are named, not written."""
    rw = {k: v for k, v in target.items() if k in pack.by_name and pack.by_name[k]["access"] == "RW"}
    now = pack.read_params()
    for name in sorted(set(target) - set(rw)):
        if name not in pack.by_name:
            out.write("%s: not in this pack's map, skipped\n" % name)
        elif target[name] != now[name]:
            out.write("%s: read-only, stays %d (%s has %d)\n" % (name, now[name], label, target[name]))
    changes = {k: v for k, v in rw.items() if now[k] != v}
    if not changes:
        out.write("%s: every writable parameter already as in %s\n" % (pack.who(), label))
        return 0
    plan = _plan(pack, changes)
    n = _apply(pack, plan, dry_run, out)
    out.write("%s: %d parameter%s %s from %s\n" % (pack.who(), len(plan), "" if len(plan) == 1 else "s",
                                                   "would change" if dry_run else "restored", label))
    return n


ADDRESS = "link_fixed_address_count"


def cmd_restore(pack, args, console):
    b = load_backup(args.file)
    target = dict(b["params"])
    if ADDRESS in target and b.get("unit") != pack.unit:
        # a pack's fixed address is its own: another pack's would collide (bmsctl control address)
        console.file.write("%s: from unit %s's backup, kept as it is (set it with bmsctl control address)\n"
                           % (ADDRESS, b.get("unit")))
        del target[ADDRESS]
    _restore(pack, target, args.dry_run, console.file, args.file)
    return 0


def cmd_defaults(pack, args, console):
    """As the pack's own restore: every writable row but the installation's
    (inverter protocol and bus, address, CAN rate: the map's "installation")."""
    kept = sorted(p["name"] for p in pack.params if p.get("installation"))
    if kept:
        console.file.write("kept, the installation's: %s\n" % ", ".join(kept))
    _restore(pack, {p["name"]: p["default"] for p in pack.params if not p.get("installation")}, args.dry_run,
             console.file, "the defaults")
    return 0
