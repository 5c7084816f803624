# Owns the simulated cells' open-circuit voltage: bms.ocv's LiFePO4 curve read
# forward (the voltage of a SOC, extrapolated beyond the table so that
# protections can be exercised) and the SOC span of one voltage step. The
# firmware only reads the curve backwards (bms.ocv.soc_ppm_from_ocv).
from defs.const import const
from bms.ocv import SOC_PPM, OCV_MV

_LAST = len(SOC_PPM) - 1

# Beyond the table (over-charge, over-discharge) the voltage keeps moving
# steeply so that protections can be exercised: +1 mV per 100 ppm above 100 %
# (3.7 V at 101 %), -1 mV per 20 ppm below 0 % (2.0 V at -1 %, 0 V at -5 %).
_OVER_PPM_PER_MV = const(100)
_UNDER_PPM_PER_MV = const(20)

# _FIRST[p] is the segment holding SOC p % (the last k with SOC_PPM[k] <= p %, at
# most _LAST - 1), so a lookup starts next to its segment instead of scanning
# the whole table (host_tests/test_pack_model.py computes it from SOC_PPM).
_FIRST = const(
    b"\x00\x02\x02\x03\x03\x04\x04\x04\x04\x05\x05\x05\x05\x05\x06\x06\x06\x06\x06\x06\x07\x07\x07\x07\x07\x07"
    b"\x07\x07\x07\x07\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\x0a\x0a"
    b"\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c"
    b"\x0c\x0c\x0d\x0d\x0d\x0d\x0d\x0d\x0d\x0d\x0d\x0d\x0e\x0e\x0e\x0e\x0e\x0f\x0f\x0f\x10\x10\x11")


def ocv_mv(soc_ppm):
    """Open-circuit voltage (mV) at soc_ppm (0..1_000_000, extrapolated beyond)."""
    if soc_ppm >= 1000000:
        return OCV_MV[_LAST] + (soc_ppm - 1000000) // _OVER_PPM_PER_MV
    if soc_ppm < 0:
        v = OCV_MV[0] + soc_ppm // _UNDER_PPM_PER_MV
        return v if v > 0 else 0
    k = _FIRST[soc_ppm // 10000]
    while SOC_PPM[k + 1] <= soc_ppm:
        k += 1
    s0 = SOC_PPM[k]
    v0 = OCV_MV[k]
    return v0 + (OCV_MV[k + 1] - v0) * (soc_ppm - s0) // (SOC_PPM[k + 1] - s0)


def ocv_span(soc_ppm):
    """(mv, lo, hi): mv = ocv_mv(soc_ppm), and ocv_mv(s) == mv for every s in
    lo <= s < hi, so a caller can skip lookups while the SOC stays inside."""
    mv = ocv_mv(soc_ppm)
    if soc_ppm >= 1000000:
        lo = 1000000 + (mv - OCV_MV[_LAST]) * _OVER_PPM_PER_MV
        return mv, lo, lo + _OVER_PPM_PER_MV
    if soc_ppm < 0:
        if mv == 0:
            return 0, -1000000000, -OCV_MV[0] * _UNDER_PPM_PER_MV + _UNDER_PPM_PER_MV
        lo = (mv - OCV_MV[0]) * _UNDER_PPM_PER_MV
        return mv, lo, lo + _UNDER_PPM_PER_MV
    k = _FIRST[soc_ppm // 10000]
    while SOC_PPM[k + 1] <= soc_ppm:
        k += 1
    s0 = SOC_PPM[k]
    ds = SOC_PPM[k + 1] - s0
    dv = OCV_MV[k + 1] - OCV_MV[k]
    e = mv - OCV_MV[k]
    # v0 + dv*(s-s0)//ds == mv  <=>  ceil(e*ds/dv) <= s-s0 < ceil((e+1)*ds/dv)
    lo = s0 - (-e * ds // dv)
    hi = s0 - (-(e + 1) * ds // dv)
    return mv, max(lo, s0), min(hi, s0 + ds)
