# Owns the live terminal view of the bench (`make bench` on a terminal): the
# simulated world advancing in real time, one pack drawn at a time, keys and a
# command line to steer the load, the ambient, sensors and injected faults.
# Drawing (frame, pack_lines) and input (handle_key, parse_command, execute)
# are pure functions of the world and a Ui record, testable without a
# terminal; run() is the thin curses shell. Host-side only: allocates freely.
import json
import math
import time

from tools import paths  # noqa: F401  (lib/, firmware/, boards/, tools/ on the path)
from defs import codes, modes
from bms import indicate
from defs.snapshot import N_CELLS, N_CELL_TEMPS, T_MOS0, T_MOS1, T_AMB
from sim import scenario as scn
from sim import trace

STEP_MS = 100  # simulation step granularity, and the frame period in wall ms
SPEED_MIN = 1
SPEED_MAX = 3600
CURRENT_STEP_MA = 5000
CURRENT_LIMIT_MA = 2000 * 1000  # scenario limit of current_a
BAR_LO_MV = 2500
BAR_HI_MV = 3650
LED_LABELS = ("RUN", "ALM", "SOC1", "SOC2", "SOC3", "SOC4", "M/S")
LED_COLOURS = ("green", "red", "green", "green", "green", "green", "blue")
MODE_COLOURS = {modes.CHARGE: "green", modes.DISCHARGE: "yellow", modes.PROTECTION: "red bold",
                modes.FAILURE: "red bold", modes.SLEEP: "dim", modes.POWER_OFF: "dim"}
HELP_LINE = "+/- 5A  0 zero A  p solar  [ ] speed  spc pause  Tab pack  : cmd  ? help  q quit"
HELP_TEXT = (
    "Keys",
    "  + / -     system current +5 A / -5 A (manual load; + = charge)",
    "  0         system current 0 A          p   solar profile on/off",
    "  [ / ]     halve / double the speed     space  pause / run",
    "  Tab       next pack (shift-Tab back)   :   command line   q  quit",
    "Commands (indices are 0-based, as in scenario files)",
    "  current A                    manual system current in A (+ = charge)",
    "  ambient C                    ambient temperature of every pack",
    "  fault NAME on|off [INDEX] [VALUE]    inject a mock AFE fault",
    "  sensor cell_mv|ntc_c|current_a INDEX VALUE|off   override a reading",
    "  press SECONDS                hold the reset button",
    "  speed N (1..3600)   pack K   help",
    "Faults",
    "",
    "any key closes this help",
)


class CommandError(ValueError):
    pass


class Ui:
    """What the panel itself remembers between frames (not the world's state)."""

    def __init__(self, speed=60, ascii_only=False):
        self.speed = clamp_speed(speed)
        self.pack = 0
        self.paused = False
        self.ended = False  # the scenario's duration is reached
        self.quit = False
        self.cmd = None  # command line text while ':' is open, else None
        self.msg = ""
        self.msg_error = False
        self.show_help = False
        self.ascii = ascii_only
        self.injected = {}  # (pack, "fault"|"sensor", name, index) -> value
        self.errors = []  # last error lines from the trace
        self.actual_speed = None
        self.fault_names = ()

    def say(self, text, error=False):
        self.msg = text
        self.msg_error = error


def clamp_speed(v):
    return max(SPEED_MIN, min(SPEED_MAX, v))


# ---------------------------------------------------------------- drawing
# A line is a list of (text, attr) segments; attr is None or space-separated
# words from: green red blue yellow cyan magenta bold dim reverse.

def line_text(line):
    return "".join(t for t, _ in line)


def _width(line):
    return sum(len(t) for t, _ in line)


def _fit(line, width):
    out = []
    room = width
    for t, a in line:
        if room <= 0:
            break
        if len(t) > room:
            t = t[:room]
        out.append((t, a))
        room -= len(t)
    return out


def _pad(line, width):
    line = _fit(line, width)
    w = _width(line)
    if w < width:
        line = line + [(" " * (width - w), None)]
    return line


def _wrap(label, items, width, attr=None):
    """label + comma-separated items over as many lines as they need."""
    if not items:
        return [[(label, None), ("-", "dim")]]
    lines = []
    cur = [(label, None)]
    pad = " " * len(label)
    first = True
    for it in items:
        piece = it if first else ", " + it
        if not first and _width(cur) + len(piece) > width:
            cur.append((",", attr))
            lines.append(cur)
            cur = [(pad, None)]
            piece = it
        cur.append((piece, attr))
        first = False
    lines.append(cur)
    return lines


def fmt_time(t_ms):
    s = t_ms // 1000
    return "day %d %02d:%02d:%02d" % (s // 86400 + 1, s // 3600 % 24, s // 60 % 60, s % 60)


def fmt_amps(ma):
    if ma == 0:
        return "0.0 A"
    return "%+.1f A" % (ma / 1000)


def fmt_speed(v):
    return ("%d" % v) if v == int(v) else ("%g" % v)


def _dc(dc):
    return "%5.1f" % (dc / 10)


def _bar(mv, width, ascii_only):
    """Horizontal bar for a cell voltage on the BAR_LO..BAR_HI scale."""
    span = BAR_HI_MV - BAR_LO_MV
    frac = (min(max(mv, BAR_LO_MV), BAR_HI_MV) - BAR_LO_MV) / span
    if ascii_only:
        n = int(frac * width + 0.5)
        return "#" * n + "." * (width - n)
    eighths = int(frac * width * 8 + 0.5)
    full, part = divmod(eighths, 8)
    s = "\u2588" * full
    if part and full < width:
        s += " \u258f\u258e\u258d\u258c\u258b\u258a\u2589"[part]
    return s + " " * (width - len(s))


def _dot(lit, ascii_only):
    if ascii_only:
        return "*" if lit else "."
    return "\u25cf" if lit else "\u25cb"


def _led(i, level, pattern, ascii_only):
    lit = bool(level)
    return [(_dot(lit, ascii_only), (LED_COLOURS[i] + " bold") if lit else "dim"),
            (" %-4s %-6s" % (LED_LABELS[i], indicate.NAMES[pattern]), None)]


def _fet(name, on):
    return [(name + " ", None), (("on " if on else "off"), "green bold" if on else "dim"), ("  ", None)]


def _cells_header(snap, ascii_only):
    cells = list(snap.cell_mv)
    lo, hi = min(cells), max(cells)
    text = "Cells V  bars %.2f..%.2f V" % (BAR_LO_MV / 1000, BAR_HI_MV / 1000)
    if snap.reads:
        text = "Cells  min %.3f (%d) max %.3f (%d) %s%d mV" % (
            lo / 1000, cells.index(lo), hi / 1000, cells.index(hi), "d " if ascii_only else "\u0394", hi - lo)
    return [(text, "bold")]


def _cell_rows(snap, width, ascii_only):
    cells = list(snap.cell_mv)
    marks = snap.reads > 0 and min(cells) != max(cells)
    i_min = cells.index(min(cells))
    i_max = cells.index(max(cells))
    bar_w = max(4, width - 14)
    rows = []
    for i in range(N_CELLS):
        mv = cells[i]
        colour = "green"
        if mv < BAR_LO_MV or mv > BAR_HI_MV:
            colour = "red"
        if not snap.ok:
            colour = "dim"
        mark = ("", None)
        if marks and i == i_min:
            mark = (" min", "cyan bold")
        elif marks and i == i_max:
            mark = (" max", "magenta bold")
        rows.append([("%2d %5.3f " % (i, mv / 1000), None), (_bar(mv, bar_w, ascii_only), colour), mark])
    return rows


def _right_block(st, levels, extras, width, ascii_only):
    snap = st.snap
    leds = st.leds
    out = []
    out.append([("LEDs", "bold"), ("       buzzer ", None),
                (indicate.NAMES[st.buzzer], "yellow bold" if st.buzzer != indicate.OFF else None)])
    pairs = ((indicate.RUN, indicate.ALM), (indicate.SOC0, indicate.SOC0 + 1),
             (indicate.SOC0 + 2, indicate.SOC0 + 3), (indicate.MS, None))
    for a, b in pairs:
        ln = _led(a, levels[a], leds[a], ascii_only) + [("  ", None)]
        if b is not None:
            ln += _led(b, levels[b], leds[b], ascii_only)
        out.append(ln)
    t = snap.temp_dc
    temp_label = "Temp C  " if ascii_only else "Temp \u00b0C "
    out.append([(temp_label, "bold"),
                ("cell" + "".join(_dc(t[k]) for k in range(N_CELL_TEMPS)), None if snap.ok else "dim")])
    out.append([("         MOS" + _dc(t[T_MOS0]) + _dc(t[T_MOS1]) + "  amb" + _dc(t[T_AMB]),
                 None if snap.ok else "dim")])
    out += _wrap("Alarms   ", codes.names(codes.ALARMS, st.alarms), width, "yellow bold")
    out += _wrap("Protect  ", codes.names(codes.PROTECTIONS, st.protections), width, "red bold")
    out += _wrap("Faults   ", codes.names(codes.FAULTS, st.faults), width, "red bold")
    out += _wrap("HW alert ", trace.alert_names(st.hw_alerts), width, "red bold")
    afe = [("AFE ", None), ("ok" if snap.ok else "NO DATA", "green" if snap.ok else "red bold"),
           ("  errors %d  reads %d" % (st.afe_errors, snap.reads), None)]
    out.append(afe)
    if st.safe_reason:
        out.append([("SAFE STATE: %s failed" % st.safe_reason, "red bold reverse")])
    out += _wrap("Injected ", extras.get("injected", []), width, "magenta bold")
    errs = extras.get("errors", [])
    if errs:
        for e in errs:
            out.append([("err ", "red bold"), (e, "red")])
    return out


def pack_lines(st, levels, width, extras=None, ascii_only=False):
    """The drawing of one pack: PackState st, the LED pin levels (bms.indicate
    order), extras {"injected": [...], "errors": [...]}; returns lines."""
    extras = extras or {}
    snap = st.snap
    soc = ("%d %%" % st.soc_pct) if st.soc_valid else "-- %"
    head = [("Stack ", None), ("%.2f V" % (snap.stack_mv / 1000), "bold"),
            ("  Current ", None), (fmt_amps(st.current_ma), "bold"),
            ("  SOC ", None), (soc, "bold"),
            ("  ", None), (modes.NAMES[st.mode], (MODE_COLOURS.get(st.mode, "") + " bold").strip()),
            ("  ", None)]
    head += _fet("CHG", st.chg_fet) + _fet("DSG", st.dsg_fet) + _fet("PCHG", st.pchg_fet)
    side = width >= 70
    right_w = 36 if width < 96 else min(56, 36 + (width - 96) // 2)
    left_w = width - right_w - 1 if side else width
    left = [_cells_header(snap, ascii_only)] + _cell_rows(snap, left_w, ascii_only)
    right = _right_block(st, levels, extras, right_w if side else width, ascii_only)
    lines = [head]
    if not side:
        return lines + left + right
    for i in range(len(left)):
        r = right[i] if i < len(right) else []
        lines.append(_pad(left[i], left_w) + [(" ", None)] + _fit(r, right_w))
    lines += right[len(left):]
    return lines


def load_text(world):
    total = sum(world.request_ma(p) for p in world.packs)
    src = "solar profile" if world.sc.profile == "solar" else "manual"
    return "Load %s %s" % (src, fmt_amps(total))


def frame(world, ui, width, height):
    """The whole screen as at most height lines of segments."""
    n = len(world.packs)
    pack = world.packs[ui.pack]
    state = "PAUSED" if ui.paused else ("END" if ui.ended else "running")
    title = [("BMS bench ", "bold"), (fmt_time(world.t_ms()), "bold cyan"),
             ("  speed %sx" % fmt_speed(ui.speed), None)]
    if ui.actual_speed is not None and not ui.paused and ui.actual_speed < ui.speed * 0.9:
        title.append((" (%sx)" % fmt_speed(int(ui.actual_speed)), "yellow"))
    title.append(("  " + state, "yellow bold" if state != "running" else "green"))
    title.append(("  pack %d" % ui.pack, "bold"))
    if n > 1:
        title.append((" of 0..%d (Tab)" % (n - 1), None))
    top = [title]
    amb = getattr(pack.model, "ambient_dc", None)
    load = [(load_text(world), None)]
    if amb is not None:
        load.append(("   Ambient %.1f C" % (amb / 10), None))
    top.append(load)
    if n > 1 and height > 24:
        top.append([("Packs ", "bold")] + _overview(world, ui))
    if ui.show_help:
        for h in HELP_TEXT:
            if h.startswith("Faults"):
                top += _wrap("Faults: ", list(ui.fault_names), width - 1)
            else:
                top.append([(h, None)])
    else:
        levels = [p.level for p in pack.board.led_pins]
        extras = {"injected": injected_list(ui, ui.pack), "errors": ui.errors}
        top += pack_lines(pack.app.state, levels, width, extras, ui.ascii)
    bottom = [[(ui.msg, "red bold" if ui.msg_error else "cyan")] if ui.msg else [],
              [(HELP_LINE, "dim")]]
    if ui.cmd is not None:
        bottom.append([(":" + ui.cmd, "bold"), ("_", "reverse")])
    else:
        bottom.append([])
    top = top[:max(0, height - len(bottom))]
    return [_fit(ln, width) for ln in top + bottom]


_SHORT_MODES = ("off", "stby", "chg", "dsg", "PROT", "FAIL", "sleep")  # modes.NAMES order


def _overview(world, ui):
    segs = []
    for p in world.packs:
        st = p.app.state
        soc = ("%d%%" % st.soc_pct) if st.soc_valid else "--"
        txt = "%d:%s %s" % (p.index, _SHORT_MODES[st.mode], soc)
        segs.append((txt, "reverse" if p.index == ui.pack else None))
        segs.append(("  ", None))
    return segs


_UNITS = {"cell_offset": "mV", "current_offset": "mA", "cell_mv": "mV", "ntc_dc": "dC", "current_ma": "mA"}


def injected_list(ui, pack):
    """Active injected faults and sensor overrides of one pack, as short texts."""
    out = []
    for key in sorted(ui.injected, key=lambda k: (k[1], k[2], k[3])):
        p, kind, name, index = key
        if p != pack:
            continue
        v = ui.injected[key]
        txt = name
        if name.startswith(("cell_", "ntc_")):
            txt += "[%d]" % index
        if kind == "sensor" or v:
            txt += "=%s%s" % (v, _UNITS.get(name, ""))
        out.append(txt)
    return out


def attach(world, ui):
    """Route every applied event (scenario and panel alike) through note_event."""
    apply = world.apply

    def tracked(ev):
        apply(ev)
        note_event(ui, ev)
    world.apply = tracked


def note_event(ui, ev):
    """Remember an applied fault/sensor event so the panel can list what is active."""
    if ev.action == "fault":
        key = (ev.pack, "fault", ev.name, ev.index)
        if ev.on:
            ui.injected[key] = ev.value
        else:
            ui.injected.pop(key, None)
    elif ev.action == "sensor":
        key = (ev.pack, "sensor", ev.name, ev.index)
        if ev.value is None:
            ui.injected.pop(key, None)
        else:
            ui.injected[key] = ev.value


def note_trace(ui, line, keep=3):
    """Keep the last error lines of the trace (a firmware service failed)."""
    if '"error"' not in line:
        return
    try:
        o = json.loads(line)
        text = "pack %s %s: %s" % (o.get("pack"), fmt_time(o.get("t_ms", 0)), o["error"])
    except (ValueError, KeyError, TypeError):
        text = line
    ui.errors.append(text)
    del ui.errors[:-keep]


# ---------------------------------------------------------------- input

def _number(word, what):
    try:
        v = float(word)
    except ValueError:
        raise CommandError("%s: number expected, got %r" % (what, word))
    if not math.isfinite(v):
        raise CommandError("%s: number expected, got %r" % (what, word))
    return int(v) if v == int(v) else v


def _one_event(ev, n_packs, fault_names):
    """Validate and convert one event through the scenario parser (same units)."""
    ev = dict(ev)
    ev["t_s"] = 0
    doc = {"packs": n_packs, "duration_s": 1, "events": [ev]}
    try:
        return scn.parse(json.dumps(doc), fault_names).events[0]
    except scn.ScenarioError as e:
        msg = str(e)
        for pre in ("events[0].", "events[0]: "):
            msg = msg.replace(pre, "")
        raise CommandError(msg)


USAGE = {
    "current": "current A",
    "ambient": "ambient C",
    "fault": "fault NAME on|off [INDEX] [VALUE] (INDEX only for cell_*/ntc_* faults)",
    "sensor": "sensor cell_mv|ntc_c|current_a INDEX VALUE|off",
    "press": "press SECONDS",
    "speed": "speed N",
    "pack": "pack K",
}


def parse_command(text, n_packs, pack, fault_names):
    """One command line -> ("event", Event) | ("speed", N) | ("pack", K) |
    ("help", None) | ("none", None); CommandError with a one-line message."""
    words = text.split()
    if not words:
        return ("none", None)
    cmd, args = words[0].lower(), words[1:]
    if cmd in ("help", "?", "h"):
        return ("help", None)
    if cmd not in USAGE:
        raise CommandError("unknown command %r (current, ambient, fault, sensor, press, speed, pack, help)" % cmd)
    usage = "usage: " + USAGE[cmd]

    def need(lo, hi):
        if not lo <= len(args) <= hi:
            raise CommandError(usage)

    if cmd == "current":
        need(1, 1)
        return ("event", _one_event({"set": "current_a", "value": _number(args[0], "current")}, n_packs, fault_names))
    if cmd == "ambient":
        need(1, 1)
        return ("event", _one_event({"set": "ambient_c", "value": _number(args[0], "ambient")}, n_packs, fault_names))
    if cmd == "fault":
        need(2, 4)
        onoff = args[1].lower()
        if onoff not in ("on", "off"):
            raise CommandError(usage)
        ev = {"fault": args[0], "pack": pack, "on": onoff == "on"}
        rest = args[2:]
        if not args[0].startswith(("cell_", "ntc_")) and rest:
            # a pack-wide fault has no index: `fault NAME on VALUE`, or the index
            # form with the placeholder 0 (`fault current_offset on 0 0.3`)
            if len(rest) == 2:
                if _number(rest[0], "index") != 0:
                    raise CommandError("index: fault %s takes no index" % args[0])
                rest = rest[1:]
            ev["value"] = _number(rest[0], "value")
        else:
            if rest:
                ev["index"] = _number(rest[0], "index")
            if len(rest) > 1:
                ev["value"] = _number(rest[1], "value")
        return ("event", _one_event(ev, n_packs, fault_names))
    if cmd == "sensor":
        need(2, 3)
        kind = args[0]
        if len(args) == 2 and kind != "current_a":
            raise CommandError(usage)
        ev = {"sensor": kind, "pack": pack}
        if len(args) == 3:
            index = _number(args[1], "index")
            if kind != "current_a":
                ev["index"] = index
            elif index != 0:  # the placeholder 0 of `sensor current_a 0 off`
                raise CommandError("index: the current_a sensor takes no index")
        raw = args[-1]
        ev["value"] = None if raw.lower() == "off" else _number(raw, "value")
        return ("event", _one_event(ev, n_packs, fault_names))
    if cmd == "press":
        need(1, 1)
        return ("event", _one_event({"press": "button", "pack": pack, "hold_s": _number(args[0], "seconds")},
                                    n_packs, fault_names))
    if cmd == "speed":
        need(1, 1)
        v = _number(args[0], "speed")
        if not SPEED_MIN <= v <= SPEED_MAX:
            raise CommandError("speed: %s outside %d..%d" % (args[0], SPEED_MIN, SPEED_MAX))
        return ("speed", v)
    need(1, 1)
    k = _number(args[0], "pack")
    if not isinstance(k, int) or not 0 <= k < n_packs:
        raise CommandError("pack: %s outside 0..%d" % (args[0], n_packs - 1))
    return ("pack", k)


def execute(world, ui, text):
    """Run one command line against the world; errors become ui messages."""
    try:
        kind, val = parse_command(text, len(world.packs), ui.pack, ui.fault_names)
        if kind == "event":
            world.apply(val)
            if val.action == "set" and val.name == "current_a":
                world.sc.profile = "none"
            ui.say("ok: " + text.strip())
        elif kind == "speed":
            ui.speed = clamp_speed(val)
            ui.say("speed %sx" % fmt_speed(ui.speed))
        elif kind == "pack":
            ui.pack = val
            ui.say("showing pack %d" % val)
        elif kind == "help":
            ui.show_help = True
            ui.say("")
    except CommandError as e:
        ui.say(str(e), True)
    except Exception as e:  # the simulation refused it: one line, keep running
        ui.say("%s: %s" % (type(e).__name__, e), True)


def _set_request(world, ui, ma):
    world.system_request_ma = max(-CURRENT_LIMIT_MA, min(CURRENT_LIMIT_MA, ma))
    world.sc.profile = "none"
    ui.say("manual load %s" % fmt_amps(world.system_request_ma))


KEY_BACKSPACE = 263
KEY_ENTER = 343
KEY_BTAB = 353
KEY_RESIZE = 410


def handle_key(world, ui, key):
    """One key (a str for characters, an int for curses key codes)."""
    if ui.cmd is not None:
        _cmdline_key(world, ui, key)
        return
    if ui.show_help:
        ui.show_help = False
        if key not in ("q", "Q"):
            return
    if key in ("q", "Q"):
        ui.quit = True
    elif key == "+" or key == "=":
        _set_request(world, ui, world.system_request_ma + CURRENT_STEP_MA)
    elif key == "-" or key == "_":
        _set_request(world, ui, world.system_request_ma - CURRENT_STEP_MA)
    elif key == "0":
        _set_request(world, ui, 0)
    elif key in ("p", "P"):
        world.sc.profile = "none" if world.sc.profile == "solar" else "solar"
        ui.say("solar profile " + ("on" if world.sc.profile == "solar" else "off (manual load)"))
    elif key == "[":
        ui.speed = clamp_speed(ui.speed // 2 if ui.speed >= 2 else ui.speed)
        ui.say("speed %sx" % fmt_speed(ui.speed))
    elif key == "]":
        ui.speed = clamp_speed(ui.speed * 2)
        ui.say("speed %sx" % fmt_speed(ui.speed))
    elif key == " ":
        ui.paused = not ui.paused
        ui.say("paused" if ui.paused else "running")
    elif key == "\t":
        ui.pack = (ui.pack + 1) % len(world.packs)
    elif key == KEY_BTAB:
        ui.pack = (ui.pack - 1) % len(world.packs)
    elif key == ":":
        ui.cmd = ""
        ui.say("")
    elif key in ("?", "h", "H"):
        ui.show_help = True


def _cmdline_key(world, ui, key):
    if key in ("\n", "\r", KEY_ENTER):
        text, ui.cmd = ui.cmd, None
        if text.strip():
            execute(world, ui, text)
    elif key == "\x1b":
        ui.cmd = None
        ui.say("")
    elif key in (KEY_BACKSPACE, "\x7f", "\b"):
        if ui.cmd:
            ui.cmd = ui.cmd[:-1]
        else:
            ui.cmd = None
    elif key == "\x15":  # Ctrl-U
        ui.cmd = ""
    elif isinstance(key, str) and key.isprintable():
        ui.cmd += key


# ---------------------------------------------------------------- stepping

class Clock:
    """Turns wall time into simulated steps of STEP_MS at the requested speed.
    A frame's step is capped by what the simulation computes within budget_s
    (measured), and a backlog is dropped, so keys and the view stay live when
    the requested speed is faster than the simulation can go."""

    def __init__(self, budget_s=0.08):
        self.owed_ms = 0.0
        self.budget_s = budget_s
        self.rate = None  # simulated ms per second of computing, measured

    def step_ms(self, wall_s, speed):
        self.owed_ms += wall_s * 1000 * speed
        cap = speed * 1000 * 0.5
        cap = min(cap, self.rate * self.budget_s if self.rate else 60000)
        self.owed_ms = min(self.owed_ms, max(cap, STEP_MS))
        step = int(self.owed_ms // STEP_MS) * STEP_MS
        self.owed_ms -= step
        return step

    def measured(self, sim_ms, compute_s):
        if sim_ms >= 10 * STEP_MS and compute_s > 0:
            r = sim_ms / compute_s
            self.rate = r if self.rate is None else 0.7 * self.rate + 0.3 * r


def advance(world, ui, clock, wall_s):
    """Move the world on by what wall_s of wall time is worth; returns sim ms."""
    if ui.paused or ui.ended:
        clock.owed_ms = 0.0
        return 0
    step = clock.step_ms(wall_s, ui.speed)
    end = world.sc.duration_ms
    if world.t_ms() + step >= end:
        step = max(0, end - world.t_ms())
        ui.ended = True
        ui.say("end of the scenario (%s); q quits" % fmt_time(end))
    if step:
        t0 = time.monotonic()
        world.run_until(world.t_ms() + step)
        clock.measured(step, time.monotonic() - t0)
    return step


# ---------------------------------------------------------------- curses shell

_COLOURS = ("green", "red", "blue", "yellow", "cyan", "magenta")


class _Attrs:
    def __init__(self, curses):
        self.c = curses
        self.cache = {}
        self.colours = {}
        try:
            if curses.has_colors():
                curses.start_color()
                bg = curses.COLOR_BLACK
                try:
                    curses.use_default_colors()
                    bg = -1
                except curses.error:
                    pass
                for i, name in enumerate(_COLOURS):
                    curses.init_pair(i + 1, getattr(curses, "COLOR_" + name.upper()), bg)
                    self.colours[name] = curses.color_pair(i + 1)
        except curses.error:
            self.colours = {}

    def get(self, hint):
        if not hint:
            return 0
        a = self.cache.get(hint)
        if a is None:
            c = self.c
            a = 0
            for w in hint.split():
                if w in self.colours:
                    a |= self.colours[w]
                elif w == "bold":
                    a |= c.A_BOLD
                elif w == "dim":
                    a |= c.A_DIM
                elif w == "reverse":
                    a |= c.A_REVERSE
                elif w == "red" and not self.colours:
                    a |= c.A_BOLD  # alarms stand out without colours
            self.cache[hint] = a
        return a


def _draw(curses, scr, attrs, world, ui):
    h, w = scr.getmaxyx()
    scr.erase()
    lines = frame(world, ui, w, h)
    for y, ln in enumerate(lines):
        x = 0
        for text, hint in ln:
            if x >= w:
                break
            text = text[:w - x]
            try:
                scr.addstr(y, x, text, attrs.get(hint))
            except curses.error:
                pass  # writing the bottom-right cell; harmless
            x += len(text)
    scr.refresh()


def _main(scr, world, ui):
    import curses
    try:
        curses.curs_set(0)
    except curses.error:
        pass
    attrs = _Attrs(curses)
    scr.keypad(True)
    clock = Clock()
    period = STEP_MS / 1000
    last = time.monotonic()
    next_frame = last
    while not ui.quit:
        now = time.monotonic()
        if now >= next_frame:
            t0 = world.t_ms()
            try:
                advance(world, ui, clock, now - last)
            except Exception as e:  # the simulation broke: stop it, keep the view
                ui.paused = True
                ui.say("simulation stopped: %s: %s" % (type(e).__name__, e), True)
            if now > last:
                inst = (world.t_ms() - t0) / 1000 / (now - last)
                ui.actual_speed = inst if ui.actual_speed is None else 0.8 * ui.actual_speed + 0.2 * inst
            last = now
            _draw(curses, scr, attrs, world, ui)
            next_frame = max(next_frame + period, time.monotonic() + 0.01)
        scr.timeout(max(0, int((next_frame - time.monotonic()) * 1000)))
        try:
            key = scr.get_wch()
        except curses.error:
            continue
        if key == curses.KEY_RESIZE:
            _draw(curses, scr, attrs, world, ui)
            continue
        key = {curses.KEY_BACKSPACE: KEY_BACKSPACE, curses.KEY_ENTER: KEY_ENTER,
               curses.KEY_BTAB: KEY_BTAB}.get(key, key)
        handle_key(world, ui, key)
        _draw(curses, scr, attrs, world, ui)


def run(sc, speed=60, trace_path=None):
    """The live panel on this terminal until q / Ctrl-C; returns an exit code."""
    import curses
    import locale
    import os
    import sys
    import simworld
    from sim.mock_afe import FAULTS

    locale.setlocale(locale.LC_ALL, "")
    os.environ.setdefault("ESCDELAY", "25")
    try:  # what curses will write with (Python's UTF-8 mode does not change it)
        enc = locale.nl_langinfo(locale.CODESET)
    except (AttributeError, ValueError):
        enc = locale.getpreferredencoding(False) or ""
    enc = enc.lower().replace("-", "")
    ui = Ui(speed, ascii_only=enc != "utf8")
    ui.fault_names = FAULTS
    out = open(trace_path, "w", encoding="utf-8") if trace_path else None

    def emit(line):
        if out:
            out.write(line + "\n")
        note_trace(ui, line)

    try:
        try:
            world = simworld.World(sc, emit)
        except scn.ScenarioError as e:
            print("bench: error: scenario: %s" % e, file=sys.stderr)
            return 2
        attach(world, ui)
        try:
            curses.wrapper(_main, world, ui)
        except KeyboardInterrupt:
            pass
    finally:
        if out:
            out.close()
    print("bench: live panel stopped at %s%s" % (fmt_time(world.t_ms()),
                                                  (", trace -> " + trace_path) if trace_path else ""))
    return 0
