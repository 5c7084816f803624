"""Limits told to the inverter (lib/bms/limits.py, issue 4): tapers, derating,
zero where a protection forbids, float after full, never CVL 0, force-charge
requests and the long timers, in simulated time."""
from hypothesis import given, settings, strategies as stt

from defs import modes
from defs.codes import PROTECTIONS
from bms.limits import Limits, FC_I, FC_II, FC_FULL, FC_RECHARGE, taper, derate_pml
from bms.params import Params
from bms.state import PackState

COVP = 1 << PROTECTIONS.index("COVP")
CUVP = 1 << PROTECTIONS.index("CUVP")
CHTP = 1 << PROTECTIONS.index("CHTP")


def make():
    st = PackState()
    st.soc_valid = True
    st.soc_pct = 50
    return st, Limits(Params().v)


def step(st, lim, cell_mv=3300, cells=None, temp_dc=250, dt_ms=100, n=1, mode=modes.CHARGE):
    for c in range(16):
        st.snap.cell_mv[c] = cells[c] if cells else cell_mv
    st.snap.stack_mv = sum(st.snap.cell_mv)
    for k in range(7):
        st.snap.temp_dc[k] = temp_dc
    st.snap.extremes()  # as acquire does
    st.mode = mode
    for _ in range(n):
        lim.update(st, dt_ms)


def test_taper_both_directions():
    assert taper(3300, 3400, 3550, 70000, 5000) == 70000
    assert taper(3475, 3400, 3550, 70000, 5000) == 37500
    assert taper(3600, 3400, 3550, 70000, 5000) == 5000
    assert taper(2950, 3100, 2800, 100000, 0) == 50000


def test_nominal_limits():
    st, lim = make()
    step(st, lim)
    assert (st.cvl_mv, st.ccl_ma, st.dcl_ma, st.dvl_mv) == (56000, 70000, 100000, 48000)


def test_charge_current_tapers_as_the_highest_cell_nears_full_then_stops():
    st, lim = make()
    cells = [3300] * 16
    cells[7] = 3475
    step(st, lim, cells=cells)
    assert st.ccl_ma == 37500 and st.cvl_mv == 56000
    cells[7] = 3550
    step(st, lim, cells=cells)
    stack = sum(cells)
    assert st.ccl_ma == 0 and st.cvl_mv == stack  # stop: CVL lowered to the present voltage
    cells[7] = 3500  # hysteresis: stays stopped until the release
    step(st, lim, cells=cells)
    assert st.ccl_ma == 0
    cells[7] = 3450
    step(st, lim, cells=cells)
    assert st.ccl_ma > 0 and st.cvl_mv == 56000


def test_discharge_current_tapers_as_the_lowest_cell_nears_empty():
    st, lim = make()
    cells = [3300] * 16
    cells[2] = 2950
    step(st, lim, cells=cells)
    assert st.dcl_ma == 50000
    cells[2] = 2800
    step(st, lim, cells=cells)
    assert st.dcl_ma == 0


def test_temperature_derating():
    st, lim = make()
    step(st, lim, temp_dc=75)  # 7.5 C: half way between 0 and 15 C
    assert st.ccl_ma == 35000 and st.dcl_ma == 100000
    step(st, lim, temp_dc=400)  # 40 C: half way between 35 and 45 C
    assert st.ccl_ma == 35000
    step(st, lim, temp_dc=475)  # discharge: half way between 45 and 50 C
    assert st.ccl_ma == 0 and st.dcl_ma == 50000
    step(st, lim, temp_dc=-50)  # -5 C: no charge, discharge half
    assert st.ccl_ma == 0 and st.dcl_ma == 50000


def test_zero_where_a_protection_forbids_and_cvl_never_zero():
    st, lim = make()
    st.protections = CHTP
    step(st, lim)
    assert st.ccl_ma == 0 and st.dcl_ma == 100000 and st.cvl_mv == 16 * 3300
    st.protections = CUVP
    step(st, lim)
    assert st.dcl_ma == 0 and st.ccl_ma == 70000
    st.protections = COVP
    st.snap.stack_mv = 0  # no reading yet: CVL stays a real voltage
    lim.update(st, 100)
    assert st.cvl_mv == 56000 and st.ccl_ma == 0
    for mv in (2000, 2500, 3000, 3650):
        step(st, lim, cell_mv=mv)
        assert st.cvl_mv >= 40000


def test_float_after_full_until_the_recharge_voltage():
    st, lim = make()
    st.soc_full = True
    step(st, lim, cell_mv=3400)
    assert st.cvl_mv == 54600
    st.soc_full = False
    step(st, lim, cell_mv=3300)
    assert st.cvl_mv == 54600  # still floating
    step(st, lim, cell_mv=3120)  # 49.9 V < recharge 50 V
    assert st.cvl_mv == 56000


def test_force_charge_levels_with_hysteresis():
    st, lim = make()
    for soc, want in ((12, 0), (10, FC_I), (5, FC_I | FC_II), (12, FC_I | FC_II), (15, 0)):
        st.soc_pct = soc
        step(st, lim)
        assert st.force_charge & (FC_I | FC_II) == want, soc


def test_full_charge_request_after_30_days_below_97():
    st, lim = make()
    st.soc_pct = 90
    step(st, lim, dt_ms=60000, n=29 * 24 * 60 + 23 * 60)
    assert not st.force_charge & FC_FULL
    step(st, lim, dt_ms=60000, n=60)
    assert st.force_charge & FC_FULL and st.cvl_mv == 56000
    st.soc_pct = 97
    step(st, lim)
    assert not st.force_charge & FC_FULL


def test_forced_recharge_after_two_days_standby_below_recharge_voltage():
    st, lim = make()
    st.soc_pct = 20
    st.soc_full = True
    step(st, lim, cell_mv=3400)
    st.soc_full = False
    step(st, lim, cell_mv=3120, dt_ms=1000, n=47 * 3600 + 3599, mode=modes.STANDBY)
    assert not st.force_charge & FC_RECHARGE
    step(st, lim, cell_mv=3120, dt_ms=1000, n=1, mode=modes.STANDBY)
    assert st.force_charge & FC_RECHARGE
    step(st, lim, cell_mv=3300, mode=modes.CHARGE)
    assert st.force_charge & FC_RECHARGE  # held until the charge ends
    st.soc_full = True
    step(st, lim, cell_mv=3450)
    assert not st.force_charge & FC_RECHARGE


def test_standby_timer_restarts_when_current_flows():
    st, lim = make()
    step(st, lim, cell_mv=3120, dt_ms=1000, n=40 * 3600, mode=modes.STANDBY)
    step(st, lim, cell_mv=3120, mode=modes.DISCHARGE)
    step(st, lim, cell_mv=3120, dt_ms=1000, n=40 * 3600, mode=modes.STANDBY)
    assert not st.force_charge & FC_RECHARGE


T = stt.integers(-600, 1200)


LEVELS = stt.lists(T, min_size=4, max_size=4).map(sorted) | stt.lists(T, min_size=4, max_size=4)


@settings(max_examples=500, deadline=None)
@given(T, T, LEVELS)
def test_derate_between_the_starts_is_the_full_evaluation(t_lo, t_hi, levels):
    """derate_pml's shortcut (full current between the derating starts) gives
    what the two tapers give, for levels in any order (the PC tool's table
    keeps them ordered; a test may write params.v directly)."""
    zero_cold, full_cold, full_hot, zero_hot = levels
    a = taper(t_lo, full_cold, zero_cold, 1000, 0)
    b = taper(t_hi, full_hot, zero_hot, 1000, 0)
    assert derate_pml(t_lo, t_hi, zero_cold, full_cold, full_hot, zero_hot) == min(a, b)
