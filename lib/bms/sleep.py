# Owns the sleep and wake rules (SPEC 10; `003` 2.4, 5.5; `004` 2.2, 6.3):
# when an awake pack should go to sleep, when a sleeping pack wakes, and the
# 4-hourly wake-and-try-to-charge after an under-voltage sleep (at most N
# tries). Pure: time is now_ms (wrapping ticks), inputs are values.
from defs.const import const
from defs.ticks import ticks_diff

NONE = const(0)
# why the pack sleeps
BY_BUTTON = const(1)
BY_UV = const(2)  # under-voltage protection not released within uv_sleep_delay_ms
BY_LOW_CELL = const(3)  # lowest cell below sleep_cell_mv for sleep_delay_ms, nothing going on
BY_IDLE = const(4)  # standby for standby_sleep_ms with no communication and no current
BY_COMMAND = const(5)  # the PC tool
BY_INVERTER = const(6)  # inverter silent for 60 min (inverter issue)
# why it wakes
WAKE_BUTTON = const(1)
WAKE_CHARGER = const(2)  # charger voltage on P+/P-
WAKE_COMM = const(3)  # activity on the PC port
WAKE_UV_RETRY = const(4)  # the periodic try after an under-voltage sleep
_CHARGER_ABOVE_STACK_MV = const(500)  # a charger pushes; a bus at the stack's own voltage does not


class SleepRules:
    def __init__(self, sleep_cell_mv, sleep_delay_ms, standby_sleep_ms, uv_sleep_delay_ms,
                 uv_wake_interval_ms, uv_wake_tries, charger_wake_mv):
        self.sleep_cell_mv = sleep_cell_mv
        self.sleep_delay_ms = sleep_delay_ms
        self.standby_sleep_ms = standby_sleep_ms
        self.uv_sleep_delay_ms = uv_sleep_delay_ms
        self.uv_wake_interval_ms = uv_wake_interval_ms
        self.uv_wake_tries = uv_wake_tries
        self.charger_wake_mv = charger_wake_mv
        self._uv_since = -1
        self._low_since = -1
        self._idle_since = -1
        self._asleep_since = 0
        self.reason = NONE  # why the pack last went to sleep
        self.uv_tries = 0  # periodic wake-ups since the under-voltage sleep

    def _held(self, cond, since, now_ms, delay_ms):
        """Return the new 'since' for a condition that must hold delay_ms; -2
        means it has held long enough."""
        if not cond:
            return -1
        if since < 0:
            return now_ms
        return -2 if ticks_diff(now_ms, since) >= delay_ms else since

    def check(self, now_ms, min_cell_mv, current_ma, uv_protection, other_protection, balancing, comm_active):
        """While awake, every cycle: the reason to sleep now, or NONE."""
        # _held(False, ...) is -1: the call only for a condition that holds
        s = self._held(True, self._uv_since, now_ms, self.uv_sleep_delay_ms) if uv_protection else -1
        self._uv_since = s
        if s == -2:
            return self._sleep(BY_UV, now_ms)
        if current_ma != 0 or comm_active:  # not quiet: neither rule below holds
            self._low_since = self._idle_since = -1
            return NONE
        low = min_cell_mv < self.sleep_cell_mv and not other_protection and not uv_protection and not balancing
        s = self._held(True, self._low_since, now_ms, self.sleep_delay_ms) if low else -1
        self._low_since = s
        if s == -2:
            return self._sleep(BY_LOW_CELL, now_ms)
        s = self._held(True, self._idle_since, now_ms, self.standby_sleep_ms)
        self._idle_since = s
        if s == -2:
            return self._sleep(BY_IDLE, now_ms)
        return NONE

    def command(self, reason, now_ms):
        """Sleep for an outside reason (button, PC, inverter silence)."""
        return self._sleep(reason, now_ms)

    def _sleep(self, reason, now_ms):
        self.reason = reason
        self._asleep_since = now_ms
        self._uv_since = self._low_since = self._idle_since = -1
        if reason != BY_UV:
            self.uv_tries = 0
        return reason

    def wake(self, now_ms, pack_mv, stack_mv, button, comm_active):
        """While asleep (FETs open), every check: the reason to wake now, or
        NONE. A charger is there when P+/P- holds at least charger_wake_mv
        and more than the stack: parallel packs holding the bus at their own
        voltage do not wake a sleeping pack."""
        if button:
            reason = WAKE_BUTTON
        elif pack_mv >= self.charger_wake_mv and pack_mv > stack_mv + _CHARGER_ABOVE_STACK_MV:
            reason = WAKE_CHARGER
        elif comm_active:
            reason = WAKE_COMM
        elif (self.reason == BY_UV and self.uv_tries < self.uv_wake_tries
              and ticks_diff(now_ms, self._asleep_since) >= self.uv_wake_interval_ms):
            self.uv_tries += 1
            reason = WAKE_UV_RETRY
        else:
            return NONE
        if reason != WAKE_UV_RETRY:
            self.uv_tries = 0
        return reason
