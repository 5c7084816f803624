# bmsctl's TUI (tools/bmsctl/tui) through textual's pilot against the board's
# real host handler in-process (test_bmsctl's rig: app.host.Host, bms.auth.Auth
# with a provisioned installer secret), its parameter writes journalled by the
# real app.hostctl.Journal into a store.eventlog in memory. What the TUI shows
# is checked against the pack (its Params, its Auth sessions, its event log),
# not against the TUI's own state.
import asyncio
import threading
import time
from types import SimpleNamespace

import pytest
from textual.widgets import DataTable, Input, Sparkline, Static, TabbedContent

from app.hostctl import Journal
from bms import auth as A
from bms import params as P
from bms.system import from_pack
from store import eventlog as EV
from store.eventlog import EventLog
from store.memfs import MemFs
from test_bmsctl import PORT_ID, InProcess, rig  # noqa: F401 (the fixture)
from tools.bmsctl.transport import TransportError
from tools.bmsctl.tui import Detail, EditValue, PackApp, Tile, Unlock


class Persist:
    """The part of app.persist that hostctl.Journal uses: the store's event log, log(), the params save."""

    def __init__(self):
        self.store = SimpleNamespace(log=EventLog(MemFs()).mount(), params=SimpleNamespace(save=lambda p: None))
        self.app = SimpleNamespace(params=None)

    def log(self, code, value, raised=True, kind=EV.KIND_STORE):
        return self.store.log.append(0, 1, EV.F_BOOT_TIME | (EV.F_RAISED if raised else 0), kind, code, 0, value)


class Flaky(InProcess):
    """A unit that stops answering (down), or whose answer waits until the test opens the gate."""

    def __init__(self, host):
        InProcess.__init__(self, host)
        self.down = False
        self.gate = None  # threading.Event
        self.waiting = False

    def exchange(self, unit, pdu):
        if self.gate is not None:
            self.waiting = True
            assert self.gate.wait(5)
            self.waiting = False
        if self.down:
            raise TransportError("no answer from unit %d within 1 s" % unit)
        return InProcess.exchange(self, unit, pdu)


@pytest.fixture
def pack(rig):  # noqa: F811
    rig.host.journal = Journal(Persist())
    rig.log = rig.host.journal.history
    rig.t = Flaky(rig.host)
    return rig


async def until(pilot, cond, what, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "timed out waiting for " + what
        await pilot.pause(0.02)


def text(widget):
    return str(widget.render())


async def drill(app, pilot, tab=None):
    await until(pilot, lambda: 1 in app.rows, "the first refresh")
    app.query_one(Tile).focus()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, Detail), "the pack's screen")
    if tab:
        app.screen.query_one(TabbedContent).active = tab
    return app.screen


async def edit(app, pilot, d, name, value):
    """Enter on the parameter's row, the value into the dialog, Enter; the status line after."""
    table = d.query_one("#params_table", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(name))
    before = text(d.query_one("#status", Static))
    d.query_one("#status", Static).update("")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, EditValue), "the edit dialog")
    app.screen.query_one(Input).value = value
    await pilot.press("enter")
    await until(pilot, lambda: text(d.query_one("#status", Static)) not in ("", before), "the write's result")
    return text(d.query_one("#status", Static))


async def unlock(app, pilot, d, key_file, button):
    """The unlock dialog (u), installer (its default), key_file; the button clicked, or Enter (None)."""
    await pilot.press("u")
    await until(pilot, lambda: isinstance(app.screen, Unlock), "the unlock dialog")
    field = app.screen.query_one("#secret_file", Input)
    field.value = key_file
    if button:
        await pilot.click(button)
    else:
        field.focus()
        await pilot.press("enter")
    await until(pilot, lambda: "session: installer" in text(d.query_one("#session", Static)), "the login")


async def params_tab(app, pilot):
    d = await drill(app, pilot, "params")
    await until(pilot, lambda: d.values is not None, "the parameter table")
    return d, d.query_one("#params_table", DataTable)


def test_editor_shows_every_row_and_refuses_without_session_out_of_range_and_read_only(pack):
    i = P.CELL_OV_ALARM_MV

    async def go():
        app = PackApp(pack.t, [1], period_s=5)  # one refresh: the editor tests need no more
        async with app.run_test(size=(120, 30)) as pilot:
            d, table = await params_tab(app, pilot)
            assert table.row_count == len(P.Params().v)
            assert [str(c) for c in table.get_row("cell_ov_alarm_mv")] == [
                "", "cell_ov_alarm_mv", "3550", "3.55 V", "3550", "3000..3900", "RW"]

            # no session: the pack refuses, the reason in one line, nothing changed
            line = await edit(app, pilot, d, "cell_ov_alarm_mv", "3.58V")
            assert "unit 1: cell_ov_alarm_mv (register %d): exception 01" % (1000 + 2 * i) in line
            assert "no installer session" in line and "\n" not in line.strip()
            assert pack.params.v[i] == 3550 and pack.auth.by_reason[A.R_NO_SESSION] == 1

            # outside the map's range, a read-only row: refused by params set's check, nothing on the wire
            n = len(pack.t.requests)
            line = await edit(app, pilot, d, "cell_ov_alarm_mv", "5000")
            assert "nothing written: cell_ov_alarm_mv: 5000 outside 3000..3900" in line
            line = await edit(app, pilot, d, "cycle_ms", "200")
            assert "cycle_ms is read-only" in line and pack.params.v[P.CYCLE_MS] == 100
            assert not any(r[0] in (6, 16) for r in pack.t.requests[n:])
            assert pack.auth.by_reason[A.R_NO_SESSION] == 1
    asyncio.run(go())


def test_editor_accepts_after_unlock_the_write_in_events_and_logout_on_quit(pack):
    i = P.CELL_OV_ALARM_MV

    async def go():
        app = PackApp(pack.t, [1], period_s=5)
        async with app.run_test(size=(120, 30)) as pilot:
            d, table = await params_tab(app, pilot)
            await unlock(app, pilot, d, pack.key, "#ok")  # installer (the default), the secret file
            assert pack.auth.level(PORT_ID, 0) == A.INSTALLER

            line = await edit(app, pilot, d, "cell_ov_alarm_mv", "3580")
            assert line == "cell_ov_alarm_mv: 3550 -> 3580 (3.58 V)"
            assert pack.params.v[i] == 3580  # on the pack
            await until(pilot, lambda: str(table.get_row("cell_ov_alarm_mv")[2]) == "3580", "the table")
            assert str(table.get_row("cell_ov_alarm_mv")[0]) == "*"  # differs from the default now
            assert str(table.get_row("cell_ov_alarm_rel_mv")[0]) == ""

            # the write as the pack journalled it, in the events pane (reloaded after a write)
            assert [r[4:] for r in pack.log.read(0, 9)] == [(EV.KIND_PARAM, i + 1, 0, 3550),
                                                             (EV.KIND_PARAM, i + 1, 0, 3580)]
            events = d.query_one("#events_table", DataTable)
            await until(pilot, lambda: events.row_count == 2, "the events after the write")
            assert [str(events.get_row_at(k)[3]) for k in (0, 1)] == ["cell_ov_alarm_mv set to 3580",
                                                                     "cell_ov_alarm_mv was 3550"]

            await pilot.press("o")  # log out
            await until(pilot, lambda: "session: none" in text(d.query_one("#session", Static)), "the logout")
            assert pack.auth.level(PORT_ID, 0) == 0
            await unlock(app, pilot, d, pack.key, None)  # Enter in the dialog logs in too
            assert pack.auth.level(PORT_ID, 0) == A.INSTALLER
            await pilot.press("q")
        assert pack.auth.level(PORT_ID, 0) == 0  # logged out on quit
        assert pack.t.requests[-1] == bytes((16, 0, 208, 0, 1, 2, 0, 0))
    asyncio.run(go())


def test_events_pane_shows_the_parameter_write_in_words_newest_first(pack):
    pack.host.journal.changed(P.CELL_OV_ALARM_MV + 1, 3550, 3520, PORT_ID)  # an older write
    pack.host.journal.changed(P.AUTH_IDLE_MS + 1, 600000, 120000, PORT_ID)

    async def go():
        app = PackApp(pack.t, [1], period_s=5)
        async with app.run_test(size=(120, 30)) as pilot:
            d = await drill(app, pilot, "events")
            table = d.query_one("#events_table", DataTable)
            await until(pilot, lambda: table.row_count == 4, "the history")
            rows = [[str(c) for c in table.get_row_at(k)] for k in range(table.row_count)]
            assert [r[0] for r in rows] == ["3", "2", "1", "0"]  # newest first
            assert rows[0][2].startswith("parameter") and rows[0][3] == "auth_idle_ms set to 120000"
            assert rows[1][3] == "auth_idle_ms was 600000"
            assert rows[2][3] == "cell_ov_alarm_mv set to 3520" and rows[3][3] == "cell_ov_alarm_mv was 3550"
    asyncio.run(go())


def test_plots_get_a_sample_per_refresh_from_the_pack(pack):
    async def go():
        app = PackApp(pack.t, [1], period_s=0.1, samples=6)
        async with app.run_test(size=(120, 30)) as pilot:
            d = await drill(app, pilot, "plots")
            soc = d.query_one("#plot_soc", Sparkline)
            await until(pilot, lambda: len(soc.data or []) >= 2, "two samples")
            assert set(soc.data) == {62}
            pack.st.soc_pct = 40
            pack.st.snap.min_cell_mv = 3280
            from_pack(pack.view, pack.st, pack.params)
            await until(pilot, lambda: len(soc.data) == 6 and soc.data[-3:] == [40, 40, 40], "the new SoC")
            assert d.query_one("#plot_cell_min", Sparkline).data[-1] == pytest.approx(3.28)
            assert len(d.query_one("#plot_v", Sparkline).data) == 6  # the last --samples refreshes only
            label = text(d.query_one("#label_soc", Static))
            assert label.startswith("SoC: 40 %") and "40 .. 62" in label
    asyncio.run(go())


def test_a_unit_that_stops_answering_shows_offline_and_comes_back(pack):
    async def go():
        app = PackApp(pack.t, [1], period_s=0.1)
        async with app.run_test(size=(120, 30)) as pilot:
            tile = app.query_one(Tile)
            await until(pilot, lambda: "SoC 62 %" in text(tile), "the first refresh")
            pack.t.down = True
            await until(pilot, lambda: "OFFLINE" in text(tile), "offline on the tile")
            assert "no answer from unit 1" in text(tile)
            tile.focus()
            await pilot.press("enter")  # the pack's screen opens while it is offline
            await until(pilot, lambda: isinstance(app.screen, Detail), "the pack's screen")
            app.screen.query_one(TabbedContent).active = "params"
            st = app.screen.query_one("#status", Static)
            await until(pilot, lambda: "no answer" in text(st), "the refusal in the status line")
            await pilot.press("escape")
            pack.t.down = False
            await until(pilot, lambda: "SoC 62 %" in text(tile), "back online")
            assert "OFFLINE" not in text(tile)
    asyncio.run(go())


def test_the_screen_answers_keys_while_a_refresh_is_reading(pack):
    async def go():
        app = PackApp(pack.t, [1], period_s=0.1)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: 1 in app.rows, "the first refresh")
            pack.t.gate = threading.Event()  # the next exchange hangs until the gate opens
            await until(pilot, lambda: pack.t.waiting, "a refresh waiting for its answer")
            app.query_one(Tile).focus()
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, Detail), "the pack's screen")
            assert pack.t.waiting and app._polling  # opened while the refresh was still reading
            gate, pack.t.gate = pack.t.gate, None
            gate.set()
            n = len(app.samples[1])
            await until(pilot, lambda: len(app.samples[1]) > n, "the refresh to finish")
    asyncio.run(go())


def test_the_packs_screen_names_its_firmware_serial_address_mode_and_can_rate(pack):
    # the INFO block (app.host), read when the screen opens: the state the handler reports
    pack.st.link_address = 1
    pack.st.can_kbps = 250

    async def go():
        app = PackApp(pack.t, [1], period_s=5)
        async with app.run_test(size=(160, 30)) as pilot:
            d = await drill(app, pilot)
            await until(pilot, lambda: "firmware" in text(d.query_one("#info", Static)), "the INFO line")
            line = text(d.query_one("#info", Static))
            assert "firmware 1.0" in line and "serial BMS-MPY-00000001" in line, line
            assert "address 1 automatic" in line and "CAN 250 kbit/s (stored 500 kbit/s)" in line, line
            await pilot.press("q")
    asyncio.run(go())
