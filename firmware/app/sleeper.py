# Owns putting the MCU to sleep when the pack sleeps, on boards that can
# (board.deep_sleep): once the firmware's sleep mode is in and the power-off
# flicker has played, the stored state is saved (the UV wake-up tries and the
# sleep reason survive: a deep-sleep wake is a reset) and the MCU sleeps until
# the button or the charger wakes it, or, after an under-voltage sleep, until
# the next 4-hourly try (SPEC 10).
from bms import indicate, sleep
from bms.params import UV_WAKE_INTERVAL_MS
from defs.ticks import ticks_diff


class Sleeper:
    name = "sleeper"
    period_ms = 500

    def __init__(self, app, deep_sleep):
        self.app = app
        self.deep_sleep = deep_sleep  # board.deep_sleep(ms): does not return on a board

    def tick(self, now_ms):
        st = self.app.state
        if not st.sleep_reason:
            return
        ind = self.app.indicate
        ind.sequence()  # the one it plays, a link flicker of this ms included
        if ind.seq and ticks_diff(now_ms, ind.seq_start_ms) < indicate.seq_duration_ms(ind.seq):
            return  # let the power-off flicker finish
        if self.app.persist is not None:
            self.app.persist.save_now()
        ms = self.app.params.v[UV_WAKE_INTERVAL_MS] if st.sleep_reason == sleep.BY_UV else 0
        self.deep_sleep(ms)
