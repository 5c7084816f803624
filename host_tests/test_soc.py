"""SOC, SOH and counters (lib/bms/soc.py, issue 4), in simulated time: every
rule fed through the estimator with a hand-made pack state."""
from hypothesis import given, settings, strategies as stt

from bms import params as P
from defs.codes import PROTECTIONS
from bms.params import Params
from array import array

from bms.soc import SocEstimator, counter_add, ratio_ppm, part_of
from bms.state import PackState

COVP = 1 << PROTECTIONS.index("COVP")
CUVP = 1 << PROTECTIONS.index("CUVP")
PLATEAU_MV = 3290  # ~57 %


def make(restore_ppm=None, **over):
    params = Params()
    for name, value in over.items():
        params.set_by_name(name, value)
    st = PackState()
    if restore_ppm is not None:
        st.soc_restore_ppm = restore_ppm
    st.chg_fet = st.dsg_fet = True
    return st, SocEstimator(params.v), params


def feed(st, est, current_ma, dt_ms=100, n=1, cell_mv=PLATEAU_MV, cells=None):
    """n reads dt_ms apart with all cells at cell_mv (or the given list)."""
    db = 500
    for _ in range(n):
        for c in range(16):
            st.snap.cell_mv[c] = cells[c] if cells else cell_mv
        st.snap.stack_mv = sum(st.snap.cell_mv)
        st.snap.min_cell_mv, st.snap.max_cell_mv = min(st.snap.cell_mv), max(st.snap.cell_mv)  # as acquire does
        st.snap.current_ma = current_ma
        st.current_ma = current_ma if abs(current_ma) >= db else 0
        est.update(st, current_ma, dt_ms)


def test_helpers_stay_exact_in_small_ints():
    assert ratio_ppm(50000, 100000) == 500000 and ratio_ppm(1, 3) == 333333
    assert part_of(100000, 500000) == 50000 and part_of(399999, 1000000) == 399999
    c = array("i", [7, 7, 0, 0, 7, 7])  # counter 2 between two others
    assert counter_add(c, 2, 1000, 3600) == 1 and list(c) == [7, 7, 1, 0, 7, 7]  # 1 A for 3.6 s: 1 mAh
    counter_add(c, 2, -1000, 1800)
    assert list(c) == [7, 7, 0, 1800000, 7, 7]


def test_counts_over_the_measured_interval_not_an_assumed_period():
    st, est, _ = make(500000)
    feed(st, est, 0)  # first read: starts from the restored SOC
    assert st.soc_ppm == 500000
    # 10 A for 360 s in irregular steps = 1 Ah = 1 % of 100 Ah
    for dt in (100, 250, 50, 600) * 360:
        feed(st, est, 10000, dt)
    assert st.soc_ppm == 510000 and st.soc_pct == 51


def test_long_interval_is_counted_without_big_ints():
    st, est, _ = make(500000)
    feed(st, est, 0)
    feed(st, est, -300000, 12000)  # 300 A for 12 s (a read after AFE errors)
    assert st.soc_ppm == 490000


def test_current_inside_the_dead_band_counts_as_zero():
    st, est, _ = make(500000)
    feed(st, est, 0)
    feed(st, est, 400, 1000, 3600)
    assert st.soc_ppm == 500000
    feed(st, est, 600, 1000, 600)  # 0.6 A for 10 min = 100 mAh
    assert st.soc_ppm == 501000


def test_start_from_the_ocv_guess_without_a_restore():
    st, est, _ = make()
    feed(st, est, 0, cell_mv=3190)  # steep low end: 9 %
    assert st.soc_pct == 9 and st.soc_valid is False  # the stage sets soc_valid
    st2, est2, _ = make()
    feed(st2, est2, 0, cell_mv=PLATEAU_MV)
    assert 50 <= st2.soc_pct <= 65


def test_ocv_corrects_after_a_rest_on_the_steep_low_end_only():
    st, est, _ = make(300000)
    feed(st, est, 0, cell_mv=3190)
    feed(st, est, 0, 1000, 1799, cell_mv=3190)
    assert st.soc_pct == 30  # not rested long enough
    feed(st, est, 0, 1000, 1, cell_mv=3190)
    assert st.soc_pct == 9  # 30 min of rest: the OCV wins
    # the lowest cell decides at the empty end
    st, est, _ = make(300000)
    cells = [PLATEAU_MV] * 16
    cells[5] = 3100
    feed(st, est, 0, 1000, 1801, cells=cells)
    assert st.soc_pct == 5


def test_ocv_never_corrects_on_the_plateau():
    st, est, _ = make(800000)
    feed(st, est, 0, 1000, 7200, cell_mv=PLATEAU_MV)  # 2 h at rest at ~57 % OCV
    assert st.soc_pct == 80


def test_ocv_corrects_on_the_steep_high_end():
    st, est, _ = make(800000)
    feed(st, est, 0, 1000, 1801, cell_mv=3340)
    assert st.soc_pct == 95  # 3.340 V: 95.9 % on the curve


def test_shown_as_99_until_charge_end_then_100():
    st, est, _ = make(985000)
    feed(st, est, 20000, 1000, 600, cell_mv=3400)  # counted beyond 100 %
    assert st.soc_ppm == 1000000 and st.soc_pct == 99 and not st.soc_full
    st.protections = COVP
    feed(st, est, 20000, 100, cell_mv=3610)
    assert st.soc_pct == 100 and st.soc_full
    st.protections = 0
    feed(st, est, -20000, 1000, 360, cell_mv=3300)  # 2 Ah out: 98 %
    assert st.soc_pct == 98 and not st.soc_full


def test_charge_end_by_cut_off_current_at_the_charge_voltage():
    st, est, _ = make(900000)
    feed(st, est, 0)
    feed(st, est, 4000, 1000, 29, cell_mv=3510)  # C/25 at 3.51 V, not yet 30 s
    assert not st.soc_full and st.soc_pct == 90
    feed(st, est, 4000, 1000, 2, cell_mv=3510)
    assert st.soc_full and st.soc_pct == 100
    # a current above the cut-off is not a charge end
    st, est, _ = make(900000)
    feed(st, est, 20000, 1000, 60, cell_mv=3510)
    assert not st.soc_full


def test_recalibrated_to_zero_at_under_voltage():
    st, est, _ = make(200000)
    feed(st, est, -20000, 1000, 60, cell_mv=3000)
    st.protections = CUVP
    feed(st, est, -20000, 100, cell_mv=2790)
    assert st.soc_pct == 0


def test_capacity_learned_from_a_discharge_between_two_calibration_points():
    st, est, _ = make(990000)
    st.protections = COVP
    feed(st, est, 0, cell_mv=3610)
    feed(st, est, 0, cell_mv=3610)  # charge end: 100 %
    st.protections = 0
    assert st.soc_full
    feed(st, est, -50000, 1000, 5760, cell_mv=3250)  # 80 Ah out
    assert st.soc_pct == 20
    st.protections = CUVP
    feed(st, est, -50000, 100, cell_mv=2790)  # empty: the pack held 80 Ah
    assert abs(st.fcc_mah - 80000) <= 5 and st.soh_pct == 80 and est.learn_count == 1
    assert st.soc_pct == 0
    st.protections = 0
    feed(st, est, 40000, 1000, 3600, cell_mv=3290)  # 40 Ah in: half of 80 Ah
    assert abs(st.soc_ppm - 500000) < 100


def test_no_capacity_learned_over_a_short_span_or_a_charge():
    st, est, _ = make(990000)
    st.protections = COVP
    feed(st, est, 0, cell_mv=3610)
    st.protections = 0
    feed(st, est, -50000, 1000, 2160, cell_mv=3290)  # 30 Ah: 70 %
    feed(st, est, 0, 1000, 1801, cell_mv=3340)  # an OCV point only 4 % away
    assert est.learn_count == 0 and st.fcc_mah == 0 and st.soh_pct == 100


def test_restored_soc_and_capacity_after_a_reset():
    st, est, _ = make(420000)
    st.fcc_mah = 90000
    feed(st, est, 0)
    assert st.soc_ppm == 420000 and est.capacity_mah == 90000
    feed(st, est, 9000, 1000, 3600)  # 9 Ah of 90 Ah
    assert st.soc_ppm == 520000


def test_current_offset_learned_where_no_current_can_flow():
    st, est, _ = make(500000)
    feed(st, est, 0)
    st.chg_fet = False  # charge FET open: a charge reading is the offset
    feed(st, est, 300, 100, 100)
    assert st.i_offset_ma == 300
    st.chg_fet = True
    feed(st, est, 10300, 1000, 360)  # reads 10.3 A: 10 A counted
    assert st.soc_ppm == 510000


def test_offset_not_learned_while_current_can_flow():
    st, est, _ = make(500000)
    feed(st, est, 300, 100, 200)  # both FETs closed: a small real current
    assert st.i_offset_ma == 0
    st.chg_fet = False
    feed(st, est, -300, 100, 200)  # discharge through the closed discharge FET
    assert st.i_offset_ma == 0


def test_lifetime_counters_and_cycles():
    st, est, _ = make(0)
    feed(st, est, 0)
    feed(st, est, 50000, 1000, 3600, cell_mv=3200)  # 50 Ah at 51.2 V
    assert st.chg_ah == 50 and st.chg_wh == 2560
    feed(st, est, -100000, 1000, 3600, cell_mv=3200)
    assert st.dsg_ah == 100 and st.dsg_wh == 5120 and st.cycles == 1


def counter(capacity_mah):
    """The estimator's plain coulomb counter, on a capacity of its own."""
    s = SocEstimator(Params().v)
    s.capacity_mah = capacity_mah
    return s


def test_plain_soc_counter_api_kept():
    s = counter(100000)
    s.set_ppm(400000)
    s.count(50000, 3600000)  # 50 Ah into 100 Ah
    assert s.ppm() == 900000
    s.count(50000, 3600000)
    assert s.ppm() == 1000000  # clamped at the capacity


@settings(max_examples=300, deadline=None)
@given(stt.lists(stt.tuples(stt.integers(-400000, 400000) | stt.sampled_from((0, 1, -1, 999, -999)),
                            stt.integers(0, 70000)), min_size=1, max_size=30),
       stt.integers(0, 70000), stt.integers(1, 1000000))
def test_no_current_moves_no_counter(samples, dt_ms, capacity):
    """The estimator counts only a current that is not 0 (update skips the
    counters): in every state counting can reach, 0 mA for any interval leaves
    the coulomb counter, a limited and a plain charge counter and an energy
    counter as they were."""
    soc = counter(capacity)
    soc.set_ppm(500000)
    c = array("i", [0] * 6)
    kinds = ((0, 3600000, 2 * capacity), (2, 3600000, 0), (4, 36000000, 0))  # (k, unit, limit)
    for i_ma, d in samples:
        soc.count(i_ma, d)
        for k, unit, limit in kinds:
            counter_add(c, k, i_ma, d, unit, limit)
        before = [soc.charge_mah, soc._rem_mams] + list(c)
        soc.count(0, dt_ms)
        assert [counter_add(c, k, 0, dt_ms, unit, limit) for k, unit, limit in kinds] == [0, 0, 0]
        assert [soc.charge_mah, soc._rem_mams] + list(c) == before
