# Owns the SunSpec-compatible read map (PROTOCOLS 8): 'SunS' at 40000, then
# model 1 (common), 802 (battery base: the system, bms.system.SystemView),
# 803 (lithium-ion bank: the system; string k = the pack at link address k,
# from the master's pack table bms.parallel.Table: parallel packs are
# parallel strings of one 16-cell module each), 804 (lithium-ion string: this
# pack's string, its one module), 805 (lithium-ion module: this pack and its
# 16 cells, PackState), the end marker; the point offsets (<prefix>_<point
# name>, registers from the model's ID register, or from the start of a
# repeating row; host_tests/test_modbus_sunspec.py checks every one against
# pysunspec2's model JSON) and the fill of one segment (a model, or the
# head or one string row of 803) from the state, computed on each read
# (nothing held but one segment's scratch). 803 always has MAX_STRINGS rows
# (fixed addresses for clients with a static register list): a row of no
# pack has StrNMod 0; a pack the master lost has StrEvt1 COMMUNICATION_ERROR.
# "Not implemented" values as SunSpec says: 0xFFFF uint16/enum16/bitfield16,
# 0x8000 int16/sunssf, 0xFFFFFFFF uint32/bitfield32, NUL strings.
from defs import codes
from defs.snapshot import N_CELLS, N_CELL_TEMPS
from proto.link import F_HOLD, F_CHG_FET, F_DSG_FET
from proto.wire import put_u16, put_i16, div

from defs.const import const

BASE = const(40000)  # PDU address of 'SunS' (pysunspec2 tries 40000, then 0 and 50000)
NI16 = const(0xFFFF)
NI_S16 = const(-32768)
MODEL_1 = const(1)
MODEL_802 = const(802)
MODEL_803 = const(803)
MODEL_804 = const(804)
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

# model 803, lithium-ion bank, then MAX_STRINGS rows of S_*
K_ID = const(0)
K_L = const(1)
K_NStr = const(2)
K_NStrCon = const(3)
K_ModTmpMax = const(4)
K_ModTmpMaxStr = const(5)
K_ModTmpMaxMod = const(6)
K_ModTmpMin = const(7)
K_ModTmpMinStr = const(8)
K_ModTmpMinMod = const(9)
K_ModTmpAvg = const(10)
K_StrVMax = const(11)
K_StrVMaxStr = const(12)
K_StrVMin = const(13)
K_StrVMinStr = const(14)
K_StrVAvg = const(15)
K_StrAMax = const(16)
K_StrAMaxStr = const(17)
K_StrAMin = const(18)
K_StrAMinStr = const(19)
K_StrAAvg = const(20)
K_NCellBal = const(21)
K_CellV_SF = const(22)  # CellV, ModTmp, A, SoH, SoC, V scale factors: 22..27
K_STRINGS = const(28)
S_StrNMod = const(0)
S_StrSt = const(1)
S_StrConFail = const(3)
S_StrSoC = const(4)
S_StrSoH = const(5)
S_StrA = const(6)
S_StrCellVMax = const(7)
S_StrCellVMaxMod = const(8)
S_StrCellVMin = const(9)
S_StrCellVMinMod = const(10)
S_StrCellVAvg = const(11)
S_StrModTmpMax = const(12)
S_StrModTmpMaxMod = const(13)
S_StrModTmpMin = const(14)
S_StrModTmpMinMod = const(15)
S_StrModTmpAvg = const(16)
S_StrDisRsn = const(17)
S_StrConSt = const(18)
S_StrEvt1 = const(20)
S_StrEvt2 = const(22)
S_StrEvtVnd1 = const(24)
S_StrEvtVnd2 = const(26)
S_StrSetEna = const(28)
S_StrSetCon = const(29)
S_Pad1 = const(30)
S_Pad2 = const(31)
STRING_REGS = const(32)
MAX_STRINGS = const(32)  # proto.link.MAX_PACKS: string k = link address k
L_803 = const(K_STRINGS - 2 + MAX_STRINGS * STRING_REGS)

# model 804, lithium-ion string (this pack), then its one module row of R_*
G_ID = const(0)
G_L = const(1)
G_Idx = const(2)
G_NMod = const(3)
G_St = const(4)
G_ConFail = const(6)
G_NCellBal = const(7)
G_SoC = const(8)
G_DoD = const(9)
G_NCyc = const(10)
G_SoH = const(12)
G_A = const(13)
G_V = const(14)
G_CellVMax = const(15)
G_CellVMaxMod = const(16)
G_CellVMin = const(17)
G_CellVMinMod = const(18)
G_CellVAvg = const(19)
G_ModTmpMax = const(20)
G_ModTmpMaxMod = const(21)
G_ModTmpMin = const(22)
G_ModTmpMinMod = const(23)
G_ModTmpAvg = const(24)
G_Pad1 = const(25)
G_ConSt = const(26)
G_Evt1 = const(28)
G_Evt2 = const(30)
G_EvtVnd1 = const(32)
G_EvtVnd2 = const(34)
G_SetEna = const(36)
G_SetCon = const(37)
G_SoC_SF = const(38)  # SoC, SoH, DoD, A, V, CellV, ModTmp scale factors: 38..44
G_Pad2 = const(45)
G_Pad3 = const(46)
G_Pad4 = const(47)
G_MODULES = const(48)
R_ModNCell = const(0)
R_ModSoC = const(1)
R_ModSoH = const(2)
R_ModCellVMax = const(3)
R_ModCellVMaxCell = const(4)
R_ModCellVMin = const(5)
R_ModCellVMinCell = const(6)
R_ModCellVAvg = const(7)
R_ModCellTmpMax = const(8)
R_ModCellTmpMaxCell = const(9)
R_ModCellTmpMin = const(10)
R_ModCellTmpMinCell = const(11)
R_ModCellTmpAvg = const(12)
R_Pad5 = const(13)
R_Pad6 = const(14)
R_Pad7 = const(15)
MODULE_REGS = const(16)
L_804 = const(G_MODULES - 2 + MODULE_REGS)

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
_SF_803 = b"\xfd\xff\xff\x00\x00\xfe"  # CellV -3, ModTmp -1, A -1, SoH 0, SoC 0, V -2 (int8)
_SF_804 = b"\x00\x00\x00\xff\xfe\xfd\xff"  # SoC 0, SoH 0, DoD 0, A -1, V -2, CellV -3, ModTmp -1

# the layout: the first register of 'SunS', model 1, 802, 803 (its head, then
# each string row), 804, 805, the end marker; the segments the reads fill
SUNS = const(BASE)
AT_1 = const(BASE + 2)
AT_802 = const(AT_1 + 2 + L_1)
AT_803 = const(AT_802 + 2 + L_802)
AT_803_ROWS = const(AT_803 + K_STRINGS)
AT_804 = const(AT_803 + 2 + L_803)
AT_805 = const(AT_804 + 2 + L_804)
AT_END = AT_805 + 2 + L_805
TOP = AT_END + 2  # first register past the map
SCRATCH_REGS = 2 + L_805  # the largest segment
# segment numbers (Host._fill): 'SunS', 1, 802, 803 head, 803 rows, then 804, 805, end
SEG_803 = const(3)
SEG_ROW0 = const(4)
SEG_804 = const(SEG_ROW0 + MAX_STRINGS)
SEG_805 = const(SEG_804 + 1)
SEG_END = const(SEG_805 + 1)


def segments():
    """The first register of every segment, then TOP (app.host makes it once)."""
    out = [SUNS, AT_1, AT_802, AT_803]
    for k in range(MAX_STRINGS):
        out.append(AT_803_ROWS + k * STRING_REGS)
    out += [AT_804, AT_805, AT_END, TOP]
    return tuple(out)

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
    _u(buf, B_CellVMaxStr, _string(view.max_cell_pack))
    _u(buf, B_CellVMaxMod, 1)
    _u(buf, B_CellVMin, view.min_cell_mv)
    _u(buf, B_CellVMinStr, _string(view.min_cell_pack))
    _u(buf, B_CellVMinMod, 1)
    _s(buf, B_A, div(ma, 100))
    _u(buf, B_AChaMax, div(view.ccl_ma, 100))
    _u(buf, B_ADisChaMax, div(view.dcl_ma, 100))
    _s(buf, B_W, div(div(ma, 100) * div(mv, 100), 1000))  # 0.1 A x 0.1 V / 1000 = 10 W


def _string(pack):
    """The string number of a system view's pack (its link address; 0, a
    single pack's view: 1)."""
    return pack if pack else 1


def _sfs(buf, reg, sfs):
    for k in range(len(sfs)):
        x = sfs[k]
        _s(buf, reg + k, x - 256 if x > 127 else x)


def _ni_s16(buf, reg, n):
    """n int16 (or pad) registers from reg: not implemented (0x8000)."""
    for k in range(n):
        _s(buf, reg + k, NI_S16)


def _temps(buf, snap, r_max, r_min, r_avg):
    """The cell NTCs' highest, lowest and mean reading (0.1 C) into r_max, r_min, r_avg."""
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
    _s(buf, r_max, hi)
    _s(buf, r_min, lo)
    _s(buf, r_avg, div(s, N_CELL_TEMPS))


def _cell_avg(snap):
    s = 0
    for c in range(N_CELLS):
        s += snap.cell_mv[c]
    return div(s, N_CELLS)


def _events(buf, r_evt1, r_vnd1, alarms, protections, faults):
    """Evt1, Evt2 (none), EvtVnd1 (alarms | protections << 16), EvtVnd2 (faults)
    from r_evt1 (Evt1, Evt2, EvtVnd1, EvtVnd2 follow each other in 803 and 804)."""
    _u32(buf, r_evt1, evt1(alarms, protections, faults))
    _u32(buf, r_evt1 + 2, 0)
    _u32(buf, r_vnd1, alarms | (protections << 16))
    _u32(buf, r_vnd1 + 2, faults)


def _present(t, a, master, own):
    """Row a of the pack table t: 2 a pack online, 1 a pack the master heard
    and lost, 0 none. A slave's table holds only its own row, which its
    reports fill (bms.system.own_row: the rated capacity is never 0 there)."""
    if t is None:
        return 0
    if master:
        return 2 if t.online[a] else (1 if t.seen[a] else 0)
    return 2 if a == own and t.cap_ah[a] else 0


def fill_803(buf, view, t, master, own):
    """Model 803's head (the registers before the string rows) for the system
    view; t: the pack table (bms.parallel.Table; None: no link), master: t
    holds the system, else only row own (this pack's)."""
    _ni(buf, K_STRINGS)
    _u(buf, K_ID, MODEL_803)
    _u(buf, K_L, L_803)
    _u(buf, K_NStr, MAX_STRINGS)
    _sfs(buf, K_CellV_SF, _SF_803)
    con = 0
    v_hi = v_lo = a_hi = a_lo = 0
    v_sum = a_sum = n = 0
    if t is not None:
        for a in range(1, MAX_STRINGS + 1):
            if _present(t, a, master, own) != 2:
                continue
            f = t.flags[a]
            if not f & F_HOLD and f & (F_CHG_FET | F_DSG_FET):
                con += 1
            v = t.voltage_mv[a]
            i = t.current_ma[a]
            if n == 0 or v > t.voltage_mv[v_hi]:
                v_hi = a
            if n == 0 or v < t.voltage_mv[v_lo]:
                v_lo = a
            if n == 0 or i > t.current_ma[a_hi]:
                a_hi = a
            if n == 0 or i < t.current_ma[a_lo]:
                a_lo = a
            v_sum += v
            a_sum += i
            n += 1
    _u(buf, K_NStrCon, con)
    if view.valid:
        _s(buf, K_ModTmpMax, view.max_temp_dc)
        _u(buf, K_ModTmpMaxStr, _string(view.max_temp_pack))
        _u(buf, K_ModTmpMaxMod, 1)
        _s(buf, K_ModTmpMin, view.min_temp_dc)
        _u(buf, K_ModTmpMinStr, _string(view.min_temp_pack))
        _u(buf, K_ModTmpMinMod, 1)
    else:
        _s(buf, K_ModTmpMax, NI_S16)
        _s(buf, K_ModTmpMin, NI_S16)
    _s(buf, K_ModTmpAvg, NI_S16)  # the table holds each pack's extremes only
    if n:
        _u(buf, K_StrVMax, div(t.voltage_mv[v_hi], 10))
        _u(buf, K_StrVMaxStr, v_hi)
        _u(buf, K_StrVMin, div(t.voltage_mv[v_lo], 10))
        _u(buf, K_StrVMinStr, v_lo)
        _u(buf, K_StrVAvg, div(v_sum // n, 10))
        _s(buf, K_StrAMax, div(t.current_ma[a_hi], 100))
        _u(buf, K_StrAMaxStr, a_hi)
        _s(buf, K_StrAMin, div(t.current_ma[a_lo], 100))
        _u(buf, K_StrAMinStr, a_lo)
        _s(buf, K_StrAAvg, div(div(a_sum, n), 100))
    else:
        for r in (K_StrAMax, K_StrAMin, K_StrAAvg):
            _s(buf, r, NI_S16)


def fill_803_string(buf, t, a, master, own):
    """String row a (1..MAX_STRINGS: the pack at link address a) of model 803
    from the pack table t (see fill_803): StrNMod 0 for no pack there; a pack
    the master heard before and lost: COMMUNICATION_ERROR, nothing else."""
    _ni(buf, STRING_REGS)
    _ni_s16(buf, S_Pad1, 2)
    p = _present(t, a, master, own)
    if p == 0:
        _u(buf, S_StrNMod, 0)
        _u32(buf, S_StrSt, 0)
        _s(buf, S_StrA, NI_S16)
        for r in (S_StrModTmpMax, S_StrModTmpMin, S_StrModTmpAvg):
            _s(buf, r, NI_S16)
        return
    _u(buf, S_StrNMod, 1)
    for r in (S_StrA, S_StrModTmpMax, S_StrModTmpMin, S_StrModTmpAvg):
        _s(buf, r, NI_S16)
    if p == 1:
        _u32(buf, S_StrSt, 0)
        _u32(buf, S_StrEvt1, 1)  # COMMUNICATION_ERROR
        return
    f = t.flags[a]
    fets = (1 if f & F_CHG_FET else 0) | (2 if f & F_DSG_FET else 0)
    _u32(buf, S_StrSt, (0 if f & F_HOLD else 1) | (2 if fets else 0))
    _u32(buf, S_StrConSt, fets)  # contactor 0: the charge FET, 1: the discharge FET
    _u(buf, S_StrSoC, t.soc_pct[a])
    _u(buf, S_StrSoH, t.soh_pct[a])
    _s(buf, S_StrA, div(t.current_ma[a], 100))
    _u(buf, S_StrCellVMax, t.max_cell_mv[a])
    _u(buf, S_StrCellVMaxMod, 1)
    _u(buf, S_StrCellVMin, t.min_cell_mv[a])
    _u(buf, S_StrCellVMinMod, 1)
    _u(buf, S_StrCellVAvg, div(t.voltage_mv[a], N_CELLS))
    _s(buf, S_StrModTmpMax, t.max_temp_dc[a])
    _u(buf, S_StrModTmpMaxMod, 1)
    _s(buf, S_StrModTmpMin, t.min_temp_dc[a])
    _u(buf, S_StrModTmpMinMod, 1)
    _events(buf, S_StrEvt1, S_StrEvtVnd1, t.alarms[a], t.protections[a], t.faults[a])


def fill_804(buf, st, string):
    """Model 804 for this pack's string (PackState), string number `string`
    (its link address, 1..), with its one module (this pack)."""
    _ni(buf, 2 + L_804)
    _u(buf, G_ID, MODEL_804)
    _u(buf, G_L, L_804)
    _u(buf, G_Idx, string)
    _u(buf, G_NMod, 1)
    _sfs(buf, G_SoC_SF, _SF_804)
    _ni_s16(buf, G_Pad1, 1)
    _ni_s16(buf, G_Pad2, 3)
    r = G_MODULES
    _ni_s16(buf, r + R_Pad5, 3)
    _u(buf, r + R_ModNCell, N_CELLS)
    fets = (1 if st.chg_fet else 0) | (2 if st.dsg_fet else 0)
    _u32(buf, G_St, (0 if st.link_hold else 1) | (2 if fets else 0))
    _u32(buf, G_ConSt, fets)
    bal = st.balance_mask
    n_bal = 0
    for c in range(N_CELLS):
        n_bal += (bal >> c) & 1
    _u(buf, G_NCellBal, n_bal)
    _events(buf, G_Evt1, G_EvtVnd1, st.alarms, st.protections, st.faults)
    snap = st.snap
    if not snap.reads:
        _ni_s16(buf, G_A, 1)
        _ni_s16(buf, G_ModTmpMax, 1)
        _ni_s16(buf, G_ModTmpMin, 1)
        _ni_s16(buf, G_ModTmpAvg, 1)
        _ni_s16(buf, r + R_ModCellTmpMax, 1)
        _ni_s16(buf, r + R_ModCellTmpMin, 1)
        _ni_s16(buf, r + R_ModCellTmpAvg, 1)
        return
    soc = st.soc_pct
    _u(buf, G_SoC, soc)
    _u(buf, G_DoD, 100 - soc)
    _u32(buf, G_NCyc, st.cycles)
    _u(buf, G_SoH, st.soh_pct)
    _s(buf, G_A, div(st.current_ma, 100))
    _u(buf, G_V, div(snap.stack_mv, 10))
    avg = _cell_avg(snap)
    _u(buf, G_CellVMaxMod, 1)
    _u(buf, G_CellVMinMod, 1)
    _u(buf, G_CellVMax, snap.max_cell_mv)
    _u(buf, G_CellVMin, snap.min_cell_mv)
    _u(buf, G_CellVAvg, avg)
    _temps(buf, snap, G_ModTmpMax, G_ModTmpMin, G_ModTmpAvg)
    _u(buf, G_ModTmpMaxMod, 1)
    _u(buf, G_ModTmpMinMod, 1)
    _u(buf, r + R_ModSoC, soc)
    _u(buf, r + R_ModSoH, st.soh_pct)
    _u(buf, r + R_ModCellVMax, snap.max_cell_mv)
    _u(buf, r + R_ModCellVMaxCell, snap.max_cell + 1)
    _u(buf, r + R_ModCellVMin, snap.min_cell_mv)
    _u(buf, r + R_ModCellVMinCell, snap.min_cell + 1)
    _u(buf, r + R_ModCellVAvg, avg)
    _temps(buf, snap, r + R_ModCellTmpMax, r + R_ModCellTmpMin, r + R_ModCellTmpAvg)  # no cell per NTC


def fill_805(buf, st, serial, string):
    """Model 805 for this pack (PackState), the one module of string `string`
    (its link address, 1..)."""
    _ni(buf, 2 + L_805)
    _u(buf, M_ID, MODEL_805)
    _u(buf, M_L, L_805)
    for k in range(len(_SF_805)):
        _s(buf, M_SoC_SF + k, _SF_805[k])
    _u(buf, M_StrIdx, string)
    _u(buf, M_ModIdx, 1)
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
    _u(buf, M_CellVAvg, _cell_avg(snap))
    _temps(buf, snap, M_CellTmpMax, M_CellTmpMin, M_CellTmpAvg)
