"""The simulated pack and AFE chip (lib/sim): physics checked against physics."""
import os
import sys

_LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

import pytest  # noqa: E402

from defs.snapshot import Snapshot, N_TEMPS, T_MOS0, T_MOS1, T_AMB  # noqa: E402
from defs.afe import (HwLimits, ALERT_COV, ALERT_CUV, ALERT_OCC, ALERT_OCD,  # noqa: E402
                         ALERT_SCD)
from sim.mock_afe import MockAfe, FAULTS, NTC_OPEN_DC, NTC_SHORT_DC  # noqa: E402
from bms.ocv import soc_ppm_from_ocv  # noqa: E402
from sim.ocv import ocv_mv  # noqa: E402
from sim.pack_model import PackModel  # noqa: E402
from sim.rng import Rng  # noqa: E402

NC_PER_MA_MS = 1000  # the model counts charge in nC; 1 mA for 1 ms is 1 uC


def make(seed=1, **kw):
    kw.setdefault("self_discharge_ppm_per_month", 0)
    return PackModel(Rng(seed), **kw)


def make_afe(seed=1, afe_kw=None, **kw):
    m = make(seed, **kw)
    a = MockAfe(m, **(afe_kw or {}))
    a.set_fets(True, True, False)
    return m, a


def limits(**kw):
    v = dict(cov_mv=3650, cuv_mv=2500, occ_ma=100000, ocd_ma=150000, scd_ma=500000,
             cov_delay_ms=1000, cuv_delay_ms=1000, occ_delay_ms=1000, ocd_delay_ms=1000,
             scd_delay_us=200)
    v.update(kw)
    return HwLimits(**v)


def charges(m):
    return [m.charge_nc(c) for c in range(m.n_cells)]


def read(a):
    s = Snapshot()
    assert a.read(s)
    return s


# --- rng ---

def _xorshift32(x):
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x


def test_rng_is_xorshift32_and_deterministic():
    x = 12345
    for _ in range(16):
        x = _xorshift32(x)
    ref = []
    for _ in range(1000):
        x = _xorshift32(x)
        ref.append(x)
    r = Rng(12345)
    assert [r.next_u32() for _ in range(1000)] == ref
    a, b = Rng(7), Rng(7)
    assert [a.randint(-9, 9) for _ in range(100)] == [b.randint(-9, 9) for _ in range(100)]
    assert [Rng(1).next_u32() for _ in range(3)] != [Rng(2).next_u32() for _ in range(3)]
    assert Rng(0).next_u32() != 0


def test_rng_randint_inclusive_and_spread_bounded():
    r = Rng(3)
    seen = set(r.randint(-3, 3) for _ in range(2000))
    assert seen == set(range(-3, 4))
    vals = [r.spread(100000, 20000) for _ in range(2000)]
    assert min(vals) >= 98000 and max(vals) <= 102000
    assert min(vals) < 98200 and max(vals) > 101800  # uses the whole band


# --- OCV curve ---

def test_ocv_monotone_flat_plateau_steep_ends():
    pts = [ocv_mv(s) for s in range(0, 1000001, 1000)]
    assert all(b >= a for a, b in zip(pts, pts[1:]))
    assert ocv_mv(0) == 2500
    assert 3450 <= ocv_mv(1000000) <= 3600
    # plateau 20..90 %: 3.24-3.34 V, well under 1.5 mV per %
    assert 3240 <= ocv_mv(200000) and ocv_mv(900000) <= 3340
    assert (ocv_mv(900000) - ocv_mv(200000)) / 70 < 1.5
    # the ends are steep: tens to hundreds of mV per %
    assert ocv_mv(10000) - ocv_mv(0) > 200
    assert ocv_mv(1000000) - ocv_mv(990000) > 100
    # strictly increasing at every 5 % step, plateau included
    pct = [ocv_mv(p * 50000) for p in range(21)]
    assert all(b > a for a, b in zip(pct, pct[1:]))


def test_ocv_segment_table_starts_each_lookup_in_its_segment():
    # _FIRST[p]: the segment of the breakpoint table holding p %, at most the
    # last but one; a lookup from it interpolates as a scan from the start would
    from sim import ocv
    soc, mv, last = ocv.SOC_PPM, ocv.OCV_MV, len(ocv.SOC_PPM) - 1
    assert len(ocv._FIRST) == 101
    for p in range(101):
        assert ocv._FIRST[p] == min(last - 1, max(k for k in range(last + 1) if soc[k] <= p * 10000))

    def plain(s):
        k = 0
        while soc[k + 1] <= s:
            k += 1
        return mv[k] + (mv[k + 1] - mv[k]) * (s - soc[k]) // (soc[k + 1] - soc[k])
    assert all(ocv_mv(s) == plain(s) for s in range(0, 1000000, 97))


def test_ocv_inverse():
    for mv in range(2500, 3601):
        assert ocv_mv(soc_ppm_from_ocv(mv)) == mv
    inv = [soc_ppm_from_ocv(mv) for mv in range(2400, 3700, 5)]
    assert all(b >= a for a, b in zip(inv, inv[1:]))
    assert soc_ppm_from_ocv(2000) == 0 and soc_ppm_from_ocv(4000) == 1000000
    assert 400000 < soc_ppm_from_ocv(3280) < 600000


def test_ocv_extrapolates_beyond_full_and_empty():
    assert ocv_mv(1010000) > ocv_mv(1000000) + 50
    assert ocv_mv(-10000) < 2500 - 200
    assert ocv_mv(-10000000) == 0


# --- charge bookkeeping ---

def test_charging_moves_exactly_i_times_t():
    m = make()
    m.cmd_chg = m.cmd_dsg = True
    q0 = charges(m)
    soc0 = [m.soc_ppm(c) for c in range(16)]
    for _ in range(600):
        m.step(100, 37123)  # 60 s at 37.123 A
    dq = 37123 * 60000 * NC_PER_MA_MS
    assert all(q - q_ == dq for q, q_ in zip(charges(m), q0))
    for c in range(16):
        expect = dq * 1000000 // m.capacity_nc(c)
        assert abs(m.soc_ppm(c) - soc0[c] - expect) <= 1
    assert m.current_ma == 37123


def test_step_size_does_not_change_the_result():
    a, b = make(5), make(5)
    for m in (a, b):
        m.cmd_chg = m.cmd_dsg = True
    for _ in range(300):
        a.step(100, -51234)
    for _ in range(3):
        b.step(10000, -51234)
    assert charges(a) == charges(b)


def test_terminal_voltage_is_ocv_plus_ir():
    m = make()
    m.cmd_chg = m.cmd_dsg = True
    m.step(100, 100000)
    for c in range(16):
        assert m.cell_mv(c) == m.ocv_mv(c) + 100000 * m.resistance_uohm(c) // 1000000
        assert m.cell_mv(c) > m.ocv_mv(c)
    m.step(100, -100000)
    assert all(m.cell_mv(c) < m.ocv_mv(c) for c in range(16))
    assert m.stack_mv() == sum(m.cell_mv(c) for c in range(16))


# --- FETs ---

def _flows(m, chg, dsg, pchg, req):
    m.cmd_chg, m.cmd_dsg, m.cmd_pchg = chg, dsg, pchg
    q0 = m.charge_nc(0)
    m.step(1000, req)
    return m.current_ma, m.charge_nc(0) - q0


def test_charge_fet_off_blocks_charge_but_passes_discharge():
    m = make()
    assert _flows(m, False, True, False, 20000) == (0, 0)
    assert _flows(m, False, True, False, -20000) == (-20000, -20000 * 1000 * NC_PER_MA_MS)


def test_discharge_fet_off_blocks_discharge_but_passes_charge():
    m = make()
    assert _flows(m, True, False, False, -20000) == (0, 0)
    assert _flows(m, True, False, False, 20000) == (20000, 20000 * 1000 * NC_PER_MA_MS)


def test_all_off_blocks_both_ways_and_pack_shows_outside_voltage():
    m = make(ext_mv=1234)
    assert _flows(m, False, False, False, 20000)[0] == 0
    assert _flows(m, False, False, False, -20000)[0] == 0
    assert m.pack_mv() == 1234
    m.cmd_dsg = True
    m.step(100, 0)
    assert m.pack_mv() == m.stack_mv()


def test_precharge_limits_discharge_current():
    m = make(pchg_ma=500)
    assert _flows(m, False, False, True, -50000)[0] == -500
    assert _flows(m, False, False, True, -300)[0] == -300
    assert _flows(m, False, False, True, 50000)[0] == 0


# --- thermal ---

def _heat_slope(current_ma):
    m = make()
    m.cmd_chg = m.cmd_dsg = True
    t0 = [m.cell_temp_uc(k) for k in range(4)] + [m.mos_temp_uc()]
    m.step(10000, current_ma)
    t1 = [m.cell_temp_uc(k) for k in range(4)] + [m.mos_temp_uc()]
    return [b - a for a, b in zip(t0, t1)]


def test_heating_follows_i_squared_r():
    s1 = _heat_slope(-50000)
    s2 = _heat_slope(-100000)
    for a, b in zip(s1, s2):
        assert a > 0
        assert b / a == pytest.approx(4, rel=0.01)
    # a group heats in proportion to its resistance
    m = make()
    r = [sum(m.resistance_uohm(c) for c in range(4 * k, 4 * k + 4)) for k in range(4)]
    for k in range(4):
        assert s2[k] / s2[0] == pytest.approx(r[k] / r[0], rel=0.01)


def test_body_diode_heats_the_mosfets_more():
    m1, m2 = make(), make()
    m1.cmd_chg = m1.cmd_dsg = True
    m2.cmd_dsg = True  # discharge passes the charge FET's body diode
    m1.step(10000, -50000)
    m2.step(10000, -50000)
    assert m2.current_ma == m1.current_ma == -50000
    assert m2.mos_temp_uc() - 25000000 > 10 * (m1.mos_temp_uc() - 25000000)


def test_temperatures_relax_to_ambient_with_their_time_constants():
    m = make(ambient_dc=250, cell_tau_s=3600, mos_tau_s=300)
    m.ambient_dc = 350
    m.step(300000, 0)  # one MOSFET time constant
    gap = 35000000 - m.mos_temp_uc()
    assert gap / 10000000 == pytest.approx(0.368, abs=0.01)  # e^-1
    assert m.cell_temp_dc(0) < 260  # the cells are far slower
    for _ in range(5 * 3600 // 60):
        m.step(60000, 0)
    for k in range(4):
        assert 345 <= m.cell_temp_dc(k) <= 350
    assert m.mos_temp_dc() == 350
    m.ambient_dc = 200
    for _ in range(10 * 3600 // 60):
        m.step(60000, 0)
    assert all(m.cell_temp_dc(k) == 200 for k in range(4))


def test_temperatures_exposed_in_deci_degrees():
    m = make(ambient_dc=-105)
    assert m.cell_temp_dc(0) == -105 and m.mos_temp_dc() == -105


# --- self-discharge and balancing ---

def test_self_discharge_lowers_soc_slowly():
    m = PackModel(Rng(4), self_discharge_ppm_per_month=30000)
    q0 = charges(m)
    soc0 = m.pack_soc_ppm()
    m.step(24 * 3600 * 1000, 0)
    assert 0 < soc0 - m.pack_soc_ppm() < 2000  # a day: well under 0.2 %
    for _ in range(29):
        m.step(24 * 3600 * 1000, 0)
    month_ms = 30 * 24 * 3600 * 1000
    for c in range(16):
        lost = q0[c] - m.charge_nc(c)
        assert lost == m.self_discharge_ua(c) * month_ms
        assert 0.015 <= lost / m.capacity_nc(c) <= 0.045  # 3 %/month +-50 %
    assert len(set(m.self_discharge_ua(c) for c in range(16))) > 8  # spread


def test_balancing_bleeds_only_masked_cells():
    m = make(balance_ma=50)
    q0 = charges(m)
    m.balance_mask = 0b1000000000000101
    m.step(3600000, 0)
    for c in range(16):
        lost = q0[c] - m.charge_nc(c)
        assert lost == (50 * 3600000 * NC_PER_MA_MS if c in (0, 2, 15) else 0)


def test_pack_soc_is_limited_by_weakest_and_fullest_cells():
    m = make(soc_pct=50, soc_spread_ppm=0, capacity_spread_ppm=0)
    assert m.pack_soc_ppm() == pytest.approx(500000, abs=2)
    m.balance_mask = 1
    m.step(3600000, 0)  # cell 0 loses 50 mAh = 0.05 % of 100 Ah
    assert m.pack_soc_ppm() < 500000
    left, room = m.soc_ppm(0), 1000000 - m.soc_ppm(1)
    assert m.pack_soc_ppm() == pytest.approx(left * 1000000 // (left + room), abs=2)


# --- determinism ---

def test_same_seed_same_state_different_seed_different_spread():
    def run(seed):
        m, a = make_afe(seed, afe_kw=dict(cell_noise_mv=2, temp_error_dc=10),
                        self_discharge_ppm_per_month=30000)
        s = Snapshot()
        readings = []
        for k in range(500):
            a.set_balance(k)
            a.step(100, 80000 if k < 250 else -120000)
            a.read(s)
            readings.append((list(s.cell_mv), list(s.temp_dc), s.current_ma))
        return charges(m), [m.cell_temp_uc(k) for k in range(4)], m.mos_temp_uc(), readings
    assert run(11) == run(11)
    a, b = make(11), make(12)
    assert [a.capacity_nc(c) for c in range(16)] != [b.capacity_nc(c) for c in range(16)]
    assert [a.resistance_uohm(c) for c in range(16)] != [b.resistance_uohm(c) for c in range(16)]


def test_spreads_are_within_their_bands():
    m = PackModel(Rng(9), soc_pct=50)
    caps = [m.capacity_nc(c) // 3600000000 for c in range(16)]
    assert all(98000 <= c <= 102000 for c in caps) and len(set(caps)) > 8
    assert all(490000 <= m.soc_ppm(c) <= 510000 for c in range(16))
    assert all(450 <= m.resistance_uohm(c) <= 550 for c in range(16))


# --- MockAfe readings ---

def test_read_fills_snapshot_in_channel_order():
    m, a = make_afe(ambient_dc=230)
    a.step(100, -30000)
    s = read(a)
    assert list(s.cell_mv) == [m.cell_mv(c) for c in range(16)]
    assert s.stack_mv == m.stack_mv() and s.pack_mv == m.pack_mv()
    assert s.current_ma == -30000
    assert [s.temp_dc[k] for k in range(4)] == [m.cell_temp_dc(k) for k in range(4)]
    assert s.temp_dc[T_MOS0] == s.temp_dc[T_MOS1] == m.mos_temp_dc()
    assert s.temp_dc[T_AMB] == 230


def test_sensor_errors():
    m, a = make_afe(afe_kw=dict(cell_noise_mv=5, current_offset_ma=120, current_gain_ppm=10000,
                                temp_error_dc=20))
    a.step(100, -40000)
    devs = set()
    for _ in range(200):
        s = read(a)
        for c in range(16):
            d = s.cell_mv[c] - m.cell_mv(c)
            assert -5 <= d <= 5
            devs.add(d)
        assert s.current_ma == -40000 - 400 + 120
        errs = [s.temp_dc[k] - m.cell_temp_dc(k) for k in range(4)]
        assert all(-20 <= e <= 20 for e in errs)
    assert devs == set(range(-5, 6))


def test_read_failure_leaves_snapshot_untouched_and_counts():
    m, a = make_afe()
    a.step(100, 10000)
    s = read(a)
    before = (list(s.cell_mv), list(s.temp_dc), s.stack_mv, s.pack_mv, s.current_ma)
    a.step(100, -90000)  # everything the AFE would report has moved
    a.set_fault("afe_silent", True)
    for k in range(3):
        assert a.read(s) is False
        assert a.comm_errors == k + 1
    assert (list(s.cell_mv), list(s.temp_dc), s.stack_mv, s.pack_mv, s.current_ma) == before
    a.set_fault("afe_silent", False)
    assert a.read(s) and s.current_ma == -90000 and a.comm_errors == 3


def test_afe_crc_fails_at_its_rate():
    m, a = make_afe()
    s = Snapshot()
    a.set_fault("afe_crc", True, value=300)
    fails = sum(not a.read(s) for _ in range(3000))
    assert 800 <= fails <= 1000 and a.comm_errors == fails
    a.set_fault("afe_crc", True)  # default rate 100 per mille
    fails = sum(not a.read(s) for _ in range(3000))
    assert 220 <= fails <= 380
    a.set_fault("afe_crc", False)
    assert all(a.read(s) for _ in range(200))


# --- faults ---

def test_fault_names_listed():
    assert FAULTS == MockAfe.FAULTS and len(FAULTS) == 15 and len(set(FAULTS)) == 15


def test_cell_offset_and_stuck():
    m, a = make_afe()
    a.set_fault("cell_offset", True, 4, 35)
    s = read(a)
    assert s.cell_mv[4] == m.cell_mv(4) + 35 and s.cell_mv[5] == m.cell_mv(5)
    a.set_fault("cell_offset", False, 4)
    a.set_fault("cell_stuck", True, 6)
    frozen = m.cell_mv(6)
    a.step(100, 100000)  # the IR rise moves the true voltage
    assert m.cell_mv(6) > frozen
    s = read(a)
    assert s.cell_mv[6] == frozen and s.cell_mv[7] == m.cell_mv(7)
    a.set_fault("cell_stuck", False, 6)
    assert read(a).cell_mv[6] == m.cell_mv(6)


def test_cell_open_wire():
    m, a = make_afe()
    a.set_fault("cell_open_wire", True, 7)
    s = read(a)
    assert s.cell_mv[7] == 0
    assert s.cell_mv[8] == m.cell_mv(7) + m.cell_mv(8)
    assert [s.cell_mv[c] for c in range(16) if c not in (7, 8)] == \
        [m.cell_mv(c) for c in range(16) if c not in (7, 8)]
    assert sum(s.cell_mv) == m.stack_mv() == s.stack_mv


def test_ntc_faults():
    m, a = make_afe()
    a.set_fault("ntc_open", True, 2)
    a.set_fault("ntc_short", True, T_MOS1)
    s = read(a)
    assert s.temp_dc[2] == NTC_OPEN_DC <= -500
    assert s.temp_dc[T_MOS1] == NTC_SHORT_DC >= 1500
    assert s.temp_dc[T_MOS0] == m.mos_temp_dc()
    a.set_fault("ntc_stuck", True, T_MOS0)
    stuck = s.temp_dc[T_MOS0]
    m.cmd_chg = False  # body-diode discharge heats the FETs fast
    for _ in range(60):
        a.step(1000, -100000)
    assert m.mos_temp_dc() > stuck + 50
    s = read(a)
    assert s.temp_dc[T_MOS0] == stuck
    a.set_fault("ntc_stuck", False, T_MOS0)
    assert read(a).temp_dc[T_MOS0] == m.mos_temp_dc()


def test_current_offset_and_stuck():
    m, a = make_afe()
    a.step(100, -10000)
    a.set_fault("current_offset", True, value=-700)
    assert read(a).current_ma == -10700
    a.set_fault("current_offset", False)
    a.set_fault("current_stuck", True)
    a.step(100, 25000)
    assert m.current_ma == 25000 and read(a).current_ma == -10000
    a.set_fault("current_stuck", False)
    assert read(a).current_ma == 25000


def test_external_short_draws_thousands_of_amps():
    m, a = make_afe()
    a.set_fault("short_circuit", True)
    expect = m.short_ma()
    r = sum(m.resistance_uohm(c) for c in range(16)) + m.fet_uohm + m.short_uohm
    assert expect == pytest.approx(sum(m.ocv_mv(c) for c in range(16)) * 1000000 / r, rel=1e-6)
    a.step(100, 0)  # no hardware protection programmed: nothing stops it
    assert m.current_ma == -expect and m.current_ma < -1000000
    assert m.pack_mv() == expect * m.short_uohm // 1000000  # P+/P- is the short
    a.set_fets(True, False, False)
    a.step(100, 0)
    assert m.current_ma == 0


@pytest.mark.parametrize("name, cmd, req, flows", [
    ("chg_fet_stuck_on", (False, True, False), 30000, True),
    ("chg_fet_stuck_off", (True, True, False), 30000, False),
    ("dsg_fet_stuck_on", (True, False, False), -30000, True),
    ("dsg_fet_stuck_off", (True, True, False), -30000, False),
])
def test_fet_stuck_faults(name, cmd, req, flows):
    m, a = make_afe()
    a.set_fault(name, True)
    a.set_fets(*cmd)
    a.step(100, req)
    assert m.current_ma == (req if flows else 0)
    a.set_fault(name, False)
    a.step(100, req)
    assert m.current_ma == (0 if flows else req)


def test_bad_fault_and_override_arguments():
    m, a = make_afe()
    with pytest.raises(ValueError, match="unknown fault"):
        a.set_fault("cell_melted", True)
    with pytest.raises(ValueError, match="out of range"):
        a.set_fault("cell_offset", True, 16, 5)
    with pytest.raises(ValueError, match="out of range"):
        a.set_fault("ntc_open", True, N_TEMPS)
    with pytest.raises(ValueError, match="out of range"):
        a.set_fault("cell_stuck", True, -1)
    with pytest.raises(ValueError, match="no index"):
        a.set_fault("afe_silent", True, 1)
    with pytest.raises(ValueError, match="unknown override"):
        a.override("voltage", 0, 1)
    with pytest.raises(ValueError, match="out of range"):
        a.override("cell_mv", 16, 1)
    with pytest.raises(ValueError, match="out of range"):
        a.override("ntc_dc", 7, 1)
    with pytest.raises(ValueError, match="out of range"):
        a.override("current_ma", 1, 1)


def test_overrides_replace_the_reading_until_removed():
    m, a = make_afe()
    a.step(100, -5000)
    a.override("cell_mv", 3, 3999)
    a.override("ntc_dc", T_AMB, -77)
    a.override("current_ma", 0, 123456)
    s = read(a)
    assert s.cell_mv[3] == 3999 and s.temp_dc[T_AMB] == -77 and s.current_ma == 123456
    assert s.cell_mv[2] == m.cell_mv(2)
    a.override("cell_mv", 3, None)
    a.override("ntc_dc", T_AMB, None)
    a.override("current_ma", 0, None)
    s = read(a)
    assert s.cell_mv[3] == m.cell_mv(3) and s.temp_dc[T_AMB] == 250 and s.current_ma == -5000


# --- hardware protections ---

def test_no_hardware_protection_before_programming():
    m, a = make_afe()
    a.set_fault("cell_offset", True, 0, 2000)
    for _ in range(100):
        a.step(100, -300000)
    assert a.read_alerts() == 0 and m.current_ma == -300000


@pytest.mark.parametrize("delay_ms", [300, 250, 1000])
def test_ocd_trips_after_its_delay_and_latches(delay_ms):
    m, a = make_afe()
    a.program_protections(limits(ocd_ma=150000, ocd_delay_ms=delay_ms))
    q0 = m.charge_nc(0)
    n_before = (delay_ms - 1) // 100  # whole steps that end before the delay runs out
    for _ in range(n_before):
        a.step(100, -160000)
        assert a.read_alerts() == 0 and m.current_ma == -160000
    a.step(100, -160000)
    assert a.read_alerts() == ALERT_OCD
    assert not m.cmd_dsg and m.cmd_chg
    assert m.current_ma == 0
    # exactly the delay's worth of over-current left the cells
    assert q0 - m.charge_nc(0) == 160000 * delay_ms * NC_PER_MA_MS
    # latched: a lower discharge still cannot flow, the host cannot re-enable it
    a.set_fets(True, True, False)
    a.step(100, -10000)
    assert m.current_ma == 0 and a.read_alerts() == ALERT_OCD
    a.step(100, 20000)
    assert m.current_ma == 20000  # charging is still allowed
    a.clear_alerts(ALERT_OCD)
    assert a.read_alerts() == 0
    a.step(100, -10000)
    assert m.current_ma == -10000


def test_ocd_timer_resets_when_current_drops():
    m, a = make_afe()
    a.program_protections(limits(ocd_ma=150000, ocd_delay_ms=300))
    for _ in range(5):
        a.step(100, -160000)
        a.step(100, -160000)
        a.step(100, -1000)
    assert a.read_alerts() == 0


def test_occ_forces_only_the_charge_fet_off():
    m, a = make_afe()
    a.program_protections(limits(occ_ma=100000, occ_delay_ms=500))
    for _ in range(4):
        a.step(100, 110000)
    assert a.read_alerts() == 0
    a.step(100, 110000)
    assert a.read_alerts() == ALERT_OCC and not m.cmd_chg and m.cmd_dsg
    a.step(100, 50000)
    assert m.current_ma == 0
    a.step(100, -50000)
    assert m.current_ma == -50000
    a.clear_alerts(ALERT_OCC)
    a.step(100, 50000)
    assert m.current_ma == 50000


def test_cov_from_sensed_cell_after_delay():
    m, a = make_afe()
    a.program_protections(limits(cov_mv=3650, cov_delay_ms=1000))
    a.set_fault("cell_offset", True, 3, 1000)  # the chip measures cell 4 at ~4.3 V
    for _ in range(10):  # first over-threshold sample, then 900 ms more
        a.step(100, 0)
        assert a.read_alerts() == 0
    a.step(100, 0)
    assert a.read_alerts() == ALERT_COV
    assert not m.cmd_chg and m.cmd_dsg
    a.step(100, 20000)
    assert m.current_ma == 0
    a.step(100, -20000)
    assert m.current_ma == -20000
    a.set_fault("cell_offset", False, 3)
    a.step(100, 0)
    assert a.read_alerts() == ALERT_COV  # latched though the cell is back
    a.clear_alerts(ALERT_COV)
    a.step(100, 20000)
    assert m.current_ma == 20000 and a.read_alerts() == 0


def test_cov_when_really_charged_full():
    m, a = make_afe(soc_pct=99, capacity_spread_ppm=0, soc_spread_ppm=0)
    a.program_protections(limits(cov_mv=3650, cov_delay_ms=500))
    first = None
    for k in range(20000):
        a.step(100, 50000)
        if first is None and max(m.cell_mv(c) for c in range(16)) > 3650:
            first = k
        if a.read_alerts():
            break
    assert first is not None and a.read_alerts() == ALERT_COV
    assert k - first == 5  # 500 ms after the first sample over the threshold
    assert m.current_ma == 0 and 3600 < max(m.cell_mv(c) for c in range(16)) < 3700


def test_cuv_forces_discharge_and_precharge_off():
    m, a = make_afe()
    a.set_fets(True, True, True)
    a.program_protections(limits(cuv_mv=2500, cuv_delay_ms=200))
    a.set_fault("cell_offset", True, 9, -1000)
    for _ in range(3):
        a.step(100, 0)
    assert a.read_alerts() == ALERT_CUV
    assert not m.cmd_dsg and not m.cmd_pchg and m.cmd_chg
    a.step(100, -20000)
    assert m.current_ma == 0
    a.step(100, 20000)
    assert m.current_ma == 20000


def test_scd_trips_within_one_step_before_charge_moves():
    m, a = make_afe()
    a.program_protections(limits(scd_ma=500000, scd_delay_us=200, ocd_delay_ms=1))
    a.set_fault("short_circuit", True)
    i_short = m.short_ma()
    q0 = charges(m)
    t0 = m.cell_temp_uc(0)
    a.step(100, 0)
    assert a.read_alerts() == ALERT_SCD  # OCD, even at 1 ms, never saw it
    assert not m.cmd_chg and not m.cmd_dsg and m.current_ma == 0
    assert all(q_ - q == i_short * 200 for q, q_ in zip(charges(m), q0))  # mA * us = nC
    assert m.cell_temp_uc(0) > t0  # the pulse heated the cells
    a.set_fets(True, True, False)
    a.step(100, -1000)
    assert m.current_ma == 0 and a.read_alerts() == ALERT_SCD
    a.set_fault("short_circuit", False)
    a.clear_alerts(ALERT_SCD)
    a.step(100, -1000)
    assert m.current_ma == -1000 and a.read_alerts() == 0


def test_scd_retrips_if_cleared_while_short_persists():
    m, a = make_afe()
    a.program_protections(limits())
    a.set_fault("short_circuit", True)
    a.step(100, 0)
    a.clear_alerts(ALERT_SCD)
    assert a.read_alerts() == 0
    a.step(100, 0)
    assert a.read_alerts() == ALERT_SCD and m.current_ma == 0


def test_stuck_on_fet_defeats_a_trip_but_the_alert_latches():
    m, a = make_afe()
    a.program_protections(limits(occ_ma=100000, occ_delay_ms=300))
    a.set_fault("chg_fet_stuck_on", True)
    for _ in range(5):
        a.step(100, 120000)
    assert a.read_alerts() == ALERT_OCC and not m.cmd_chg
    assert m.current_ma == 120000


def test_clear_only_clears_the_given_bits():
    m, a = make_afe()
    a.program_protections(limits(cov_delay_ms=0, cuv_delay_ms=0))
    a.set_fault("cell_offset", True, 0, 1000)
    a.set_fault("cell_offset", True, 1, -1000)
    a.step(100, 0)
    assert a.read_alerts() == ALERT_COV | ALERT_CUV
    a.clear_alerts(ALERT_COV)
    assert a.read_alerts() == ALERT_CUV


# --- the real MicroPython (WebAssembly): same numbers, no allocation in read() ---

_SAME_RUN = """
from sim.rng import Rng
from sim.pack_model import PackModel
from sim.mock_afe import MockAfe
from defs.snapshot import Snapshot
from defs.afe import HwLimits
m = PackModel(Rng(99), soc_pct=95, self_discharge_ppm_per_month=30000)
a = MockAfe(m, cell_noise_mv=3, current_offset_ma=50, current_gain_ppm=5000, temp_error_dc=20)
a.program_protections(HwLimits(3650, 2500, 120000, 150000, 500000, 1000, 1000, 1000, 1000, 200))
a.set_fets(True, True, False)
a.set_fault("afe_crc", True)
s = Snapshot()
for k in range(3000):
    a.set_balance(k & 0xFFFF)
    a.step(100, 60000 if k < 2000 else -160000)
    a.read(s)
    if k % 500 == 0:
        a.clear_alerts(0xFF)
        print(k, a.comm_errors, a.read_alerts(), list(s.cell_mv), list(s.temp_dc), s.current_ma)
print([m.charge_nc(c) for c in range(16)], m.pack_soc_ppm(), m.mos_temp_uc())
a.set_fault("short_circuit", True)
a.clear_alerts(0xFF)
a.step(100, 0)
print(a.read_alerts(), m.charge_nc(3), [m.cell_temp_uc(k) for k in range(4)])
"""

_READ_UNDER_HEAP_LOCK = """
import gc
import micropython
from sim.rng import Rng
from sim.pack_model import PackModel
from sim.mock_afe import MockAfe
from defs.snapshot import Snapshot

def reads(a, s):
    gc.collect()
    before = gc.mem_alloc()
    good = 0
    err = None
    micropython.heap_lock()
    try:
        for _ in range(50):
            if a.read(s):
                good += 1
    except MemoryError as e:
        err = e
    finally:
        micropython.heap_unlock()
    print(good > 0, err, gc.mem_alloc() - before)

m = PackModel(Rng(5))
a = MockAfe(m, cell_noise_mv=3, current_offset_ma=40, current_gain_ppm=3000, temp_error_dc=15)
s = Snapshot()
a.set_fets(True, True, True)
a.step(100, -90000)
reads(a, s)
a.set_fault("afe_crc", True, value=300)
a.set_fault("cell_open_wire", True, 3)
a.set_fault("cell_stuck", True, 5)
a.set_fault("ntc_open", True, 1)
a.set_fault("ntc_stuck", True, 4)
a.set_fault("current_offset", True, 0, 700)
a.override("cell_mv", 9, 4100)
a.override("ntc_dc", 6, -123)
a.set_fault("short_circuit", True)
a.step(100, 0)
reads(a, s)
"""


def test_micropython_gives_the_same_numbers(mpy):
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(_SAME_RUN, {})
    r = mpy.run(_SAME_RUN, timeout_s=120)
    assert r.returncode == 0, r.stderr
    assert buf.getvalue().count("\n") == 8
    assert r.stdout == buf.getvalue()


def test_read_allocates_nothing_in_micropython(mpy):
    r = mpy.run(_READ_UNDER_HEAP_LOCK, timeout_s=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["True None 0", "True None 0"]
