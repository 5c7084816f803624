# Owns the indicate service: the LED patterns of the pack state (the LED table
# or a running sequence, bms.indicate) and the buzzer pattern, turned into pin
# levels with their real on/off timing. The sequence played (self.seq from
# self.seq_start_ms) is the one started last: control's (st.seq from
# st.seq_start_ms) or the link's forming flicker (SEQ_PARALLEL from
# st.link_flicker_ms, once per st.link_flicker_count). Allocation-free per tick.
# The pins are only looked at when a pattern changed or the earliest flash edge
# of the last look is due (self._quiet_ms after self._look_ms).
from defs.const import const
from array import array
from bms import indicate, params as P
from defs.ticks import ticks_diff, TICKS_MASK
from app.service import Service

_WRAP_MS = const(1 << 29)  # half of defs.ticks.TICKS_PERIOD: ticks_diff jumps from here to -_WRAP_MS


class Indicate(Service):
    name = "indicate"
    period_ms = 50  # divides every on/off time (250/500/1500/3750 ms, buzzer 750/1750/2750 ms)

    def __init__(self, state, leds, buzzer=None, params=None, maintenance=False):
        """maintenance: the forced-update jumper was fitted at boot (app.compose):
        the maintenance pattern instead of the LED table (also while an update
        session holds the pack: st.update_hold)."""
        self.state = state
        self.maintenance = maintenance
        self.leds = leds
        self.buzzer = buzzer  # an output with set(on), or None on a board without one
        self.params = params  # buzzer_enable (0/1, off by default `003` 5.2); None: disabled
        n = indicate.N_LEDS
        self._shown = array("B", [indicate.OFF] * n)
        self._since = array("i", [0] * n)
        self._level = array("b", [-1] * n)
        self._table = array("i", [-1] * indicate.LAST_N)  # what the LED table last wrote (bms.indicate.fill_leds)
        self._look_ms = 0
        self._quiet_ms = 0  # the first tick sets every pin
        self._buzz_shown = -1  # none yet: the first tick sets the pin
        self._buzz_since = 0
        self._buzz_level = -1
        # the last sequence played to its end (seq, start): it is not replayed
        # when the tick counter comes round again
        self._done_seq = 0
        self._done_start = 0
        self.seq = self._ctl_seq = state.seq
        self.seq_start_ms = self._ctl_start = state.seq_start_ms
        self._flicker_seen = state.link_flicker_count

    def sequence(self):
        """The sequence started last; in the same ms the link's (it runs
        after the cycle)."""
        st = self.state
        ctl = st.seq != self._ctl_seq or st.seq_start_ms != self._ctl_start
        if ctl:
            self.seq = self._ctl_seq = st.seq
            self.seq_start_ms = self._ctl_start = st.seq_start_ms
        if st.link_flicker_count != self._flicker_seen:
            self._flicker_seen = st.link_flicker_count
            if not ctl or ticks_diff(st.link_flicker_ms, self.seq_start_ms) >= 0:
                self.seq = indicate.SEQ_PARALLEL
                self.seq_start_ms = st.link_flicker_ms

    def tick(self, now_ms):
        st = self.state
        pat = st.leds
        if st.seq != self._ctl_seq or st.seq_start_ms != self._ctl_start \
                or st.link_flicker_count != self._flicker_seen:
            self.sequence()
        seq = self.seq
        start = self.seq_start_ms
        playing = False
        if seq and not (seq == self._done_seq and start == self._done_start):
            playing = indicate.fill_seq(pat, seq, ticks_diff(now_ms, start))
            if not playing:
                self._done_seq = seq
                self._done_start = start
        if playing:
            self._table[0] = -1
        elif self.maintenance or st.update_hold:  # and while an update session holds the pack
            indicate.fill_maintenance(pat)
            self._table[0] = -1
        else:
            indicate.fill_leds(pat, st, self._table)
        shown = self._shown
        # 0 <= ticks_diff(now_ms, self._look_ms) < self._quiet_ms (<= _WRAP_MS) without the call
        if pat != shown or (now_ms - self._look_ms) & TICKS_MASK >= self._quiet_ms:
            self._look_ms = now_ms
            quiet = _WRAP_MS
            since = self._since
            for i in range(indicate.N_LEDS):
                p = pat[i]
                if p != shown[i]:
                    shown[i] = p
                    since[i] = now_ms
                lit = p  # OFF and ON are their own levels (0, 1)
                if p > indicate.ON:
                    ph = ticks_diff(now_ms, since[i])
                    left = indicate.lit_ms(p, ph)
                    lit = 1 if left > 0 else 0
                    left = left if left > 0 else -left
                    if ph > _WRAP_MS - left:  # the phase jumps first (a pattern held 6.2 days)
                        left = _WRAP_MS - ph
                    if left < quiet:
                        quiet = left
                if lit != self._level[i]:
                    self._level[i] = lit
                    self.leds.set(i, lit)
            self._quiet_ms = quiet
        b = indicate.OFF
        if self.params is not None and self.params.v[P.BUZZER_ENABLE] != 0:
            b = indicate.buzzer_pattern(st.mode, st.alarms, st.protections, st.faults, True)
        if b != indicate.OFF or b != self._buzz_shown:  # silent and already off: nothing to do
            self._buzz(b, now_ms)

    def _buzz(self, b, now_ms):
        """Buzzer pattern b from now_ms: into the pack state and onto the pin."""
        if b != self._buzz_shown:
            self._buzz_shown = b
            self._buzz_since = now_ms
            self.state.buzzer = b
        if self.buzzer is not None:
            on = 1 if b != indicate.OFF and indicate.is_lit(b, ticks_diff(now_ms, self._buzz_since)) else 0
            if on != self._buzz_level:
                self._buzz_level = on
                self.buzzer.set(on)
