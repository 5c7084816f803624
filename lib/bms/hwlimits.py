# Owns the mapping from parameters to the AFE's hardware protection limits,
# so both channels come from one parameter table.
from defs.afe import HwLimits
from bms import params as p


def from_params(prm):
    v = prm.v
    return HwLimits(v[p.HW_COV_MV], v[p.HW_CUV_MV], v[p.HW_OCC_MA], v[p.HW_OCD_MA],
                    v[p.HW_SCD_MA], v[p.HW_COV_DELAY_MS], v[p.HW_CUV_DELAY_MS],
                    v[p.HW_OCC_DELAY_MS], v[p.HW_OCD_DELAY_MS], v[p.HW_SCD_DELAY_US])
