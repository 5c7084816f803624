# Owns the LiFePO4 open-circuit-voltage curve (what the firmware starts its SOC
# from, and the truth of the simulated cells): an
# integer breakpoint table, linear interpolation, and its inverse.
#
# Figures: a blend of two measured LiFePO4 curves at 25 degC, rounded to the
# shape of a large prismatic cell (steep below ~10 %, plateau ~3.25-3.33 V from
# 20 to 90 %, knee above 98 %):
#  - Lithium Werks APR18650M1B pseudo-OCV (C/32), in S. Sunil et al.,
#    "Piecewise Linear Approximation of Battery Open-Circuit Voltage
#    Characteristics Using Dynamic Programming", IEEE TIM 2025, table in
#    github.com/soorajsunil/Piecewise-Battery-OCV README:
#    0.33 % 2.418 V, 1.17 % 2.741, 2.67 % 2.930, 5.34 % 3.087, 8.85 % 3.194,
#    29.7 % 3.277, 98.3 % 3.351, 99.5 % 3.418, 100 % 3.598;
#  - A123 LiFePO4 rest-voltage table in github.com/davidmcq137/JetiLuaDFM
#    (DFM-InsP/A123.lua): 1 % 2.90 V, 5.4 % 3.12, 9.6 % 3.17, 18 % 3.20,
#    40 % 3.263, 53 % 3.272, 70 % 3.28, 78.5 % 3.304, 91.5 % 3.316,
#    95.7 % 3.32, 100 % 3.59.
# 0 % is put at 2.5 V, the discharge cut-off of prismatic LFP cell datasheets.
from defs.const import const

# SOC breakpoints (ppm) and OCV (mV); both strictly increasing. Tuples of
# small ints: the compiler makes them constants (4 bytes an entry, as an
# array's), which an array built from them would only copy.
_SOC = (
    0, 5000, 10000, 25000, 50000, 90000, 140000, 200000, 300000, 400000,
    500000, 600000, 700000, 800000, 900000, 950000, 980000, 995000, 1000000)
_MV = (
    2500, 2800, 2880, 2990, 3100, 3190, 3220, 3250, 3265, 3275,
    3284, 3292, 3300, 3317, 3328, 3336, 3350, 3420, 3600)
_LAST = len(_SOC) - 1

# Beyond the table (over-charge, over-discharge) the voltage keeps moving
# steeply so that protections can be exercised: +1 mV per 100 ppm above 100 %
# (3.7 V at 101 %), -1 mV per 20 ppm below 0 % (2.0 V at -1 %, 0 V at -5 %).
_OVER_PPM_PER_MV = const(100)
_UNDER_PPM_PER_MV = const(20)

# _FIRST[p] is the segment holding SOC p % (the last k with _SOC[k] <= p %, at
# most _LAST - 1), so a lookup starts next to its segment instead of scanning
# the whole table. A bytes constant (host_tests/test_pack_model.py computes it from
# _SOC): from ROMFS it stays in the image.
_FIRST = const(
    b"\x00\x02\x02\x03\x03\x04\x04\x04\x04\x05\x05\x05\x05\x05\x06\x06\x06\x06\x06\x06\x07\x07\x07\x07\x07\x07"
    b"\x07\x07\x07\x07\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\x0a\x0a"
    b"\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c"
    b"\x0c\x0c\x0d\x0d\x0d\x0d\x0d\x0d\x0d\x0d\x0d\x0d\x0e\x0e\x0e\x0e\x0e\x0f\x0f\x0f\x10\x10\x11")


def ocv_mv(soc_ppm):
    """Open-circuit voltage (mV) at soc_ppm (0..1_000_000, extrapolated beyond)."""
    if soc_ppm >= 1000000:
        return _MV[_LAST] + (soc_ppm - 1000000) // _OVER_PPM_PER_MV
    if soc_ppm < 0:
        v = _MV[0] + soc_ppm // _UNDER_PPM_PER_MV
        return v if v > 0 else 0
    k = _FIRST[soc_ppm // 10000]
    while _SOC[k + 1] <= soc_ppm:
        k += 1
    s0 = _SOC[k]
    v0 = _MV[k]
    return v0 + (_MV[k + 1] - v0) * (soc_ppm - s0) // (_SOC[k + 1] - s0)


def ocv_span(soc_ppm):
    """(mv, lo, hi): mv = ocv_mv(soc_ppm), and ocv_mv(s) == mv for every s in
    lo <= s < hi, so a caller can skip lookups while the SOC stays inside."""
    mv = ocv_mv(soc_ppm)
    if soc_ppm >= 1000000:
        lo = 1000000 + (mv - _MV[_LAST]) * _OVER_PPM_PER_MV
        return mv, lo, lo + _OVER_PPM_PER_MV
    if soc_ppm < 0:
        if mv == 0:
            return 0, -1000000000, -_MV[0] * _UNDER_PPM_PER_MV + _UNDER_PPM_PER_MV
        lo = (mv - _MV[0]) * _UNDER_PPM_PER_MV
        return mv, lo, lo + _UNDER_PPM_PER_MV
    k = _FIRST[soc_ppm // 10000]
    while _SOC[k + 1] <= soc_ppm:
        k += 1
    s0 = _SOC[k]
    ds = _SOC[k + 1] - s0
    dv = _MV[k + 1] - _MV[k]
    e = mv - _MV[k]
    # v0 + dv*(s-s0)//ds == mv  <=>  ceil(e*ds/dv) <= s-s0 < ceil((e+1)*ds/dv)
    lo = s0 - (-e * ds // dv)
    hi = s0 - (-(e + 1) * ds // dv)
    return mv, max(lo, s0), min(hi, s0 + ds)


def soc_ppm_from_ocv(mv):
    """Inverse of ocv_mv over the table: the lowest SOC whose OCV is mv
    (so ocv_mv(soc_ppm_from_ocv(mv)) == mv), clamped to 0..1_000_000."""
    if mv <= _MV[0]:
        return 0
    if mv >= _MV[_LAST]:
        return 1000000
    k = 0
    while _MV[k + 1] <= mv:
        k += 1
    v0 = _MV[k]
    s0 = _SOC[k]
    return s0 - (-(_SOC[k + 1] - s0) * (mv - v0) // (_MV[k + 1] - v0))

