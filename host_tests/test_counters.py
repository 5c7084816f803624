# The counters file (lib/store/counters.py) and the persist service
# (firmware/app/persist.py): power cuts at every write point, bit flips,
# unknown fields, and the bench world surviving a power cycle.
import json

import simflash
from simflash import SimFlash
from store import atomic
from store import counters as C
from store.counters import CounterStore


def _vals(k):
    v = [0] * C.N
    v[C.SOC_PPM] = 500000 + 1000 * k
    v[C.CYCLES] = k // 3
    v[C.LOCKOUT] = k % 4
    v[C.UV_TRIES] = k % 11
    v[4] = 12 * k  # chg_ah
    v[C.BOOTS] = 1
    return v


SAVES = 12


def _sequence(fs):
    st = CounterStore(fs)
    got = [0] * C.N
    st.load(got)
    done = 0
    for k in range(SAVES):
        st.save(_vals(k))
        done += 1
    return done


def test_round_trip():
    fs = SimFlash()
    CounterStore(fs).save(_vals(5))
    got = [0] * C.N
    assert CounterStore(fs.remount()).load(got) == atomic.CUR
    assert got == _vals(5)


def _read_back(fs):
    """(source, values) a boot reads; values start as a sentinel no save holds."""
    got = [-7] * C.N
    src = CounterStore(fs).load(got)
    return (src != atomic.NONE), got


def test_power_cut_at_every_write_point_reads_exactly_the_state_of_that_point():
    # each save's commit point is the last byte of its complete .tmp copy
    # (simflash.commits): before it the previous save is read, from it the new
    # one; before the first, no file (the sentinel stays)
    states = [(False, [-7] * C.N)] + [(True, _vals(k)) for k in range(SAVES)]
    done, _, second_cuts = simflash.cut_everywhere(_sequence, C.FILE, states, _read_back)
    assert done == SAVES
    assert second_cuts >= SAVES


def test_bit_flips_fall_back_to_the_previous_copy():
    fs = SimFlash()
    st = CounterStore(fs)
    st.save(_vals(1))
    st.save(_vals(2))
    for bit in range(0, fs.size(C.FILE) * 8, 5):
        f2 = SimFlash({k: bytearray(v) for k, v in fs.files.items()})
        f2.flip(C.FILE, bit)
        got = [0] * C.N
        assert CounterStore(f2).load(got) == atomic.BAK
        assert got == _vals(1)
    f2 = SimFlash({k: bytearray(v) for k, v in fs.files.items()})
    f2.flip(C.FILE, 50)
    f2.flip(C.FILE + ".bak", 70)
    got = [7] * C.N
    assert CounterStore(f2).load(got) == atomic.CORRUPT and got == [7] * C.N


def test_each_fields_tag_is_its_names_hash():
    # the file's tags are store.atomic.name_hash of the field names, one name
    # per field in index order (the board keeps only the tags)
    names = C.NAMES.split()
    assert len(names) == C.N == C.FAILED_STARTS + 1 and len(set(names)) == C.N
    assert [atomic.tag(C._TAGS, i) for i in range(C.N)] == [atomic.name_hash(n) for n in names]
    fs = SimFlash()
    CounterStore(fs).save(list(range(C.N)))
    f = fs.open(C.FILE, "rb")
    recs = atomic.decode(C.MAGIC, f.read())[2]
    f.close()
    assert list(recs) == [(i + 1, atomic.name_hash(names[i]), i) for i in range(C.N)]


def test_unknown_or_renamed_fields_are_not_loaded():
    fs = SimFlash()
    recs = [(i + 1, atomic.name_hash(C.NAMES.split()[i]), 100 + i) for i in range(C.N)]
    recs[C.CYCLES] = (C.CYCLES + 1, atomic.name_hash("cycles_x10"), 999)
    recs.append((200, atomic.name_hash("future_field"), 5))
    f = fs.open(C.FILE, "wb")
    f.write(atomic.encode(C.MAGIC, C.SCHEMA, 1, recs))
    f.close()
    got = [0] * C.N
    CounterStore(fs).load(got)
    assert got[C.CYCLES] == 0 and got[C.SOC_PPM] == 100


# ---- the firmware: the bench world, power cycled --------------------------

def _world(events, duration_s, soc=50):
    from tools import simworld
    from sim import scenario as scn
    from sim.mock_afe import FAULTS
    sc = scn.parse(json.dumps({"packs": 1, "duration_s": duration_s, "seed": 3,
                               "initial": {"soc_pct": soc}, "params": {"buzzer_enable": 1},
                               "events": events}), FAULTS)
    lines = []
    return simworld.World(sc, lines.append), lines


def test_bench_pack_keeps_params_counters_lockout_and_events_across_a_power_cycle():
    from defs import codes
    from bms import params as P
    from bms.protect import LOCK_DSG
    from store import eventlog as E
    # repeated discharge over-current locks the discharge side out
    # (P2 120 A for 15 s, retried after 30 s, locked at the 3rd trip)
    ev = [{"t_s": 2, "set": "current_a", "value": -160}, {"t_s": 150, "set": "current_a", "value": 0}]
    w, _ = _world(ev, 300)
    w.run_until(200000)
    pack = w.packs[0]
    app = pack.app
    assert app.state.lockout & LOCK_DSG, "the scenario should lock discharge out"
    app.params.set(P.USOC_ALARM_PCT, 12)
    pack.store.params.save(app.params)
    soc_before = app.state.soc_pct
    n_events = app.state.events.next_seq
    logged = pack.store.log.read(0, 999)
    assert len([r for r in logged if r[4] != E.KIND_STORE]) == n_events
    w.power_cycle(0)
    new = pack.app
    assert new is not app
    # parameters
    assert new.params.v[P.USOC_ALARM_PCT] == 12 and new.params.v[P.BUZZER_ENABLE] == 1
    # the lock-out is back as soon as protection runs, before anything else happens
    w.run_until(201000)
    st = new.state
    assert st.lockout & LOCK_DSG
    assert st.protections & codes.bit(codes.PROTECTIONS, "DOCP")
    assert not st.dsg_fet
    assert st.boots == 2
    # the SOC resumes from the stored value (not a fresh OCV guess)
    assert st.soc_valid and abs(st.soc_pct - soc_before) <= 1
    # the history kept everything and says the pack restarted
    recs = pack.store.log.read(0, 999)
    assert [r[0] for r in recs] == list(range(recs[0][0], recs[-1][0] + 1))
    boots = [r for r in recs if r[4] == E.KIND_STORE and r[5] == E.C_BOOT]
    assert [r[7] for r in boots] == [1, 2]
    assert all(r[3] & E.F_BOOT_TIME for r in recs)  # the clock was never set
    # a button reset clears the lock-out, and that is stored too
    new.persist.tick(201000)
    saves = new.persist.saves
    st.protect_reset_req += 1
    w.run_until(203000)
    assert not st.lockout and new.persist.saves > saves
    w.power_cycle(0)
    w.run_until(204000)
    assert not pack.app.state.lockout


def test_persist_tick_with_nothing_new_does_not_write():
    w, _ = _world([], 30)
    w.run_until(10000)
    pack = w.packs[0]
    p = pack.app.persist
    used = dict((k, len(v)) for k, v in pack.store.fs.files.items())
    saves = p.saves
    w.run_until(25000)  # at rest: SOC steady, no events
    assert p.saves == saves
    assert dict((k, len(v)) for k, v in pack.store.fs.files.items()) == used


def test_counters_are_saved_periodically_with_bounded_writes():
    w, _ = _world([{"t_s": 1, "set": "current_a", "value": -50}], 700)
    p = w.packs[0].app.persist
    p.save_period_ms = 60000  # 15 min on the pack; 1 min here to keep the test short
    w.run_until(5000)
    saves = p.saves
    w.run_until(605000)
    # discharging: the SOC changes all the time, but it is saved once a period
    assert 9 <= p.saves - saves <= 11, p.saves - saves


def test_a_failing_flash_does_not_stop_the_pack():
    from simflash import SimFlash as _SF
    w, lines = _world([{"t_s": 1, "set": "current_a", "value": -20}], 60)
    pack = w.packs[0]
    w.run_until(5000)
    # the flash dies: every later write raises (SimFlash's PowerCut is an OSError stand-in)
    dead = _SF(pack.store.fs.files, budget=0)
    pack.store.fs = dead
    for f in (pack.store.params.file, pack.store.counters.file):
        f.fs = dead
    pack.store.log.fs = dead
    pack.app.persist.save_period_ms = 1000  # the SOC moves: a save every second
    w.run_until(40000)
    assert not any("error" in ln for ln in lines)
    assert pack.app.state.store_errors > 0


def test_restore_defaults_keeps_counters_and_history():
    from bms import params as P
    from store import eventlog as E
    w, _ = _world([{"t_s": 1, "set": "current_a", "value": -20}], 60)
    w.run_until(20000)
    pack = w.packs[0]
    p = pack.app.persist
    pack.app.params.set(P.USOC_ALARM_PCT, 12)
    pack.store.params.save(pack.app.params)
    p.save_now()
    counters = bytes(pack.store.fs.files["counters.bin"])
    before = pack.store.log.read(0, 999)
    p.restore_defaults()
    assert pack.app.params.v[P.USOC_ALARM_PCT] == 10
    assert pack.app.params.v[P.BUZZER_ENABLE] == 0
    assert bytes(pack.store.fs.files["counters.bin"]) == counters
    after = pack.store.log.read(0, 999)
    assert after[:len(before)] == before and after[-1][5] == 8  # N_PARAMS_RESTORED logged
    assert after[-1][4] == E.KIND_STORE


def test_events_dropped_by_the_ring_before_logging_are_counted_and_logged():
    from store import eventlog as E
    w, _ = _world([], 30)
    w.run_until(3000)
    pack = w.packs[0]
    st = pack.app.state
    first = st.events.next_seq
    for k in range(100):  # a burst: more than the ring holds within one persist period
        st.events.record(0, 1, 1, 2000, k)
    pack.app.persist.tick(3000)
    assert st.events_lost == 100 - st.events.size
    recs = pack.store.log.read(0, 999)
    lost = [r for r in recs if r[4] == E.KIND_STORE and r[5] == E.C_EVENTS_LOST]
    assert lost and lost[-1][7] == 100 - st.events.size
    # exactly the ring's last `size` events of the burst were logged, in order
    assert st.events.next_seq == first + 100
    vals = [r[7] for r in recs if r[4] == 0 and r[5] == 1]
    assert vals == list(range(100 - st.events.size, 100))


def test_deep_discharge_set_by_the_lowest_cell_and_cleared_by_charging_back():
    # persist's flag: set when the lowest cell reaches cell_uv_p2_mv (2500 mV),
    # cleared once charging brings it back to cell_uv_alarm_rel_mv (3000 mV)
    ev = [{"t_s": 5, "fault": "cell_offset", "index": 9, "value": -900},
          {"t_s": 20, "fault": "cell_offset", "index": 9, "on": False},
          {"t_s": 30, "set": "current_a", "value": 10}]
    w, _ = _world(ev, 60)
    st = w.packs[0].app.state
    w.run_until(4000)
    assert not st.deep_discharge and min(st.snap.cell_mv) > 3000
    w.run_until(8000)
    assert min(st.snap.cell_mv) <= 2500 and st.deep_discharge
    w.run_until(28000)  # the cell reads 3.2 V again, but the pack is at rest: still set
    assert min(st.snap.cell_mv) >= 3000 and st.deep_discharge
    w.run_until(40000)
    assert st.current_ma > 0 and not st.deep_discharge


def test_the_persist_start_leaves_the_heap_after_each_call(dropped_after_each_call):
    # defs.transient: app.persiststart (Persist's start, here each App's) is
    # imported for each call and let go: after every round the heap is the same and
    # the module is not imported (importing it to keep costs its code)
    setup = """
from store.memfs import MemFs
from store.store import Store
from app.app import App
class Board:
    pass
store = Store(MemFs())
a = App(Board(), store=store)
"""
    calls = """
a = None
a = App(Board(), store=store)
"""
    dropped_after_each_call(setup, calls, "app.persiststart", 512, "256K")
