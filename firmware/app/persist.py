# Owns the persist service: what the pack keeps across resets and power cuts
# (lib/store). At start (App) it restores the counters and lock-out states into
# the stages that own them (their restore(values); save(values) gathers them
# back into the counters array: app.estimate, app.protect, app.control), logs
# the boot and the store's notes (that start: app.persiststart, loaded for
# it); then every second it moves
# new protection events (defs.events.Events, by sequence number) into the
# event history and saves the counters: at once when a critical field changes
# (lock-out, latched faults, deep discharge, cycles, learned capacity, UV
# wake-up tries, sleep), when the SOC has moved SOC_SAVE_PPM since the last
# save, before sleeping, and otherwise at most every save_period_ms. A tick
# with nothing new reads a few fields and returns.
from defs.const import const
from app.service import Service
from defs import modes
from bms import params as P
from defs import transient
from defs.ticks import ticks_diff
from defs.events import KIND_SHIFT, RAISED, CODE_MASK
from store import counters as C
from store.eventlog import KIND_STORE, F_RAISED, C_EVENTS_LOST, C_CLOCK_SET

SAVE_PERIOD_MS = const(900000)  # 15 min: see README "Storage" for the wear this gives
SOC_SAVE_PPM = const(10000)  # a save per 1 % of SOC moved: a cut loses less than 1 % SOC
# boot-loop guard (app.app): a start counts as failed until it has run this
# long without a failure (or went to sleep); after MAX_FAILED_STARTS failed
# starts in a row the next one holds the pack safe and waits for the button
START_OK_MS = const(60000)
MAX_FAILED_STARTS = const(5)


class Persist(Service):
    name = "persist"
    period_ms = 1000
    save_period_ms = SAVE_PERIOD_MS  # at most this long between saves (a test shortens its pack's)

    def __init__(self, app, store, clock=None, pack=0):
        """The first step of a start, before anything that can fail: mounts the
        store, loads the stored parameters into app.params (the given ones are
        written as the first copy when there is no usable file) and the
        counters, counts this start (boots, and failed_starts until it has run
        START_OK_MS cleanly) and saves. attach() restores into the stages once
        they exist. Raises OSError when the flash fails. (app.persiststart,
        loaded for the call.)"""
        transient("app.persiststart").start(self, app, store, clock, pack)

    def attach(self):
        """Once the stages exist: restores the counters and lock-out states
        into them, logs the boot and the store's notes."""
        transient("app.persiststart").attach(self)
        if self._restored:  # the flag is this module's (one writer per field)
            self.state.deep_discharge = bool(self.now[C.DEEP_DISCHARGE])

    # --- running ---

    def _gather(self):
        v = self.now
        for owner in self._owners:
            owner.save(v)
        v[C.DEEP_DISCHARGE] = 1 if self.state.deep_discharge else 0

    def _deep_discharge(self):
        """Set when the lowest cell reaches cell_uv_p2_mv, cleared once
        charging brings it back to cell_uv_alarm_rel_mv."""
        st = self.state
        snap = st.snap
        if not snap.reads or not snap.ok:
            return
        lo = snap.min_cell_mv  # acquire found the extremes
        pv = self.app.params.v
        if lo <= pv[P.CELL_UV_P2_MV]:
            st.deep_discharge = True
        elif st.deep_discharge and st.current_ma > 0 and lo >= pv[P.CELL_UV_ALARM_REL_MV]:
            st.deep_discharge = False

    def _save(self):
        self.store.counters.save(self.now)
        for i in range(C.N):
            self.saved[i] = self.now[i]
        self.saves += 1
        self._since_save = 0

    def tick(self, now_ms):
        """A flash error (OSError) is counted and retried next tick: storage
        failing must not stop the pack (its events stay in the ring)."""
        try:
            self._tick(now_ms)
        except OSError:
            self.state.store_errors += 1

    def _tick(self, now_ms):
        self.clock.advance(now_ms)
        dt = 0 if self._last_ms is None else ticks_diff(now_ms, self._last_ms)
        self._since_save += dt
        self._last_ms = now_ms
        st = self.state
        if st.events.next_seq != self._ev_next:
            self._drain(now_ms)
        self._deep_discharge()
        self._gather()
        now, saved = self.now, self.saved
        mode = st.mode
        sleeping = mode != self._mode and mode in (modes.SLEEP, modes.POWER_OFF)
        self._mode = mode
        if now[C.FAILED_STARTS]:
            self._up_ms += dt
            if self._up_ms >= START_OK_MS or sleeping:
                self._started_ok()
        d = now[C.SOC_PPM] - saved[C.SOC_PPM]
        due = d >= SOC_SAVE_PPM or -d >= SOC_SAVE_PPM
        for i in range(C.N):
            if C.CRITICAL >> i & 1 and now[i] != saved[i]:
                due = True
                break
        if not due and (sleeping or self._since_save >= self.save_period_ms):
            for i in range(C.N):
                if now[i] != saved[i]:
                    due = True
                    break
        if due:
            self._save()

    def _started_ok(self):
        """This start went well (ran START_OK_MS, or the pack went to sleep):
        the boot-loop guard's count starts again."""
        self.now[C.FAILED_STARTS] = 0
        self.failed_starts = 0

    def _drain(self, now_ms):
        ev = self.state.events
        first = ev.first_seq()
        if self._ev_next < first:
            n = first - self._ev_next
            self.state.events_lost += n
            self.log(C_EVENTS_LOST, n)
            self._ev_next = first
        log = self.store.log
        while self._ev_next < ev.next_seq:
            i = ev.slot(self._ev_next)
            t_s, flags = self.clock.stamp(ev.t_ms[i], now_ms)
            w = ev.what[i]
            if w & RAISED:
                flags |= F_RAISED
            log.append(t_s, self.now[C.BOOTS], flags, w >> KIND_SHIFT, w & CODE_MASK, self.pack, ev.value[i])
            self._ev_next += 1

    # --- for the PC tool and the firmware itself ---

    def log(self, code, value, raised=True, kind=KIND_STORE):
        t_s, flags = self.clock.now()
        return self.store.log.append(t_s, self.now[C.BOOTS], flags | (F_RAISED if raised else 0),
                                     kind, code, self.pack, value)

    def set_clock(self, unix_s, now_ms=None):
        self.clock.set_unix(unix_s, now_ms)
        self.log(C_CLOCK_SET, unix_s)

    def clear_history(self):
        t_s, flags = self.clock.now()
        return self.store.log.clear(t_s, self.now[C.BOOTS], flags | F_RAISED, self.pack)

    def restore_defaults(self):
        """Parameters back to defaults (FACTORY rows kept); counters and
        history untouched."""
        for code, value in self.store.params.restore_defaults(self.app.params):
            self.log(code, value)

    def save_now(self):
        self._gather()
        if self.state.mode in (modes.SLEEP, modes.POWER_OFF):  # the sleeper: a wake is a reset
            self._started_ok()
        self._save()

    def clear_failed_starts(self):
        """The button (or the PC tool) releases a pack the boot-loop guard
        holds: the next start runs the firmware again."""
        self._started_ok()
        self._save()
