# Owns the reading side of the event history (store.eventlog's layout and
# ring): the scan at mount (every segment to the newest valid record, torn
# tails rewritten), the reads by sequence number and clear. It runs at start
# and when the PC tool reads or clears the history: store.eventlog.EventLog
# loads it for each call (defs.transient), so it is not in RAM after boot;
# the pack's running appends are eventlog's own.
import struct
from store.crc import crc32
from store.eventlog import REC, REC_SIZE, BODY, KIND_STORE, C_LOG_CLEARED, pack_record, seg_name


def unpack_record(data, o=0):
    """(seq, t_s, boot, flags, kind, code, pack, value) or None if the CRC fails."""
    if len(data) - o < REC_SIZE:
        return None
    (c,) = struct.unpack_from("<I", data, o + BODY)
    if crc32(memoryview(data)[o:o + BODY]) != c:
        return None
    return struct.unpack_from(REC, data, o)[:8]


def read_seg(log, k):
    """(the valid records of segment k up to the first bad or out-of-sequence
    one, the segment's size in bytes)."""
    fs = log.fs
    name = seg_name(k)
    n = fs.size(name)
    if n < 0:
        return [], 0
    f = fs.open(name, "rb")
    try:
        data = f.read()
    finally:
        f.close()
    recs = []
    o = 0
    while o + REC_SIZE <= len(data):
        r = unpack_record(data, o)
        if r is None or (recs and r[0] != recs[-1][0] + 1):
            break
        recs.append(r)
        o += REC_SIZE
    return recs, len(data)


def mount(log):
    """store.eventlog.EventLog.mount (see there)."""
    log.first = [-1] * log.segments
    best = -1
    cur = 0
    count = 0
    for k in range(log.segments):
        recs, size = read_seg(log, k)
        if size != len(recs) * REC_SIZE:
            _rewrite(log, k, recs)
        if recs:
            log.first[k] = recs[0][0]
            if recs[-1][0] > best:
                best = recs[-1][0]
                cur = k
                count = len(recs)
    log.next_seq = best + 1
    log._cur = cur
    log._count = count
    return log


def _rewrite(log, k, recs):
    fs = log.fs
    name = seg_name(k)
    if not recs:
        fs.remove(name)
        log.repaired += 1
        return
    buf = bytearray()
    for r in recs:
        buf += pack_record(*r)
    f = fs.open(name + ".tmp", "wb")
    try:
        f.write(buf)
    finally:
        f.close()
    fs.rename(name + ".tmp", name)
    log.repaired += 1


def read(log, first_seq, count):
    """store.eventlog.EventLog.read (see there)."""
    out = []
    first = log.first
    order = sorted([(first[k], k) for k in range(log.segments) if first[k] >= 0])
    for i in range(len(order)):
        start, k = order[i]
        end = order[i + 1][0] if i + 1 < len(order) else log.next_seq
        if end <= first_seq:
            continue
        recs, _ = read_seg(log, k)
        for r in recs:
            if r[0] >= first_seq:
                out.append(r)
                if len(out) >= count:
                    return out
    return out


def clear(log, t_s, boot, flags, pack):
    """store.eventlog.EventLog.clear (see there)."""
    removed = log.next_seq - log.oldest_seq()
    log._count = log.per_seg  # append() empties and takes the next segment
    seq = log.append(t_s, boot, flags, KIND_STORE, C_LOG_CLEARED, pack, removed)
    for k in range(log.segments):
        if k != log._cur:
            if log.fs.size(seg_name(k)) >= 0:
                log.fs.remove(seg_name(k))
            log.first[k] = -1
    return seq
