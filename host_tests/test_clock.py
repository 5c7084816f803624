# The clock (lib/bms/clock.py): time since boot across tick wraps, marked
# until set; Unix time after; event stamps from their ticks.
from bms.clock import BOOT_TIME, VALID_AFTER_S, Clock
from defs.ticks import TICKS_MASK, ticks_add


class FakeRtc:
    def __init__(self, s):
        self.s = s
        self.set_to = None

    def now_s(self):
        return self.s

    def set_s(self, s):
        self.set_to = s


def test_counts_from_boot_marked_until_set_across_the_tick_wrap():
    c = Clock()
    t = TICKS_MASK - 5000  # boots just before the wrap
    c.advance(t)
    for _ in range(20):
        t = ticks_add(t, 1000)
        c.advance(t)
    assert c.now() == (20, BOOT_TIME)
    # an event 3.5 s ago
    assert c.stamp(ticks_add(t, -3500), t) == (16, BOOT_TIME)
    c.set_unix(1750000000, t)
    assert c.is_set() and c.now() == (1750000000, 0)
    assert c.stamp(ticks_add(t, -3500), t) == (1750000000 - 4, 0)
    for _ in range(10):
        t = ticks_add(t, 700)
        c.advance(t)
    assert c.now() == (1750000007, 0)


def test_long_uptime_past_several_wraps():
    c = Clock()
    t = 0
    c.advance(t)
    for _ in range(40 * 24):  # 40 days, one advance an hour
        t = ticks_add(t, 3600000)
        c.advance(t)
    assert c.now() == (40 * 86400, BOOT_TIME)


def test_a_board_rtc_with_a_valid_time_sets_the_clock_and_is_set_by_it():
    c = Clock(FakeRtc(VALID_AFTER_S - 10))  # never set: 2000-01-01 after a power loss
    assert not c.is_set()
    rtc = FakeRtc(VALID_AFTER_S + 100)
    c = Clock(rtc)
    c.advance(0)
    assert c.now() == (VALID_AFTER_S + 100, 0)
    c.set_unix(VALID_AFTER_S + 5000, 0)
    assert rtc.set_to == VALID_AFTER_S + 5000


def test_stamp_of_an_event_before_boot_time_is_zero_not_negative():
    c = Clock()
    c.advance(100)
    assert c.stamp(0, 100) == (0, BOOT_TIME)
