# Owns the Modbus wire format on the server's side (PROTOCOLS 8; Modbus
# Application Protocol V1.1b3 and Modbus over Serial Line V1.02): CRC-16/MODBUS,
# the RTU request framer (length from the function code, CRC check, reset on the
# inter-frame gap the caller tells), the RTU envelope of a reply, exception
# replies, and the request checks of the function codes the host handler
# serves (03, 04, 06, 0x10, 0x14, 0x15, 0x2B/0x0E, and the user-defined 0x41
# FC_UPDATE_BLOCK, below): counts, byte counts and
# lengths, in the order the specification's state diagrams check them; for the
# master's relay (app.relay) the framing of RTU replies and whether a reply
# answers a request. Pure: bytes in, lengths and a preallocated Request out;
# no allocation per request.
from array import array
from proto.wire import get_u16
from defs.ticks import ticks_diff

from defs.const import const

FC_READ_HOLDING = const(0x03)
FC_READ_INPUT = const(0x04)
FC_WRITE_SINGLE = const(0x06)
FC_WRITE_MULTIPLE = const(0x10)
FC_READ_FILE = const(0x14)
FC_WRITE_FILE = const(0x15)
FC_MEI = const(0x2B)
# user-defined (Application Protocol 5: 65-72, 100-110): one block of a
# firmware update (app.hostupd). Request: byte count N, block number u16, N - 2
# data bytes; normal reply: the block number (no echo of the data)
FC_UPDATE_BLOCK = const(0x41)
MEI_DEVICE_ID = const(0x0E)

EX_ILLEGAL_FUNCTION = const(0x01)
EX_ILLEGAL_ADDRESS = const(0x02)
EX_ILLEGAL_VALUE = const(0x03)
EX_DEVICE_FAILURE = const(0x04)

BROADCAST = const(0)  # unit 0: every server acts, none replies (Serial Line 2.2)
MAX_READ = const(125)  # FC03/04 quantity 1..125 (Application Protocol 6.3, 6.4)
MAX_WRITE = const(123)  # FC16 quantity 1..123 (6.12)
MAX_PDU = const(253)  # a PDU is at most 253 bytes (4.1)
MAX_ADU = const(256)  # address + PDU + CRC
FILE_REF_TYPE = const(6)  # FC20/21 sub-request reference type (6.14, 6.15)
MAX_RECORD = const(9999)  # record numbers 0..0x270F (6.14)

_POLY = const(0xA001)  # CRC-16/MODBUS, reflected 0x8005, initial 0xFFFF (Serial Line 6.2.2)


def _table():
    t = array("H", [0] * 256)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        t[i] = c
    return t


_T = _table()


def crc16(buf, n, crc=0xFFFF):
    """CRC-16/MODBUS of buf[:n]; sent low byte first. Over a frame with its CRC
    appended the result is 0."""
    t = _T
    for i in range(n):
        crc = (crc >> 8) ^ t[(crc ^ buf[i]) & 0xFF]
    return crc


def _length(buf, n):
    """The whole RTU request's length (address .. CRC) once buf[:n] tells it,
    0 while it does not yet, -1 for a function code of unknown layout (its end
    is where the running CRC becomes 0)."""
    fc = buf[1]
    if fc <= 0x06 or fc == 0x08:  # 01-06, 08: address(2) + quantity/value(2)
        return 8
    if fc == 0x0F or fc == FC_WRITE_MULTIPLE:  # ... + byte count + data
        return 9 + buf[6] if n >= 7 else 0
    if fc == FC_READ_FILE or fc == FC_WRITE_FILE or fc == FC_UPDATE_BLOCK:  # byte count + the rest
        return 5 + buf[2] if n >= 3 else 0
    if fc == 0x16:  # mask write: address, AND mask, OR mask
        return 10
    if fc == 0x17:  # read/write multiple: 4 x 2 bytes + byte count + data
        return 13 + buf[10] if n >= 11 else 0
    if fc == FC_MEI:  # 0x0E read device identification: MEI type, read code, object id
        return 7 if n < 3 or buf[2] == MEI_DEVICE_ID else -1
    if fc == 0x07 or fc == 0x0B or fc == 0x0C or fc == 0x11:  # no data
        return 4
    return -1


def _reply_length(buf, n):
    """The whole RTU reply's length (as _length, for a server's replies:
    Application Protocol 6 and 7)."""
    fc = buf[1]
    if fc & 0x80:  # exception: code
        return 5
    if fc == 0x05 or fc == FC_WRITE_SINGLE or fc == 0x08 or fc == 0x0B or fc == 0x0F or fc == FC_WRITE_MULTIPLE:
        return 8  # two words: echo, counters
    if fc <= 0x04 or fc == 0x0C or fc == 0x11 or fc == FC_READ_FILE or fc == FC_WRITE_FILE or fc == 0x17:
        return 5 + buf[2] if n >= 3 else 0  # byte count + data
    if fc == 0x07:  # exception status
        return 5
    if fc == 0x16:
        return 10
    if fc == FC_UPDATE_BLOCK:  # the block number
        return 6
    if fc == FC_MEI:  # MEI type, read code, conformity, more, next id, count, objects (id, length, value)
        if n >= 3 and buf[2] != MEI_DEVICE_ID:
            return -1
        if n < 8:
            return 0
        i = 8
        for _ in range(buf[7]):
            if n < i + 2:
                return 0
            i += 2 + buf[i + 1]
        return i + 2
    return -1


class Framer:
    """RTU request framing (replies=True: reply framing), one byte at a time. feed() returns the frame's
    length (address .. CRC, in buf) when a frame with a good CRC is complete,
    else 0; a frame with a bad CRC or longer than an ADU is dropped (counted)
    and everything up to the next gap() is ignored, as Serial Line 2.5.1.1
    wants. gap(): the caller saw >= 3.5 character times of silence. A caller
    that reads the port in bursts (a router period apart) notes when bytes
    came (heard) and lets quiet() end a frame, or a skip, after gap_ms without one."""

    def __init__(self, replies=False):
        self.buf = bytearray(MAX_ADU)
        self._length = _reply_length if replies else _length
        self.n = 0
        self._need = 0
        self._crc = 0xFFFF
        self._skip = False
        self.frames = 0  # good frames
        self.errors = 0  # bad CRC, too long, cut short by a gap
        self._heard_ms = 0

    def in_frame(self):
        """Bytes of a frame are under way (since the last gap or frame)."""
        return self.n > 0 and not self._skip

    def heard(self, now_ms):
        """Bytes came at now_ms (the caller's clock)."""
        self._heard_ms = now_ms

    def quiet(self, now_ms, gap_ms):
        """gap() once gap_ms have passed without a byte while a frame is under
        way or a bad one is being skipped."""
        if (self.n or self._skip) and ticks_diff(now_ms, self._heard_ms) >= gap_ms:
            self.gap()

    def gap(self):
        if self.n and not self._skip:
            self.errors += 1  # a frame cut short
        self.n = 0
        self._need = 0
        self._crc = 0xFFFF
        self._skip = False

    def feed(self, b):
        if self._skip:
            return 0
        n = self.n
        if n >= MAX_ADU:
            self.errors += 1
            self._skip = True
            return 0
        self.buf[n] = b
        n += 1
        self.n = n
        self._crc = (self._crc >> 8) ^ _T[(self._crc ^ b) & 0xFF]
        if n < 2:
            return 0
        need = self._need
        if need == 0:
            need = self._length(self.buf, n)
            self._need = need
        if need < 0:  # unknown layout: it ends where the CRC checks (>= address, FC, CRC)
            if n >= 4 and self._crc == 0:
                return self._done(n)
            return 0
        if need == 0 or n < need:
            return 0
        if self._crc != 0:
            self.errors += 1
            self._skip = True
            return 0
        return self._done(n)

    def _done(self, n):
        self.frames += 1
        self.n = 0
        self._need = 0
        self._crc = 0xFFFF
        return n


def rtu_reply(out, unit, pdu_len):
    """The RTU frame around a PDU already in out[1:1 + pdu_len]: the unit in
    out[0], the CRC (low byte first) after the PDU; returns the frame length."""
    out[0] = unit
    n = 1 + pdu_len
    c = crc16(out, n)
    out[n] = c & 0xFF
    out[n + 1] = c >> 8
    return n + 2


def answers(req, n, rep, k):
    """Reply PDU rep[:k] answers request PDU req[:n]: an exception to its
    function, or the function's reply of the size the request asks for (03/04:
    the byte count of its quantity; 06, 0x10: the echo of address and
    value/quantity; FC_UPDATE_BLOCK: its block number); other functions by
    their code."""
    fc = req[0]
    if k < 2 or n < 1:
        return False
    if rep[0] == (fc | 0x80) & 0xFF:
        return k == 2
    if rep[0] != fc:
        return False
    if fc == FC_READ_HOLDING or fc == FC_READ_INPUT:
        return n == 5 and rep[1] == 2 * get_u16(req, 3) and k == 2 + rep[1]
    if fc == FC_WRITE_SINGLE or fc == FC_WRITE_MULTIPLE:
        if k != 5 or n < 5:
            return False
        for i in range(1, 5):
            if rep[i] != req[i]:
                return False
    if fc == FC_UPDATE_BLOCK:
        return k == 3 and n >= 4 and rep[1] == req[2] and rep[2] == req[3]
    return True


def exception(out, fc, code):
    """Exception reply PDU: the function code with bit 7 set, the code."""
    out[0] = (fc | 0x80) & 0xFF
    out[1] = code
    return 2


class Request:
    """One parsed request PDU (fields of the function code's layout)."""

    def __init__(self):
        self.fc = 0
        self.addr = 0  # first register (03, 04, 06, 0x10), block number (FC_UPDATE_BLOCK)
        self.count = 0  # registers (03, 04, 0x10), sub-requests (0x14, 0x15), data bytes (FC_UPDATE_BLOCK)
        self.value = 0  # FC06 value; 0x2B/0x0E read device id code
        self.data = 0  # offset in the PDU of the first value (0x10), sub-request (0x14, 0x15) or data byte
        self.obj = 0  # 0x2B/0x0E first object id


def parse(req, n, r):
    """Check request PDU req[:n] against its function code's layout and fill
    r; returns 0, or the exception code for a function not served (01) or a
    layout/quantity out of range (03). Register addresses are the handler's."""
    if n < 1:
        return EX_ILLEGAL_FUNCTION
    fc = req[0]
    r.fc = fc
    if fc == FC_READ_HOLDING or fc == FC_READ_INPUT:
        if n != 5:
            return EX_ILLEGAL_VALUE
        r.addr = get_u16(req, 1)
        r.count = get_u16(req, 3)
        return 0 if 1 <= r.count <= MAX_READ else EX_ILLEGAL_VALUE
    if fc == FC_WRITE_SINGLE:
        if n != 5:
            return EX_ILLEGAL_VALUE
        r.addr = get_u16(req, 1)
        r.value = get_u16(req, 3)
        r.count = 1
        return 0
    if fc == FC_WRITE_MULTIPLE:
        if n < 6:
            return EX_ILLEGAL_VALUE
        r.addr = get_u16(req, 1)
        r.count = get_u16(req, 3)
        r.data = 6
        if not 1 <= r.count <= MAX_WRITE or req[5] != 2 * r.count or n != 6 + req[5]:
            return EX_ILLEGAL_VALUE
        return 0
    if fc == FC_READ_FILE or fc == FC_WRITE_FILE:
        return _parse_file(req, n, r)
    if fc == FC_UPDATE_BLOCK:  # byte count = block number + at least one data byte
        if n < 5 or n != 2 + req[1]:
            return EX_ILLEGAL_VALUE
        r.addr = get_u16(req, 2)
        r.count = n - 4
        r.data = 4
        return 0
    if fc == FC_MEI:
        if n >= 2 and req[1] != MEI_DEVICE_ID:
            return EX_ILLEGAL_FUNCTION  # other MEI types (CANopen 0x0D) are not served
        if n != 4:
            return EX_ILLEGAL_VALUE
        r.value = req[2]
        r.obj = req[3]
        return 0 if 1 <= r.value <= 4 else EX_ILLEGAL_VALUE
    return EX_ILLEGAL_FUNCTION


def file_sub(req, i):
    """(file, record, length in registers) of the FC 0x14/0x15 sub-request at
    req[i:] (7 bytes; an FC 0x15 one's data follows)."""
    return get_u16(req, i + 1), get_u16(req, i + 3), get_u16(req, i + 5)


def file_reply(out, o, n):
    """The header of an FC 0x14 sub-response of n registers at out[o:]; where
    its data starts, or -1 (nothing written) when n is 0 or it would pass MAX_PDU."""
    if n == 0 or o + 2 + 2 * n > MAX_PDU:
        return -1
    out[o] = 1 + 2 * n
    out[o + 1] = FILE_REF_TYPE
    return o + 2


def _parse_file(req, n, r):
    """FC20: byte count 0x07..0xF5, 7-byte sub-requests (type 6, file,
    record 0..9999, length). FC21: byte count 0x09..0xFB, sub-requests of
    7 bytes + 2 x length. r.count = the sub-requests, r.data = the first."""
    if n < 2 or n != 2 + req[1]:
        return EX_ILLEGAL_VALUE
    bc = req[1]
    read = req[0] == FC_READ_FILE
    if (read and not 0x07 <= bc <= 0xF5) or (not read and not 0x09 <= bc <= 0xFB):
        return EX_ILLEGAL_VALUE
    i = 2
    k = 0
    while i < n:
        if i + 7 > n or req[i] != FILE_REF_TYPE or get_u16(req, i + 3) > MAX_RECORD:
            return EX_ILLEGAL_VALUE
        length = get_u16(req, i + 5)
        i += 7 if read else 7 + 2 * length
        k += 1
    if i != n:
        return EX_ILLEGAL_VALUE
    r.count = k
    r.data = 2
    return 0

