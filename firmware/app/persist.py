# Owns the persist service: what the pack keeps across resets and power cuts
# (lib/store). At start (App) it restores the counters and lock-out states into
# the stages, logs the boot and the store's notes; then every second it moves
# new protection events (defs.events.Events, by sequence number) into the
# event history and saves the counters: at once when a critical field changes
# (lock-out, latched faults, deep discharge, cycles, learned capacity, UV
# wake-up tries, sleep), before sleeping, and otherwise at most every
# save_period_ms. A tick with nothing new reads a few fields and returns.
from array import array
from app.service import Service
from defs import modes
from bms import params as P
from bms.clock import Clock
from defs.ticks import ticks_diff
from store import atomic
from store import counters as C
from store.eventlog import KIND_STORE, F_RAISED, C_BOOT, C_EVENTS_LOST, C_COUNTERS_BACKUP, \
    C_COUNTERS_CORRUPT, C_CLOCK_SET

SAVE_PERIOD_MS = 900000  # 15 min: see README "Storage" for the wear this gives


class Persist(Service):
    name = "persist"
    period_ms = 1000

    def __init__(self, app, store, clock=None, notes=(), pack=0, save_period_ms=SAVE_PERIOD_MS):
        self.app = app
        self.store = store.mount()
        self.clock = clock if clock is not None else Clock()
        self.pack = pack
        self.save_period_ms = save_period_ms
        st = app.state
        self.state = st
        self._prot = self._control = None
        for stage in app.cycle.stages:
            if hasattr(stage, "prot"):
                self._prot = stage.prot
            if hasattr(stage, "sleep") and hasattr(stage.sleep, "uv_tries"):
                self._control = stage
        self.saved = array("i", [0] * C.N)  # what the file holds
        self.now = array("i", [0] * C.N)  # this tick's values
        self.saves = 0  # counter saves since start
        self._since_save = 0  # ms since the last counter save
        self._last_ms = None
        self._mode = st.mode
        self.lost = 0  # protection events dropped before they were logged
        self.errors = 0  # flash errors (OSError) in tick
        self._ev_next = st.events.next_seq
        src = store.counters.load(self.now)
        if src == atomic.CORRUPT:
            notes = tuple(notes) + ((C_COUNTERS_CORRUPT, 0),)
        elif src == atomic.BAK:
            notes = tuple(notes) + ((C_COUNTERS_BACKUP, store.counters.file.seq),)
        if src in (atomic.NONE, atomic.CORRUPT):
            self._gather()  # nothing to restore: the first copy holds the start values
        else:
            self._restore()
        self.now[C.BOOTS] += 1
        st.boots = self.now[C.BOOTS]
        self._save()
        self.log(C_BOOT, self.now[C.BOOTS])
        for code, value in notes:
            self.log(code, value)

    # --- start ---

    def _restore(self):
        st = self.state
        v = self.now
        if v[C.SOC_PPM] >= 0 and hasattr(st, "soc_restore_ppm"):
            st.soc_restore_ppm = v[C.SOC_PPM]
        for fid in C.STATE_FIELDS:
            i = fid - 1
            name = C.FIELDS[i][1]
            if hasattr(st, name):
                setattr(st, name, bool(v[i]) if isinstance(getattr(st, name), bool) else v[i])
        prot = self._prot
        if prot is not None:
            prot.lockout = v[C.LOCKOUT]
            prot.latched = v[C.LATCHED_FAULTS]
        st.deep_discharge = bool(v[C.DEEP_DISCHARGE])
        if self._control is not None:
            sl = self._control.sleep
            sl.uv_tries = v[C.UV_TRIES]
            sl.reason = v[C.SLEEP_REASON]

    # --- running ---

    def _gather(self):
        st = self.state
        v = self.now
        v[C.SOC_PPM] = getattr(st, "soc_ppm", st.soc_pct * 10000) if st.soc_valid else -1
        for fid in C.STATE_FIELDS:
            i = fid - 1
            x = getattr(st, C.FIELDS[i][1], 0)
            v[i] = int(x)
        prot = self._prot
        if prot is not None:
            v[C.LOCKOUT] = prot.lockout
            v[C.LATCHED_FAULTS] = prot.latched
        else:
            v[C.LOCKOUT] = st.lockout
        v[C.DEEP_DISCHARGE] = 1 if st.deep_discharge else 0
        if self._control is not None:
            sl = self._control.sleep
            v[C.UV_TRIES] = sl.uv_tries
            v[C.SLEEP_REASON] = sl.reason if st.sleep_reason else 0

    def _deep_discharge(self):
        """Set when the lowest cell reaches cell_uv_p2_mv, cleared once
        charging brings it back to cell_uv_alarm_rel_mv."""
        st = self.state
        snap = st.snap
        if not snap.reads or not snap.ok:
            return
        lo = 65535
        for mv in snap.cell_mv:
            if mv < lo:
                lo = mv
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
            self.errors += 1
            self.state.store_errors = self.errors

    def _tick(self, now_ms):
        self.clock.advance(now_ms)
        if self._last_ms is not None:
            self._since_save += ticks_diff(now_ms, self._last_ms)
        self._last_ms = now_ms
        st = self.state
        if st.events.next_seq != self._ev_next:
            self._drain(now_ms)
        self._deep_discharge()
        self._gather()
        now, saved = self.now, self.saved
        due = False
        for i in C.CRITICAL:
            if now[i] != saved[i]:
                due = True
                break
        mode = st.mode
        sleeping = mode != self._mode and mode in (modes.SLEEP, modes.POWER_OFF)
        self._mode = mode
        if not due and (sleeping or self._since_save >= self.save_period_ms):
            for i in range(C.N):
                if now[i] != saved[i]:
                    due = True
                    break
        if due:
            self._save()

    def _drain(self, now_ms):
        ev = self.state.events
        first = ev.first_seq()
        if self._ev_next < first:
            n = first - self._ev_next
            self.lost += n
            self.state.events_lost = self.lost
            self.log(C_EVENTS_LOST, n)
            self._ev_next = first
        log = self.store.log
        while self._ev_next < ev.next_seq:
            i = ev.slot(self._ev_next)
            t_s, flags = self.clock.stamp(ev.t_ms[i], now_ms)
            if ev.raised[i]:
                flags |= F_RAISED
            log.append(t_s, self.now[C.BOOTS], flags, ev.kind[i], ev.code[i], self.pack, ev.value[i])
            self._ev_next += 1

    # --- for the PC tool and the firmware itself ---

    def log(self, code, value, raised=True):
        t_s, flags = self.clock.now()
        return self.store.log.append(t_s, self.now[C.BOOTS], flags | (F_RAISED if raised else 0),
                                     KIND_STORE, code, self.pack, value)

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
        self._save()
