# Owns bmsctl's TUI (`bmsctl tui`, textual): a grid of pack tiles (unit, SoC,
# worst cell, alarm badge) refreshed every --period seconds; Enter on a tile
# drills into that pack: its 16 cells as bars with min/max and balancing marks,
# temperatures, charge state and limits; Escape goes back. Everything is read
# through the SunSpec map (tools/bmsctl/sunspec: pysunspec2), so a SCADA sees
# the same numbers. The parameter editor and the unlock dialog are not built yet.
from textual.app import App
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tools.bmsctl import sunspec, words

BAR_MV = (2800, 3650)  # the bar's empty and full ends (LiFePO4 cell window)
BAR_W = 30


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


def tile_text(row):
    return "unit %d\nSoC %s %%\nworst cell %s V\n%s V  %s A\n[%s]" % (
        row["unit"], row.get("soc"), row.get("cell_min"), row.get("v"), row.get("a"), badge(row))


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


class Tile(Static, can_focus=True):
    DEFAULT_CSS = "Tile { border: round $accent; height: 8; padding: 0 1; } Tile:focus { border: heavy $success; }"

    def __init__(self, unit):
        Static.__init__(self, "unit %d" % unit, id="unit%d" % unit, markup=False)
        self.unit = unit


class Detail(Screen):
    BINDINGS = [("escape", "app.pop_screen", "back")]

    def __init__(self, unit):
        Screen.__init__(self)
        self.unit = unit

    def compose(self):
        yield Header()
        yield Static(id="detail", markup=False)
        yield Footer()

    def on_mount(self):
        self.refresh_view()

    def refresh_view(self):
        row = self.app.rows.get(self.unit)
        if row is not None:
            self.query_one("#detail", Static).update(detail_text(row))


class PackApp(App):
    TITLE = "bmsctl"
    CSS = "Grid { grid-size: 4; grid-gutter: 1; }"
    BINDINGS = [("enter", "drill", "open pack"), ("q", "quit", "quit")]

    def __init__(self, transport, units, period_s=1.0):
        """units: the unit ids to show (scanned once at start; units without a map are left out)."""
        App.__init__(self)
        self.t = transport
        self.period_s = period_s
        self.devs = {}
        for u in units:
            d = sunspec.scan(transport, u)
            if d is not None:
                self.devs[u] = d
        self.rows = {}
        self.errors = {}

    def compose(self):
        yield Header()
        with Grid():
            for u in self.devs:
                yield Tile(u)
        yield Footer()

    def on_mount(self):
        self.poll()
        self.set_interval(self.period_s, self.poll)

    def poll(self):
        for u, d in self.devs.items():
            try:
                self.rows[u] = read_pack(d)
                self.errors.pop(u, None)
            except Exception as e:  # a pack that stops answering stays on screen with the reason
                self.errors[u] = str(e)
        for tile in self.query(Tile):
            row = self.rows.get(tile.unit)
            err = self.errors.get(tile.unit)
            tile.update(tile_text(row) + ("\n" + err if err else "") if row else "unit %d\n%s" % (tile.unit, err))
        if isinstance(self.screen, Detail):
            self.screen.refresh_view()

    def action_drill(self):
        f = self.focused
        if isinstance(f, Tile):
            self.push_screen(Detail(f.unit))


def cmd_tui(t, args, out):
    from tools.bmsctl.client import CtlError
    units = [args.pack] if args.pack else list(range(1, args.last + 1))
    app = PackApp(t, units, args.period)
    if not app.devs:
        raise CtlError("no pack answered on units %s" % ",".join(str(u) for u in units))
    app.run()
    return 0
