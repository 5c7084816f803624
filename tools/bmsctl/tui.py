# Owns bmsctl's TUI (`bmsctl tui`, textual): a grid of pack tiles (unit, SoC,
# worst cell, alarm badge, session level; OFFLINE with the reason when a unit
# stops answering) refreshed every --period seconds; Enter on a tile drills
# into that pack: its 16 cells as bars with min/max and balancing marks,
# temperatures, charge state and limits; live plots of the last --samples
# refreshes; the event history in words, newest first; the parameter editor
# (every row with a diff mark against its default, a value edited, checked,
# written and read back by tools/bmsctl/params); the unlock dialog (the login
# of tools/bmsctl/cli). Telemetry is read through the SunSpec map
# (tools/bmsctl/sunspec: pysunspec2), so a SCADA sees the same numbers.
# Every read and write runs in a textual thread worker, one at a time on the
# transport (`io` lock), and reports back by message: the screen never waits.
import asyncio
import collections
import io
import threading

from sunspec2.modbus.client import SunSpecModbusClientError
from textual import on, work
from textual.app import App, ScreenStackError
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import (Button, DataTable, Footer, Header, Input, Label, RadioButton, RadioSet,
                             Sparkline, Static, TabbedContent, TabPane)

from tools.bmsctl import blocks, params, sunspec, words
from tools.bmsctl.secrets import do_login
from tools.bmsctl.client import LEVEL_NAMES, CtlError, Pack, load_map
from tools.bmsctl.transport import TransportError

BAR_MV = (2800, 3650)  # the bar's empty and full ends (LiFePO4 cell window)
BAR_W = 30
OFFLINE = (CtlError, TransportError, sunspec.ModbusException, SunSpecModbusClientError)
SERIES = (("v", "pack", "V"), ("a", "current", "A"), ("soc", "SoC", "%"), ("cell_min", "min cell", "V"),
          ("cell_max", "max cell", "V"))
EVENTS_SHOWN = 200  # the newest records the events pane reads
DIALOG_CSS = ("%s { align: center middle; } %s > Vertical { width: 70; height: auto; border: thick $accent; "
              "padding: 1 2; background: $surface; } %s Horizontal { height: auto; }")


def read_pack(dev):
    """{unit, soc, v, a, cell_min, cell_max, alarms, cells [(V, degC, balancing)], ...} of a scanned
    sunspec.Device (re-read now)."""
    bat = dev.models.get("battery", [None])[0]
    mod = dev.models.get("lithium-ion-module", [None])[0]
    row = {"unit": dev.unit, "cells": []}
    if bat is not None:
        bat.read()
        for k, name in (("soc", "SoC"), ("v", "V"), ("a", "A"), ("cell_max", "CellVMax"),
                        ("cell_min", "CellVMin"), ("cha_max", "AChaMax"), ("dis_max", "ADisChaMax"),
                        ("state", "State"), ("cha_st", "ChaSt")):
            row[k] = sunspec.point(bat, name)
        row["alarms"] = words.active(sunspec.point(bat, "EvtVnd1"), sunspec.point(bat, "EvtVnd2"))
    if mod is not None:
        mod.read()
        for k, name in (("t_max", "CellTmpMax"), ("t_min", "CellTmpMin"), ("t_avg", "CellTmpAvg")):
            row[k] = sunspec.point(mod, name)
        for g in mod.groups.get("lithium-ion-module-cell", []):
            row["cells"].append((sunspec.point(g, "CellV"), sunspec.point(g, "CellTmp"),
                                 bool((sunspec.point(g, "CellSt") or 0) & 1)))
    return row


def badge(row):
    """'OK', or the worst kind of what is active and how many."""
    alarms = row.get("alarms") or []
    if not alarms:
        return "OK"
    kinds = [k for k, _ in alarms]
    worst = next(k for k in ("fault", "protection", "alarm") if k in kinds)
    return "%s x%d" % (worst.upper(), len(alarms))


def tile_text(unit, row, err, session):
    head = "unit %d%s" % (unit, "  session %s" % LEVEL_NAMES[session] if session else "")
    if err:
        return "%s\nOFFLINE\n%s" % (head, err)
    if row is None:
        return head
    return "%s\nSoC %s %%\nworst cell %s V\n%s V  %s A\n[%s]" % (
        head, row.get("soc"), row.get("cell_min"), row.get("v"), row.get("a"), badge(row))


def cell_lines(row):
    """One line per cell: index, bar, volts, balancing mark, max/min marks."""
    cells = row["cells"]
    vs = [c[0] for c in cells if c[0] is not None]
    hi = max(vs) if vs else None
    lo = min(vs) if vs else None
    out = []
    for i, (v, t, bal) in enumerate(cells):
        if v is None:
            out.append("cell %2d  %s  n/a" % (i + 1, " " * BAR_W))
            continue
        f = (v * 1000 - BAR_MV[0]) / (BAR_MV[1] - BAR_MV[0])
        n = max(0, min(BAR_W, int(round(f * BAR_W))))
        mark = " max" if v == hi else (" min" if v == lo else "")
        out.append("cell %2d  %s  %.3f V%s%s" % (i + 1, "#" * n + "." * (BAR_W - n), v, " BAL" if bal else "", mark))
    return out


def detail_text(row):
    lines = ["unit %d   SoC %s %%   %s V   %s A   state %s" % (
        row["unit"], row.get("soc"), row.get("v"), row.get("a"), row.get("state"))]
    lines += cell_lines(row)
    lines.append("temperatures %s .. %s degC (mean %s)" % (row.get("t_min"), row.get("t_max"), row.get("t_avg")))
    lines.append("charge state %s   limits: charge %s A, discharge %s A" % (
        row.get("cha_st"), row.get("cha_max"), row.get("dis_max")))
    for kind, name in row.get("alarms") or []:
        lines.append(words.alarm_line(kind, name, None, None))
    return "\n".join(lines)


def info_line(info):
    """The pack's INFO block in words: firmware, serial, address mode, CAN rate."""
    from tools.bmsctl.address import address_words
    fw = info.get("firmware_version")
    parts = ["firmware %d.%d" % (fw >> 8, fw & 0xFF) if isinstance(fw, int) else None,
             "serial %s" % info["serial"] if info.get("serial") else None,
             "address %d %s" % (info.get("unit", 0), address_words(info)) if "address_fixed" in info else None]
    if "can_kbps" in info:
        run, stored = info["can_kbps"], info.get("can_stored_kbps")
        parts.append("CAN %s (stored %s kbit/s)" % ("%d kbit/s" % run if run else "listening", stored))
    return "   ".join(p for p in parts if p)


def series(samples, key):
    """The values of one plotted quantity over the samples kept (readings the map leaves out skipped)."""
    return [s[key] for s in samples if s.get(key) is not None]


def plot_label(samples, key, name, unit):
    vs = series(samples, key)
    if not vs:
        return "%s: no samples" % name
    return "%s: %g %s   (last %d: %g .. %g)" % (name, vs[-1], unit, len(vs), min(vs), max(vs))


def param_row(p, value):
    """The editor's cells: diff mark, name, value, value in the display unit, default, range, access."""
    return ("*" if value != p["default"] else "", p["name"], str(value), params.display(p, value),
            str(p["default"]), "%d..%d" % (p["min"], p["max"]), p["access"])


class Done(Message):
    """A worker's result, posted to the app (post_message is thread-safe and does not wait)."""

    def __init__(self, what, unit, result, error=None):
        Message.__init__(self)
        self.what, self.unit, self.result, self.error = what, unit, result, error


class Tile(Static, can_focus=True):
    DEFAULT_CSS = "Tile { border: round $accent; height: 8; padding: 0 1; } Tile:focus { border: heavy $success; }"

    def __init__(self, unit):
        Static.__init__(self, "unit %d" % unit, id="unit%d" % unit, markup=False)
        self.unit = unit


class EditValue(ModalScreen):
    """One parameter's new value (an integer in the row's unit, or a value in the display unit)."""
    DEFAULT_CSS = DIALOG_CSS % (("EditValue",) * 3)
    BINDINGS = [("escape", "dismiss(None)", "cancel")]

    def __init__(self, p, value):
        ModalScreen.__init__(self)
        self.p, self.value = p, value

    def compose(self):
        p = self.p
        with Vertical():
            yield Label("%s = %s %s  (default %d, %d..%d, %s)" % (
                p["name"], self.value, params.display(p, self.value), p["default"], p["min"], p["max"], p["access"]),
                markup=False)
            yield Input(value=str(self.value), id="value")

    @on(Input.Submitted)
    def submit(self, event):
        self.dismiss(event.value)


class Unlock(ModalScreen):
    """Level and secret (a file, or a passphrase made into the secret with the pack's serial)."""
    DEFAULT_CSS = DIALOG_CSS % (("Unlock",) * 3)
    BINDINGS = [("escape", "dismiss(None)", "cancel")]

    def __init__(self, unit):
        ModalScreen.__init__(self)
        self.unit = unit

    def compose(self):
        with Vertical():
            yield Label("log in to unit %d" % self.unit)
            with RadioSet(id="level"):
                yield RadioButton("user", id="user")
                yield RadioButton("installer", value=True, id="installer")
            yield Input(placeholder="secret file (64 hex digits or 32 bytes)", id="secret_file")
            yield Input(placeholder="or the passphrase", password=True, id="passphrase")
            with Horizontal():
                yield Button("log in", variant="primary", id="ok")
                yield Button("cancel", id="cancel")

    def result(self):
        return {"level": self.query_one(RadioSet).pressed_button.id,
                "secret_file": self.query_one("#secret_file", Input).value.strip() or None,
                "passphrase": self.query_one("#passphrase", Input).value or None}

    @on(Input.Submitted)
    def submit(self, event):
        self.dismiss(self.result())

    @on(Button.Pressed)
    def pressed(self, event):
        self.dismiss(self.result() if event.button.id == "ok" else None)


class Detail(Screen):
    BINDINGS = [("escape", "app.pop_screen", "back"), ("u", "unlock", "unlock"), ("o", "logout", "log out"),
                ("r", "reload", "reload events, parameters")]

    def __init__(self, unit):
        Screen.__init__(self)
        self.unit = unit
        self.values = None  # {name: value} the parameter table shows

    def compose(self):
        yield Header()
        yield Static(id="session", markup=False)
        yield Static(id="info", markup=False)
        with TabbedContent(initial="cells"):
            with TabPane("Cells", id="cells"):
                yield Static(id="detail", markup=False)
            with TabPane("Plots", id="plots"):
                for key, _name, _unit in SERIES:
                    yield Static(id="label_" + key, markup=False)
                    yield Sparkline([], id="plot_" + key)
            with TabPane("Events", id="events"):
                yield DataTable(id="events_table", cursor_type="row", zebra_stripes=True)
            with TabPane("Parameters", id="params"):
                yield DataTable(id="params_table", cursor_type="row", zebra_stripes=True)
        yield Static(id="status", markup=False)
        yield Footer()

    def on_mount(self):
        self.query_one("#events_table", DataTable).add_columns("seq", "time", "kind", "event")
        self.param_cols = self.query_one("#params_table", DataTable).add_columns(
            "", "parameter", "value", "", "default", "range", "access")
        self.app.load_info(self.unit)
        self.refresh_view()

    def refresh_view(self):
        app = self.app
        err = app.errors.get(self.unit)
        self.query_one("#session", Static).update("unit %d   session: %s%s" % (
            self.unit, LEVEL_NAMES[app.packs[self.unit].session], "   OFFLINE: %s" % err if err else ""))
        row = app.rows.get(self.unit)
        if row is not None:
            self.query_one("#detail", Static).update(detail_text(row))
        samples = app.samples[self.unit]
        for key, name, unit in SERIES:
            self.query_one("#label_" + key, Static).update(plot_label(samples, key, name, unit))
            self.query_one("#plot_" + key, Sparkline).data = series(samples, key)

    def status(self, text):
        self.query_one("#status", Static).update(text)

    @on(TabbedContent.TabActivated)
    def tab(self, event):
        if event.pane.id == "events":
            self.app.load_events(self.unit)
            self.query_one("#events_table", DataTable).focus()
        elif event.pane.id == "params":
            self.app.load_params(self.unit)
            self.query_one("#params_table", DataTable).focus()  # Enter on a row edits it

    def action_reload(self):
        self.app.load_info(self.unit)
        self.app.load_events(self.unit)
        self.app.load_params(self.unit)

    def show_events(self, recs):
        t = self.query_one("#events_table", DataTable)
        t.clear()
        for r in reversed(recs):
            t.add_row(str(r["seq"]), r["time"], r["kind"], r["words"])

    def show_params(self, values):
        self.values = values
        t = self.query_one("#params_table", DataTable)
        rows = self.app.packs[self.unit].params
        if not t.row_count:
            for p in rows:
                t.add_row(*param_row(p, values.get(p["name"])), key=p["name"])
            return
        for p in rows:  # only the cells that changed: the cursor stays, no re-layout of every row
            for col, old, new in zip(self.param_cols, t.get_row(p["name"]), param_row(p, values.get(p["name"]))):
                if old != new:
                    t.update_cell(p["name"], col, new)

    @on(DataTable.RowSelected, "#params_table")
    def edit(self, event):
        if self.values is None:
            return
        name = event.row_key.value
        p = self.app.packs[self.unit].by_name[name]
        self.app.push_screen(EditValue(p, self.values[name]),
                             lambda text: text is not None and self.app.write_param(self.unit, name, text))

    def action_unlock(self):
        self.app.push_screen(Unlock(self.unit), lambda r: r is not None and self.app.login(self.unit, r))

    def action_logout(self):
        self.app.logout(self.unit)


class PackApp(App):
    TITLE = "bmsctl"
    CSS = ("Grid { grid-size: 4; grid-gutter: 1; } Sparkline { height: 3; margin-bottom: 1; } "
           "TabbedContent { height: 1fr; } #status { height: 2; color: $warning; }")
    BINDINGS = [("enter", "drill", "open pack"), ("q", "quit", "quit (logs out)")]

    def __init__(self, transport, units, period_s=1.0, regmap=None, samples=120):
        """units: the unit ids to show (scanned once before the screen opens; units without a map are
        left out); samples: how many refreshes the plots keep."""
        App.__init__(self)
        self.t = transport
        self.io = threading.Lock()  # one exchange at a time on the transport
        self.period_s = period_s
        regmap = regmap or load_map()
        self.devs = {}
        for u in units:
            d = sunspec.scan(transport, u)
            if d is not None:
                self.devs[u] = d
        self.packs = {u: Pack(transport, u, regmap) for u in self.devs}
        self.samples = {u: collections.deque(maxlen=samples) for u in self.devs}
        self.rows = {}
        self.errors = {}
        self._polling = False

    def compose(self):
        yield Header()
        with Grid():
            for u in self.devs:
                yield Tile(u)
        yield Footer()

    def on_mount(self):
        self.poll()
        self.set_interval(self.period_s, self.poll)

    def detail(self, unit=None):
        """The pack screen showing unit (any unit: None), if it is the one on top."""
        try:
            s = self.screen
        except ScreenStackError:  # a worker's message after quit
            return None
        return s if isinstance(s, Detail) and unit in (None, s.unit) else None

    # -- workers (threads): the transport under self.io, the result by a Done message ------
    def poll(self):
        if not self._polling:  # a slow unit: the next refresh waits for this one, no backlog
            self._polling = True
            self._poll()

    @work(thread=True, group="poll")
    def _poll(self):
        rows, errors = {}, {}
        for u, d in self.devs.items():
            p = self.packs[u]
            with self.io:
                try:
                    rows[u] = read_pack(d)
                    if p.session:  # the board ends an idle session by itself
                        p.session = p.level()
                except OFFLINE as e:
                    errors[u] = str(e)
        self.post_message(Done("poll", None, rows, errors))

    def _run(self, what, unit, fn):
        """fn() under the transport lock; its result or the one-line refusal posted as Done(what, unit)."""
        with self.io:
            try:
                self.post_message(Done(what, unit, fn()))
            except OFFLINE as e:
                self.post_message(Done(what, unit, None, str(e)))

    @work(thread=True, group="io")
    def load_events(self, unit):
        self._run("events", unit, lambda: blocks.pull(self.packs[unit], last=EVENTS_SHOWN))

    @work(thread=True, group="io")
    def load_info(self, unit):
        from tools.bmsctl.address import info
        self._run("info", unit, lambda: info(self.packs[unit]))

    @work(thread=True, group="io")
    def load_params(self, unit):
        self._run("params", unit, lambda: self.packs[unit].read_params())

    @work(thread=True, group="io")
    def write_param(self, unit, name, text):
        pack = self.packs[unit]

        def go():
            out = io.StringIO()
            params.set_values(pack, {name: text}, False, out)
            return out.getvalue().strip(), pack.read_params()
        self._run("write", unit, go)

    @work(thread=True, group="io")
    def login(self, unit, r):
        pack = self.packs[unit]

        def go():
            if r["secret_file"] and r["passphrase"]:
                raise CtlError("give a secret file or a passphrase, not both")
            do_login(pack, r["level"], r["secret_file"], r["passphrase"])
            return pack.level()
        self._run("login", unit, go)

    @work(thread=True, group="io")
    def logout(self, unit):
        self._run("logout", unit, self.packs[unit].logout)

    def on_done(self, m):
        if m.what == "poll":
            self._polling = False
            self.rows.update(m.result)
            self.errors = m.error
            for u, row in m.result.items():
                self.samples[u].append(row)
            for tile in self.query(Tile):
                u = tile.unit
                tile.update(tile_text(u, self.rows.get(u), self.errors.get(u), self.packs[u].session))
            d = self.detail()
            if d is not None:
                d.refresh_view()
            return
        d = self.detail(m.unit)
        if d is None:
            return
        if m.error:
            d.status("%s: %s" % (m.what, m.error))
        elif m.what == "info":
            d.query_one("#info", Static).update(info_line(m.result))
        elif m.what == "events":
            d.show_events(m.result)
        elif m.what == "params":
            d.show_params(m.result)
        elif m.what == "write":
            d.status(m.result[0])
            d.show_params(m.result[1])
            self.load_events(m.unit)  # the write as the pack journalled it
        elif m.what == "login":
            d.status("logged in as %s" % LEVEL_NAMES[m.result])
        elif m.what == "logout":
            d.status("logged out")
        d.refresh_view()

    def action_drill(self):
        f = self.focused
        if isinstance(f, Tile):
            self.push_screen(Detail(f.unit))

    def logout_all(self):
        """End every session this run opened (behind a gateway the port is shared)."""
        for p in self.packs.values():
            if p.session:
                with self.io:
                    try:
                        p.logout()
                    except OFFLINE:
                        pass  # the board ends it after auth_idle_ms

    async def action_quit(self):
        await asyncio.to_thread(self.logout_all)
        self.exit()


def cmd_tui(t, args, out):
    units = [args.pack] if args.pack else list(range(1, args.last + 1))
    app = PackApp(t, units, args.period, args.regmap, args.samples)
    if not app.devs:
        raise CtlError("no pack answered on units %s" % ",".join(str(u) for u in units))
    app.run()
    app.logout_all()  # quit by a signal rather than q
    return 0
