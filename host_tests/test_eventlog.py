# The event history (lib/store/eventlog.py): append, reboot scan, ring of
# segments, read by range, clear, torn last record, bit flips, power cuts.
from simflash import PowerCut, SimFlash
from store import eventlog as E
from store.eventlog import EventLog


def _append(log, k):
    return log.append(1000 + k, 3, E.F_RAISED if k % 2 else 0, k % 3, k % 15, 1, k * 7 - 50)


def _expect(k):
    return (k, 1000 + k, 3, E.F_RAISED if k % 2 else 0, k % 3, k % 15, 1, k * 7 - 50)


def test_append_reboot_read_by_range():
    fs = SimFlash()
    log = EventLog(fs, segments=4, per_seg=8).mount()
    for k in range(20):
        assert _append(log, k) == k
    log2 = EventLog(fs.remount(), segments=4, per_seg=8).mount()
    assert log2.next_seq == 20 and log2.oldest_seq() == 0
    assert log2.read(0, 100) == [_expect(k) for k in range(20)]
    assert log2.read(5, 3) == [_expect(k) for k in (5, 6, 7)]
    assert log2.read(19, 10) == [_expect(19)]
    assert log2.read(20, 10) == []
    _append(log2, 20)
    assert log2.read(18, 10) == [_expect(k) for k in (18, 19, 20)]


def test_ring_is_bounded_and_drops_the_oldest_segment():
    fs = SimFlash()
    log = EventLog(fs, segments=3, per_seg=5).mount()
    for k in range(40):
        _append(log, k)
    assert len(fs.files) == 3 and all(len(d) <= 5 * E.REC_SIZE for d in fs.files.values())
    log2 = EventLog(fs.remount(), segments=3, per_seg=5).mount()
    got = log2.read(0, 100)
    assert [r[0] for r in got] == list(range(log2.oldest_seq(), 40))
    assert 40 - log2.oldest_seq() >= 10  # at least (segments - 1) full segments kept
    assert log2.next_seq == 40


def test_torn_last_record_is_ignored_and_repaired():
    fs = SimFlash()
    log = EventLog(fs, segments=2, per_seg=10).mount()
    for k in range(5):
        _append(log, k)
    fs.files["ev0.bin"] += bytes(E.pack_record(5, 1, 1, 0, 0, 0, 0, 0))[:13]  # torn
    log2 = EventLog(fs.remount(), segments=2, per_seg=10).mount()
    assert log2.next_seq == 5 and log2.repaired == 1
    assert len(fs.files["ev0.bin"]) == 5 * E.REC_SIZE
    _append(log2, 5)
    assert [r[0] for r in EventLog(fs.remount(), 2, 10).mount().read(0, 99)] == list(range(6))


def test_every_bit_flip_in_a_record_is_detected():
    fs = SimFlash()
    log = EventLog(fs, segments=2, per_seg=10).mount()
    for k in range(3):
        _append(log, k)
    for bit in range(2 * E.REC_SIZE * 8, 3 * E.REC_SIZE * 8):  # the last record
        files = {k: bytearray(v) for k, v in fs.files.items()}
        f2 = SimFlash(files)
        f2.flip("ev0.bin", bit)
        log2 = EventLog(f2, 2, 10).mount()
        assert [r[0] for r in log2.read(0, 9)] == [0, 1], bit
    # a flip in the middle cuts the segment there (never a garbage record)
    f2 = SimFlash({k: bytearray(v) for k, v in fs.files.items()})
    f2.flip("ev0.bin", E.REC_SIZE * 8 + 40)
    assert [r[0] for r in EventLog(f2, 2, 10).mount().read(0, 9)] == [0]


def test_clear_keeps_the_sequence_going():
    fs = SimFlash()
    log = EventLog(fs, segments=3, per_seg=4).mount()
    for k in range(10):
        _append(log, k)
    seq = log.clear(77, 3, E.F_RAISED)
    assert seq == 10
    log2 = EventLog(fs.remount(), 3, 4).mount()
    recs = log2.read(0, 99)
    assert len(recs) == 1 and recs[0][0] == 10
    assert recs[0][4:6] == (E.KIND_STORE, E.C_LOG_CLEARED) and recs[0][7] == 10
    _append(log2, 11)
    assert [r[0] for r in log2.read(0, 99)] == [10, 11]


N_EVENTS = 30


def _sequence(fs):
    """Appends across segment changes, a reboot in the middle; returns how
    many appends completed."""
    log = EventLog(fs, segments=3, per_seg=6).mount()
    done = 0
    for k in range(N_EVENTS):
        if k == 15:
            log = EventLog(fs, segments=3, per_seg=6).mount()
        _append(log, k)
        done += 1
    return done


def test_power_cut_at_every_write_point_the_log_ends_at_the_last_complete_record():
    ref = SimFlash()
    _sequence(ref)
    n = ref.used
    for cut in range(n + 1):
        fs = SimFlash(budget=cut, seed=cut)
        try:
            done = _sequence(fs)
        except PowerCut:
            done = None
        log = EventLog(fs.remount(), segments=3, per_seg=6).mount()
        recs = log.read(0, 999)
        seqs = [r[0] for r in recs]
        assert seqs == list(range(log.oldest_seq(), log.next_seq)), cut
        assert all(r == _expect(r[0]) for r in recs), cut
        if done is None:
            # the record being written is there only if all of it landed
            assert log.next_seq in (_completed(cut), _completed(cut) + 1), (cut, log.next_seq)
        else:
            assert log.next_seq == N_EVENTS
        # and it goes on from there after the reboot
        s = _append(log, log.next_seq)
        assert EventLog(fs.remount(), 3, 6).mount().read(s, 1) == [_expect(s)]


_MARKS = []


def _completed(cut):
    """How many appends had returned before `cut` units were used."""
    if not _MARKS:
        fs = SimFlash()
        log = EventLog(fs, segments=3, per_seg=6).mount()
        for k in range(N_EVENTS):
            if k == 15:
                log = EventLog(fs, segments=3, per_seg=6).mount()
            _append(log, k)
            _MARKS.append(fs.used)
    return sum(1 for m in _MARKS if m <= cut)


def test_the_scan_and_reads_leave_the_heap_after_each_call(dropped_after_each_call):
    # defs.transient: store.evscan (the scan at mount, read, clear) is imported
    # for each call and let go: after every round the heap is the same and
    # the module is not imported (importing it to keep costs its code)
    setup = """
from store.memfs import MemFs
from store.eventlog import EventLog
log = EventLog(MemFs(), 2, 8).mount()
for k in range(12):
    log.append(k, 1, 0, 0, 0, 0, k)
"""
    calls = """
log.mount()
assert [r[0] for r in log.read(0, 20)] == list(range(12))
"""
    dropped_after_each_call(setup, calls, "store.evscan", 1024, "128K")
