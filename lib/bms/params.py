# Owns the running parameter values (Params: set, set_many, validate) and the
# index constants of the rows in bms.ptable: constant = id - 1, one per row
# (host_tests/test_params.py checks both ways). Services read a value one way,
# allocation-free: params.v[P.CYCLE_MS]. The board imports the rows only in
# their compact form, bms.prows (generated from bms.ptable by tools/prows.py),
# and only for the moment it needs them (rows()): the defaults at start, the
# ranges when a value is set, the name tags when the file is loaded or saved;
# the names are in bms.pnames, imported the same way for index_of(name) and
# error messages, and P.TABLE (the full rows, host side) imports bms.ptable when first
# asked for.
# A constant the table lacks is an AttributeError (ImportError for `from
# bms.params import`), and test_params.py checks every P.NAME the code names:
# never a -1 index at run time.
from array import array
import struct

from defs import drop
from defs.const import const

def __getattr__(name):
    if name == "TABLE":
        from bms.ptable import TABLE
        return TABLE
    raise AttributeError(name)


CYCLE_MS = const(0)
CURRENT_DEADBAND_MA = const(1)
RATED_CAPACITY_MAH = const(2)
HW_COV_MV = const(3)
HW_COV_DELAY_MS = const(4)
HW_CUV_MV = const(5)
HW_CUV_DELAY_MS = const(6)
HW_OCC_MA = const(7)
HW_OCC_DELAY_MS = const(8)
HW_OCD_MA = const(9)
HW_OCD_DELAY_MS = const(10)
HW_SCD_MA = const(11)
HW_SCD_DELAY_US = const(12)

CELL_OV_ALARM_MV = const(13)
CELL_OV_ALARM_REL_MV = const(14)
CELL_OV_ALARM_DELAY_MS = const(15)
CELL_OV_P1_MV = const(16)
CELL_OV_P1_REL_MV = const(17)
CELL_OV_P1_DELAY_MS = const(18)
CELL_OV_P2_MV = const(19)
CELL_OV_P2_REL_MV = const(20)
CELL_OV_P2_DELAY_MS = const(21)
CELL_UV_ALARM_MV = const(22)
CELL_UV_ALARM_REL_MV = const(23)
CELL_UV_ALARM_DELAY_MS = const(24)
CELL_UV_P1_MV = const(25)
CELL_UV_P1_REL_MV = const(26)
CELL_UV_P1_DELAY_MS = const(27)
CELL_UV_P2_MV = const(28)
CELL_UV_P2_REL_MV = const(29)
CELL_UV_P2_DELAY_MS = const(30)
PACK_OV_ALARM_MV = const(31)
PACK_OV_ALARM_REL_MV = const(32)
PACK_OV_ALARM_DELAY_MS = const(33)
PACK_OV_P1_MV = const(34)
PACK_OV_P1_REL_MV = const(35)
PACK_OV_P1_DELAY_MS = const(36)
PACK_OV_P2_MV = const(37)
PACK_OV_P2_REL_MV = const(38)
PACK_OV_P2_DELAY_MS = const(39)
PACK_UV_ALARM_MV = const(40)
PACK_UV_ALARM_REL_MV = const(41)
PACK_UV_ALARM_DELAY_MS = const(42)
PACK_UV_P1_MV = const(43)
PACK_UV_P1_REL_MV = const(44)
PACK_UV_P1_DELAY_MS = const(45)
PACK_UV_P2_MV = const(46)
PACK_UV_P2_REL_MV = const(47)
PACK_UV_P2_DELAY_MS = const(48)
CHG_OC_ALARM_MA = const(49)
CHG_OC_ALARM_REL_MA = const(50)
CHG_OC_ALARM_DELAY_MS = const(51)
CHG_OC_P1_MA = const(52)
CHG_OC_P1_REL_MA = const(53)
CHG_OC_P1_DELAY_MS = const(54)
CHG_OC_P2_MA = const(55)
CHG_OC_P2_REL_MA = const(56)
CHG_OC_P2_DELAY_MS = const(57)
DSG_OC_ALARM_MA = const(58)
DSG_OC_ALARM_REL_MA = const(59)
DSG_OC_ALARM_DELAY_MS = const(60)
DSG_OC_P1_MA = const(61)
DSG_OC_P1_REL_MA = const(62)
DSG_OC_P1_DELAY_MS = const(63)
DSG_OC_P2_MA = const(64)
DSG_OC_P2_REL_MA = const(65)
DSG_OC_P2_DELAY_MS = const(66)
CHG_HT_ALARM_DC = const(67)
CHG_HT_ALARM_REL_DC = const(68)
CHG_HT_ALARM_DELAY_MS = const(69)
CHG_HT_P1_DC = const(70)
CHG_HT_P1_REL_DC = const(71)
CHG_HT_P1_DELAY_MS = const(72)
CHG_HT_P2_DC = const(73)
CHG_HT_P2_REL_DC = const(74)
CHG_HT_P2_DELAY_MS = const(75)
CHG_LT_ALARM_DC = const(76)
CHG_LT_ALARM_REL_DC = const(77)
CHG_LT_ALARM_DELAY_MS = const(78)
CHG_LT_P1_DC = const(79)
CHG_LT_P1_REL_DC = const(80)
CHG_LT_P1_DELAY_MS = const(81)
CHG_LT_P2_DC = const(82)
CHG_LT_P2_REL_DC = const(83)
CHG_LT_P2_DELAY_MS = const(84)
DSG_HT_ALARM_DC = const(85)
DSG_HT_ALARM_REL_DC = const(86)
DSG_HT_ALARM_DELAY_MS = const(87)
DSG_HT_P1_DC = const(88)
DSG_HT_P1_REL_DC = const(89)
DSG_HT_P1_DELAY_MS = const(90)
DSG_HT_P2_DC = const(91)
DSG_HT_P2_REL_DC = const(92)
DSG_HT_P2_DELAY_MS = const(93)
DSG_LT_ALARM_DC = const(94)
DSG_LT_ALARM_REL_DC = const(95)
DSG_LT_ALARM_DELAY_MS = const(96)
DSG_LT_P1_DC = const(97)
DSG_LT_P1_REL_DC = const(98)
DSG_LT_P1_DELAY_MS = const(99)
DSG_LT_P2_DC = const(100)
DSG_LT_P2_REL_DC = const(101)
DSG_LT_P2_DELAY_MS = const(102)
MOS_OT_ALARM_DC = const(103)
MOS_OT_ALARM_REL_DC = const(104)
MOS_OT_ALARM_DELAY_MS = const(105)
MOS_OT_P1_DC = const(106)
MOS_OT_P1_REL_DC = const(107)
MOS_OT_P1_DELAY_MS = const(108)
MOS_OT_P2_DC = const(109)
MOS_OT_P2_REL_DC = const(110)
MOS_OT_P2_DELAY_MS = const(111)
AMB_HT_ALARM_DC = const(112)
AMB_HT_ALARM_REL_DC = const(113)
AMB_HT_ALARM_DELAY_MS = const(114)
AMB_HT_P1_DC = const(115)
AMB_HT_P1_REL_DC = const(116)
AMB_HT_P1_DELAY_MS = const(117)
AMB_HT_P2_DC = const(118)
AMB_HT_P2_REL_DC = const(119)
AMB_HT_P2_DELAY_MS = const(120)
AMB_LT_ALARM_DC = const(121)
AMB_LT_ALARM_REL_DC = const(122)
AMB_LT_ALARM_DELAY_MS = const(123)
AMB_LT_P1_DC = const(124)
AMB_LT_P1_REL_DC = const(125)
AMB_LT_P1_DELAY_MS = const(126)
AMB_LT_P2_DC = const(127)
AMB_LT_P2_REL_DC = const(128)
AMB_LT_P2_DELAY_MS = const(129)
IMB_ALARM_MV = const(130)
IMB_ALARM_REL_MV = const(131)
IMB_ALARM_DELAY_MS = const(132)
IMB_P1_MV = const(133)
IMB_P1_REL_MV = const(134)
IMB_P1_DELAY_MS = const(135)
IMB_P2_MV = const(136)
IMB_P2_REL_MV = const(137)
IMB_P2_DELAY_MS = const(138)
OC_RETRY_MS = const(139)
OC_LOCK_COUNT = const(140)
OC_COUNT_RESET_MS = const(141)
SCP_MA = const(142)
SCP_DELAY_MS = const(143)
REV_POL_MV = const(144)
CELL_PHYS_MIN_MV = const(145)
CELL_PHYS_MAX_MV = const(146)
NTC_MIN_DC = const(147)
NTC_MAX_DC = const(148)
STACK_SUM_TOL_MV = const(149)
SENSOR_FAIL_DELAY_MS = const(150)
SENSOR_STUCK_STEP_MV = const(151)
SENSOR_STUCK_MS = const(152)
AFE_FAIL_READS = const(153)
MOS_FAIL_MA = const(154)
MOS_FAIL_DELAY_MS = const(155)
PRECHARGE_TIMEOUT_MS = const(156)
IMB_FAIL_MV = const(157)
IMB_FAIL_DELAY_MS = const(158)
USOC_ALARM_PCT = const(159)
USOC_ALARM_REL_PCT = const(160)
SOC_CUTOFF_PCT = const(161)
MAX_DOD_PCT = const(162)
CHARGE_MV = const(163)
FLOAT_MV = const(164)
RECHARGE_MV = const(165)
LOW_CUTOFF_MV = const(166)
STD_CURRENT_MA = const(167)
MAX_CHG_MA = const(168)
MAX_DSG_MA = const(169)
BUZZER_ENABLE = const(170)
SLEEP_CELL_MV = const(171)
SLEEP_DELAY_MS = const(172)
STANDBY_SLEEP_MS = const(173)
UV_SLEEP_DELAY_MS = const(174)
UV_WAKE_INTERVAL_MS = const(175)
UV_WAKE_TRIES = const(176)
CHARGER_WAKE_MV = const(177)
BUTTON_SLEEP_MS = const(178)
BUTTON_RESET_MIN_MS = const(179)
BUTTON_RESET_MAX_MS = const(180)
DRY_CONTACT_MAPPING = const(181)
HEATER = const(182)
PRECHARGE_MARGIN_MV = const(183)
SOC_REST_MS = const(184)
SOC_OCV_LOW_MV = const(185)
SOC_OCV_HIGH_MV = const(186)
CHARGE_END_MA = const(187)
CHARGE_END_CELL_MV = const(188)
CHARGE_END_DELAY_MS = const(189)
SOH_MIN_SPAN_PCT = const(190)
BAL_MIN_CELL_MV = const(191)
BAL_START_MV = const(192)
BAL_STOP_MV = const(193)
BAL_CELLS_COUNT = const(194)
BAL_MIN_GAP_COUNT = const(195)
BAL_MAX_DC = const(196)
BAL_MAX_REL_DC = const(197)
CHG_TAPER_CELL_MV = const(198)
CCL_MIN_MA = const(199)
DSG_TAPER_CELL_MV = const(200)
CHG_DERATE_COLD_DC = const(201)
CHG_DERATE_HOT_DC = const(202)
DSG_DERATE_COLD_DC = const(203)
DSG_DERATE_HOT_DC = const(204)
FORCE_CHG1_PCT = const(205)
FORCE_CHG2_PCT = const(206)
FORCE_CHG_REL_PCT = const(207)
FULL_REQ_PCT = const(208)
FULL_REQ_DAY_COUNT = const(209)
RECHARGE_STANDBY_MS = const(210)
INV_PROTOCOL_COUNT = const(211)  # inverter
INV_BAUD_HIGH_COUNT = const(212)
INV_BUS_COUNT = const(213)
INV_CAN_PERIOD_MS = const(214)
INV_LOST_MS = const(215)
INV_SLEEP_MS = const(216)
BAL_BLEED_MA = const(217)  # balance by charge
BAL_Q_START_MAH = const(218)
BAL_Q_MIN_CELL_MV = const(219)
BAL_MEAS_MAX_MA = const(220)
NTC_STUCK_MOVE_DC = const(221)  # stuck temperature reading
NTC_STUCK_HEAT_1C_MS = const(222)
NTC_STUCK_MS = const(223)
INV_RS485_UNITS_COUNT = const(224)
AUTH_IDLE_MS = const(225)  # host protocol login
CAL_V_GAIN_PPM = const(226)  # calibration
CAL_I_GAIN_PPM = const(227)
LINK_FIXED_ADDRESS_COUNT = const(228)  # parallel packs: fixed link address (0 = automatic)
CAN_BITRATE_COUNT = const(229)  # CAN bit rate (bms.canrate)
# the installation's settings: the system, bus and inverter the pack is wired
# into; restoring the defaults keeps them as it keeps the FACTORY rows
# (store.paramstore, bmsctl defaults): a master put back to protocol 0 would
# speak the wrong protocol to its inverter, a pack to address 0 or 500 kbit/s
# would leave its system
INSTALLATION = (INV_PROTOCOL_COUNT, INV_BAUD_HIGH_COUNT, INV_BUS_COUNT, INV_RS485_UNITS_COUNT,
                LINK_FIXED_ADDRESS_COUNT, CAN_BITRATE_COUNT)

# Protection families, in F_* order: family f's 9 rows start at row
# FAM_ROW0 + FAM_ROWS * f (its <prefix>_alarm_<unit> row): alarm, p1, p2 levels
# x (threshold, release, delay_ms). The HIGH_FAMS trip at or above the
# threshold and release at or below the release value, the LOW_FAMS trip at or
# below and release at or above.
F_CELL_OV = 0
F_CELL_UV = 1
F_PACK_OV = 2
F_PACK_UV = 3
F_CHG_OC = 4
F_DSG_OC = 5
F_CHG_HT = 6
F_CHG_LT = 7
F_DSG_HT = 8
F_DSG_LT = 9
F_MOS_OT = 10
F_AMB_HT = 11
F_AMB_LT = 12
F_IMB = 13
N_FAMILIES = 14
N_LEVELS = 3  # alarm, p1, p2
FAM_ROW0 = CELL_OV_ALARM_MV
FAM_ROWS = 9
# bytes from lists: from a tuple of constants the compiler would keep the
# tuple as well, in RAM on the board
HIGH_FAMS = bytes([F_CELL_OV, F_PACK_OV, F_CHG_OC, F_DSG_OC, F_CHG_HT, F_DSG_HT, F_MOS_OT, F_AMB_HT,
                   F_IMB])
LOW_FAMS = bytes([F_CELL_UV, F_PACK_UV, F_CHG_LT, F_DSG_LT, F_AMB_LT])

def name_of(index):
    return _names()[index]


def index_of(name):
    names = _names()
    if name in names:
        return names.index(name)
    raise ValueError("unknown parameter " + name)


def _names():
    """The parameter names in row order, from bms.pnames imported for this
    call alone (defs.drop): only a refusal's message and a set by name need
    them, and from a .mpy its 3.4 KB string would otherwise stay on the heap."""
    from bms import pnames
    drop(pnames.__name__)  # recovery.bms.pnames in the recovery's copy (tools/frozen.py)
    return pnames.NAMES.split(" ")


def rows():
    """bms.prows (N, DEFAULT, MIN, MAX, ACCESS, HASH, the access levels) for
    the caller alone (defs.drop). From a .mpy on littlefs its bytes constants
    (3.4 KB) are copied into the heap, which would hold them for good; the
    board needs them only at start and when a value is set or the file saved.
    Each call imports it again: hold it for one operation, and let it go
    before calling what takes its own."""
    from bms import prows
    drop(prows.__name__)
    return prows


def row_int(col, index):
    """Row index's value in a prows column (DEFAULT, MIN, MAX)."""
    return struct.unpack_from("<i", col, 4 * index)[0]


def defaults(r=None):
    """A fresh array of every row's default (the bytes as int32: the boards
    are little-endian, as bms.prows); r: the rows the caller holds already
    (else imported for the call)."""
    return array("i", (r or rows()).DEFAULT)


_ABOVE = const(0)
_BELOW = const(1)


def validate(values):
    """None when the table of values (indexable by row index) is consistent,
    else the reason: a release on the wrong side of its threshold, levels of a
    protection out of order (alarm < p1 < p2 for HIGH limits, reversed for
    LOW), or one of the pairs below broken. Delays may be in any order."""
    for f in range(N_FAMILIES):
        high = f in HIGH_FAMS
        prev = None
        for lvl in range(N_LEVELS):
            i = FAM_ROW0 + FAM_ROWS * f + 3 * lvl
            thr = values[i]
            rel = values[i + 1]
            if high and rel >= thr:
                return "%s: release %d must be below threshold %d" % (name_of(i + 1), rel, thr)
            if not high and rel <= thr:
                return "%s: release %d must be above threshold %d" % (name_of(i + 1), rel, thr)
            if prev is not None:
                if high and thr <= values[prev]:
                    return "%s: %d must be above %s %d" % (name_of(i), thr, name_of(prev), values[prev])
                if not high and thr >= values[prev]:
                    return "%s: %d must be below %s %d" % (name_of(i), thr, name_of(prev), values[prev])
            prev = i
    # Pairs that must stay strictly ordered: lower, upper, and how the message
    # puts it (_BELOW: "<lower> must be below <upper>", _ABOVE: "<upper> must be
    # above <lower>"). The AFE's hardware channel sits beyond the firmware's last
    # level; button windows do not overlap. A list built per call, not a
    # module-level table: its numbers stay in the bytecode (in flash on the board).
    order = [
        CELL_OV_P2_MV, HW_COV_MV, _ABOVE,
        HW_CUV_MV, CELL_UV_P2_MV, _BELOW,
        CHG_OC_P2_MA, HW_OCC_MA, _ABOVE,
        DSG_OC_P2_MA, HW_OCD_MA, _ABOVE,
        DSG_OC_P2_MA, SCP_MA, _ABOVE,
        SCP_MA, HW_SCD_MA, _ABOVE,
        CELL_PHYS_MIN_MV, HW_CUV_MV, _BELOW,
        HW_COV_MV, CELL_PHYS_MAX_MV, _ABOVE,
        IMB_P2_MV, IMB_FAIL_MV, _ABOVE,
        USOC_ALARM_PCT, USOC_ALARM_REL_PCT, _ABOVE,
        BUTTON_SLEEP_MS, BUTTON_RESET_MIN_MS, _ABOVE,
        BUTTON_RESET_MIN_MS, BUTTON_RESET_MAX_MS, _ABOVE,
        FLOAT_MV, CHARGE_MV, _ABOVE,
        SOC_OCV_LOW_MV, SOC_OCV_HIGH_MV, _ABOVE,
        BAL_STOP_MV, BAL_START_MV, _ABOVE,
        BAL_MAX_REL_DC, BAL_MAX_DC, _ABOVE,
        CHG_TAPER_CELL_MV, CELL_OV_ALARM_MV, _ABOVE,
        CELL_UV_P1_MV, DSG_TAPER_CELL_MV, _ABOVE,
        CHG_LT_P1_DC, CHG_DERATE_COLD_DC, _ABOVE,
        CHG_DERATE_COLD_DC, CHG_DERATE_HOT_DC, _ABOVE,
        CHG_DERATE_HOT_DC, CHG_HT_P1_DC, _ABOVE,
        DSG_LT_P1_DC, DSG_DERATE_COLD_DC, _ABOVE,
        DSG_DERATE_COLD_DC, DSG_DERATE_HOT_DC, _ABOVE,
        DSG_DERATE_HOT_DC, DSG_HT_P1_DC, _ABOVE,
        FORCE_CHG2_PCT, FORCE_CHG1_PCT, _ABOVE,
        FORCE_CHG1_PCT, FORCE_CHG_REL_PCT, _ABOVE,
    ]
    for k in range(0, len(order), 3):
        lo = order[k]
        hi = order[k + 1]
        if values[lo] >= values[hi]:
            if order[k + 2] == _BELOW:
                why = "%s must be below %s" % (name_of(lo), name_of(hi))
            else:
                why = "%s must be above %s" % (name_of(hi), name_of(lo))
            return "%s (%d vs %d)" % (why, values[lo], values[hi])
    return None


def _check_range(r, index, value):
    """ValueError with the reason when value is no integer or outside row
    index's minimum..maximum (r: rows())."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(name_of(index) + ": integer required")
    lo = row_int(r.MIN, index)
    hi = row_int(r.MAX, index)
    if value < lo or value > hi:
        raise ValueError("%s: %d outside %d..%d" % (name_of(index), value, lo, hi))


class Params:
    def __init__(self):
        self.v = defaults()

    def set(self, index, value):
        """Change one value; a value out of range, or one that breaks the
        order of levels or a release (validate), is refused with the reason
        (ValueError) and the running values stay as they were."""
        self.set_many(((index, value),))

    def set_many(self, pairs):
        """Apply (index, value) pairs all at once: range-checked one by one,
        the result validated as a whole; on any error nothing changes."""
        trial = array("i", self.v)
        r = rows()
        for index, value in pairs:
            _check_range(r, index, value)
            trial[index] = value
        r = None  # let go: a refusal's message imports bms.pnames
        reason = validate(trial)
        if reason is not None:
            raise ValueError(reason)
        for i in range(len(trial)):
            self.v[i] = trial[i]

    def set_by_name(self, name, value):
        self.set(index_of(name), value)
