# Owns the event history: append-only fixed-size records in a bounded ring of
# segment files ev0.bin .. ev{N-1}.bin, each of at most `per_seg` records.
# Record (24 bytes, little-endian): seq u32, t_s u32, boot u16, flags u8,
# kind u8, code u8, pack u8, value i32, reserved u16, crc32 u32 (of the first
# 20 bytes). flags: F_RAISED (raise, else clear), F_BOOT_TIME (t_s counts from
# the start of boot number `boot`: the clock was not set), else t_s is Unix time.
# Boot scans every segment to the newest valid record; a segment's records
# stop at the first invalid one (a torn last record), and a segment with a
# torn tail is rewritten (temp + rename) without it before the next append.
# When the current segment is full the oldest segment is emptied and reused.
# Here the layout and append(), which the pack runs; the scan at mount, the
# reads and clear (start, the PC tool) are store.evscan's, loaded per call.
from defs.const import const
from defs import transient
import struct
from store.crc import crc32

REC = "<IIHBBBBiH"
REC_SIZE = const(24)
BODY = const(20)  # the bytes the CRC covers
F_RAISED = const(1)
F_BOOT_TIME = const(2)
KIND_STORE = const(8)  # events of the store and the firmware itself (codes below)
# KIND_STORE codes (store.paramstore notes use 1..8)
C_BOOT = const(20)  # firmware started (value: boot number)
C_LOG_CLEARED = const(21)  # history cleared by command (value: records removed)
C_CLOCK_SET = const(22)  # clock set (value: the new Unix time)
C_EVENTS_LOST = const(23)  # protection events dropped before they were logged (value: how many)
C_COUNTERS_CORRUPT = const(24)  # every counters copy corrupt: zero/defaults
C_COUNTERS_BACKUP = const(25)  # the previous counters copy was used
C_CAN_FOLLOWED = const(26)  # CAN: joined a bus heard at the other bit rate (value: kbit/s; app.canrate)
# writes by the PC tool (app.host), each as two records with the same code: the
# value before (F_RAISED clear), then the value after (F_RAISED set)
KIND_PARAM = const(9)  # a parameter written (code: its bms.ptable id)
KIND_HOST = const(10)  # a command or calibration (code: its app.hostctl H_* number)


def seg_name(k):
    return "ev%d.bin" % k


def pack_record(seq, t_s, boot, flags, kind, code, pack, value):
    b = bytearray(REC_SIZE)
    struct.pack_into(REC, b, 0, seq, t_s, boot & 0xFFFF, flags, kind, code, pack, value, 0)
    struct.pack_into("<I", b, BODY, crc32(memoryview(b)[:BODY]))
    return b


class EventLog:
    def __init__(self, fs, segments=8, per_seg=256):
        self.fs = fs
        self.segments = segments
        self.per_seg = per_seg
        self.next_seq = 0
        self._cur = 0  # segment being appended to
        self._count = 0  # valid records in it
        self.first = []  # first seq per segment, -1 when empty
        self.repaired = 0  # segments rewritten at mount (torn tails)

    def mount(self):
        """Scan every segment; continue after the newest valid record."""
        return transient("store.evscan").mount(self)

    def append(self, t_s, boot, flags, kind, code, pack, value):
        """Write one record; returns its sequence number."""
        fs = self.fs
        if self._count >= self.per_seg:
            self._cur = (self._cur + 1) % self.segments
            self._count = 0
            self.first[self._cur] = -1
            f = fs.open(seg_name(self._cur), "wb")  # the oldest segment goes
            f.close()
        seq = self.next_seq
        rec = pack_record(seq, t_s, boot, flags, kind, code, pack, value)
        f = fs.open(seg_name(self._cur), "ab")
        try:
            f.write(rec)
        finally:
            f.close()
        if self._count == 0:
            self.first[self._cur] = seq
        self._count += 1
        self.next_seq = seq + 1
        return seq

    def oldest_seq(self):
        s = -1
        for f in self.first:
            if f >= 0 and (s < 0 or f < s):
                s = f
        return s if s >= 0 else self.next_seq

    def read(self, first_seq, count):
        """Records with first_seq <= seq, at most count, oldest first."""
        return transient("store.evscan").read(self, first_seq, count)

    def clear(self, t_s, boot, flags, pack=0):
        """Remove every record; the sequence goes on and the history starts
        with a C_LOG_CLEARED record saying how many were removed. The record
        is written first (into an emptied segment), then the other segments
        are removed: a power cut in between leaves the record and some old
        ones, never a sequence that starts again from 0."""
        return transient("store.evscan").clear(self, t_s, boot, flags, pack)
