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


class Tagged:
    """The records (i + 1, tag i, values[i]) of a table of values, made one
    at a time as they are written: a list of them would hold a tuple per
    row (32 B each on the board: 7 KiB for the parameters)."""

    def __init__(self, tags, values, n):
        self.tags, self.values, self.n = tags, values, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i >= self.n:
            raise IndexError
        return i + 1, tag(self.tags, i), self.values[i]


class Records:
    """A decoded file's (id, hash, value) records, unpacked one at a time
    from its bytes as they are read (see Tagged)."""

    def __init__(self, data, n):
        self.data, self.n = data, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i >= self.n:
            raise IndexError
        return struct.unpack_from(REC, self.data, HEADER_SIZE + REC_SIZE * i)


def _crc(buf):
    """The header's CRC: of header[:12] and the records, without copies."""
    m = memoryview(buf)
    return crc32(m[HEADER_SIZE:], crc32(m[:12]))


def encode(magic, schema, seq, recs):
    """recs: sequence of (id, hash, value) (a list, Tagged) -> the file's bytes."""
    n = len(recs)
    buf = bytearray(HEADER_SIZE + REC_SIZE * n)
    o = HEADER_SIZE
    for rid, h, v in recs:
        struct.pack_into(REC, buf, o, rid, h, v)
        o += REC_SIZE
    struct.pack_into("<4sHHI", buf, 0, magic, schema, n, seq)
    struct.pack_into("<I", buf, 12, _crc(buf))
    return buf


def decode(magic, data):
    """(schema, seq, Records) or None when anything is off."""
    if data is None or len(data) < HEADER_SIZE:
        return None
    m, schema, n, seq, c = struct.unpack_from(HEADER, data, 0)
    if m != magic or len(data) != HEADER_SIZE + REC_SIZE * n:
        return None
    if _crc(data) != c:
        return None
    return schema, seq, Records(data, n)


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
