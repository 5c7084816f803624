# The parameter file (lib/store/paramstore.py on lib/store/atomic.py): power
# cuts at every write point, bit flips, fallbacks, migrations, restore defaults.
import pytest

from bms import params as P
from bms.params import Params, index_of
import simflash
from simflash import SimFlash
from store import atomic, paramstore
from store.paramstore import ParamStore


def _p(**kv):
    p = Params()
    p.set_many([(index_of(k), v) for k, v in kv.items()])
    return p


# A realistic sequence of saves: first boot, the PC tool changing a few values
# one at a time and then a batch, restore defaults.
SAVES = [
    {},
    {"buzzer_enable": 1},
    {"buzzer_enable": 1, "usoc_alarm_pct": 12},
    {"buzzer_enable": 1, "usoc_alarm_pct": 12, "cell_ov_p1_mv": 3610, "charge_mv": 55600},
    {"buzzer_enable": 1, "usoc_alarm_pct": 12, "cell_ov_p1_mv": 3610, "charge_mv": 55600,
     "rated_capacity_mah": 105000},
    {"rated_capacity_mah": 105000},  # restore defaults: the FACTORY row stays
]


def _run(fs, upto=None):
    """Apply SAVES on fs; returns how many saves completed."""
    st = ParamStore(fs)
    p = Params()
    st.load(p)
    done = 0
    for k, kv in enumerate(SAVES):
        if k == len(SAVES) - 1:
            st.restore_defaults(p)
        else:
            p.set_many([(index_of(n), v) for n, v in kv.items()])
            st.save(p)
        done += 1
    return done


def _snapshot(kv):
    return list(_p(**kv).v)


def test_round_trip_and_reboot():
    fs = SimFlash()
    st = ParamStore(fs)
    p = _p(buzzer_enable=1, cell_ov_p1_mv=3610)
    st.save(p)
    q = Params()
    found, notes = ParamStore(fs.remount()).load(q)
    assert found and notes == []
    assert list(q.v) == list(p.v)


def test_missing_file_keeps_defaults_with_a_note():
    q = Params()
    found, notes = ParamStore(SimFlash()).load(q)
    assert not found and notes == [(paramstore.N_PARAMS_DEFAULTS, 0)]
    assert list(q.v) == list(Params().v)


def _read_back(fs):
    """(a stored copy was found, the values loaded)."""
    q = Params()
    found, _ = ParamStore(fs).load(q)
    return found, list(q.v)


def test_power_cut_at_every_write_point_reads_exactly_the_state_of_that_point():
    # the reference run's flash log gives each save's commit point: the last
    # byte of its complete .tmp copy (old state before it, new state from it);
    # the recovery boot may itself be cut (finishing a rename): every such
    # second cut, then a clean boot, reads the same state
    states = [(False, _snapshot({}))] + [(True, _snapshot(kv)) for kv in SAVES]
    done, used, second_cuts = simflash.cut_everywhere(_run, paramstore.FILE, states, _read_back)
    assert done == len(SAVES) and used > 5 * 1400  # every byte is a cut point
    assert second_cuts >= len(SAVES)  # cuts between a complete .tmp and its rename were seen


def test_every_bit_flip_is_detected_and_falls_back_to_the_previous_copy():
    fs = SimFlash()
    st = ParamStore(fs)
    old = _p(buzzer_enable=1)
    new = _p(buzzer_enable=1, usoc_alarm_pct=12)
    st.save(old)
    st.save(new)
    size = fs.size(paramstore.FILE)
    for bit in range(0, size * 8, 3):
        files = {k: bytearray(v) for k, v in fs.files.items()}
        f2 = SimFlash(files)
        f2.flip(paramstore.FILE, bit)
        q = Params()
        found, notes = ParamStore(f2).load(q)
        assert found and list(q.v) == list(old.v), bit
        assert (paramstore.N_PARAMS_BACKUP, 1) in notes


def _two_saves():
    """A flash holding buzzer_enable=1 as backup, usoc_alarm_pct=12 as current."""
    fs = SimFlash()
    st = ParamStore(fs)
    st.save(_p(buzzer_enable=1))
    st.save(_p(usoc_alarm_pct=12))
    return fs


def test_both_copies_corrupt_gives_defaults_never_garbage():
    fs = _two_saves()
    fs.flip(paramstore.FILE, 200)
    fs.flip(paramstore.FILE + ".bak", 300)
    q = _p(buzzer_enable=1)
    found, notes = ParamStore(fs).load(q)
    assert not found and notes == [(paramstore.N_PARAMS_CORRUPT, 0)]
    # the caller's values stay (the app starts from defaults)
    assert q.v[P.BUZZER_ENABLE] == 1


def test_after_a_fallback_the_next_save_keeps_the_good_backup():
    fs = _two_saves()
    fs.flip(paramstore.FILE, 100)
    st2 = ParamStore(fs)
    q = Params()
    st2.load(q)  # writes the recovered values back as a new current copy
    assert q.v[P.BUZZER_ENABLE] == 1
    q2 = Params()
    assert ParamStore(fs.remount()).load(q2)[0]
    assert list(q2.v) == list(q.v)


def _write_raw(fs, recs, schema=paramstore.SCHEMA, seq=1):
    data = atomic.encode(paramstore.MAGIC, schema, seq, recs)
    f = fs.open(paramstore.FILE, "wb")
    f.write(data)
    f.close()


def _recs(values):
    return list(ParamStore(SimFlash()).records(values))


def test_migration_added_and_removed_parameters():
    fs = SimFlash()
    v = list(_p(buzzer_enable=1, usoc_alarm_pct=12).v)
    recs = _recs(v)
    recs = [r for r in recs if r[0] != 172]  # sleep_cell_mv "not yet in that version"
    recs.append((999, atomic.name_hash("gone_ms"), 5))  # a row since removed
    _write_raw(fs, recs, schema=0)
    q = Params()
    found, notes = ParamStore(fs).load(q)
    assert found
    assert q.v[P.BUZZER_ENABLE] == 1 and q.v[P.USOC_ALARM_PCT] == 12
    assert q.v[P.SLEEP_CELL_MV] == 3000  # the added row has its default
    assert (paramstore.N_PARAM_DROPPED, 999) in notes
    # written back in the current layout: the next boot has nothing to say
    q2 = Params()
    assert ParamStore(fs.remount()).load(q2) == (True, [])
    assert list(q2.v) == list(q.v)


def test_migration_changed_unit_converts_or_defaults():
    i = P.SLEEP_DELAY_MS
    rid = P.TABLE[i][0]
    v = list(Params().v)
    recs = _recs(v)
    recs[i] = (rid, atomic.name_hash("sleep_delay_s"), 600)  # an older unit: seconds
    fs = SimFlash()
    _write_raw(fs, recs)
    q = Params()
    found, notes = ParamStore(fs, convert={(rid, "sleep_delay_s"): (1000, 1)}).load(q)
    assert q.v[i] == 600000 and (paramstore.N_PARAM_CONVERTED, rid) in notes
    # without a conversion rule the value is never loaded with the wrong meaning
    fs = SimFlash()
    _write_raw(fs, recs)
    q = Params()
    found, notes = ParamStore(fs).load(q)
    assert q.v[i] == P.TABLE[i][2] and (paramstore.N_PARAM_DEFAULT, rid) in notes


def test_out_of_range_value_takes_its_default_and_inconsistent_set_gives_defaults():
    v = list(Params().v)
    recs = _recs(v)
    i = P.BUZZER_ENABLE
    recs[i] = (recs[i][0], recs[i][1], 7)
    fs = SimFlash()
    _write_raw(fs, recs)
    q = Params()
    found, notes = ParamStore(fs).load(q)
    assert q.v[i] == 0 and (paramstore.N_PARAM_DEFAULT, P.TABLE[i][0]) in notes
    # each value in range but the set breaks an order rule (float above charge)
    recs = _recs(v)
    j = P.FLOAT_MV
    recs[j] = (recs[j][0], recs[j][1], 56500)
    fs = SimFlash()
    _write_raw(fs, recs)
    q = _p(buzzer_enable=1)
    found, notes = ParamStore(fs).load(q)
    assert not found and (paramstore.N_PARAMS_INVALID, 0) in notes
    assert list(q.v) == list(Params().v)


def test_restore_defaults_keeps_factory_rows():
    fs = SimFlash()
    st = ParamStore(fs)
    p = _p(buzzer_enable=1, rated_capacity_mah=105000, hw_cov_mv=3800)
    st.save(p)
    st.restore_defaults(p)
    q = Params()
    ParamStore(fs.remount()).load(q)
    assert q.v[P.BUZZER_ENABLE] == 0
    assert q.v[P.RATED_CAPACITY_MAH] == 105000 and q.v[P.HW_COV_MV] == 3800


def test_restore_defaults_keeps_the_installations_settings():
    # the inverter the master speaks to, the bus, the pack's address and CAN rate stay
    fs = SimFlash()
    st = ParamStore(fs)
    p = _p(inv_protocol_count=1, inv_baud_high_count=1, inv_bus_count=1, inv_rs485_units_count=1,
           link_fixed_address_count=7, can_bitrate_count=1, cell_ov_alarm_mv=3580)
    st.save(p)
    st.restore_defaults(p)
    q = Params()
    ParamStore(fs.remount()).load(q)
    assert q.v[P.CELL_OV_ALARM_MV] == 3550  # a protection: back to its default
    assert [q.v[i] for i in P.INSTALLATION] == [1, 1, 1, 1, 7, 1]


def test_crc_table_matches_binascii():
    import binascii
    from store.crctable import crc32 as crc32_table  # store.crc's on a port without binascii.crc32
    for data in (b"", b"abc", bytes(range(256)) * 3):
        assert crc32_table(data) == binascii.crc32(data)
        assert crc32_table(data[5:], crc32_table(data[:5])) == binascii.crc32(data)


def test_the_load_leaves_the_heap_after_each_call(dropped_after_each_call):
    # defs.transient: store.paramload (load, restore_defaults) is imported for
    # each call and let go: after every round the heap is the same and the
    # module is not imported (importing it to keep costs its code)
    setup = """
from store.memfs import MemFs
from store.paramstore import ParamStore
from bms.params import Params
ps = ParamStore(MemFs())
p = Params()
ps.save(p)
"""
    calls = """
assert ps.load(p)[0]
ps.restore_defaults(p)
"""
    dropped_after_each_call(setup, calls, "store.paramload", 512, "256K")


def test_the_records_are_made_and_read_one_at_a_time_with_the_files_bytes():
    # atomic.Tagged and atomic.Records: what a list of tuples would hold, row
    # by row (the file's layout from the header comment of store.atomic:
    # '<4sHHII' header, '<HHi' records, CRC32 of header[:12] + records)
    import struct
    import zlib
    values = list(Params().v)
    tagged = ParamStore(SimFlash()).records(values)
    rows = [(i + 1, atomic.tag(P.rows().HASH, i), values[i]) for i in range(len(values))]
    assert len(tagged) == len(rows) and list(tagged) == rows
    with pytest.raises(IndexError):
        tagged[len(rows)]
    data = atomic.encode(paramstore.MAGIC, paramstore.SCHEMA, 9, tagged)
    assert bytes(data) == bytes(atomic.encode(paramstore.MAGIC, paramstore.SCHEMA, 9, rows))
    magic, schema, n, seq, crc = struct.unpack_from("<4sHHII", data, 0)
    assert (magic, schema, n, seq) == (paramstore.MAGIC, paramstore.SCHEMA, len(rows), 9)
    assert crc == zlib.crc32(bytes(data[16:]), zlib.crc32(bytes(data[:12])))
    assert [struct.unpack_from("<HHi", data, 16 + 8 * i) for i in range(n)] == rows
    schema, seq, recs = atomic.decode(paramstore.MAGIC, data)
    assert (schema, seq, len(recs)) == (paramstore.SCHEMA, 9, len(rows)) and list(recs) == rows
    assert recs[3] == rows[3]
    with pytest.raises(IndexError):
        recs[len(rows)]
