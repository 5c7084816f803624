# Owns the Pylontech RS485 protocol (PROTOCOLS 2, V3.3/V3.5) on the battery's
# side: framing (`~` VER ADR CID1 CID2 LENGTH INFO CHKSUM `\r`, ASCII hex),
# LENGTH (LCHKSUM + LENID) and CHKSUM checks, and the replies to 4F, 51, 42,
# 44, 47, 92, 93, 96 and the V3.5 system commands 61-63 with the protocol's
# return codes, and the 0x42 block of one pack (put_pack, shared with the
# link's table of the other packs). Pure: a request's bytes in, the reply's
# length out (written into a preallocated buffer); no UART, no clock; no
# allocation per request.
from defs.const import const
from proto.wire import put_u16, put_i16, put_u24, div

SOI = const(0x7E)  # '~'
EOI = const(0x0D)  # '\r'
CID1 = const(0x46)
VERSIONS = (0x20, 0x25, 0x35)  # V2.0 framing (V3.3 documents) and the V3.5 variants seen
RTN_OK = const(0x00)
RTN_VER = const(0x01)
RTN_CHKSUM = const(0x02)
RTN_LCHKSUM = const(0x03)
RTN_CID2 = const(0x04)
RTN_FORMAT = const(0x05)
RTN_DATA = const(0x06)
RTN_ADR = const(0x90)
RTN_COMM = const(0x91)
FIRST_ADR = const(2)  # ADR 2 = first pack (the master), 3.. the next
ADR_ANY = const(0)  # python-pylontech asks 0x4F and 0x51 at ADR 0 (get_protocol_version, get_manufacturer_info)
ALL_PACKS = const(0xFF)  # 0x42 command value: every pack (module count, then each module)
INFOFLAG = const(0x00)  # 0x42/0x44/0x47 replies start with it (python-pylontech and FHEM skip INFO[0])

# 0x42 units (param inv_rs485_units_count)
UNITS_PYLON = const(0)  # 0.1 A, mAh: user-defined count 2, or 4 with 3-byte mAh fields above 65 Ah
UNITS_PACE = const(1)  # 10 mA, 10 mAh, count 2: what Pace-based "Pylontech compatible" BMSs send
_U16_MAH = const(0xFFFF)  # the largest count-2 capacity (65.535 Ah)

CMD_VERSION = const(0x4F)  # any VER accepted: the client asks which one we speak (FHEM sends VER 00)
CMD_MANUFACTURER = const(0x51)
CMD_ANALOG = const(0x42)
CMD_ALARM = const(0x44)
CMD_SYSPARAM = const(0x47)
CMD_MANAGEMENT = const(0x92)
CMD_SERIAL = const(0x93)
CMD_FIRMWARE = const(0x96)
CMD_SYS_ANALOG = const(0x61)
CMD_SYS_ALARM = const(0x62)
CMD_SYS_MANAGEMENT = const(0x63)
COMMANDS = (CMD_VERSION, CMD_MANUFACTURER, CMD_ANALOG, CMD_ALARM, CMD_SYSPARAM, CMD_MANAGEMENT,
            CMD_SERIAL, CMD_FIRMWARE, CMD_SYS_ANALOG, CMD_SYS_ALARM, CMD_SYS_MANAGEMENT)

_HEX = b"0123456789ABCDEF"


def lchksum(lenid):
    """Top nibble of LENGTH: sum of LENID's three nibbles mod 16, inverted, +1 (4 bits)."""
    s = (lenid & 0xF) + ((lenid >> 4) & 0xF) + ((lenid >> 8) & 0xF)
    return (~(s & 0xF) + 1) & 0xF


def length_field(n_chars):
    return (lchksum(n_chars) << 12) | (n_chars & 0xFFF)


def chksum(buf, start, end):
    """Sum of the ASCII codes buf[start:end] mod 65536, inverted, +1."""
    s = 0
    for i in range(start, end):
        s += buf[i]
    return (~(s & 0xFFFF) + 1) & 0xFFFF


def _nib(c):
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


def _hex2(out, i, b):
    out[i] = _HEX[b >> 4]
    out[i + 1] = _HEX[b & 15]


def hexbyte(buf, i):
    """The byte of two hex characters at buf[i], or -1."""
    a = _nib(buf[i])
    b = _nib(buf[i + 1])
    if a < 0 or b < 0:
        return -1
    return (a << 4) | b


class Request:
    """The last parsed request (reused)."""

    def __init__(self):
        self.ver = 0
        self.adr = 0
        self.cid1 = 0
        self.cid2 = 0
        self.info = bytearray(64)  # binary INFO
        self.info_len = 0
        self.rtn = RTN_OK  # what was wrong with it (RTN_OK = valid)


def parse(frame, n, req):
    """Parse frame[:n] (from '~' to '\\r' inclusive). Returns False when it is
    not a frame at all (no reply: silence); else True with req.rtn the return
    code to answer (RTN_OK when valid) and the header fields that could be read."""
    if n < 18 or frame[0] != SOI or frame[n - 1] != EOI:
        return False
    body = n - 6  # hex characters between '~' and CHKSUM
    if (n - 2) & 1:
        return False
    for i in range(1, n - 1):
        if _nib(frame[i]) < 0:
            return False
    req.ver = hexbyte(frame, 1)
    req.adr = hexbyte(frame, 3)
    req.cid1 = hexbyte(frame, 5)
    req.cid2 = hexbyte(frame, 7)
    req.info_len = 0
    got = (hexbyte(frame, n - 5) << 8) | hexbyte(frame, n - 3)
    if got != chksum(frame, 1, n - 5):
        req.rtn = RTN_CHKSUM
        return True
    if req.ver not in VERSIONS and req.cid2 != CMD_VERSION:
        req.rtn = RTN_VER
        return True
    length = (hexbyte(frame, 9) << 8) | hexbyte(frame, 11)
    lenid = length & 0xFFF
    if lchksum(lenid) != length >> 12 or lenid != body - 12:
        req.rtn = RTN_LCHKSUM
        return True
    if lenid & 1 or lenid // 2 > len(req.info):
        req.rtn = RTN_FORMAT
        return True
    for k in range(lenid // 2):
        req.info[k] = hexbyte(frame, 13 + 2 * k)
    req.info_len = lenid // 2
    if req.cid1 != CID1 or req.cid2 not in COMMANDS:
        req.rtn = RTN_CID2
        return True
    req.rtn = RTN_OK
    return True


def build_request(ver, adr, cid2, info=b""):
    """A request frame (tools and tests; allocates)."""
    out = bytearray(18 + 2 * len(info))
    n = encode_frame(out, ver, adr, CID1, cid2, info, len(info))
    return bytes(out[:n])


def encode_frame(out, ver, adr, cid1, cid2, info, info_len):
    """Write a whole frame into out; returns its length."""
    out[0] = SOI
    _hex2(out, 1, ver)
    _hex2(out, 3, adr)
    _hex2(out, 5, cid1)
    _hex2(out, 7, cid2)
    i = 9
    ln = length_field(2 * info_len)
    for sh in (12, 8, 4, 0):
        out[i] = _HEX[(ln >> sh) & 15]
        i += 1
    for k in range(info_len):
        _hex2(out, i, info[k])
        i += 2
    c = chksum(out, 1, i)
    for sh in (12, 8, 4, 0):
        out[i] = _HEX[(c >> sh) & 15]
        i += 1
    out[i] = EOI
    return i + 1


def put_pack(info, i, cells, c0, n_cells, temps, t0, n_temps, current_ma, voltage_mv, rem_mah,
             full_mah, cycles, units):
    """One pack's 0x42 data at info[i] (after INFOFLAG and the command value /
    module count); returns the offset after it. cells[c0:c0+n_cells] in mV;
    temps[t0:t0+n_temps] in 0.1 degC in the snapshot's order (defs.snapshot:
    cell NTCs, MOSFETs, board last). Fields as real Pylontech packs send them
    (a US2000B reply in the Pylontech RS232 document, section 5, read by
    python-pylontech get_values_fmt and FHEM 70_PylonLowVoltage
    _callAnalogValue, PROTOCOLS 7): cell count, cells mV; temperature count,
    the BMS board's first, then the cells'; all in 0.1 K with offset 2731;
    current 0.1 A signed, charge positive; module voltage mV; remaining
    capacity, user-defined count, total capacity, cycles; count 4 adds
    remaining and total as 3-byte mAh (packs over 65 Ah: FHEM "2: <= 65Ah,
    4: > 65Ah", python-pylontech _OptionalFields). UNITS_PACE: 10 mA /
    10 mAh, count 2."""
    info[i] = n_cells
    i += 1
    for k in range(n_cells):
        put_u16(info, i, cells[c0 + k])
        i += 2
    info[i] = n_temps
    i += 1
    first = 0
    if n_temps > 1:
        first = n_temps - 1  # the board channel is the snapshot's last
        put_u16(info, i, temps[t0 + first] + 2731)
        i += 2
    for k in range(n_temps):
        if k != first or n_temps == 1:
            put_u16(info, i, temps[t0 + k] + 2731)
            i += 2
    if units == UNITS_PACE:
        put_i16(info, i, div(current_ma, 10))
        put_u16(info, i + 2, voltage_mv)
        put_u16(info, i + 4, rem_mah // 10)
        info[i + 6] = 2
        put_u16(info, i + 7, full_mah // 10)
        put_u16(info, i + 9, cycles)
        return i + 11
    put_i16(info, i, div(current_ma, 100))
    put_u16(info, i + 2, voltage_mv)
    put_u16(info, i + 4, rem_mah)
    put_u16(info, i + 7, full_mah)
    put_u16(info, i + 9, cycles)
    if full_mah <= _U16_MAH:
        info[i + 6] = 2
        return i + 11
    info[i + 6] = 4
    put_u24(info, i + 11, rem_mah)
    put_u24(info, i + 14, full_mah)
    return i + 17


class Framer:
    """Collects bytes from a serial line into frames ('~' ... '\\r'); bytes
    outside a frame are dropped, an overlong frame is dropped whole."""

    def __init__(self, size=160):
        self.buf = bytearray(size)
        self.n = 0
        self.inside = False
        self.dropped = 0

    def feed(self, b):
        """One byte; returns the frame length when b completed a frame, else 0."""
        if b == SOI:
            if self.inside:
                self.dropped += 1
            self.inside = True
            self.buf[0] = b
            self.n = 1
            return 0
        if not self.inside:
            self.dropped += 1
            return 0
        if self.n >= len(self.buf):
            self.inside = False
            self.dropped += 1
            return 0
        self.buf[self.n] = b
        self.n += 1
        if b == EOI:
            self.inside = False
            return self.n
        return 0
