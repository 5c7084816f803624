# Owns the host handler's file records (app.host; FC 0x14, Modbus Application
# Protocol 6.14): the event history (store.eventlog) by sequence number.
#   file 1 (FILE_INDEX), records 0..5: count (u32), oldest sequence (u32), newest
#          sequence (u32; 0xFFFFFFFF when empty); any register range inside
#   file 2 + s // 10000, record s % 10000: the event with sequence number s, as
#          EV_REGS registers (big endian, high word first): seq u32, t_s u32,
#          boot u16, flags << 8 | kind, code << 8 | pack, value int32. A
#          sub-request's length is a whole number of events (n * EV_REGS) and
#          reads events s .. s + n - 1, all in one file.
# Exception 02 for a file, record or length outside that (or an event no longer
# or not yet held, or a reply over 253 bytes); parse() already answered 03 for a
# malformed request. Reads of the history may allocate (rare, from flash).
from proto import modbus as mb
from proto.wire import put_u16

from defs.const import const

FILE_INDEX = const(1)
FILE_EVENTS = const(2)
INDEX_REGS = const(6)
EV_REGS = const(9)
PER_FILE = const(10000)  # record numbers 0..9999 (6.14)


def _u32(out, o, x):
    put_u16(out, o, (x >> 16) & 0xFFFF)
    put_u16(out, o + 2, x & 0xFFFF)


def read(h, req, r, out):
    """Reply PDU into out (its length) or an exception PDU."""
    j = h.journal
    if j is None:
        return mb.exception(out, r.fc, mb.EX_ILLEGAL_ADDRESS)
    log = j.history
    oldest = log.oldest_seq()
    nxt = log.next_seq
    i = r.data
    o = 2
    for _ in range(r.count):
        f, rec, n = mb.file_sub(req, i)
        i += 7
        o = mb.file_reply(out, o, n)
        if o < 0:
            return mb.exception(out, r.fc, mb.EX_ILLEGAL_ADDRESS)
        if f == FILE_INDEX:
            if rec + n > INDEX_REGS:
                return mb.exception(out, r.fc, mb.EX_ILLEGAL_ADDRESS)
            for k in range(rec, rec + n):
                x = nxt - oldest if k < 2 else (oldest if k < 4 else nxt - 1)
                put_u16(out, o, (x >> 16 if k & 1 == 0 else x) & 0xFFFF)
                o += 2
            continue
        count = n // EV_REGS
        seq = (f - FILE_EVENTS) * PER_FILE + rec
        if (f < FILE_EVENTS or n % EV_REGS or rec + count > PER_FILE or seq < oldest
                or seq + count > nxt):
            return mb.exception(out, r.fc, mb.EX_ILLEGAL_ADDRESS)
        recs = log.read(seq, count)
        for e in range(count):
            if e >= len(recs) or recs[e][0] != seq + e:  # lost to a torn segment
                return mb.exception(out, r.fc, mb.EX_ILLEGAL_ADDRESS)
            s, t_s, boot, flags, kind, code, pack, value = recs[e]
            _u32(out, o, s)
            _u32(out, o + 4, t_s)
            put_u16(out, o + 8, boot)
            put_u16(out, o + 10, flags << 8 | kind)
            put_u16(out, o + 12, code << 8 | pack)
            _u32(out, o + 14, value)
            o += 2 * EV_REGS
    out[0] = r.fc
    out[1] = o - 2
    return o
