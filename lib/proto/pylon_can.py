# Owns the inverter CAN frames (PROTOCOLS 1, SPEC 8): the Pylontech low-voltage
# family frame set (protocol ID 1: Deye/Sunsynk/Sol-Ark, Goodwe, Solis, Growatt
# LV, LuxPower, ...) and the Victron/SMA/Studer/Sofar set (protocol ID 0: the
# Pylon frames plus 0x35A alarms/warnings, 0x35F, 0x370-0x373, 0x379), encoded
# from a bms.system.SystemView into preallocated buffers (proto.wire; no
# allocation per period). Pure: no bus, no clock. All fields little-endian.
# tools/dbc/bms_inverter.dbc describes every frame (tests decode with it).
# Quirks handled here: CVL is never 0; with CCL 0 the CVL is at most the present
# voltage (Deye W31, Victron's "Pylontech CVL <= 55 V with CCL 0" rule); 0x35E
# starts "PYLON" (Deye accepts nothing else).
from defs.const import const
from defs import codes
from proto.wire import put_u16le as _h, put_i16le as _s, div
from defs.codes import FC_I, FC_II, FC_FULL, FC_RECHARGE

PROTO_VICTRON_SMA = const(0)
PROTO_PYLON = const(1)
PROTO_SCHNEIDER = const(2)  # reserved: no reliable public source (README)

ID_LIMITS = const(0x351)
ID_SOC = const(0x355)
ID_MEAS = const(0x356)
ID_FLAGS = const(0x359)
ID_ALARMS = const(0x35A)
ID_REQUEST = const(0x35C)
ID_NAME = const(0x35E)
ID_INFO = const(0x35F)
ID_NAME1 = const(0x370)
ID_NAME2 = const(0x371)
ID_MODULES = const(0x372)
ID_CELLS = const(0x373)
ID_CAPACITY = const(0x379)
# inverter -> battery
ID_INV_HEARTBEAT = const(0x305)
ID_INV_SMA2 = const(0x306)
ID_INV_VICTRON = const(0x307)

MANUFACTURER = b"PYLON   "  # Deye: must start "PYLON"
NAME1 = b"PYLON-LV"
NAME2 = b"16S LFP "
MODEL = const(1)
FW_VERSION = const(0x0100)

# (id, dlc) per protocol, in sending order
FRAMES_0 = ((ID_LIMITS, 8), (ID_SOC, 6), (ID_MEAS, 6), (ID_FLAGS, 7), (ID_ALARMS, 8),
            (ID_REQUEST, 2), (ID_NAME, 8), (ID_INFO, 8), (ID_NAME1, 8), (ID_NAME2, 8),
            (ID_MODULES, 8), (ID_CELLS, 8), (ID_CAPACITY, 2))
FRAMES_1 = ((ID_LIMITS, 6), (ID_SOC, 4), (ID_MEAS, 6), (ID_FLAGS, 7), (ID_REQUEST, 2),
            (ID_NAME, 8), (ID_CAPACITY, 2))

_P = codes.PROTECTIONS
_A = codes.ALARMS
_F = codes.FAULTS


def _masks(protections, alarms):
    return codes.mask(_P, protections), codes.mask(_A, alarms)


# protections (0x359 byte 0/1, 0x35A alarms) beside the warnings of the same signal
P_OV, A_OV = _masks(("COVP", "POVP"), ("OV", "TOV"))
P_UV, A_UV = _masks(("CUVP", "PUVP"), ("UV", "TUV", "USOC"))
P_OT_DSG, A_OT_DSG = _masks(("DHTP", "MOS OT", "EOTP"), ("DOT", "EOT", "MOS OT"))
P_UT_DSG, A_UT_DSG = _masks(("DLTP", "EUTP"), ("DUT", "EUT"))
P_OT_CHG, A_OT_CHG = _masks(("CHTP",), ("COT",))
P_UT_CHG, A_UT_CHG = _masks(("CLTP",), ("CUT",))
P_DOCP, A_DOC = _masks(("DOCP",), ("DOC",))
P_COC, A_COC = _masks(("COCP",), ("COC",))
P_IMB, A_IMB = _masks(("IMB",), ("IMB",))
P_SCP = codes.mask(_P, ("SCP",))
P_OT = P_OT_CHG | P_OT_DSG
P_UT = P_UT_CHG | P_UT_DSG
P_DOC = P_DOCP | P_SCP
A_OT = A_OT_CHG | A_OT_DSG
A_UT = A_UT_CHG | A_UT_DSG
# faults
F_CONTACTOR = codes.mask(_F, ("CHG MOS", "DSG MOS", "PRECHARGE"))
F_IMB = codes.mask(_F, ("IMB",))
F_INTERNAL = ((1 << len(_F)) - 1) & ~F_CONTACTOR & ~F_IMB
F_COMM = codes.mask(_F, ("AFE",))


def safe_cvl(view, ccl_ma):
    """The CVL to send: never 0; with CCL 0 not above the present voltage."""
    cvl = view.cvl_mv
    v = view.voltage_mv
    if ccl_ma <= 0 and v > 0 and (cvl <= 0 or cvl > v):
        cvl = v
    if cvl <= 0:
        cvl = v if v > 0 else view.dvl_mv
    if cvl <= 0:
        cvl = 1  # nothing known: the smallest non-zero value
    return cvl


def _kelvin(dc):
    return div(dc + 2732, 10)


def _pair(active):
    return 1 if active else 2  # 01 active, 10 cleared/normal


class CanEncoder:
    """Fills the frames of one protocol from a SystemView. frames is a tuple of
    (id, bytearray); encode() rewrites them in place."""

    def __init__(self, protocol_id):
        self.protocol_id = protocol_id
        spec = FRAMES_1 if protocol_id == PROTO_PYLON else FRAMES_0
        self.frames = tuple((fid, bytearray(dlc)) for fid, dlc in spec)
        for fid, buf in self.frames:
            if fid == ID_NAME:
                buf[:] = MANUFACTURER
            elif fid == ID_NAME1:
                buf[:] = NAME1
            elif fid == ID_NAME2:
                buf[:] = NAME2

    def encode(self, view, safe=False):
        """safe: the inverter is lost: CCL and DCL 0, CVL at the present voltage."""
        for fid, buf in self.frames:
            _encode(fid, buf, view, safe)


def _encode(fid, buf, view, safe):
    if fid == ID_LIMITS:
        ccl = 0 if safe else view.ccl_ma
        dcl = 0 if safe else view.dcl_ma
        _h(buf, 0, div(safe_cvl(view, ccl), 100) or 1)
        _s(buf, 2, div(ccl, 100))
        _s(buf, 4, div(dcl, 100))
        if len(buf) == 8:
            _h(buf, 6, div(view.dvl_mv, 100))
    elif fid == ID_SOC:
        soc = view.soc_pct
        _h(buf, 0, soc)
        _h(buf, 2, view.soh_pct)
        if len(buf) == 6:
            _h(buf, 4, soc * 100)
    elif fid == ID_MEAS:
        _s(buf, 0, div(view.voltage_mv, 10))
        _s(buf, 2, div(view.current_ma, 100))
        _s(buf, 4, view.max_temp_dc)
    elif fid == ID_FLAGS:
        p = view.protections
        a = view.alarms
        f = view.faults
        b0 = ((2 if p & P_OV else 0) | (4 if p & P_UV else 0) | (8 if p & P_OT else 0)
              | (16 if p & P_UT else 0) | (128 if p & P_DOC else 0))
        b1 = (1 if p & P_COC else 0) | (8 if f else 0)
        b2 = ((2 if a & A_OV else 0) | (4 if a & A_UV else 0) | (8 if a & A_OT else 0)
              | (16 if a & A_UT else 0) | (128 if a & A_DOC else 0))
        b3 = (1 if a & A_COC else 0) | (8 if f & F_COMM else 0)
        buf[0] = b0
        buf[1] = b1
        buf[2] = b2
        buf[3] = b3
        buf[4] = view.packs_online & 0xFF
        buf[5] = 0x50  # "PN"
        buf[6] = 0x4E
    elif fid == ID_ALARMS:
        p = view.protections
        a = view.alarms
        f = view.faults
        _fields(buf, 0, _bit(0, p != 0 or f != 0) | _bit(1, p & P_OV) | _bit(2, p & P_UV)
                | _bit(3, p & P_OT_DSG) | _bit(4, p & P_UT_DSG) | _bit(5, p & P_OT_CHG)
                | _bit(6, p & P_UT_CHG) | _bit(7, p & P_DOCP) | _bit(8, p & P_COC)
                | _bit(9, f & F_CONTACTOR) | _bit(10, p & P_SCP) | _bit(11, f & F_INTERNAL)
                | _bit(12, (p & P_IMB) or (f & F_IMB)))
        _fields(buf, 4, _bit(0, a != 0) | _bit(1, a & A_OV) | _bit(2, a & A_UV) | _bit(3, a & A_OT_DSG)
                | _bit(4, a & A_UT_DSG) | _bit(5, a & A_OT_CHG) | _bit(6, a & A_UT_CHG)
                | _bit(7, a & A_DOC) | _bit(8, a & A_COC) | _bit(12, a & A_IMB))
    elif fid == ID_REQUEST:
        fc = view.force_charge
        b = ((128 if view.ccl_ma > 0 and not safe else 0) | (64 if view.dcl_ma > 0 and not safe else 0)
             | (32 if fc & (FC_I | FC_RECHARGE) else 0) | (16 if fc & FC_II else 0)
             | (8 if fc & FC_FULL else 0))
        buf[0] = b
        buf[1] = 0
    elif fid == ID_INFO:
        _h(buf, 0, MODEL)
        _h(buf, 2, FW_VERSION)
        _h(buf, 4, view.capacity_mah // 1000)
        _h(buf, 6, 0)
    elif fid == ID_MODULES:
        _h(buf, 0, view.packs_online)
        _h(buf, 2, view.packs_blocking_charge)
        _h(buf, 4, view.packs_blocking_discharge)
        _h(buf, 6, view.packs_offline)
    elif fid == ID_CELLS:
        _h(buf, 0, view.min_cell_mv)
        _h(buf, 2, view.max_cell_mv)
        _h(buf, 4, _kelvin(view.min_temp_dc))
        _h(buf, 6, _kelvin(view.max_temp_dc))
    elif fid == ID_CAPACITY:
        _h(buf, 0, view.capacity_mah // 1000)


def _bit(i, active):
    return (1 << i) if active else 0


def _fields(buf, off, active):
    """Thirteen 2-bit fields from the low bit of buf[off]; field i is active
    when bit i of active is set (no tuple of flags: this runs every period)."""
    b0 = b1 = b2 = b3 = 0
    for i in range(13):
        v = _pair(active & (1 << i)) << (2 * (i & 3))
        k = i >> 2
        if k == 0:
            b0 |= v
        elif k == 1:
            b1 |= v
        elif k == 2:
            b2 |= v
        else:
            b3 |= v
    buf[off] = b0
    buf[off + 1] = b1
    buf[off + 2] = b2
    buf[off + 3] = b3


# The CAN acceptance filter of the inverter's frames: 11-bit 0x304..0x307 (the
# three ids above and one unused; (id, mask, flags) as machine.CAN.set_filters
# takes it, flags 0: standard ids only, so no link frame matches)
CAN_FILTER = (0x304, 0x7FC, 0)


def is_inverter_frame(fid):
    return fid == ID_INV_HEARTBEAT or fid == ID_INV_SMA2 or fid == ID_INV_VICTRON
