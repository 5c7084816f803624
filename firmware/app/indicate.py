# Owns the indicate service: the LED patterns of the pack state (the LED table
# or a running sequence, bms.indicate) and the buzzer pattern, turned into pin
# levels with their real on/off timing. Allocation-free per tick.
from array import array
from bms import indicate, params as params_mod
from defs.ticks import ticks_diff
from app.service import Service


def param_index(name):
    """Row of a parameter, or -1 while the table does not have it yet."""
    try:
        return params_mod.index_of(name)
    except ValueError:
        return -1


class Indicate(Service):
    name = "indicate"
    period_ms = 50  # divides every on/off time (250/500/1500/3750 ms, buzzer 750/1750/2750 ms)

    def __init__(self, state, leds, buzzer=None, params=None):
        self.state = state
        self.leds = leds
        self.buzzer = buzzer  # an output with set(on), or None on a board without one
        self.params = params
        # buzzer_enable (0/1, off by default `003` 5.2); a table without the
        # row means disabled
        self._buzz_enable = param_index("buzzer_enable") if params is not None else -1
        n = indicate.N_LEDS
        self._shown = array("B", [indicate.OFF] * n)
        self._since = array("i", [0] * n)
        self._level = array("b", [-1] * n)
        self._buzz_shown = indicate.OFF
        self._buzz_since = 0
        self._buzz_level = -1
        # the last sequence played to its end (seq, start): it is not replayed
        # when the tick counter comes round again
        self._done_seq = 0
        self._done_start = 0

    def buzzer_enabled(self):
        i = self._buzz_enable
        return i >= 0 and self.params.v[i] != 0

    def tick(self, now_ms):
        st = self.state
        pat = st.leds
        seq = st.seq
        playing = False
        if seq and not (seq == self._done_seq and st.seq_start_ms == self._done_start):
            playing = indicate.fill_seq(pat, seq, ticks_diff(now_ms, st.seq_start_ms))
            if not playing:
                self._done_seq = seq
                self._done_start = st.seq_start_ms
        if not playing:
            indicate.fill_leds(pat, st)
        for i in range(indicate.N_LEDS):
            if pat[i] != self._shown[i]:
                self._shown[i] = pat[i]
                self._since[i] = now_ms
            lit = 1 if indicate.is_lit(pat[i], ticks_diff(now_ms, self._since[i])) else 0
            if lit != self._level[i]:
                self._level[i] = lit
                self.leds.set(i, lit)
        b = indicate.buzzer_pattern(st.mode, st.alarms, st.protections, st.faults,
                                    self.buzzer_enabled())
        st.buzzer = b
        if b != self._buzz_shown:
            self._buzz_shown = b
            self._buzz_since = now_ms
        if self.buzzer is not None:
            on = 1 if indicate.is_lit(b, ticks_diff(now_ms, self._buzz_since)) else 0
            if on != self._buzz_level:
                self._buzz_level = on
                self.buzzer.set(on)
