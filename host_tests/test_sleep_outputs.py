"""Sleep and wake rules (SPEC 10), pre-charge, dry contacts and heater (SPEC 3)."""
from bms import outputs, sleep
from defs.ticks import TICKS_MASK

H = 3600 * 1000


def rules():
    # 30 s under-voltage rule (`003` 5.5), 24 h idle standby, 4 h retry, 10 tries (SPEC 10)
    return sleep.SleepRules(sleep_cell_mv=2900, sleep_delay_ms=60000, standby_sleep_ms=24 * H,
                            uv_sleep_delay_ms=30000, uv_wake_interval_ms=4 * H, uv_wake_tries=10,
                            charger_wake_mv=48000)


def run_awake(r, t0, t1, step=100, **kw):
    args = dict(min_cell_mv=3300, current_ma=0, uv_protection=False, other_protection=False,
                balancing=False, comm_active=False)
    args.update(kw)
    t = t0
    while t <= t1:
        why = r.check(t & TICKS_MASK, **args)
        if why:
            return t, why
        t += step
    return None, sleep.NONE


def test_uv_not_released_in_30s_sleeps_at_30s():
    t, why = run_awake(rules(), 0, 40000, uv_protection=True, min_cell_mv=2600)
    assert (t, why) == (30000, sleep.BY_UV)


def test_uv_released_before_30s_does_not_sleep():
    r = rules()
    run_awake(r, 0, 29900, uv_protection=True)
    t, why = run_awake(r, 30000, 40000, current_ma=5000)  # charging released it
    assert why == sleep.NONE


def test_low_cell_sleeps_after_delay_only_when_nothing_goes_on():
    t, why = run_awake(rules(), 0, 100000, min_cell_mv=2850)
    assert (t, why) == (60000, sleep.BY_LOW_CELL)
    for busy in ({"current_ma": -2000}, {"comm_active": True}, {"balancing": True}, {"other_protection": True}):
        _, why = run_awake(rules(), 0, 100000, min_cell_mv=2850, **busy)
        assert why == sleep.NONE, busy


def test_standby_24h_without_comm_or_current_sleeps():
    t, why = run_awake(rules(), 0, 25 * H, step=1000)
    assert (t, why) == (24 * H, sleep.BY_IDLE)
    # a current pulse restarts the 24 h
    r = rules()
    run_awake(r, 0, 20 * H, step=1000)
    r.check(20 * H + 1000, 3300, -3000, False, False, False, False)
    t, why = run_awake(r, 20 * H + 2000, 50 * H, step=1000)
    assert t == 20 * H + 2000 + 24 * H and why == sleep.BY_IDLE


def test_wake_on_button_charger_and_comm():
    r = rules()
    r.command(sleep.BY_BUTTON, 0)
    assert r.wake(1000, 0, 45000, False, False) == sleep.NONE
    assert r.wake(1000, 47999, 45000, False, False) == sleep.NONE
    assert r.wake(1000, 48000, 45000, False, False) == sleep.WAKE_CHARGER  # > 48 V on P+/P-
    assert r.wake(1000, 52600, 52300, False, False) == sleep.NONE  # a bus at the stack's voltage
    assert r.wake(1000, 0, 45000, True, False) == sleep.WAKE_BUTTON
    assert r.wake(1000, 0, 45000, False, True) == sleep.WAKE_COMM
    assert r.wake(5 * H, 0, 45000, False, False) == sleep.NONE  # no periodic wake after a button sleep


def test_uv_sleep_wakes_every_4h_at_most_10_times():
    r = rules()
    run_awake(r, 0, 40000, uv_protection=True)
    wakes = []
    t = 30000
    asleep_since = t
    while t < 80 * H:
        t += 60000
        if r.wake(t & TICKS_MASK, 0, 40000, False, False) == sleep.WAKE_UV_RETRY:
            wakes.append(t - asleep_since)
            # the try fails: under-voltage again for 30 s, back to sleep
            _, why = run_awake(r, t, t + 40000, uv_protection=True)
            assert why == sleep.BY_UV
            t += 30000
            asleep_since = t
    assert len(wakes) == 10
    assert all(4 * H <= w < 4 * H + 60000 for w in wakes)


class _Afe:
    def __init__(self):
        self.fets = None

    def read_alerts(self):
        return 0

    def set_fets(self, chg, dsg, pchg):
        self.fets = (chg, dsg, pchg)


def test_precharge_done_failed_and_timing():
    """The control stage's pre-charge (`000` 3.2): the pre-charge FET first,
    the discharge FET once the pack side is within the margin of the stack,
    the PRECHARGE failure after the timeout (across the tick wrap)."""
    from app.control import Control
    from bms.params import Params
    from bms.state import PackState
    prm = Params()
    prm.set_by_name("precharge_margin_mv", 2000)
    prm.set_by_name("precharge_timeout_ms", 1000)
    st = PackState()
    afe = _Afe()
    ctl = Control(afe, st, prm)
    snap = st.snap
    snap.reads = 1
    snap.stack_mv = 52000

    def cycle(now_ms, pack_mv):
        snap.pack_mv = pack_mv
        ctl.tick(now_ms)
        return afe.fets

    assert cycle(0, 30000) == (True, False, True)
    assert cycle(100, 30000) == (True, False, True)
    assert cycle(300, 50100) == (True, True, False) and not st.precharge_failed
    cycle(400, 0)
    assert cycle(500, 0) == (True, True, False)  # closed: no new pre-charge
    st.dsg_fet = False  # opened again (as by a protection): the next one from TICKS_MASK - 200
    assert cycle(TICKS_MASK - 200, 1000) == (True, False, True)
    assert cycle(TICKS_MASK, 1000) == (True, False, True)
    assert cycle(798, 1000) == (True, False, True) and not st.precharge_failed
    assert cycle(799, 1000) == (True, False, False) and st.precharge_failed


def test_dry_contacts_both_mappings():
    m = outputs.CONTACTS_ENABLE
    assert outputs.contact_levels(m, True, True, False, False) == 3
    assert outputs.contact_levels(m, False, True, True, False) == 2  # charge disabled: contact 1 open
    m = outputs.CONTACTS_ALARM
    assert outputs.contact_levels(m, True, True, False, False) == 0
    assert outputs.contact_levels(m, False, False, True, False) == 1  # fault protection: 1/2 closes
    assert outputs.contact_levels(m, True, True, False, True) == 2  # low battery: 3/4 closes


def test_heater_hysteresis_and_needs_charger():
    assert outputs.heater_on(False, -30, 0, 50, True)
    assert not outputs.heater_on(False, -30, 0, 50, False)
    assert outputs.heater_on(True, 30, 0, 50, True)  # keeps heating to limit + hysteresis
    assert not outputs.heater_on(True, 50, 0, 50, True)
    assert not outputs.heater_on(False, 10, 0, 50, True)
