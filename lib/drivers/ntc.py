# Owns the conversion of an NTC thermistor on an MCU ADC pin to deci-degC:
# the NTC sits between the pin and ground with a pull-up to the ADC's reference
# (a ratiometric divider), so the u16 reading (machine.ADC.read_u16(), 0..65535)
# is 65535 * R / (R + R_pullup). The Beta equation
#     1/T = 1/T0 + ln(R/R0) / B      (T in kelvin)
# is evaluated once per table point at construction (floats, not in the
# control path); a conversion is a binary search in that table and an integer
# linear interpolation: no floats, no allocation.
#
# Open and short: a reading colder than the table's first point (open NTC or
# broken wire: the pull-up wins) returns NTC_OPEN_DC; hotter than its last
# point (shorted NTC) returns NTC_SHORT_DC. Both lie outside every allowed
# ntc_min_dc..ntc_max_dc (params: -600..-200 / 900..1800), so protect treats
# them as the NTC fault.
from defs.const import const
from array import array
import math

NTC_OPEN_DC = const(-2730)  # absolute zero in deci-degC: no real reading
NTC_SHORT_DC = const(3000)  # 300 degC
ADC_FULL = const(65535)


class Ntc:
    def __init__(self, beta=3435, r0_ohm=10000, r_pullup_ohm=10000, t0_dc=250,
                 t_min_dc=-500, t_max_dc=1500, step_dc=25):
        """A 10 kOhm NTC (beta 3435 or 3950) with a 10 kOhm pull-up by default;
        table from t_min_dc to t_max_dc every step_dc."""
        self.t_min_dc = t_min_dc
        self.step_dc = step_dc
        n = (t_max_dc - t_min_dc) // step_dc + 1
        codes = array("H", [0] * n)  # u16 (half of "i"), falling: hotter = lower resistance = lower code
        t0_k = (t0_dc + 2731.5) / 10
        for k in range(n):
            t_k = (t_min_dc + k * step_dc + 2731.5) / 10
            r = r0_ohm * math.exp(beta * (1 / t_k - 1 / t0_k))
            codes[k] = int(ADC_FULL * r / (r + r_pullup_ohm) + 0.5)
        self.codes = codes
        self.n = n

    def to_dc(self, raw):
        """u16 ADC reading -> deci-degC, or NTC_OPEN_DC / NTC_SHORT_DC."""
        c = self.codes
        if raw > c[0]:
            return NTC_OPEN_DC
        last = self.n - 1
        if raw < c[last]:
            return NTC_SHORT_DC
        lo = 0
        hi = last
        while hi - lo > 1:  # c[lo] >= raw >= c[hi]
            mid = (lo + hi) >> 1
            if c[mid] >= raw:
                lo = mid
            else:
                hi = mid
        span = c[lo] - c[hi]
        frac = 0 if span == 0 else ((c[lo] - raw) * self.step_dc * 2 + span) // (2 * span)
        return self.t_min_dc + lo * self.step_dc + frac

    def read_dc(self, adc):
        """Convert adc.read_u16() of a machine.ADC."""
        return self.to_dc(adc.read_u16())
