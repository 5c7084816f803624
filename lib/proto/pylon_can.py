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

ID_BASE = const(0x300)  # every frame id above is ID_BASE | its low byte
# The frame set per protocol, in sending order: (id - ID_BASE, dlc) byte pairs
# (bytes constants: from ROMFS they stay in the image, no tuple on the heap)
# 0: 351/8 355/6 356/6 359/7 35A/8 35C/2 35E/8 35F/8 370/8 371/8 372/8 373/8 379/2
_SET_0 = const(b"\x51\x08\x55\x06\x56\x06\x59\x07\x5a\x08\x5c\x02\x5e\x08"
               b"\x5f\x08\x70\x08\x71\x08\x72\x08\x73\x08\x79\x02")
# 1: 351/6 355/4 356/6 359/7 35C/2 35E/8 379/2
_SET_1 = const(b"\x51\x06\x55\x04\x56\x06\x59\x07\x5c\x02\x5e\x08\x79\x02")

# protections (0x359 byte 0/1, 0x35A alarms) beside the warnings of the same signal
# (make deploy folds each into a const(); written out, so nothing else is left
# bound at import)
P_OV = codes.mask(codes.PROTECTIONS, ("COVP", "POVP"))
A_OV = codes.mask(codes.ALARMS, ("OV", "TOV"))
P_UV = codes.mask(codes.PROTECTIONS, ("CUVP", "PUVP"))
A_UV = codes.mask(codes.ALARMS, ("UV", "TUV", "USOC"))
P_OT_DSG = codes.mask(codes.PROTECTIONS, ("DHTP", "MOS OT", "EOTP"))
A_OT_DSG = codes.mask(codes.ALARMS, ("DOT", "EOT", "MOS OT"))
P_UT_DSG = codes.mask(codes.PROTECTIONS, ("DLTP", "EUTP"))
A_UT_DSG = codes.mask(codes.ALARMS, ("DUT", "EUT"))
P_OT_CHG = codes.mask(codes.PROTECTIONS, ("CHTP",))
A_OT_CHG = codes.mask(codes.ALARMS, ("COT",))
P_UT_CHG = codes.mask(codes.PROTECTIONS, ("CLTP",))
A_UT_CHG = codes.mask(codes.ALARMS, ("CUT",))
P_DOCP = codes.mask(codes.PROTECTIONS, ("DOCP",))
A_DOC = codes.mask(codes.ALARMS, ("DOC",))
P_COC = codes.mask(codes.PROTECTIONS, ("COCP",))
A_COC = codes.mask(codes.ALARMS, ("COC",))
P_IMB = codes.mask(codes.PROTECTIONS, ("IMB",))
A_IMB = codes.mask(codes.ALARMS, ("IMB",))
P_SCP = codes.mask(codes.PROTECTIONS, ("SCP",))
P_OT = P_OT_CHG | P_OT_DSG
P_UT = P_UT_CHG | P_UT_DSG
P_DOC = P_DOCP | P_SCP
A_OT = A_OT_CHG | A_OT_DSG
A_UT = A_UT_CHG | A_UT_DSG
# faults
F_CONTACTOR = codes.mask(codes.FAULTS, ("CHG MOS", "DSG MOS", "PRECHARGE"))
F_IMB = codes.mask(codes.FAULTS, ("IMB",))
F_INTERNAL = ((1 << len(codes.FAULTS)) - 1) & ~F_CONTACTOR & ~F_IMB
F_COMM = codes.mask(codes.FAULTS, ("AFE",))


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


class CanEncoder:
    """Fills the frames of one protocol from a SystemView: frames[k] (a
    memoryview of dlc bytes, all in one buffer) is sent with the id
    ID_BASE | spec[2 * k]; encode() rewrites them in place."""

    def __init__(self, protocol_id):
        spec = _SET_1 if protocol_id == PROTO_PYLON else _SET_0
        self.spec = spec
        n = 0
        for k in range(1, len(spec), 2):
            n += spec[k]
        data = memoryview(bytearray(n))
        frames = []
        n = 0
        for k in range(0, len(spec), 2):
            buf = data[n:n + spec[k + 1]]
            n += spec[k + 1]
            fid = ID_BASE | spec[k]
            if fid == ID_NAME:
                buf[:] = MANUFACTURER
            elif fid == ID_NAME1:
                buf[:] = NAME1
            elif fid == ID_NAME2:
                buf[:] = NAME2
            frames.append(buf)
        self.frames = tuple(frames)

    def encode(self, view, safe=False):
        """safe: the inverter is lost: CCL and DCL 0, CVL at the present voltage."""
        spec = self.spec
        frames = self.frames
        for k in range(len(frames)):
            _encode(ID_BASE | spec[2 * k], frames[k], view, safe)


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
        # bit i: field i of PROTOCOLS 1's order is active
        _fields(buf, 0, (1 if p or f else 0) | (2 if p & P_OV else 0) | (4 if p & P_UV else 0)
                | (8 if p & P_OT_DSG else 0) | (16 if p & P_UT_DSG else 0) | (32 if p & P_OT_CHG else 0)
                | (64 if p & P_UT_CHG else 0) | (128 if p & P_DOCP else 0) | (256 if p & P_COC else 0)
                | (512 if f & F_CONTACTOR else 0) | (1024 if p & P_SCP else 0) | (2048 if f & F_INTERNAL else 0)
                | (4096 if p & P_IMB or f & F_IMB else 0))
        _fields(buf, 4, (1 if a else 0) | (2 if a & A_OV else 0) | (4 if a & A_UV else 0)
                | (8 if a & A_OT_DSG else 0) | (16 if a & A_UT_DSG else 0) | (32 if a & A_OT_CHG else 0)
                | (64 if a & A_UT_CHG else 0) | (128 if a & A_DOC else 0) | (256 if a & A_COC else 0)
                | (4096 if a & A_IMB else 0))
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
        _h(buf, 4, div(view.min_temp_dc + 2732, 10))  # K
        _h(buf, 6, div(view.max_temp_dc + 2732, 10))
    elif fid == ID_CAPACITY:
        _h(buf, 0, view.capacity_mah // 1000)


def _fields(buf, off, active):
    """Thirteen 2-bit fields from the low bit of buf[off]; field i is active
    when bit i of active is set (no tuple of flags: this runs every period)."""
    b0 = b1 = b2 = b3 = 0
    for i in range(13):
        v = (1 if active & (1 << i) else 2) << (2 * (i & 3))  # 01 active, 10 cleared/normal
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
# three ids above, ID_INV_HEARTBEAT..ID_INV_VICTRON, and one unused; (id, mask, flags) as machine.CAN.set_filters
# takes it, flags 0: standard ids only, so no link frame matches)
CAN_FILTER = (0x304, 0x7FC, 0)

