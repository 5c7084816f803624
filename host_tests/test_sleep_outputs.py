"""Sleep and wake rules (SPEC 10), pre-charge, dry contacts and heater (SPEC 3)."""
from bms import outputs, precharge, sleep
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


def test_precharge_done_failed_and_timing():
    p = precharge.Precharge(margin_mv=2000, timeout_ms=1000)
    p.start(0)
    assert p.step(100, 52000, 30000) == precharge.RUNNING
    assert p.step(300, 52000, 50100) == precharge.DONE
    p.start(TICKS_MASK - 200)  # across the tick wrap
    assert p.step(TICKS_MASK, 52000, 1000) == precharge.RUNNING
    assert p.step(799, 52000, 1000) == precharge.FAILED


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
