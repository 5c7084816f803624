# Owns the pack-to-pack link protocol (SPEC 7): the messages parallel packs
# exchange, as 29-bit CAN frames on the shared Link CAN bus and as the same
# messages framed for an RS485 segment. Pure, no I/O; encoders fill a caller's
# buffer in place (no allocation), decoders read a buffer/memoryview.
#
# CAN id (29 bit): PREFIX << 24 | type << 16 | dst << 8 | src
#   PREFIX 0x1A marks link frames (inverter protocols use other ids);
#   addresses: 1 = master, 2..32 = slaves in chain order, 0 = none yet,
#   0xFF = broadcast.
# RS485 frame: SOF 0x7E, len (payload bytes, 0..8), type, src, dst, payload,
#   CRC-16/CCITT-FALSE (hi, lo) over len..payload. 7 + len bytes.
from defs.const import const
from proto.wire import get_u16, trunc  # noqa: F401 (get_u16: app.link reads HELLO in place)

PREFIX = const(0x1A)
BROADCAST = const(0xFF)
MASTER = const(1)
MAX_PACKS = const(32)

# message types
T_ADDR = const(0x01)  # RS485, Link OUT -> next Link IN: "you are address dst" (dst 0: no address yet)
T_HELLO = const(0x02)  # CAN, master -> all: system formed generation, packs, system voltage
T_STATUS = const(0x10)  # CAN, pack -> master: voltage, current, SOC, SOH, flags, capacity
T_LIMITS = const(0x11)  # CAN, pack -> master: CVL, CCL, DCL, DVL
T_EXTREMES = const(0x12)  # CAN, pack -> master: min/max cell mV, min/max temperature dC
T_INFO = const(0x13)  # CAN, pack -> master: cell/NTC indexes, alarms, protections, faults
T_CELLS = const(0x14)  # CAN, pack -> master (on REQ_CELLS): first index, count, 3 cells mV
T_TEMPS = const(0x15)  # CAN, pack -> master (on REQ_CELLS): first index, count, 3 NTCs dC
T_CAPACITY = const(0x16)  # CAN, pack -> master (on REQ_CELLS, before the NTCs): full capacity, cycles
T_CMD = const(0x20)  # CAN, master -> pack (or broadcast): command, argument
T_REQ = const(0x21)  # CAN, master -> pack: what (REQ_*), argument
# the types above and their payload bytes, in the same order (bytes constants:
# from ROMFS they stay in the image, where a tuple would be built on the heap)
TYPES = b"\x01\x02\x10\x11\x12\x13\x14\x15\x16\x20\x21"
LENGTHS = b"\x02\x08\x08\x08\x08\x08\x08\x08\x08\x02\x02"
PER_FRAME = const(3)  # cells or NTCs per T_CELLS/T_TEMPS frame

# T_ADDR flags
ADDR_MASTER_REACHED = const(1)  # the sender reaches an inverter-facing master upstream

# T_STATUS flags
F_CHG_OK = const(1)  # no protection/fault blocking charge
F_DSG_OK = const(2)
F_CHG_FET = const(4)
F_DSG_FET = const(8)
F_HOLD = const(16)  # the pack keeps its FETs open (voltage mismatch on joining)

# T_CMD commands
CMD_RESET_PROTECT = const(1)  # refused by every pack (a link frame proves nothing: the button resets)

# T_REQ requests
REQ_REPORTS = const(0)  # send STATUS, LIMITS, EXTREMES, INFO now
REQ_CELLS = const(1)  # send the capacity, every NTC temperature and cell voltage (T_CAPACITY, T_TEMPS, T_CELLS)


def length_of(typ):
    for i in range(len(TYPES)):
        if TYPES[i] == typ:
            return LENGTHS[i]
    return -1


# The CAN acceptance filter of link frames: 29-bit ids whose top five bits are
# PREFIX ((id, mask, flags) as machine.CAN.set_filters / drivers.mcp2515 take it;
# flags 2 = FLAG_EXT_ID)
CAN_FILTER = (PREFIX << 24, 0x1F << 24, 2)


def can_id(typ, src, dst):
    return (PREFIX << 24) | ((typ & 0xFF) << 16) | ((dst & 0xFF) << 8) | (src & 0xFF)


def valid_address(a):
    return 1 <= a <= MAX_PACKS


# --- payloads: one encoder (put_*) and one decoder (take_*) per message ----------
# (those of the reports and HELLO in bms.linkrows, imported at first need)
# STATUS:  voltage mV u16, current 10 mA i16, SOC % u8, SOH % u8, flags u8, capacity Ah u8
# LIMITS:  CVL mV u16, CCL 10 mA u16, DCL 10 mA u16, DVL mV u16
# EXTREMES: min cell mV u16, max cell mV u16, min temp dC i16, max temp dC i16
# INFO:    min cell idx << 4 | max cell idx u8, min NTC idx << 4 | max NTC idx u8,
#          alarms u16, protections u16, faults u16
# CAPACITY: full charge capacity mAh u24 (learned, else rated), cycles u16, 3 reserved (0)
# HELLO:   generation u8, packs online u8, system voltage mV u16, flags u8, 3 reserved
# ADDR:    flags u8 (ADDR_*), generation u8
# CMD:     command u8, argument u8
# REQ:     what u8 (REQ_*), argument u8
# CELLS:   first index u8, count u8, 3 x cell mV u16 (indexes first.. first+2; past count 0)
# TEMPS:   first index u8, count u8, 3 x NTC dC i16
# (tools/dbc/bms_link.dbc describes every CAN message but ADDR, which is RS485 only)
# The reports are encoded from, and decoded into, row a of a pack table t
# (bms.parallel.Table: arrays by address, named as the fields are).

def current_ma(ma):
    """ma as the STATUS current field carries it (10 mA, toward zero)."""
    return trunc(ma, 10) * 10


# HELLO's fields (the slaves read them in place: d[HELLO_GEN], get_u16(d, HELLO_MV))
HELLO_GEN = const(0)
HELLO_ONLINE = const(1)
HELLO_MV = const(2)
HELLO_FLAGS = const(4)


def put_pair(d, first, second):
    """ADDR (flags, generation), CMD (command, argument), REQ (what, argument)."""
    d[0] = first
    d[1] = second


# CRC-16/CCITT-FALSE (poly 0x1021) a nibble at a time: entry k (big endian at
# 2k) is what four shifts of the register make of a top nibble k. 32 bytes,
# not a byte-wise table's 512: from a .mpy a bytes constant is copied into
# the heap (issue 12); a frame is at most 13 bytes, its two look-ups a byte
# cost microseconds.
_CRC_TABLE = const(b"\x00\x00\x10\x21\x20\x42\x30\x63\x40\x84\x50\xa5\x60\xc6\x70\xe7"
                   b"\x81\x08\x91\x29\xa1\x4a\xb1\x6b\xc1\x8c\xd1\xad\xe1\xce\xf1\xef")


def crc16(buf, start, end, crc=0xFFFF):
    """CRC-16/CCITT-FALSE over buf[start:end] (no slicing)."""
    t = _CRC_TABLE
    for i in range(start, end):
        crc ^= buf[i] << 8
        j = (crc >> 11) & 0x1E
        crc = ((crc << 4) & 0xFFFF) ^ (t[j] << 8) ^ t[j + 1]
        j = (crc >> 11) & 0x1E
        crc = ((crc << 4) & 0xFFFF) ^ (t[j] << 8) ^ t[j + 1]
    return crc


SOF = const(0x7E)
RS485_MAX_LEN = const(8)  # payload bytes: a length byte above this is no link frame
RS485_MAX = 7 + RS485_MAX_LEN  # a whole frame


def rs485_frame(out, typ, src, dst, payload, n):
    """Frame a message into out (>= 6 + n bytes); returns the length."""
    out[0] = SOF
    out[1] = n
    out[2] = typ
    out[3] = src
    out[4] = dst
    for i in range(n):
        out[5 + i] = payload[i]
    c = crc16(out, 1, 5 + n)
    out[5 + n] = c >> 8
    out[6 + n] = c & 0xFF
    return 7 + n


class Rs485Parser:
    """Byte-by-byte RS485 link frame parser: feed(b) returns True when a
    complete frame with a good CRC and known type/length ends at b; then
    typ, src, dst, n and payload hold it, and buf the whole frame. payload is
    a view of buf: it holds the frame until the next byte is fed (the router
    hands the frame over at once, like a CAN frame's data). Garbage and bad
    frames are skipped (counted in bad)."""

    def __init__(self):
        self.buf = bytearray(RS485_MAX + 1)
        self.pos = 0
        self.typ = 0
        self.src = 0
        self.dst = 0
        self.n = 0
        self.payload = memoryview(self.buf)[5:5 + RS485_MAX_LEN]
        self.bad = 0

    def feed(self, b):
        buf = self.buf
        p = self.pos
        if p == 0:
            if b == SOF:
                buf[0] = b
                self.pos = 1
            return False
        if p == 1 and b > 8:
            self.bad += 1
            self.pos = 1 if b == SOF else 0
            return False
        buf[p] = b
        p += 1
        self.pos = p
        if p < 7 + buf[1]:
            return False
        self.pos = 0
        n = buf[1]
        if crc16(buf, 1, 5 + n) != (buf[5 + n] << 8) | buf[6 + n] or length_of(buf[2]) != n:
            self.bad += 1
            return False
        self.typ = buf[2]
        self.src = buf[3]
        self.dst = buf[4]
        self.n = n
        return True
