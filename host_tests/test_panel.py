"""The live bench panel's pure parts: drawing a pack, commands to events, keys."""
import types

import pytest

from tools import paths  # noqa: F401  (tools/ on the path, for simworld, as bench does)
from defs import codes, modes
from bms import indicate
from bms.state import PackState
from sim import scenario as scn
from tools import panel

FAULTS = ("cell_offset", "cell_stuck", "ntc_open", "afe_silent", "current_offset")
MV = [3300 + 5 * i for i in range(16)]
MV[3] = 3210  # min
MV[11] = 3450  # max


def _state():
    st = PackState()
    s = st.snap
    for i, mv in enumerate(MV):
        s.cell_mv[i] = mv
    s.stack_mv = sum(MV)
    for i, dc in enumerate((251, 252, 253, 254, 301, 302, 222)):
        s.temp_dc[i] = dc
    s.ok = True
    s.reads = 10
    st.mode = modes.CHARGE
    st.chg_fet, st.dsg_fet, st.pchg_fet = True, True, False
    st.current_ma = 12300
    st.soc_pct, st.soc_valid = 57, True
    st.alarms = (1 << codes.ALARMS.index("IMB")) | (1 << codes.ALARMS.index("USOC"))
    st.protections = 1 << codes.PROTECTIONS.index("COVP")
    st.leds[indicate.RUN] = indicate.ON
    st.leds[indicate.ALM] = indicate.FLASH3
    indicate.fill_soc_leds(st.leds, 57, True)
    return st


class _Pin:
    def __init__(self, level):
        self.level = level


class FakeWorld:
    """What the panel reads and calls of simworld.World."""

    def __init__(self, n_packs=1, profile="solar"):
        self.sc = types.SimpleNamespace(profile=profile, duration_ms=3600 * 1000, packs=n_packs)
        self.system_request_ma = 0
        self.applied = []
        self.now = 0
        self.packs = []
        for k in range(n_packs):
            board = types.SimpleNamespace(led_pins=[_Pin(i % 2) for i in range(indicate.N_LEDS)])
            app = types.SimpleNamespace(state=_state())
            self.packs.append(types.SimpleNamespace(index=k, board=board, app=app,
                                                    model=types.SimpleNamespace(ambient_dc=250)))

    def t_ms(self):
        return self.now

    def request_ma(self, pack):
        return self.system_request_ma // len(self.packs)

    def apply(self, ev):
        if ev.action == "fault" and ev.name not in FAULTS:
            raise ValueError("unknown fault %r" % ev.name)
        self.applied.append(ev)
        if ev.action == "set" and ev.name == "current_a":
            self.system_request_ma = ev.value

    def run_until(self, end_ms):
        self.now = end_ms


def _ui(**kw):
    ui = panel.Ui(60, **kw)
    ui.fault_names = FAULTS
    return ui


def _texts(lines):
    return [panel.line_text(ln) for ln in lines]


# ---------------------------------------------------------------- drawing

def test_pack_lines_cells_markers_and_values():
    st = _state()
    levels = [1, 0, 1, 1, 1, 0, 0]
    lines = _texts(panel.pack_lines(st, levels, 80))
    head = lines[0]
    for want in ("+12.3 A", "57 %", "charge", "CHG on", "DSG on", "PCHG off", "%.2f V" % (sum(MV) / 1000)):
        assert want in head, (want, head)
    rows = {}
    for ln in lines:
        left = ln[:43]
        parts = left.split()
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].startswith("3."):
            rows[int(parts[0])] = left
    assert sorted(rows) == list(range(16))
    for i, left in rows.items():
        assert "%.3f" % (MV[i] / 1000) in left
        assert left.rstrip().endswith("min") == (i == 3), left
        assert left.rstrip().endswith("max") == (i == 11), left
    # longer bar for the higher cell
    assert rows[11].count("\u2588") > rows[0].count("\u2588") > rows[3].count("\u2588")


def test_pack_lines_leds_temps_and_lists():
    st = _state()
    levels = [1, 0, 1, 1, 1, 0, 0]
    text = "\n".join(_texts(panel.pack_lines(st, levels, 80, {"injected": ["cell_offset[5]=40mV"]})))
    assert "\u25cf RUN  on" in text  # lit
    assert "\u25cb ALM  flash3" in text  # pattern flashes, pin low right now
    assert "\u25cf SOC3 flash2" in text  # highest lit SOC LED flashes while charging
    assert "\u25cb SOC4 off" in text
    assert "\u25cb M/S  off" in text
    assert "buzzer off" in text
    assert "25.1 25.2 25.3 25.4" in text and "30.1 30.2" in text and "amb 22.2" in text
    assert "Alarms   USOC, IMB" in text
    assert "Protect  COVP" in text
    assert "Faults   -" in text and "HW alert -" in text
    assert "AFE ok  errors 0" in text
    assert "cell_offset[5]=40mV" in text


def test_led_attrs_follow_pin_levels():
    st = _state()
    lines = panel.pack_lines(st, [1, 1, 0, 0, 0, 0, 1], 80)
    segs = [s for ln in lines for s in ln]
    dots = [(segs[i][1], segs[i + 1][0].split()[0]) for i in range(len(segs) - 1)
            if segs[i][0] in ("\u25cf", "\u25cb")]
    attrs = dict((name, a) for a, name in dots)
    assert attrs["RUN"] == "green bold" and attrs["ALM"] == "red bold" and attrs["M/S"] == "blue bold"
    assert attrs["SOC1"] == "dim"


def test_no_data_and_ascii():
    st = PackState()
    lines = _texts(panel.pack_lines(st, [0] * 7, 80, ascii_only=True))
    text = "\n".join(lines)
    assert "-- %" in text and "NO DATA" in text
    assert "min" not in "".join(ln[:43] for ln in lines[2:])  # no markers before a read
    assert all(ord(c) < 128 for c in text)


@pytest.mark.parametrize("w,h", [(80, 24), (100, 30), (160, 50)])
def test_frame_fits(w, h):
    world = FakeWorld()
    ui = _ui()
    ui.msg = "x" * 200
    ui.cmd = "fault cell_offset on 3"
    lines = panel.frame(world, ui, w, h)
    assert len(lines) <= h
    assert all(panel._width(ln) <= w for ln in lines)
    texts = _texts(lines)
    assert texts[0].startswith("BMS bench day 1 00:00:00")
    assert any(t.strip().startswith("15 3.") for t in texts)  # all 16 cells on screen
    assert texts[-1].startswith(":fault cell_offset on 3")
    assert "q quit" in texts[-2]


def test_frame_several_packs_and_help():
    world = FakeWorld(3)
    world.now = (2 * 86400 + 3 * 3600 + 4 * 60 + 5) * 1000
    ui = _ui()
    panel.handle_key(world, ui, "\t")
    assert ui.pack == 1
    texts = _texts(panel.frame(world, ui, 100, 30))
    assert "day 3 03:04:05" in texts[0] and "pack 1 of 0..2" in texts[0]
    panel.handle_key(world, ui, panel.KEY_BTAB)
    panel.handle_key(world, ui, panel.KEY_BTAB)
    assert ui.pack == 2
    panel.handle_key(world, ui, "?")
    texts = _texts(panel.frame(world, ui, 100, 30))
    assert any("fault NAME on|off" in t for t in texts)
    panel.handle_key(world, ui, "x")  # any key closes the help
    assert not ui.show_help and not ui.quit


# ---------------------------------------------------------------- commands

def _ev(text, n_packs=2, pack=1):
    kind, ev = panel.parse_command(text, n_packs, pack, FAULTS)
    assert kind == "event"
    return (ev.action, ev.name, ev.pack, ev.index, ev.value, ev.on)


def test_commands_to_events():
    assert _ev("current 12.5") == ("set", "current_a", -1, 0, 12500, True)
    assert _ev("current -3") == ("set", "current_a", -1, 0, -3000, True)
    assert _ev("ambient 40.5") == ("set", "ambient_c", -1, 0, 405, True)
    assert _ev("fault cell_offset on 5 40") == ("fault", "cell_offset", 1, 5, 40, True)
    assert _ev("fault cell_offset off 5") == ("fault", "cell_offset", 1, 5, 0, False)
    assert _ev("fault current_offset on 0 0.3") == ("fault", "current_offset", 1, 0, 300, True)
    assert _ev("fault current_offset on 0.3") == ("fault", "current_offset", 1, 0, 300, True)
    assert _ev("fault afe_silent on") == ("fault", "afe_silent", 1, 0, 0, True)
    assert _ev("sensor cell_mv 3 3700") == ("sensor", "cell_mv", 1, 3, 3700, True)
    assert _ev("sensor cell_mv 3 off") == ("sensor", "cell_mv", 1, 3, None, True)
    assert _ev("sensor ntc_c 6 -12.5") == ("sensor", "ntc_dc", 1, 6, -125, True)
    assert _ev("sensor current_a 12") == ("sensor", "current_ma", 1, 0, 12000, True)
    assert _ev("sensor current_a 0 off") == ("sensor", "current_ma", 1, 0, None, True)
    assert _ev("press 3") == ("press", "button", 1, 0, 3000, True)
    assert _ev("  PRESS   0.5 ", 1, 0) == ("press", "button", 0, 0, 500, True)
    assert panel.parse_command("speed 10", 1, 0, FAULTS) == ("speed", 10)
    assert panel.parse_command("pack 1", 2, 0, FAULTS) == ("pack", 1)
    assert panel.parse_command("help", 1, 0, FAULTS) == ("help", None)
    assert panel.parse_command("   ", 1, 0, FAULTS) == ("none", None)


@pytest.mark.parametrize("text,msg", [
    ("fault melt on", 'unknown fault "melt"'),
    ("fault cell_offset maybe", "usage: fault NAME on|off"),
    ("fault ntc_open on 7", "index: 7 outside 0..6"),
    ("sensor cell_mv 16 3000", "index: 16 outside 0..15"),
    ("sensor cell_mv 3", "usage: sensor"),
    ("sensor volts 1 2", "unknown sensor"),
    ("current abc", "current: number expected"),
    ("current nan", "current: number expected"),
    ("current 5000", "value: 5000 outside -2000..2000"),
    ("ambient", "usage: ambient C"),
    ("press 100", "hold_s: 100 outside"),
    ("speed 0", "speed: 0 outside 1..3600"),
    ("pack 2", "pack: 2 outside 0..1"),
    ("pack 0.5", "pack: 0.5 outside"),
    ("frobnicate 1", "unknown command 'frobnicate'"),
])
def test_bad_commands(text, msg):
    with pytest.raises(panel.CommandError) as e:
        panel.parse_command(text, 2, 0, FAULTS)
    assert msg in str(e.value)
    assert "events[0]" not in str(e.value) and "\n" not in str(e.value)


def test_execute_applies_and_reports():
    world = FakeWorld(2)
    ui = _ui()
    panel.attach(world, ui)
    panel.execute(world, ui, "current 20")
    assert world.system_request_ma == 20000 and world.sc.profile == "none"
    assert not ui.msg_error
    panel.execute(world, ui, "fault cell_offset on 5 40")
    panel.execute(world, ui, "sensor ntc_c 2 70")
    assert panel.injected_list(ui, 0) == ["cell_offset[5]=40mV", "ntc_dc[2]=700dC"]
    assert panel.injected_list(ui, 1) == []
    panel.execute(world, ui, "fault cell_offset off 5")
    panel.execute(world, ui, "sensor ntc_c 2 off")
    assert panel.injected_list(ui, 0) == []
    panel.execute(world, ui, "pack 1")
    assert ui.pack == 1
    panel.execute(world, ui, "speed 7")
    assert ui.speed == 7
    n = len(world.applied)
    panel.execute(world, ui, "sensor cell_mv 99 1")
    assert ui.msg_error and "index" in ui.msg and len(world.applied) == n


def test_execute_survives_a_refusing_world():
    world = FakeWorld()
    ui = panel.Ui(60)
    ui.fault_names = FAULTS + ("not_in_world",)
    panel.execute(world, ui, "fault not_in_world on")
    assert ui.msg_error and ui.msg.startswith("ValueError")


# ---------------------------------------------------------------- keys

def test_plus_minus_zero_and_profile_keys():
    world = FakeWorld()
    ui = _ui()
    assert world.sc.profile == "solar"
    panel.handle_key(world, ui, "+")
    assert world.system_request_ma == 5000 and world.sc.profile == "none"
    panel.handle_key(world, ui, "+")
    panel.handle_key(world, ui, "-")
    assert world.system_request_ma == 5000
    panel.handle_key(world, ui, "0")
    assert world.system_request_ma == 0
    panel.handle_key(world, ui, "-")
    assert world.system_request_ma == -5000
    panel.handle_key(world, ui, "p")
    assert world.sc.profile == "solar"
    panel.handle_key(world, ui, "p")
    assert world.sc.profile == "none"


def test_speed_pause_quit_keys():
    world = FakeWorld()
    ui = _ui()
    panel.handle_key(world, ui, "]")
    assert ui.speed == 120
    for _ in range(20):
        panel.handle_key(world, ui, "]")
    assert ui.speed == 3600
    for _ in range(20):
        panel.handle_key(world, ui, "[")
    assert ui.speed == 1
    panel.handle_key(world, ui, " ")
    assert ui.paused
    panel.handle_key(world, ui, " ")
    assert not ui.paused
    panel.handle_key(world, ui, "q")
    assert ui.quit


def test_command_line_keys():
    world = FakeWorld()
    ui = _ui()
    panel.handle_key(world, ui, ":")
    for ch in "current 7x":
        panel.handle_key(world, ui, ch)
    panel.handle_key(world, ui, panel.KEY_BACKSPACE)
    panel.handle_key(world, ui, "q")  # typed, does not quit
    panel.handle_key(world, ui, "\x7f")
    assert ui.cmd == "current 7" and not ui.quit
    panel.handle_key(world, ui, "\n")
    assert ui.cmd is None and world.system_request_ma == 7000
    panel.handle_key(world, ui, ":")
    panel.handle_key(world, ui, "x")
    panel.handle_key(world, ui, "\x1b")
    assert ui.cmd is None and world.system_request_ma == 7000
    panel.handle_key(world, ui, ":")
    for ch in "bogus":
        panel.handle_key(world, ui, ch)
    panel.handle_key(world, ui, panel.KEY_ENTER)
    assert ui.msg_error and "unknown command" in ui.msg


# ---------------------------------------------------------------- stepping

def test_clock_and_advance():
    clock = panel.Clock()
    assert clock.step_ms(0.1, 60) == 6000
    assert clock.step_ms(0.05, 1) == 0
    assert clock.step_ms(0.05, 1) == 100
    assert clock.step_ms(100, 60) <= 60 * 1000  # a long stall is not caught up
    world = FakeWorld()
    ui = _ui()
    panel.advance(world, ui, panel.Clock(), 0.1)
    assert world.now == 6000
    ui.paused = True
    panel.advance(world, ui, panel.Clock(), 0.1)
    assert world.now == 6000
    ui.paused = False
    world.now = world.sc.duration_ms - 1000
    panel.advance(world, ui, panel.Clock(), 0.1)
    assert world.now == world.sc.duration_ms and ui.ended


def test_trace_errors_kept():
    ui = _ui()
    for k in range(5):
        panel.note_trace(ui, '{"t_ms": %d, "pack": 0, "error": "acquire: E%d"}' % (k * 1000, k))
    panel.note_trace(ui, '{"t_ms": 0, "pack": 0, "mode": "standby"}')
    assert ui.errors == ["pack 0 day 1 00:00:0%d: acquire: E%d" % (k, k) for k in (2, 3, 4)]


def test_with_the_real_world():
    try:
        import simworld
        from sim.mock_afe import FAULTS as real_faults
    except ImportError as e:
        pytest.skip("simulated world not importable yet: %s" % e)
    sc = scn.parse('{"packs": 2, "duration_s": 600, "profile": "solar"}', real_faults)
    lines = []
    world = simworld.World(sc, lines.append)
    ui = panel.Ui(60)
    ui.fault_names = real_faults
    panel.attach(world, ui)
    panel.handle_key(world, ui, "+")
    assert world.system_request_ma == 5000 and world.sc.profile == "none"
    panel.advance(world, ui, panel.Clock(), 0.1)
    assert world.t_ms() == 6000
    panel.execute(world, ui, "fault cell_offset on 5 40")
    assert not ui.msg_error, ui.msg
    panel.execute(world, ui, "fault afe_silent on 3")  # the AFE refuses an index here
    assert ui.msg_error
    panel.execute(world, ui, "sensor cell_mv 2 3100")
    world.run_until(world.t_ms() + 2000)
    texts = _texts(panel.frame(world, ui, 80, 24))
    assert len(texts) <= 24
    assert any(t.startswith(" 2 3.100") for t in texts)
    assert "cell_mv[2]=3100mV" in "\n".join(texts)
