# Owns the state-of-charge estimate: coulomb counting over the measured time
# between samples, in integer mAh plus a mA*ms remainder so nothing drifts
# and nothing leaves small-int range on the board.
_MAMS_PER_MAH = 3600000


class Soc:
    def __init__(self, capacity_mah):
        self.capacity_mah = capacity_mah
        self.charge_mah = 0
        self._rem_mams = 0  # mA*ms not yet a whole mAh, 0 <= rem < 3.6e6

    def set_pct(self, soc_pct):
        self.charge_mah = self.capacity_mah * soc_pct // 100
        self._rem_mams = 0

    def count(self, current_ma, dt_ms):
        """Add current_ma flowing for dt_ms (the measured interval)."""
        self._rem_mams += current_ma * dt_ms
        q = self._rem_mams // _MAMS_PER_MAH
        if q:
            self.charge_mah += q
            self._rem_mams -= q * _MAMS_PER_MAH
        if self.charge_mah < 0:
            self.charge_mah = 0
            self._rem_mams = 0
        elif self.charge_mah >= self.capacity_mah:
            self.charge_mah = self.capacity_mah
            self._rem_mams = 0

    def pct(self):
        return self.charge_mah * 100 // self.capacity_mah
