# Owns the SunSpec-compatible read map (PROTOCOLS 8): 'SunS' at 40000, then
# model 1 (common), 802 (battery base: the system, bms.system.SystemView),
# 805 (lithium-ion module: this pack and its 16 cells, PackState), the end
# marker; the point offsets (<prefix>_<point name>, registers from the model's
# ID register; host_tests/test_modbus_sunspec.py checks every one against
# pysunspec2's model JSON) and the fill of one model's registers from the
# state, computed on each read (nothing held but one model's scratch).
# "Not implemented" values as SunSpec says: 0xFFFF uint16/enum16/bitfield16,
# 0x8000 int16/sunssf, 0xFFFFFFFF uint32/bitfield32, NUL strings.
from defs import codes
from defs.snapshot import N_CELLS, N_CELL_TEMPS
from proto.wire import put_u16, put_i16, div

from defs.const import const

BASE = const(40000)  # PDU address of 'SunS' (pysunspec2 tries 40000, then 0 and 50000)
NI16 = const(0xFFFF)
NI_S16 = const(-32768)
MODEL_1 = const(1)
MODEL_802 = const(802)
MODEL_805 = const(805)
END = const(0xFFFF)

# model 1, common
C_ID = const(0)
C_L = const(1)
C_Mn = const(2)
C_Md = const(18)
C_Opt = const(34)
C_Vr = const(42)
C_SN = const(50)
C_DA = const(66)
C_Pad = const(67)
L_1 = const(66)

# model 802, battery base
B_ID = const(0)
B_L = const(1)
B_AHRtg = const(2)
B_WHRtg = const(3)
B_WChaRteMax = const(4)
B_WDisChaRteMax = const(5)
B_SoC = const(11)
B_DoD = const(12)
B_SoH = const(13)
B_NCyc = const(14)
B_ChaSt = const(16)
B_LocRemCtl = const(17)
B_AlmRst = const(20)
B_Typ = const(21)
B_State = const(22)
B_StateVnd = const(23)
B_Evt1 = const(26)
B_Evt2 = const(28)
B_EvtVnd1 = const(30)
B_EvtVnd2 = const(32)
B_V = const(34)
B_VMax = const(35)
B_VMin = const(36)
B_CellVMax = const(37)
B_CellVMaxStr = const(38)
B_CellVMaxMod = const(39)
B_CellVMin = const(40)
B_CellVMinStr = const(41)
B_CellVMinMod = const(42)
B_A = const(44)
B_AChaMax = const(45)
B_ADisChaMax = const(46)
B_W = const(47)
B_ReqW = const(49)
B_SetOp = const(50)
B_AHRtg_SF = const(52)  # the scale factors: 52..63, in the JSON's order
B_W_SF = const(63)
L_802 = const(62)

# model 805, lithium-ion module, then N_CELLS rows of (CellV, CellTmp, CellSt x2)
M_ID = const(0)
M_L = const(1)
M_StrIdx = const(2)
M_ModIdx = const(3)
M_NCell = const(4)
M_SoC = const(5)
M_DoD = const(6)
M_SoH = const(7)
M_NCyc = const(8)
M_V = const(10)
M_CellVMax = const(11)
M_CellVMaxCell = const(12)
M_CellVMin = const(13)
M_CellVMinCell = const(14)
M_CellVAvg = const(15)
M_CellTmpMax = const(16)
M_CellTmpMaxCell = const(17)
M_CellTmpMin = const(18)
M_CellTmpMinCell = const(19)
M_CellTmpAvg = const(20)
M_NCellBal = const(21)
M_SN = const(22)
M_SoC_SF = const(38)  # SoC, SoH, DoD, V, CellV, Tmp scale factors: 38..43
M_CELLS = const(44)
CELL_REGS = const(4)  # CellV, CellTmp, CellSt (bitfield32)
L_805 = 42 + N_CELLS * CELL_REGS

# the scale factors (value = register x 10^SF)
_SF_802 = (0, 1, 1, NI_S16, 0, 0, 0, -2, -3, -1, -1, 1)  # AHRtg WHRtg WChaDisChaMax DisChaRte SoC DoD SoH V CellV A AMax W
_SF_805 = (0, 0, 0, -2, -3, -1)  # SoC SoH DoD V CellV Tmp

# the layout: (first register, registers) of 'SunS', model 1, 802, 805 and the end marker
SUNS = const(BASE)
AT_1 = const(BASE + 2)
AT_802 = const(AT_1 + 2 + L_1)
AT_805 = const(AT_802 + 2 + L_802)
AT_END = AT_805 + 2 + L_805
TOP = AT_END + 2  # first register past the map
SCRATCH_REGS = 2 + L_805  # the largest block

NOMINAL_CELL_MV = const(3200)  # LiFePO4 nominal cell voltage (cell makers' datasheets: 3.2 V)

# SunSpec 802 Evt1 bits from our codes (model_802.json symbols): each entry is
# (Evt1 bit, codes table, our bit names); a bit is set when any named bit is.
_EVT1 = (
    (0, codes.ALARMS, ("PARALLEL",)),  # COMMUNICATION_ERROR
    (1, codes.PROTECTIONS, ("CHTP", "DHTP", "EOTP", "MOS OT")),  # OVER_TEMP_ALARM
    (2, codes.ALARMS, ("COT", "DOT", "EOT", "MOS OT")),  # OVER_TEMP_WARNING
    (3, codes.PROTECTIONS, ("CLTP", "DLTP", "EUTP")),  # UNDER_TEMP_ALARM
    (4, codes.ALARMS, ("CUT", "DUT", "EUT")),  # UNDER_TEMP_WARNING
    (5, codes.PROTECTIONS, ("COCP",)),  # OVER_CHARGE_CURRENT_ALARM
    (6, codes.ALARMS, ("COC",)),  # OVER_CHARGE_CURRENT_WARNING
    (7, codes.PROTECTIONS, ("DOCP", "SCP")),  # OVER_DISCHARGE_CURRENT_ALARM
    (8, codes.ALARMS, ("DOC",)),  # OVER_DISCHARGE_CURRENT_WARNING
    (9, codes.PROTECTIONS, ("COVP", "POVP")),  # OVER_VOLT_ALARM
    (10, codes.ALARMS, ("OV", "TOV")),  # OVER_VOLT_WARNING
    (11, codes.PROTECTIONS, ("CUVP", "PUVP")),  # UNDER_VOLT_ALARM
    (12, codes.ALARMS, ("UV", "TUV")),  # UNDER_VOLT_WARNING
    (14, codes.ALARMS, ("USOC",)),  # UNDER_SOC_MIN_WARNING
    (17, codes.ALARMS, ("IMB",)),  # VOLTAGE_IMBALANCE_WARNING
    (20, codes.FAULTS, ("CHG MOS", "DSG MOS", "PRECHARGE")),  # CONTACTOR_ERROR
    (25, codes.FAULTS, ("CELL", "NTC", "SAMPLE", "AFE", "REVERSED", "IMB", "CURRENT", "STORE")),  # OTHER_ALARM
)
# the same as (Evt1 bit, table 0 alarms / 1 protections / 2 faults, mask), made at import
_TABLES = (codes.ALARMS, codes.PROTECTIONS, codes.FAULTS)
EVT1_MAP = tuple((b, _TABLES.index(t), codes.mask(t, names)) for b, t, names in _EVT1)
del _EVT1

# 802 ChaSt and State enums (model_802.json)
CHA_OFF = const(1)
CHA_EMPTY = const(2)
CHA_DISCHARGING = const(3)
CHA_CHARGING = const(4)
CHA_FULL = const(5)
CHA_HOLDING = const(6)
ST_DISCONNECTED = const(1)
ST_INITIALIZING = const(2)
ST_CONNECTED = const(3)
ST_STANDBY = const(4)
ST_FAULT = const(99)
TYP_LITHIUM_ION = const(4)
LOC_LOCAL = const(1)
OP_CONNECT = const(1)
OP_DISCONNECT = const(2)


def _ni(buf, regs):
    for i in range(2 * regs):
        buf[i] = 0xFF


def _u32(buf, reg, v):
    put_u16(buf, 2 * reg, v >> 16)
    put_u16(buf, 2 * reg + 2, v & 0xFFFF)


def _text(buf, reg, regs, s):
    o = 2 * reg
    for i in range(2 * regs):
        buf[o + i] = s[i] if i < len(s) else 0


def _u(buf, reg, v):
    put_u16(buf, 2 * reg, v)


def _s(buf, reg, v):
    put_i16(buf, 2 * reg, v)


def evt1(alarms, protections, faults):
    """SunSpec 802 Evt1 from our alarm, protection and fault bits."""
    e = 0
    for b, t, m in EVT1_MAP:
        bits = alarms if t == 0 else (protections if t == 1 else faults)
        if bits & m:
            e |= 1 << b
    return e


def fill_suns(buf):
    _text(buf, 0, 2, b"SunS")


def fill_end(buf):
    """The end marker: id 0xFFFF, length 0."""
    _u(buf, 0, END)
    _u(buf, 1, 0)


def fill_common(buf, maker, model, version, serial, unit):
    _ni(buf, 2 + L_1)
    _u(buf, C_ID, MODEL_1)
    _u(buf, C_L, L_1)
    _text(buf, C_Mn, 16, maker)
    _text(buf, C_Md, 16, model)
    _text(buf, C_Opt, 8, b"")
    _text(buf, C_Vr, 8, version)
    _text(buf, C_SN, 16, serial)
    _u(buf, C_DA, unit)
    _s(buf, C_Pad, NI_S16)


def fill_802(buf, view, st):
    """Model 802 for the system (view); the state names this pack's mode and FETs."""
    _ni(buf, 2 + L_802)
    _u(buf, B_ID, MODEL_802)
    _u(buf, B_L, L_802)
    for k in range(len(_SF_802)):
        _s(buf, B_AHRtg_SF + k, _SF_802[k])
    _s(buf, B_ReqW, NI_S16)
    cap = view.capacity_mah
    _u(buf, B_AHRtg, div(cap, 1000))
    _u(buf, B_WHRtg, div((cap // 100) * (N_CELLS * NOMINAL_CELL_MV // 100), 100000))  # 10 Wh
    _u(buf, B_LocRemCtl, LOC_LOCAL)
    _u(buf, B_AlmRst, 0)
    _u(buf, B_Typ, TYP_LITHIUM_ION)
    _u(buf, B_StateVnd, st.mode)
    e = evt1(view.alarms, view.protections, view.faults)
    _u32(buf, B_Evt1, e)
    _u32(buf, B_Evt2, 0)
    _u32(buf, B_EvtVnd1, view.alarms | (view.protections << 16))
    _u32(buf, B_EvtVnd2, view.faults)
    connected = st.chg_fet or st.dsg_fet
    _u(buf, B_SetOp, OP_CONNECT if connected else OP_DISCONNECT)
    if not view.valid:
        _s(buf, B_A, NI_S16)
        _s(buf, B_W, NI_S16)
        _u(buf, B_State, ST_INITIALIZING)
        return
    soc = view.soc_pct
    mv = view.voltage_mv
    ma = view.current_ma
    _u(buf, B_WChaRteMax, (view.ccl_ma // 100) * (view.cvl_mv // 100) // 1000)  # 10 W
    _u(buf, B_WDisChaRteMax, (view.dcl_ma // 100) * (view.dvl_mv // 100) // 1000)
    _u(buf, B_SoC, soc)
    _u(buf, B_DoD, 100 - soc)
    _u(buf, B_SoH, view.soh_pct)
    if ma > 0:
        cha = CHA_FULL if soc >= 100 else CHA_CHARGING
    elif ma < 0:
        cha = CHA_EMPTY if soc <= 0 else CHA_DISCHARGING
    else:
        cha = CHA_FULL if soc >= 100 else (CHA_EMPTY if soc <= 0 else CHA_HOLDING)
    _u(buf, B_ChaSt, cha)
    if view.faults:
        state = ST_FAULT
    elif connected:
        state = ST_CONNECTED
    else:
        state = ST_DISCONNECTED
    _u(buf, B_State, state)
    _u(buf, B_V, div(mv, 10))
    _u(buf, B_VMax, div(view.cvl_mv, 10))
    _u(buf, B_VMin, div(view.dvl_mv, 10))
    _u(buf, B_CellVMax, view.max_cell_mv)
    _u(buf, B_CellVMaxStr, 1)
    _u(buf, B_CellVMaxMod, view.max_cell_pack + 1)
    _u(buf, B_CellVMin, view.min_cell_mv)
    _u(buf, B_CellVMinStr, 1)
    _u(buf, B_CellVMinMod, view.min_cell_pack + 1)
    _s(buf, B_A, div(ma, 100))
    _u(buf, B_AChaMax, div(view.ccl_ma, 100))
    _u(buf, B_ADisChaMax, div(view.dcl_ma, 100))
    _s(buf, B_W, div(div(ma, 100) * div(mv, 100), 1000))  # 0.1 A x 0.1 V / 1000 = 10 W


def fill_805(buf, st, serial, module):
    """Model 805 for this pack (PackState), module number `module` (1..)."""
    _ni(buf, 2 + L_805)
    _u(buf, M_ID, MODEL_805)
    _u(buf, M_L, L_805)
    for k in range(len(_SF_805)):
        _s(buf, M_SoC_SF + k, _SF_805[k])
    _u(buf, M_StrIdx, 1)
    _u(buf, M_ModIdx, module)
    _u(buf, M_NCell, N_CELLS)
    _text(buf, M_SN, 16, serial)
    snap = st.snap
    bal = st.balance_mask
    n_bal = 0
    for c in range(N_CELLS):
        r = M_CELLS + CELL_REGS * c
        _s(buf, r + 1, NI_S16)  # no per-cell temperature sensor
        on = (bal >> c) & 1
        n_bal += on
        _u32(buf, r + 2, on)
        if snap.reads:
            _u(buf, r, snap.cell_mv[c])
    _u(buf, M_NCellBal, n_bal)
    if not snap.reads:
        for r in (M_CellTmpMax, M_CellTmpMin, M_CellTmpAvg):
            _s(buf, r, NI_S16)
        return
    _u(buf, M_SoC, st.soc_pct)
    _u(buf, M_DoD, 100 - st.soc_pct)
    _u(buf, M_SoH, st.soh_pct)
    _u32(buf, M_NCyc, st.cycles)
    _u(buf, M_V, div(snap.stack_mv, 10))
    _u(buf, M_CellVMax, snap.max_cell_mv)
    _u(buf, M_CellVMaxCell, snap.max_cell + 1)
    _u(buf, M_CellVMin, snap.min_cell_mv)
    _u(buf, M_CellVMinCell, snap.min_cell + 1)
    s = 0
    for c in range(N_CELLS):
        s += snap.cell_mv[c]
    _u(buf, M_CellVAvg, div(s, N_CELLS))
    t = snap.temp_dc
    lo = hi = t[0]
    s = 0
    for i in range(N_CELL_TEMPS):
        v = t[i]
        s += v
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    _s(buf, M_CellTmpMax, hi)
    _s(buf, M_CellTmpMin, lo)
    _s(buf, M_CellTmpAvg, div(s, N_CELL_TEMPS))
