# The boot part's slot record file (lib/store/slotstore.py): an update's whole
# life (write, stage, tries, confirm, the next update, a rollback) saved with
# a power cut at every write unit reads back exactly the record of the last
# committed save; a damaged copy falls back to the previous one; no valid
# copy, or a field missing, reads as "no record" with its note.
import simflash
from simflash import SimFlash
from store import atomic
from store import slotstore as SS
from store.slotstore import SlotStore
from update import slots as S


def _installed():
    r = S.blank()
    r[S.CONFIRMED] = 0
    r[S.COUNTER0] = 3
    r[S.FLOOR] = 3
    return r


def _life():
    """The records the boot part and the updater save, in order (each differs
    from the one before, as cut_everywhere needs)."""
    recs = [_installed()]
    recs.append(S.stage(recs[-1], 1, 4))  # written, verified: pending
    for _ in range(S.MAX_TRIES):
        recs.append(S.boot(recs[-1])[1])  # each try counted before it runs
    recs.append(S.boot(recs[-1])[1])  # no confirm: rolled back to slot 0
    recs.append(S.stage(recs[-1], 1, 5))
    recs.append(S.boot(recs[-1])[1])
    recs.append(S.confirm(recs[-1], 1))
    recs.append(S.stage(recs[-1], 0, 6))  # the next update, into the old image's slot
    return recs


LIFE = _life()


def _run(fs):
    st = SlotStore(fs)
    st.load()
    done = 0
    for r in LIFE:
        st.save(r)
        done += 1
    return done


def _read_back(fs):
    rec = SlotStore(fs).load()[0]
    if fs.dead:  # load reads a failing flash as "no record"; here the board lost power
        raise simflash.PowerCut("cut during the boot's read")
    return rec


def test_the_life_of_an_update_is_a_sequence_of_distinct_valid_records():
    assert all(S.valid(r) for r in LIFE)
    assert LIFE[4][S.PENDING] == S.NONE and LIFE[4][S.ROLLBACKS] == 1  # the rollback is in it
    assert LIFE[7][S.CONFIRMED] == 1 and LIFE[7][S.FLOOR] == 5
    assert len(SS.FIELDS.split()) == SS.N_FIELDS == S.RECORD_FIELDS


def test_each_fields_tag_is_its_names_hash():
    # the record's tags are store.atomic.name_hash of the field names (the
    # board keeps only the tags)
    names = SS.FIELDS.split()
    assert [atomic.tag(SS._TAGS, i) for i in range(SS.N_FIELDS)] == [atomic.name_hash(n) for n in names]


def test_round_trip_and_an_unchanged_record_writes_nothing():
    fs = SimFlash()
    st = SlotStore(fs)
    assert st.load() == (None, [(SS.N_SLOTS_NONE, 0)])
    assert st.save(LIFE[1]) > 0
    used = fs.used
    assert st.save(list(LIFE[1])) == 0 and fs.used == used
    st2 = SlotStore(fs.remount())
    assert st2.load() == (LIFE[1], [])
    assert st2.save(LIFE[1]) == 0  # a boot that changes nothing does not wear the flash


def test_power_cut_at_every_write_unit_reads_the_old_or_the_new_record():
    states = [None] + LIFE
    done, used, second_cuts = simflash.cut_everywhere(_run, SS.FILE, states, _read_back)
    assert done == len(LIFE)
    assert used > len(LIFE) * (atomic.HEADER_SIZE + atomic.REC_SIZE * S.RECORD_FIELDS)  # every byte a cut point
    assert second_cuts >= len(LIFE)


def _two_saves():
    fs = SimFlash()
    st = SlotStore(fs)
    st.load()
    st.save(LIFE[0])
    st.save(LIFE[1])
    return fs


def test_a_damaged_copy_falls_back_to_the_previous_record_with_a_note():
    fs = _two_saves()
    for bit in range(0, fs.size(SS.FILE) * 8, 7):
        f2 = simflash.copy(fs)
        f2.flip(SS.FILE, bit)
        rec, notes = SlotStore(f2).load()
        assert rec == LIFE[0]
        assert notes == [(SS.N_SLOTS_BACKUP, 1)]


def test_no_valid_copy_reads_as_no_record_with_a_note():
    fs = _two_saves()
    fs.flip(SS.FILE, 40)
    fs.flip(SS.FILE + ".bak", 90)
    assert SlotStore(fs).load() == (None, [(SS.N_SLOTS_CORRUPT, atomic.CORRUPT)])


def test_a_missing_or_mistagged_field_reads_as_no_record():
    for drop in range(SS.N_FIELDS):
        fs = SimFlash()
        recs = [(i + 1, atomic.name_hash(SS.FIELDS.split()[i]), v) for i, v in enumerate(LIFE[1]) if i != drop]
        atomic.AtomicFile(fs, SS.FILE, SS.MAGIC).write(SS.SCHEMA, recs)
        assert SlotStore(fs).load() == (None, [(SS.N_SLOTS_PARTIAL, drop + 1)])
    fs = SimFlash()
    recs = [(i + 1, atomic.name_hash(SS.FIELDS.split()[i]), v) for i, v in enumerate(LIFE[1])]
    recs[2] = (3, atomic.name_hash("tries_s"), LIFE[1][2])  # a field whose meaning changed
    atomic.AtomicFile(fs, SS.FILE, SS.MAGIC).write(SS.SCHEMA, recs)
    assert SlotStore(fs).load() == (None, [(SS.N_SLOTS_PARTIAL, 3)])


def test_a_failing_flash_reads_as_no_record():
    fs = SimFlash(budget=0)
    fs.dead = True
    rec, notes = SlotStore(fs).load()
    assert rec is None and notes[0][0] == SS.N_SLOTS_CORRUPT


def test_a_record_of_the_wrong_length_is_refused_and_nothing_is_written():
    fs = SimFlash()
    st = SlotStore(fs)
    st.load()
    try:
        st.save([0, 1])
        raise AssertionError("accepted a short record")
    except ValueError:
        pass
    assert fs.files == {}
