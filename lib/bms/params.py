# Owns the parameter table: every setting with a stable numeric id, its name
# with unit, default, range and who may change it, and the running values.
# Ids are stable forever (the PC tool and the store use them); rows are only
# appended. Services read values by index: params.v[CYCLE_MS].
from array import array

USER = 0  # anyone with the PC tool
ADMIN = 1  # after the administrator password (SPEC 11)
FACTORY = 2  # production and calibration only

# (id, name, default, minimum, maximum, access)
TABLE = (
    # Acquire-and-protect cycle (issue 2: 100 ms).
    (1, "cycle_ms", 100, 20, 1000, FACTORY),
    # Current dead band: |I| below this is reported as 0 (SPEC 1: 0.5 A, `000` Q4).
    (2, "current_deadband_ma", 500, 0, 5000, ADMIN),
    # Rated capacity of a 51.2 V 100 Ah pack (`000` 3.3.2).
    (3, "rated_capacity_mah", 100000, 10000, 400000, FACTORY),
    # Second channel: the AFE's hardware protections sit beyond the firmware's
    # levels so they only act when the firmware does not. LiFePO4 cells are
    # damaged above ~3.8 V and below ~2.0 V (typical cell maker datasheets:
    # charge cut-off 3.65 V, discharge cut-off 2.5 V, absolute 2.0-3.8 V).
    (4, "hw_cov_mv", 3750, 3600, 3900, FACTORY),
    (5, "hw_cov_delay_ms", 2000, 100, 10000, FACTORY),
    (6, "hw_cuv_mv", 2300, 2000, 2800, FACTORY),
    (7, "hw_cuv_delay_ms", 2000, 100, 10000, FACTORY),
    # Max charge 70 A and peak discharge 120-200 A for 15 s (`000` 3.3.2): the
    # hardware trips only beyond those.
    (8, "hw_occ_ma", 90000, 10000, 200000, FACTORY),
    (9, "hw_occ_delay_ms", 1000, 10, 5000, FACTORY),
    (10, "hw_ocd_ma", 220000, 50000, 300000, FACTORY),
    (11, "hw_ocd_delay_ms", 100, 10, 5000, FACTORY),
    (12, "hw_scd_ma", 400000, 200000, 1000000, FACTORY),
    (13, "hw_scd_delay_us", 200, 15, 1000, FACTORY),
)

CYCLE_MS = 0
CURRENT_DEADBAND_MA = 1
RATED_CAPACITY_MAH = 2
HW_COV_MV = 3
HW_COV_DELAY_MS = 4
HW_CUV_MV = 5
HW_CUV_DELAY_MS = 6
HW_OCC_MA = 7
HW_OCC_DELAY_MS = 8
HW_OCD_MA = 9
HW_OCD_DELAY_MS = 10
HW_SCD_MA = 11
HW_SCD_DELAY_US = 12

_NAME = 1
_DEFAULT = 2
_MIN = 3
_MAX = 4


def index_of(name):
    for i in range(len(TABLE)):
        if TABLE[i][_NAME] == name:
            return i
    raise ValueError("unknown parameter " + name)


class Params:
    def __init__(self):
        self.v = array("i", [row[_DEFAULT] for row in TABLE])

    def set(self, index, value):
        """Change one value; a value out of range is refused with the reason
        and the running value stays."""
        row = TABLE[index]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(row[_NAME] + ": integer required")
        if value < row[_MIN] or value > row[_MAX]:
            raise ValueError("%s: %d outside %d..%d" % (row[_NAME], value, row[_MIN], row[_MAX]))
        self.v[index] = value

    def set_by_name(self, name, value):
        self.set(index_of(name), value)
