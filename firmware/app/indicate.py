# Owns the indicate service: LED patterns from the pack state (bms.indicate)
# turned into pin levels with their real on/off timing.
from array import array
from bms import indicate
from bms.ticks import ticks_diff
from app.service import Service


class Indicate(Service):
    name = "indicate"
    period_ms = 50  # divides every flash on/off time (250/500/1500/3750 ms)

    def __init__(self, state, leds):
        self.state = state
        self.leds = leds
        n = indicate.N_LEDS
        self._shown = array("B", [indicate.OFF] * n)
        self._since = array("i", [0] * n)
        self._level = array("b", [-1] * n)

    def tick(self, now_ms):
        st = self.state
        pat = st.leds
        pat[indicate.RUN] = indicate.run_pattern(st.mode)
        pat[indicate.ALM] = indicate.OFF
        indicate.fill_soc_leds(pat, st.soc_pct if st.soc_valid else 0, st.current_ma > 0)
        pat[indicate.MS] = indicate.OFF  # single pack (`000` 3.3.3: M/S off in single mode)
        for i in range(indicate.N_LEDS):
            if pat[i] != self._shown[i]:
                self._shown[i] = pat[i]
                self._since[i] = now_ms
            lit = 1 if indicate.is_lit(pat[i], ticks_diff(now_ms, self._since[i])) else 0
            if lit != self._level[i]:
                self._level[i] = lit
                self.leds.set(i, lit)
