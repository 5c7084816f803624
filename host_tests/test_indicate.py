"""Indication (issue 3, item 4): the LED table of SPEC 4 / `000` 3.3.3.4 row by
row, the LED sequences (`003` 5.3, `004` 6.1), the buzzer patterns (SPEC 5 /
`003` 5.2), and the real on/off edges of the pins timed to the manuals'
durations: through the indicate service on simulated pins and through the
bench world."""
import json
from array import array
import random

import pytest
from hypothesis import given, settings, strategies as stt

import simworld
from app.indicate import Indicate
from defs import codes, modes
from bms import indicate, params
from heap_probe import LOCKED
from bms.state import PackState
from defs.ticks import TICKS_MASK
from drivers.outputs import Buzzer, Leds
from sim import scenario as scn
from sim.mock_afe import FAULTS
from sim.pins import SimPin

# The manuals' durations, written out here (not taken from bms.indicate):
# (on_ms, period_ms).
MANUAL = {
    "flash1": (250, 4000),  # 0.25 s on / 3.75 s off
    "flash2": (500, 1000),  # 0.5 s on / 0.5 s off
    "flash3": (500, 2000),  # 0.5 s on / 1.5 s off
    "beep1": (250, 1000),  # fault: 0.25 s every 1 s
    "beep2": (250, 2000),  # protection: 0.25 s every 2 s
    "beep3": (250, 3000),  # alarm: 0.25 s every 3 s
}


def P(*names):
    m = 0
    for n in names:
        m |= 1 << codes.PROTECTIONS.index(n)
    return m


def A(*names):
    m = 0
    for n in names:
        m |= 1 << codes.ALARMS.index(n)
    return m


def F(*names):
    m = 0
    for n in names:
        m |= 1 << codes.FAULTS.index(n)
    return m


# the LED table's rows, in bms.indicate.ROW_* order (SPEC 4)
ROW_NAMES = ("power_off", "standby", "standby_warning", "charge", "charge_warning", "cocp",
             "discharge", "discharge_warning", "uvp", "docp", "temperature", "failure")


def test_row_names_follow_the_row_numbers():
    assert len(ROW_NAMES) == indicate.ROW_FAILURE + 1
    assert [ROW_NAMES[r] for r in (indicate.ROW_STANDBY_WARN, indicate.ROW_COCP, indicate.ROW_UVP,
                                   indicate.ROW_TEMP)] == ["standby_warning", "cocp", "uvp", "temperature"]


def state(mode=modes.STANDBY, alarms=0, protections=0, faults=0, current_ma=0, soc=60, soc_valid=True):
    st = PackState()
    st.mode, st.alarms, st.protections, st.faults = mode, alarms, protections, faults
    st.current_ma, st.soc_pct, st.soc_valid = current_ma, soc, soc_valid
    return st


def names(st):
    leds = st.leds
    n = indicate.NAMES
    return (n[leds[indicate.RUN]], n[leds[indicate.ALM]],
            [n[leds[indicate.SOC0 + k]] for k in range(indicate.N_SOC)], n[leds[indicate.MS]])


BY_SOC = ["on", "on", "on", "off"]  # 60 %: three LEDs
BY_SOC_CHG = ["on", "on", "flash2", "off"]  # highest lit LED FLASH2 while charging
ALL_OFF = ["off"] * 4
PROT = modes.PROTECTION

# (id, state kwargs, row, RUN, ALM, SOC) — SPEC 4 row by row, plus the variants
# each row names (CUVP or PUVP, each temperature code, each failure).
ROWS = [
    ("power_off", dict(mode=modes.POWER_OFF), "power_off", "off", "off", ALL_OFF),
    ("sleep", dict(mode=modes.SLEEP, alarms=A("UV")), "power_off", "off", "off", ALL_OFF),
    ("standby", dict(), "standby", "flash1", "off", BY_SOC),
    ("standby_warning_uv", dict(alarms=A("UV")), "standby_warning", "flash1", "flash3", BY_SOC),
    ("standby_warning_imb", dict(alarms=A("IMB")), "standby_warning", "flash1", "flash3", BY_SOC),
    ("standby_warning_cut", dict(alarms=A("CUT")), "standby_warning", "flash1", "flash3", BY_SOC),
    ("charge", dict(mode=modes.CHARGE, current_ma=20000), "charge", "on", "off", BY_SOC_CHG),
    ("charge_warning", dict(mode=modes.CHARGE, current_ma=20000, alarms=A("COC")),
     "charge_warning", "on", "flash3", BY_SOC_CHG),
    ("charge_cocp", dict(mode=PROT, protections=P("COCP")), "cocp", "flash1", "off", BY_SOC),
    ("discharge", dict(mode=modes.DISCHARGE, current_ma=-20000), "discharge", "flash3", "off", BY_SOC),
    ("discharge_warning", dict(mode=modes.DISCHARGE, current_ma=-20000, alarms=A("DOC")),
     "discharge_warning", "flash3", "flash3", BY_SOC),
    ("cuvp", dict(mode=PROT, protections=P("CUVP")), "uvp", "off", "flash3", ALL_OFF),
    ("puvp", dict(mode=PROT, protections=P("PUVP")), "uvp", "off", "flash3", ALL_OFF),
    ("docp", dict(mode=PROT, protections=P("DOCP")), "docp", "off", "on", ALL_OFF),
    ("chtp", dict(mode=PROT, protections=P("CHTP")), "temperature", "off", "on", ALL_OFF),
    ("dhtp", dict(mode=PROT, protections=P("DHTP")), "temperature", "off", "on", ALL_OFF),
    ("cltp", dict(mode=PROT, protections=P("CLTP")), "temperature", "off", "on", ALL_OFF),
    ("dltp", dict(mode=PROT, protections=P("DLTP")), "temperature", "off", "on", ALL_OFF),
    ("mos_ot", dict(mode=PROT, protections=P("MOS OT")), "temperature", "off", "on", ALL_OFF),
    ("scp", dict(mode=PROT, protections=P("SCP")), "failure", "off", "on", ALL_OFF),
] + [
    ("failure_" + f.lower().replace(" ", "_"), dict(mode=modes.FAILURE, faults=F(f)), "failure", "off", "on", ALL_OFF)
    for f in ("CELL", "NTC", "SAMPLE", "AFE", "CHG MOS", "DSG MOS", "REVERSED")
]


@pytest.mark.parametrize("kw,row,run,alm,soc", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_led_table_row(kw, row, run, alm, soc):
    st = state(**kw)
    got = indicate.fill_leds(st.leds, st)
    assert ROW_NAMES[got] == row
    assert names(st) == (run, alm, soc, "off")  # M/S off: single pack (`000` F)


def test_table_priorities_and_edge_cases():
    # a failure outranks every protection; temperature outranks over-current and UV
    st = state(mode=PROT, protections=P("CUVP", "DOCP", "CHTP"), faults=F("NTC"))
    assert ROW_NAMES[indicate.fill_leds(st.leds, st)] == "failure"
    st = state(mode=PROT, protections=P("CUVP", "DOCP", "CHTP"))
    assert ROW_NAMES[indicate.fill_leds(st.leds, st)] == "temperature"
    st = state(mode=PROT, protections=P("CUVP", "DOCP"))
    assert ROW_NAMES[indicate.fill_leds(st.leds, st)] == "docp"
    # mode FAILURE without a bit is still the failure row
    st = state(mode=modes.FAILURE)
    assert names(st) == ("off", "off", ALL_OFF, "off") and indicate.fill_leds(st.leds, st) == indicate.ROW_FAILURE
    # over voltage is not a "warning" (`000` note; `003` 5.4: over-charge alarm does not flash ALM)
    st = state(mode=modes.CHARGE, current_ma=5000, alarms=A("OV", "TOV"))
    indicate.fill_leds(st.leds, st)
    assert names(st) == ("on", "off", BY_SOC_CHG, "off")
    # COVP/POVP has no row: the pack shows what it does (`003` 5.4: "LED as standby")
    st = state(mode=PROT, protections=P("COVP", "POVP"))
    indicate.fill_leds(st.leds, st)
    assert names(st) == ("flash1", "off", BY_SOC, "off")
    st = state(mode=PROT, protections=P("COVP"), current_ma=-10000)
    indicate.fill_leds(st.leds, st)
    assert names(st)[:2] == ("flash3", "off")
    # unknown SOC: SOC LEDs off
    st = state(soc=80, soc_valid=False)
    indicate.fill_leds(st.leds, st)
    assert names(st)[2] == ALL_OFF


def test_pattern_names_are_the_trace_contract():
    assert indicate.NAMES == ("off", "on", "flash1", "flash2", "flash3", "beep1", "beep2", "beep3")
    for name, (on_ms, period_ms) in MANUAL.items():
        p = indicate.NAMES.index(name)
        lit = [t for t in range(0, 2 * period_ms, 50) if indicate.is_lit(p, t)]
        assert len(lit) * 50 == 2 * on_ms, name


# --- pin edges through the indicate service ---------------------------------------

def with_buzzer(buzzer_enable):
    p = params.Params()
    p.set(params.BUZZER_ENABLE, buzzer_enable)
    return p


class Harness:
    """The real indicate service on simulated pins, ticked every 50 ms."""

    def __init__(self, st, buzzer_enable=None):
        self.t = 0
        clock = lambda: self.t
        self.pins = [SimPin(clock, 0, True) for _ in range(indicate.N_LEDS)]
        self.bpin = SimPin(clock, 0, True)
        p = None if buzzer_enable is None else with_buzzer(buzzer_enable)
        self.st = st
        self.svc = Indicate(st, Leds(self.pins), Buzzer(self.bpin), p)

    def run_until(self, end_ms):
        while self.t < end_ms:
            self.svc.tick(self.t & TICKS_MASK)
            self.t += self.svc.period_ms


def intervals(pin, t0=0):
    """(rise, fall) of every lit interval starting at or after t0 (fall None if still lit)."""
    out = []
    rise = None
    for t, v in pin.edges:
        if v == 1:
            rise = t
        elif rise is not None:
            if rise >= t0:
                out.append((rise, t))
            rise = None
    if rise is not None and rise >= t0:
        out.append((rise, None))
    return out


def assert_pin(pin, name, t0, t1):
    """The pin did pattern `name` between t0 and t1 with the manual's timing."""
    if name == "off":
        assert pin.level == 0 and not [e for e in pin.edges if e[0] >= t0], pin.edges
        return
    if name == "on":
        assert pin.level == 1 and not [e for e in pin.edges if t0 < e[0] < t1], pin.edges
        return
    on_ms, period_ms = MANUAL[name]
    iv = [(r, f) for r, f in intervals(pin, t0) if r < t1 - period_ms]
    assert len(iv) >= 2, (name, pin.edges)
    assert all(f - r == on_ms for r, f in iv), (name, iv)
    assert [b[0] - a[0] for a, b in zip(iv, iv[1:])] == [period_ms] * (len(iv) - 1), (name, iv)


@pytest.mark.parametrize("kw,row,run,alm,soc", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_led_pins_follow_the_row_with_the_manual_timing(kw, row, run, alm, soc):
    h = Harness(state(**kw))
    h.run_until(12000)
    want = [run, alm] + soc + ["off"]
    for i, name in enumerate(want):
        assert_pin(h.pins[i], name, 0, 12000)


def test_pattern_change_restarts_the_phase():
    st = state()
    h = Harness(st)
    h.run_until(5000)
    st.mode, st.current_ma = modes.DISCHARGE, -20000  # RUN FLASH1 -> FLASH3 at 5000
    h.run_until(12000)
    assert intervals(h.pins[indicate.RUN], 5000)[:3] == [(5000, 5500), (7000, 7500), (9000, 9500)]


def test_lit_ms_is_the_time_to_the_next_edge():
    for name, (on_ms, period_ms) in MANUAL.items():
        p = indicate.NAMES.index(name)
        for t in range(0, 2 * period_ms, 10):
            ph = t % period_ms
            want = on_ms - ph if ph < on_ms else ph - period_ms
            assert indicate.lit_ms(p, t) == want, (name, t)


def expected_level(pattern, phase_ms):
    name = indicate.NAMES[pattern]
    if name in ("off", "on"):
        return 1 if name == "on" else 0
    on_ms, period_ms = MANUAL[name]
    return 1 if phase_ms % period_ms < on_ms else 0


def test_pins_follow_the_patterns_at_uneven_tick_times():
    """Ticks 1..130 ms apart and the pack state changing: after every tick each
    pin shows its pattern at the time since that pattern started."""
    rnd = random.Random(4)
    st = state()
    h = Harness(st)
    shown = [None] * indicate.N_LEDS
    start = [0] * indicate.N_LEDS
    for _ in range(6000):
        if rnd.random() < 0.01:
            st.mode = rnd.choice([modes.STANDBY, modes.CHARGE, modes.DISCHARGE, modes.SLEEP])
        if rnd.random() < 0.01:
            st.soc_pct = rnd.randint(0, 100)
        if rnd.random() < 0.005:
            st.alarms = rnd.choice([0, A("UV")])
        h.svc.tick(h.t)
        for i in range(indicate.N_LEDS):
            if st.leds[i] != shown[i]:
                shown[i], start[i] = st.leds[i], h.t
            assert h.pins[i].level == expected_level(st.leds[i], h.t - start[i]), (i, h.t)
        h.t += rnd.randint(1, 130)


# --- sequences -------------------------------------------------------------------

def start_seq(h, seq, at_ms):
    h.run_until(at_ms)
    h.st.seq, h.st.seq_start_ms = seq, at_ms


def test_wake_sweep_lights_leds_one_after_another_from_run_half_a_second_each():
    h = Harness(state(mode=modes.SLEEP))  # all off before and after
    start_seq(h, indicate.SEQ_WAKE, 1000)
    h.run_until(8000)
    for i in range(indicate.MS):  # RUN, ALM, SOC1..4
        assert intervals(h.pins[i]) == [(1000 + 500 * i, 1500 + 500 * i)], i
    assert h.pins[indicate.MS].edges == []


def test_reset_lights_every_led_for_one_and_a_half_seconds_then_the_table_returns():
    st = state(mode=modes.SLEEP)
    h = Harness(st)
    start_seq(h, indicate.SEQ_RESET, 2000)
    h.run_until(3000)
    assert names(st) == ("on", "on", ["on"] * 4, "on")
    h.run_until(6000)
    for pin in h.pins:
        assert intervals(pin) == [(2000, 3500)]
    assert names(st) == ("off", "off", ALL_OFF, "off")


def test_power_off_flickers_the_soc_leds_three_times():
    h = Harness(state())  # standby at 60 %
    start_seq(h, indicate.SEQ_POWER_OFF, 4100)
    h.run_until(5590)
    flicker = [(4350, 0), (4600, 1), (4850, 0), (5100, 1), (5350, 0)]
    for k in range(3):  # lit (ON) by SOC before: the first flicker continues their light
        assert [e for e in h.pins[indicate.SOC0 + k].edges if e[0] >= 4100] == flicker
    assert [e for e in h.pins[indicate.SOC0 + 3].edges if e[0] >= 4100] == [(4100, 1)] + flicker
    for i in (indicate.RUN, indicate.ALM, indicate.MS):
        assert h.pins[i].level == 0 and not [e for e in h.pins[i].edges if 4100 < e[0] < 5600]


def test_parallel_formed_flickers_run_five_times():
    h = Harness(state(mode=modes.SLEEP))
    start_seq(h, indicate.SEQ_PARALLEL, 1000)
    h.run_until(5000)
    assert intervals(h.pins[indicate.RUN]) == [(1000 + 500 * k, 1250 + 500 * k) for k in range(5)]
    for i in range(1, indicate.N_LEDS):
        assert h.pins[i].edges == []


def test_a_finished_sequence_is_not_replayed_when_the_tick_counter_wraps():
    st = state(mode=modes.SLEEP)
    h = Harness(st)
    start_seq(h, indicate.SEQ_RESET, 1000)
    h.run_until(4000)
    h.t = 1000 + (1 << 30)  # same tick value as the start, one counter period later
    h.run_until(h.t + 200)
    assert names(st) == ("off", "off", ALL_OFF, "off")
    # a new request (another start) plays again
    st.seq_start_ms = h.t & TICKS_MASK
    h.run_until(h.t + 100)
    assert names(st) == ("on", "on", ["on"] * 4, "on")


# --- buzzer --------------------------------------------------------------------------

BUZZ = [
    ("fault", dict(mode=modes.FAILURE, faults=F("NTC")), "beep1"),
    ("fault_and_alarm", dict(mode=modes.FAILURE, faults=F("AFE"), alarms=A("UV")), "beep1"),
    ("protection", dict(mode=PROT, protections=P("CUVP")), "beep2"),
    ("protection_scp", dict(mode=PROT, protections=P("SCP")), "beep2"),
    ("protection_and_alarm", dict(mode=PROT, protections=P("DOCP"), alarms=A("DOC")), "beep2"),
    ("alarm", dict(alarms=A("UV")), "beep3"),
    ("over_voltage_protection", dict(mode=PROT, protections=P("COVP", "POVP")), "off"),
    ("over_voltage_alarm", dict(mode=modes.CHARGE, alarms=A("OV", "TOV")), "off"),
    ("normal", dict(), "off"),
    ("asleep_with_alarm", dict(mode=modes.SLEEP, alarms=A("UV")), "off"),
]


@pytest.mark.parametrize("kw,name", [b[1:] for b in BUZZ], ids=[b[0] for b in BUZZ])
def test_buzzer_pattern_and_pin_when_enabled(kw, name):
    h = Harness(state(**kw), buzzer_enable=1)
    h.run_until(13000)
    assert indicate.NAMES[h.st.buzzer] == name
    assert_pin(h.bpin, name, 0, 13000)


@pytest.mark.parametrize("kw", [b[1] for b in BUZZ], ids=[b[0] for b in BUZZ])
def test_buzzer_silent_when_disabled(kw):
    h = Harness(state(**kw), buzzer_enable=0)
    h.run_until(5000)
    assert h.st.buzzer == indicate.OFF and h.bpin.edges == []


def test_buzzer_disabled_without_parameters():
    st = state(mode=modes.FAILURE, faults=F("NTC"))
    h = Harness(st)
    h.svc = Indicate(st, Leds(h.pins), Buzzer(h.bpin), None)
    h.run_until(3000)
    assert st.buzzer == indicate.OFF and h.bpin.edges == []


def test_buzzer_enable_is_read_live():
    st = state(alarms=A("UV"))
    h = Harness(st, buzzer_enable=0)
    h.run_until(2000)
    h.svc.params.v[params.BUZZER_ENABLE] = 1  # the PC tool switches it on
    h.run_until(9000)
    assert intervals(h.bpin) == [(2000, 2250), (5000, 5250), (8000, 8250)]


# --- through the bench world --------------------------------------------------------

def world(doc):
    lines = []
    w = simworld.World(scn.parse(json.dumps(doc), FAULTS), lines.append, True)
    return w, lines


def test_bench_standby_charge_discharge_rows_on_the_pins():
    w, lines = world({"duration_s": 40, "initial": {"soc_pct": 60}, "events": [
        {"t_s": 14, "set": "current_a", "value": 30},
        {"t_s": 27, "set": "current_a", "value": -30}]})
    w.run()
    pins = w.packs[0].board.led_pins
    tr = [json.loads(ln) for ln in lines]
    charge = [o for o in tr if o["mode"] == "charge"][-1]
    assert charge["leds"] == {"run": "on", "alm": "off", "soc": BY_SOC_CHG, "ms": "off"}
    t_chg = min(o["t_ms"] for o in tr if o["mode"] == "charge")
    t_dsg = min(o["t_ms"] for o in tr if o["mode"] == "discharge")
    assert_pin(pins[indicate.RUN], "flash1", 1000, t_chg)
    assert_pin(pins[indicate.SOC0 + 2], "flash2", t_chg, t_dsg)
    assert_pin(pins[indicate.RUN], "flash3", t_dsg, 40000)
    for i in (indicate.ALM, indicate.SOC0 + 3, indicate.MS):
        assert pins[i].edges == []


def test_bench_reset_sequence_all_leds_on_for_1_5_s():
    w, lines = world({"duration_s": 10, "initial": {"soc_pct": 30}})
    w.run_until(5000)
    st = w.packs[0].app.state
    st.seq, st.seq_start_ms = indicate.SEQ_RESET, w.runner.now_ms  # what control does on a reset press
    w.run()
    pins = w.packs[0].board.led_pins
    for i in (indicate.ALM, indicate.SOC0 + 2, indicate.SOC0 + 3, indicate.MS):  # off in the table
        assert intervals(pins[i]) == [(5000, 6500)], i
    tr = [json.loads(ln) for ln in lines]
    during = [o for o in tr if 5000 <= o["t_ms"] < 6500]
    assert during and all(o["leds"] == {"run": "on", "alm": "on", "soc": ["on"] * 4, "ms": "on"} for o in during)
    assert [o for o in tr if o["t_ms"] >= 6500][0]["leds"]["alm"] == "off"


def test_bench_buzzer_silent_by_default():
    w, lines = world({"duration_s": 10, "events": [{"t_s": 2, "fault": "ntc_open", "pack": 0, "on": True, "index": 0}]})
    w.run()
    assert w.packs[0].board.buzzer_pin.edges == []
    assert all(json.loads(ln).get("buzzer", "off") == "off" for ln in lines)


def _has_param(name):
    try:
        params.index_of(name)
        return True
    except ValueError:
        return False


@pytest.mark.skipif(not _has_param("buzzer_enable"), reason="parameter buzzer_enable not in lib/bms/params.py yet")
def test_bench_buzzer_beeps_on_a_fault_when_enabled():
    w, lines = world({"duration_s": 20, "params": {"buzzer_enable": 1},
                      "events": [{"t_s": 2, "fault": "ntc_open", "pack": 0, "on": True, "index": 0}]})
    w.run()
    tr = [json.loads(ln) for ln in lines]
    if not any(o["faults"] for o in tr):
        pytest.skip("no protection raises a fault for an open NTC yet (lib/bms/protect.py)")
    t_fault = min(o["t_ms"] for o in tr if o["faults"])
    assert tr[-1]["buzzer"] == "beep1"
    assert_pin(w.packs[0].board.buzzer_pin, "beep1", t_fault, 20000)


# --- MicroPython: every row, sequence and buzzer pattern allocation-free ------------

MPY_LOCKED = """
from defs import codes, modes
from bms import indicate
from bms.state import PackState
from bms.params import Params
from drivers.outputs import Buzzer, Leds
from sim.pins import SimPin
from app.indicate import Indicate
from app.button import Button

t = [0]
clock = lambda: t[0]
st = PackState()
p = Params()
p.set_by_name("buzzer_enable", 1)
svc = Indicate(st, Leds([SimPin(clock) for _ in range(indicate.N_LEDS)]), Buzzer(SimPin(clock)), p)
btn_pin = SimPin(clock, 1)
btn = Button(st, btn_pin, p)
P = lambda n: 1 << codes.PROTECTIONS.index(n)
CASES = [(modes.STANDBY, 0, 0, 0), (modes.STANDBY, 1 << codes.ALARMS.index("UV"), 0, 0),
         (modes.CHARGE, 0, 0, 0), (modes.DISCHARGE, 1 << codes.ALARMS.index("DOC"), 0, 0),
         (modes.PROTECTION, 0, P("COCP"), 0), (modes.PROTECTION, 0, P("CUVP"), 0),
         (modes.PROTECTION, 0, P("DOCP"), 0), (modes.PROTECTION, 0, P("CHTP"), 0),
         (modes.FAILURE, 0, 0, 1), (modes.SLEEP, 0, 0, 0), (modes.POWER_OFF, 0, 0, 0)]

def ticks(n):
    for _ in range(n):
        svc.tick(t[0])
        btn.tick(t[0])
        t[0] += 50
""" + LOCKED + """

def probe():
    st.soc_pct, st.soc_valid = 60, True
    for mode, alarms, prot, faults in CASES:
        st.mode, st.alarms, st.protections, st.faults = mode, alarms, prot, faults
        st.current_ma = 20000 if mode == modes.CHARGE else -20000 if mode == modes.DISCHARGE else 0
        err = locked(ticks, 80)
        if err:
            return "row %d %s" % (mode, err)
    for seq in (indicate.SEQ_WAKE, indicate.SEQ_RESET, indicate.SEQ_POWER_OFF, indicate.SEQ_PARALLEL):
        st.seq, st.seq_start_ms = seq, t[0]
        err = locked(ticks, 80)
        if err:
            return "seq %d %s" % (seq, err)
    btn_pin.value(0)
    err = locked(ticks, 80)
    btn_pin.value(1)
    err = err or locked(ticks, 4)
    if err:
        return "button " + err
    return "ok %d %d" % (st.button_count, st.button_action)

print(probe())
"""


def test_indicate_and_button_services_run_under_heap_lock_in_micropython(mpy):
    if not _has_param("buzzer_enable"):
        pytest.skip("parameter buzzer_enable not in lib/bms/params.py yet")
    r = mpy.run(MPY_LOCKED, timeout_s=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok 1 1", r.stdout


def test_a_protection_without_a_row_shows_as_a_warning():
    # e.g. the imbalance protection protect appends (`000` note: "warning" includes
    # cell imbalance); any such code is at least visible as ALM FLASH3 and beeps
    extra = [n for n in codes.PROTECTIONS if n not in (
        "COVP", "POVP", "CUVP", "PUVP", "COCP", "DOCP", "SCP", "CHTP", "DHTP", "CLTP", "DLTP",
        "MOS OT", "EOTP", "EUTP")]
    if not extra:
        pytest.skip("no protection code beyond the table's yet")
    for n in extra:
        st = state(mode=PROT, protections=P(n))
        assert ROW_NAMES[indicate.fill_leds(st.leds, st)] == "standby_warning", n
        assert indicate.buzzer_pattern(st.mode, 0, st.protections, 0, True) == indicate.BEEP2


_INPUTS = {
    "mode": stt.sampled_from((0, 1, 2, 3, 4, 4, 4, 5, 6)),  # PROTECTION: the row follows the current
    "alarms": stt.sampled_from((0, A("UV"), A("OV"), A("PARALLEL"))),
    "protections": stt.sampled_from((0, P("COVP"), P("DOCP"), P("SCP"), P("IMB"), P("CHTP"))),
    "faults": stt.sampled_from((0, F("NTC"))), "current_ma": stt.sampled_from((0, 1, -1, 5000, -5000)),
    "soc_pct": stt.sampled_from((0, 24, 25, 60, 100)), "soc_valid": stt.booleans(),
    "link_parallel": stt.booleans()}
_STEP = stt.tuples(stt.fixed_dictionaries(_INPUTS), stt.sampled_from(sorted(_INPUTS) + ["all"]),
                   stt.integers(0, 3), stt.integers(1, 3))


@settings(max_examples=400, deadline=None)
@given(stt.lists(_STEP, min_size=1, max_size=30))
def test_led_table_with_its_last_inputs_is_the_full_evaluation(steps):
    """fill_leds with the service's last array (nothing evaluated for the same
    inputs again) leaves the LEDs and returns the row the full evaluation
    gives, over runs of repeated states and states that differ in one input,
    with other writers of the LEDs (a sequence: last[0] = -1) in between."""
    st = PackState()
    leds = array("B", [0] * indicate.N_LEDS)
    ref = array("B", [0] * indicate.N_LEDS)
    last = array("i", [-1] * indicate.LAST_N)
    for values, which, other, repeat in steps:
        for k in _INPUTS:
            if which in (k, "all"):
                setattr(st, k, values[k])
        if other == 0:  # a sequence wrote the LEDs
            for i in range(indicate.N_LEDS):
                leds[i] = indicate.ON
            last[0] = -1
        for _ in range(repeat):
            assert indicate.fill_leds(leds, st, last) == indicate.fill_leds(ref, st)
            assert leds == ref
