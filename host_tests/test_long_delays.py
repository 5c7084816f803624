"""Every *_ms (and *_us) parameter fits the wrapping tick arithmetic, and the
long ones do what they say at their largest value: the idle standby sleep on
the 2**30 ms tick clock (across its wrap), the forced recharge after standby."""
from defs import modes
from bms import sleep
from bms import params as P
from bms.limits import Limits, FC_RECHARGE
from bms.params import Params
from bms.state import PackState
from defs.ticks import TICKS_MASK

HALF_TICKS = 1 << 29  # defs.ticks.ticks_diff is valid for |a - b| below this


def row(name):
    return P.TABLE[P.index_of(name)]


def test_every_time_row_stays_below_half_the_tick_period():
    timed = [r for r in P.TABLE if r[1].endswith("_ms") or r[1].endswith("_us")]
    assert len(timed) > 60
    for r in timed:
        assert r[4] < HALF_TICKS, r[1]


def _idle_rules(standby_ms):
    return sleep.SleepRules(sleep_cell_mv=2900, sleep_delay_ms=60000, standby_sleep_ms=standby_ms,
                            uv_sleep_delay_ms=30000, uv_wake_interval_ms=4 * 3600000,
                            uv_wake_tries=10, charger_wake_mv=48000)


def _sleeps_after(r, t0, limit_ms, step_ms):
    t = 0
    while t <= limit_ms:
        why = r.check((t0 + t) & TICKS_MASK, min_cell_mv=3300, current_ma=0, uv_protection=False,
                      other_protection=False, balancing=False, comm_active=False)
        if why:
            return t, why
        t += step_ms
    return None, sleep.NONE


def test_standby_sleep_at_its_largest_value_sleeps_on_time_across_the_tick_wrap():
    longest = row("standby_sleep_ms")[4]
    # idle starts just before the clock wraps; checked every second (a 1 s cycle)
    t0 = TICKS_MASK - 5000
    t, why = _sleeps_after(_idle_rules(longest), t0, longest + 3600000, 1000)
    assert why == sleep.BY_IDLE and longest <= t < longest + 1000


def test_forced_recharge_at_the_largest_standby_time():
    longest = row("recharge_standby_ms")[4]
    prm = Params()
    prm.set_by_name("recharge_standby_ms", longest)
    st = PackState()
    st.soc_valid = True
    st.soc_pct = 50
    lim = Limits(prm.v)
    for c in range(16):
        st.snap.cell_mv[c] = 3120  # 49.9 V, below recharge_mv
    st.snap.stack_mv = 16 * 3120
    st.snap.min_cell_mv = st.snap.max_cell_mv = 3120
    st.mode = modes.STANDBY
    n = longest // 1000
    for _ in range(n - 1):
        lim.update(st, 1000)
    assert not st.force_charge & FC_RECHARGE
    lim.update(st, 1000)
    assert st.force_charge & FC_RECHARGE
