# Owns the LiFePO4 open-circuit-voltage curve (what the firmware starts its SOC
# from, and the truth of the simulated cells): an integer breakpoint table and
# the SOC of a cell voltage by linear interpolation. The curve read forward
# (the voltage of a SOC) is the simulated cells' own, sim.ocv: a board never
# needs it.
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

# SOC breakpoints (ppm) and OCV (mV); both strictly increasing. Tuples of
# small ints: the compiler makes them constants (4 bytes an entry, as an
# array's), which an array built from them would only copy.
SOC_PPM = (
    0, 5000, 10000, 25000, 50000, 90000, 140000, 200000, 300000, 400000,
    500000, 600000, 700000, 800000, 900000, 950000, 980000, 995000, 1000000)
OCV_MV = (
    2500, 2800, 2880, 2990, 3100, 3190, 3220, 3250, 3265, 3275,
    3284, 3292, 3300, 3317, 3328, 3336, 3350, 3420, 3600)
_LAST = len(SOC_PPM) - 1


def soc_ppm_from_ocv(mv):
    """Inverse of the curve over the table: the lowest SOC whose OCV is mv
    (so sim.ocv.ocv_mv(soc_ppm_from_ocv(mv)) == mv), clamped to 0..1_000_000."""
    if mv <= OCV_MV[0]:
        return 0
    if mv >= OCV_MV[_LAST]:
        return 1000000
    k = 0
    while OCV_MV[k + 1] <= mv:
        k += 1
    v0 = OCV_MV[k]
    s0 = SOC_PPM[k]
    return s0 - (-(SOC_PPM[k + 1] - s0) * (mv - v0) // (OCV_MV[k + 1] - v0))

