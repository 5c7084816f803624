"""Property (hypothesis): bms.protect's shortcuts (a rule skipped on a read
where its inputs cannot change its state) give exactly what evaluating every
rule in full on every read gives (Protection.incremental False): the same
alarms, protections, faults, lock-outs, alert clears, events (kind, code,
raise/clear, time, value) and rule state (level timers, fault-condition timers,
stuck-reading and stuck-temperature suspicions and their starts, the heat each
channel has taken), on random input sequences at random read intervals, across
the tick wrap. One test per shortcut, each with inputs on, beside and between
the values its rule turns on:
- level families at rest (inputs near every threshold and release value,
  thresholds moved at run time);
- the plausible-cell and -temperature extremes (readings outside the physical
  and NTC ranges, stacks at the sum tolerance);
- the stuck-reading rule without a step or a suspect (load steps of the stack
  with cells and current held or moving);
- the stuck-temperature rule without a move, a suspect or heat near the limit
  (channels moving by about ntc_stuck_move_dc, currents that heat, range and
  limit changes, manual resets);
- the hardware alerts, over-current counting and event values (alerts, over-
  and short-circuit currents, reversed polarity, chargers, resets)."""
from hypothesis import example, given, settings, strategies as stt

from defs import codes
from defs.afe import ALERT_CUV, ALERT_COV, ALERT_OCC, ALERT_OCD, ALERT_SCD
from defs.snapshot import N_CELLS, N_TEMPS, T_AMB
from bms import params as P
from bms.params import Params
from bms import protect
from bms.protect import Protection
from bms.state import PackState

_MASK = (1 << 30) - 1
# timers short enough for the rules to finish within an example
FAST = (("sensor_fail_delay_ms", 500), ("sensor_stuck_ms", 1000), ("ntc_stuck_ms", 10000),
        ("ntc_stuck_heat_1c_ms", 60000), ("mos_fail_delay_ms", 300), ("imb_fail_delay_ms", 500),
        ("oc_retry_ms", 1000), ("oc_count_reset_ms", 3000), ("afe_fail_reads", 3), ("scp_delay_ms", 200))


def _near(fams):
    """Every threshold and release value of these families, and +-1 of each."""
    v = Params().v
    out = set()
    for f in fams:
        b = P.FAM_ROW0 + P.FAM_ROWS * f
        for lvl in range(3):
            for k in (b + 3 * lvl, b + 3 * lvl + 1):
                out.update((v[k] - 1, v[k], v[k] + 1))
    return sorted(out)


def _observed(prot):
    st = prot.st
    ev = st.events
    sn = prot.since
    owed = prot.heat_owed  # heat every unchanged, unsuspected channel has taken besides theat
    return {
        "masks": (st.alarms, st.protections, st.faults, st.lockout, st.hw_clear, st.hw_clear_req,
                  st.snap.plausible),
        "events": (ev.next_seq, [ev.get(q) for q in range(ev.first_seq(), ev.next_seq)]),
        "levels": (bytes(prot.slot), [sn[s] for s in range(len(prot.slot)) if prot.slot[s]]),
        "faults": (prot.latched, prot.fpend, list(prot.vals[protect._V_F:]),
                   [sn[protect._S_FAULT + k] for k in range(len(codes.FAULTS)) if prot.fpend >> k & 1]),
        "stuck": (prot.sus, [sn[protect._S_SUS + k] for k in range(N_CELLS + 1) if prot.sus >> k & 1]),
        "ntc": (prot.tsus, [sn[protect._S_TSUS + c] for c in range(N_TEMPS) if prot.tsus >> c & 1],
                [prot.theat[c] + (owed if c < T_AMB else 0) for c in range(N_TEMPS)], prot.heat_us,
                list(prot.tbase)),
        "special": (prot.scp, prot.scp_pend, [sn[protect._S_SCP]] if prot.scp_pend else [], prot.rev, prot.usoc,
                    bytes(prot.oc_count), list(sn[protect._S_OC:protect._S_OC + 2]),
                    prot.hw_seen, [sn[protect._S_HW + k] for k in range(5) if prot.hw_seen & protect._HW_BITS[k]]),
    }


# A segment: how long its inputs hold, and the inputs (any left out keep their
# quiet value; temperatures keep the previous segment's, a stuck channel's
# driver stays where it moved). Readings marked "jitter" move by one unit on
# every read.
QUIET = {"cells": (), "cell_jitter": False, "dstack": 0, "current": 0, "current_jitter": False,
         "temps": (), "temp_jitter": None, "hw": 0, "pack": "stack", "soc": 50, "bad_reads": 0,
         "reset": False, "param": None}


def _feed(st, seg, k, temps):
    snap = st.snap
    for c in range(N_CELLS):
        snap.cell_mv[c] = 3300 + ((k + c) % 3 if seg["cell_jitter"] else 0)
    for c, mv in seg["cells"]:
        snap.cell_mv[c] = mv
    snap.stack_mv = sum(snap.cell_mv) + seg["dstack"]
    snap.current_ma = seg["current"] + (k % 5 if seg["current_jitter"] else 0)
    for ch in range(N_TEMPS):
        snap.temp_dc[ch] = temps[ch]
    if seg["temp_jitter"] is not None:
        snap.temp_dc[seg["temp_jitter"]] += k & 1
    pack = seg["pack"]
    snap.pack_mv = (snap.stack_mv if pack == "stack" else snap.stack_mv + 600 if pack == "charger"
                    else -2000)
    st.hw_alerts |= seg["hw"]
    st.soc_pct = seg["soc"]


def _run(segs, dts, setup=FAST):
    runs = []
    for incremental in (True, False):
        prm = Params()
        for name, value in setup:
            prm.set_by_name(name, value)
        st = PackState()
        st.soc_valid = True
        prot = Protection(prm, st)
        prot.incremental = incremental
        runs.append((prm, st, prot))
    now = (1 << 30) - 20000  # across the tick wrap
    k = 0
    temps = [250] * N_TEMPS
    for seg in segs:
        seg = dict(QUIET, **seg)
        for ch, dc in seg["temps"]:
            temps[ch] = dc
        for prm, st, prot in runs:
            if seg["param"] is not None:
                name, value = seg["param"]
                try:
                    prm.set_by_name(name, value)
                except ValueError:  # a value Params refuses never runs
                    pass
            if seg["reset"]:
                prot.reset(now & _MASK)
        end = now + seg["dur"]
        while now < end:
            for _, st, prot in runs:
                _feed(st, seg, k, temps)
                if seg["bad_reads"] and k % seg["bad_reads"] == 0:
                    st.snap.ok = False
                    st.afe_errors += 1
                else:
                    st.snap.ok = True
                    st.snap.reads += 1
                    st.afe_errors = 0
                prot.update(now & _MASK)
                # what the control stage does after protect
                st.hw_alerts &= ~st.hw_clear
                st.hw_clear = 0
                st.chg_fet = codes.chg_allowed(st)
                st.dsg_fet = codes.dsg_allowed(st)
            assert _observed(runs[0][2]) == _observed(runs[1][2])
            dt = dts[k % len(dts)]
            for _, st, _ in runs:
                st.snap.dt_ms = dt
            now += dt
            k += 1


DTS = stt.lists(stt.integers(40, 1500), min_size=1, max_size=6)


def _segments(dur, **fields):
    return stt.lists(stt.fixed_dictionaries({"dur": stt.integers(*dur)}, optional=fields), min_size=2, max_size=10)


# --- level families at rest ---------------------------------------------------

CELL = _near((P.F_CELL_OV, P.F_CELL_UV)) + [3300]
STACK_D = (0, 2000, -2000, 6000, -6000)  # pack-level families: the stack off the cell sum
CURRENT = _near((P.F_CHG_OC, P.F_DSG_OC)) + [-x for x in _near((P.F_CHG_OC, P.F_DSG_OC))] + [0, 400, -400]
TEMP = _near((P.F_CHG_HT, P.F_CHG_LT, P.F_DSG_HT, P.F_DSG_LT, P.F_AMB_HT, P.F_AMB_LT)) + [250]
MOS = _near((P.F_MOS_OT,)) + [300]
# a level threshold moved onto the input (Params refuses a move that breaks the levels' order)
THRESHOLDS = [P.FAM_ROW0 + P.FAM_ROWS * f + 3 * lvl for f in range(P.N_FAMILIES) for lvl in range(3)]


@stt.composite
def _threshold_move(draw):
    idx = draw(stt.sampled_from(THRESHOLDS))
    return (P.name_of(idx), Params().v[idx] + draw(stt.integers(-60, 60)))


@settings(max_examples=150, deadline=None)
@given(segs=_segments((40, 4000), cells=stt.lists(stt.tuples(stt.integers(0, 15), stt.sampled_from(CELL)),
                                                   max_size=2),
                      dstack=stt.sampled_from(STACK_D), current=stt.sampled_from(CURRENT),
                      temps=stt.lists(stt.tuples(stt.integers(0, 3), stt.sampled_from(TEMP)), max_size=2),
                      param=_threshold_move()),
       mos=stt.sampled_from(MOS), amb=stt.sampled_from(TEMP), dts=DTS)
def test_levels_at_rest_are_skipped_exactly(segs, mos, amb, dts):
    for seg in segs:
        seg["temps"] = seg.get("temps", []) + [(4, mos), (6, amb)]
    _run(segs, dts, setup=(("sensor_stuck_ms", 600000),))


# --- plausible extremes -------------------------------------------------------

CELL_ODD = (3300, 3301, 499, 500, 501, 4499, 4500, 4501, 0, 0xFFFF, 2000, 3650)
TEMP_ODD = (250, -401, -400, -399, 0, 1199, 1200, 1201, 560, -150, -32768, 32767)


@settings(max_examples=120, deadline=None)
@given(segs=_segments((40, 3000), cells=stt.lists(stt.tuples(stt.integers(0, 15), stt.sampled_from(CELL_ODD)),
                                                   max_size=4),
                      dstack=stt.sampled_from((0, 999, 1000, 1001, -1000, -1001, 3000)),
                      cell_jitter=stt.booleans(),
                      temps=stt.lists(stt.tuples(stt.integers(0, 6), stt.sampled_from(TEMP_ODD)), max_size=4)),
       dts=DTS)
def test_plausible_extremes_match_the_reading_by_reading_check(segs, dts):
    _run(segs, dts)


# --- stuck readings -------------------------------------------------------------

@settings(max_examples=120, deadline=None)
@given(segs=_segments((40, 4000), dstack=stt.sampled_from((0, 99, 100, -100, 150, 300, -300, 900)),
                      cells=stt.lists(stt.tuples(stt.integers(0, 15), stt.integers(3280, 3320)), max_size=3),
                      cell_jitter=stt.booleans(), current=stt.sampled_from((0, 20000, -20000, 500)),
                      current_jitter=stt.booleans(), reset=stt.booleans(),
                      param=stt.tuples(stt.sampled_from(("sensor_stuck_step_mv", "sensor_stuck_ms")),
                                       stt.sampled_from((20, 100, 150, 1000, 3000)))),
       dts=DTS)
def test_stuck_reading_rule_skipped_without_step_or_suspect(segs, dts):
    _run(segs, dts)


# --- stuck temperatures -----------------------------------------------------------

TEMP_MOVE = (250, 251, 299, 300, 301, 200, 199, 249, 350, -450, 1300)


@settings(max_examples=150, deadline=None)
@given(segs=_segments((40, 8000), temps=stt.lists(stt.tuples(stt.integers(0, 6), stt.sampled_from(TEMP_MOVE)),
                                                   max_size=4),
                      temp_jitter=stt.one_of(stt.none(), stt.integers(0, 6)),
                      current=stt.sampled_from((0, 1000, 100000, -150000, 250000, -250000, 3000000)),
                      current_jitter=stt.booleans(), reset=stt.booleans(), bad_reads=stt.sampled_from((0, 0, 3)),
                      param=stt.sampled_from((("ntc_stuck_move_dc", 10), ("ntc_stuck_move_dc", 49),
                                              ("ntc_stuck_move_dc", 50), ("ntc_min_dc", -200),
                                              ("ntc_min_dc", -600), ("ntc_max_dc", 900), ("ntc_max_dc", 1800),
                                              ("ntc_stuck_heat_1c_ms", 60000), ("ntc_stuck_heat_1c_ms", 61000),
                                              ("ntc_stuck_heat_1c_ms", 600000), ("ntc_stuck_ms", 10000),
                                              ("rated_capacity_mah", 10000)))),
       dts=DTS)
# a reset clears a suspect whose driver then stands still while another channel moves
@example(segs=[{"dur": 1000}, {"dur": 1000, "temps": [(6, 300)]}, {"dur": 2000, "reset": True, "temp_jitter": 0}],
         dts=[100])
# a smaller move makes a pair whose driver stands still count at the next move
@example(segs=[{"dur": 1000}, {"dur": 1000, "temps": [(6, 290)]},
               {"dur": 2000, "param": ("ntc_stuck_move_dc", 10), "temp_jitter": 4}], dts=[100])
def test_stuck_temperature_rule_skipped_without_move_suspect_or_heat(segs, dts):
    _run(segs, dts, setup=FAST + (("stack_sum_tol_mv", 5000),))


# --- alerts, over-current counting, event values ------------------------------------

HW = (0, ALERT_COV, ALERT_CUV, ALERT_OCC, ALERT_OCD, ALERT_SCD, ALERT_OCC | ALERT_OCD,
      ALERT_COV | ALERT_CUV | ALERT_OCC | ALERT_OCD | ALERT_SCD)


@settings(max_examples=150, deadline=None)
@given(segs=_segments((40, 4000), hw=stt.sampled_from(HW),
                      current=stt.sampled_from((0, 600, -600, 72000, 76000, -101000, -125000, -310000, 5000)),
                      cells=stt.lists(stt.tuples(stt.integers(0, 15), stt.sampled_from((3300, 3400, 3650, 2450,
                                                                                          0, 3700))),
                                      max_size=2),
                      pack=stt.sampled_from(("stack", "charger", "reversed")),
                      soc=stt.sampled_from((50, 10, 11, 15, 16, 5)), reset=stt.booleans(),
                      bad_reads=stt.sampled_from((0, 0, 2)),
                      param=stt.sampled_from((("oc_lock_count", 1), ("oc_lock_count", 2), ("oc_retry_ms", 2000),
                                              ("usoc_alarm_pct", 20)))),
       dts=DTS)
def test_alerts_and_over_current_counting_skipped_exactly(segs, dts):
    _run(segs, dts)
