# Owns the atomic record file: a header (magic, schema version, record count,
# sequence number, CRC32) and fixed 8-byte records (id u16, name hash u16,
# value i32), written to NAME.tmp and renamed over NAME; the copy it replaces
# is kept as NAME.bak. Reading takes the valid copy (CRC, length, magic) with
# the highest sequence number among NAME, NAME.tmp and NAME.bak, so a power
# cut at any point reads back either the old or the new contents, and a bit
# flip in one copy falls back to the other.
from defs.const import const
import struct
from store.crc import crc32

HEADER = "<4sHHII"  # magic, schema, count, seq, crc32 (of header[:12] + records)
HEADER_SIZE = const(16)
REC = "<HHi"
REC_SIZE = const(8)

# where a read came from
NONE = const(0)  # no file at all
CUR = const(1)
TMP = const(2)  # a complete new copy that was not renamed yet (repaired on read)
BAK = const(3)  # the previous copy: the current one is missing or corrupt
CORRUPT = const(4)  # files exist but none is valid


def name_hash(name):
    """16-bit tag of a row's name (names carry their unit)."""
    return crc32(name.encode()) & 0xFFFF


def tag(tags, i):
    """Field i's tag in a bytes constant of name_hash values ('<H' each, the
    field names' order): the tables the board keeps instead of the names."""
    return tags[2 * i] | tags[2 * i + 1] << 8


def encode(magic, schema, seq, recs):
    """recs: sequence of (id, hash, value) -> the file's bytes."""
    n = len(recs)
    buf = bytearray(HEADER_SIZE + REC_SIZE * n)
    o = HEADER_SIZE
    for rid, h, v in recs:
        struct.pack_into(REC, buf, o, rid, h, v)
        o += REC_SIZE
    struct.pack_into("<4sHHI", buf, 0, magic, schema, n, seq)
    c = crc32(buf[HEADER_SIZE:], crc32(buf[:12]))
    struct.pack_into("<I", buf, 12, c)
    return buf


def decode(magic, data):
    """(schema, seq, [(id, hash, value)]) or None when anything is off."""
    if data is None or len(data) < HEADER_SIZE:
        return None
    m, schema, n, seq, c = struct.unpack_from(HEADER, data, 0)
    if m != magic or len(data) != HEADER_SIZE + REC_SIZE * n:
        return None
    if crc32(data[HEADER_SIZE:], crc32(data[:12])) != c:
        return None
    recs = []
    o = HEADER_SIZE
    for _ in range(n):
        recs.append(struct.unpack_from(REC, data, o))
        o += REC_SIZE
    return schema, seq, recs


def read_all(fs, name):
    if fs.size(name) < 0:
        return None
    f = fs.open(name, "rb")
    try:
        return f.read()
    finally:
        f.close()


class AtomicFile:
    def __init__(self, fs, name, magic):
        self.fs = fs
        self.name = name
        self.magic = magic
        self.seq = 0  # of the last good copy read or written
        self._cur_ok = False  # NAME holds a valid copy (so it may become .bak)

    def read(self):
        """(source, schema, recs): source is NONE/CUR/TMP/BAK/CORRUPT; schema
        and recs are None unless a valid copy was found."""
        fs = self.fs
        best = None
        src = NONE
        any_file = False
        self._cur_ok = False
        for s, nm in ((CUR, self.name), (TMP, self.name + ".tmp"), (BAK, self.name + ".bak")):
            data = read_all(fs, nm)
            if data is None:
                continue
            if s != TMP:
                any_file = True
            d = decode(self.magic, data)
            if d is None:
                continue
            if s == CUR:
                self._cur_ok = True
            if best is None or d[1] > best[1]:
                best = d
                src = s
        if best is None:
            return (CORRUPT if any_file else NONE), None, None
        self.seq = best[1]
        if src == TMP:  # finish the rename the power cut interrupted
            if self._cur_ok:
                fs.rename(self.name, self.name + ".bak")
            fs.rename(self.name + ".tmp", self.name)
            self._cur_ok = True
        return src, best[0], best[2]

    def write(self, schema, recs):
        data = encode(self.magic, schema, self.seq + 1, recs)
        fs = self.fs
        tmp = self.name + ".tmp"
        f = fs.open(tmp, "wb")
        try:
            f.write(data)
        finally:
            f.close()
        if self._cur_ok:
            fs.rename(self.name, self.name + ".bak")
        fs.rename(tmp, self.name)
        self._cur_ok = True
        self.seq += 1
        return len(data)
