# drivers.ntc against the Beta equation computed here with floats, and its
# open/short detection against the parameter table's allowed NTC range.
import math

import pytest

from bms import params as P
from drivers import ntc


def beta_dc(raw, beta, r0=10000.0, rpu=10000.0, t0_c=25.0):
    """Float reference: divider -> resistance -> Beta equation -> deci-degC."""
    r = rpu * raw / (65535 - raw)
    t_k = 1 / (1 / (t0_c + 273.15) + math.log(r / r0) / beta)
    return (t_k - 273.15) * 10


def code_at(dc, beta, r0=10000.0, rpu=10000.0):
    t_k = dc / 10 + 273.15
    r = r0 * math.exp(beta * (1 / t_k - 1 / 298.15))
    return round(65535 * r / (r + rpu))


@pytest.mark.parametrize("beta", [3435, 3950])
def test_conversion_follows_the_beta_equation(beta):
    n = ntc.Ntc(beta=beta)
    lo, hi = code_at(1500, beta), code_at(-500, beta)
    for raw in range(lo + 1, hi, 13):
        assert abs(n.to_dc(raw) - beta_dc(raw, beta)) <= 1.0, raw


@pytest.mark.parametrize("dc", [-400, -200, 0, 250, 450, 600, 850, 1000])
def test_known_points(dc):
    n = ntc.Ntc(beta=3950)
    assert abs(n.to_dc(code_at(dc, 3950)) - dc) <= 1


def test_other_divider():
    n = ntc.Ntc(beta=3435, r0_ohm=100000, r_pullup_ohm=47000)
    raw = code_at(300, 3435, r0=100000.0, rpu=47000.0)
    assert abs(n.to_dc(raw) - 300) <= 1


def test_open_and_short_fall_outside_every_allowed_ntc_range():
    n = ntc.Ntc()
    rows = {r[1]: r for r in P.TABLE} if hasattr(P, "TABLE") else None
    lowest_min = -600
    highest_max = 1800
    if rows and "ntc_min_dc" in rows:
        lowest_min = rows["ntc_min_dc"][3]
        highest_max = rows["ntc_max_dc"][4]
    assert n.to_dc(65535) == ntc.NTC_OPEN_DC < lowest_min  # open: pull-up to the rail
    assert n.to_dc(0) == ntc.NTC_SHORT_DC > highest_max  # short to ground
    assert n.to_dc(65000) == ntc.NTC_OPEN_DC  # below -50 degC: treated as open


def test_read_dc_uses_read_u16():
    class Adc:
        def read_u16(self):
            return code_at(250, 3435)

    assert abs(ntc.Ntc().read_dc(Adc()) - 250) <= 1
