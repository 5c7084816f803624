"""Pure logic: ticks, parameters, modes, indication patterns, SOC counting."""
import pytest

from defs import modes, ticks
from bms import indicate, params, soc
from bms.params import Params


def test_ticks_diff_across_wrap():
    a = ticks.ticks_add(ticks.TICKS_MASK - 10, 30)
    assert a == 19
    assert ticks.ticks_diff(a, ticks.TICKS_MASK - 10) == 30
    assert ticks.ticks_diff(ticks.TICKS_MASK - 10, a) == -30


def test_params_table_ids_unique_and_defaults_in_range():
    ids = [r[0] for r in params.TABLE]
    names = [r[1] for r in params.TABLE]
    assert len(set(ids)) == len(ids) and len(set(names)) == len(names)
    for _, name, default, lo, hi, _ in params.TABLE:
        assert lo <= default <= hi, name
        # a quantity carries its unit; counts, flags and choices say what they are
        assert name.endswith(("_ms", "_ma", "_mv", "_mah", "_us", "_dc", "_pct", "_ppm",
                              "_count", "_reads", "_tries", "_enable", "_mapping")) or name == "heater", name


def test_param_write_out_of_range_is_refused_and_value_kept():
    p = Params()
    with pytest.raises(ValueError, match="cycle_ms: 5 outside 20..1000"):
        p.set_by_name("cycle_ms", 5)
    assert p.v[params.CYCLE_MS] == 100
    with pytest.raises(ValueError, match="unknown parameter"):
        p.set_by_name("no_such", 1)
    p.set_by_name("cycle_ms", 200)
    assert p.v[params.CYCLE_MS] == 200


def test_mode_from_current_uses_dead_band():
    # SPEC 1: below 0.5 A is reported as 0 -> standby
    assert modes.mode_from_current(499, 500) == modes.STANDBY
    assert modes.mode_from_current(-499, 500) == modes.STANDBY
    assert modes.mode_from_current(500, 500) == modes.CHARGE
    assert modes.mode_from_current(-500, 500) == modes.DISCHARGE


def _lit_ms(pattern, period_ms, step=50):
    return sum(step for t in range(0, period_ms, step) if indicate.is_lit(pattern, t))


@pytest.mark.parametrize("pattern,on_ms,period_ms", [
    (indicate.FLASH1, 250, 4000),   # 0.25 s on / 3.75 s off
    (indicate.FLASH2, 500, 1000),   # 0.5 s on / 0.5 s off
    (indicate.FLASH3, 500, 2000),   # 0.5 s on / 1.5 s off
])
def test_flash_timing_matches_manual(pattern, on_ms, period_ms):
    assert _lit_ms(pattern, period_ms) == on_ms
    assert indicate.is_lit(pattern, 0)
    assert not indicate.is_lit(pattern, on_ms)
    assert indicate.is_lit(pattern, period_ms)  # periodic


def test_run_led_by_mode():
    """RUN of a normal pack: standby FLASH1, charging ON, discharging FLASH3."""
    from bms.state import PackState
    for mode, run in ((modes.STANDBY, indicate.FLASH1), (modes.CHARGE, indicate.ON),
                      (modes.DISCHARGE, indicate.FLASH3)):
        st = PackState()
        st.mode = mode
        indicate.fill_leds(st.leds, st)
        assert st.leds[indicate.RUN] == run


@pytest.mark.parametrize("soc_pct,lit", [(0, 0), (1, 1), (25, 1), (26, 2), (50, 2), (51, 3), (75, 3), (76, 4), (100, 4)])
def test_soc_leds_by_soc(soc_pct, lit):
    leds = bytearray(indicate.N_LEDS)
    indicate.fill_soc_leds(leds, soc_pct, False)
    assert [leds[indicate.SOC0 + k] for k in range(4)] == [indicate.ON] * lit + [indicate.OFF] * (4 - lit)


def test_soc_leds_highest_flashes_while_charging():
    leds = bytearray(indicate.N_LEDS)
    indicate.fill_soc_leds(leds, 60, True)
    assert [leds[indicate.SOC0 + k] for k in range(4)] == [indicate.ON, indicate.ON, indicate.FLASH2, indicate.OFF]


def _counter(capacity_mah):
    """The SOC estimator's plain coulomb counter (set_ppm, count, ppm)."""
    s = soc.SocEstimator(Params().v)
    s.capacity_mah = capacity_mah
    return s


def test_soc_counts_measured_interval_exactly():
    s = _counter(100000)
    s.set_ppm(500000)
    for _ in range(36000):  # 1 h at 10 A in 100 ms steps
        s.count(10000, 100)
    assert s.charge_mah == 60000
    # irregular intervals add up the same
    s.set_ppm(500000)
    for dt in (97, 103, 250, 50) * 3600:
        s.count(-10000, dt)
    assert s.charge_mah == 50000 - 10000 * 500 * 3600 // 3600000


def test_soc_clamps_at_empty_and_full():
    s = _counter(1000)
    s.set_ppm(10000)
    s.count(-1000000, 3600000)
    assert s.charge_mah == 0 and s.ppm() == 0
    s.count(1000000, 3600000 * 10)
    assert s.charge_mah == 1000 and s.ppm() == 1000000


def test_ticks_add_and_diff_match_modular_arithmetic():
    import random
    rnd = random.Random(3)
    for _ in range(20000):
        t = rnd.randrange(ticks.TICKS_PERIOD)
        d = rnd.randrange(-(1 << 29) + 1, 1 << 29)
        s = ticks.ticks_add(t, d)
        assert s == (t + d) % ticks.TICKS_PERIOD
        assert ticks.ticks_diff(s, t) == d
