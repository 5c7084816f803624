"""Property (hypothesis): bms.protect's incremental level evaluation (families
that cannot change are skipped) gives exactly what evaluating every level every
read gives: the same alarms, protections, faults, lock-outs, events (kind,
code, raise/clear, time, value) and level timers, on random input sequences at
random read intervals whose values sit on, beside and between the thresholds
and release values, including random parameter changes between reads."""
from hypothesis import given, settings, strategies as stt

from bms import params as P
from bms.params import Params
from bms.protect import Protection
from bms.state import PackState


def _near(fams):
    """Every threshold and release value of these families, and +-1 of each."""
    v = Params().v
    out = set()
    for f in fams:
        b = P.FAMILIES[f][1]
        for lvl in range(3):
            for k in (b + 3 * lvl, b + 3 * lvl + 1):
                out.update((v[k] - 1, v[k], v[k] + 1))
    return sorted(out)


CELL = _near((P.F_CELL_OV, P.F_CELL_UV)) + [3300]
STACK_D = (0, 2000, -2000, 6000, -6000)  # pack-level families: the stack off the cell sum
CURRENT = _near((P.F_CHG_OC, P.F_DSG_OC)) + [-x for x in _near((P.F_CHG_OC, P.F_DSG_OC))] + [0, 400, -400]
TEMP = _near((P.F_CHG_HT, P.F_CHG_LT, P.F_DSG_HT, P.F_DSG_LT, P.F_AMB_HT, P.F_AMB_LT)) + [250]
MOS = _near((P.F_MOS_OT,)) + [300]
# parameters a user may change at run time: a level threshold moved onto the input
THRESHOLDS = [P.FAMILIES[f][1] + 3 * lvl for f in range(P.N_FAMILIES) for lvl in range(3)]

segment = stt.tuples(
    stt.integers(40, 4000),  # how long these values hold (ms)
    stt.sampled_from(CELL), stt.sampled_from(CELL), stt.integers(0, 15), stt.integers(0, 15),
    stt.sampled_from(STACK_D), stt.sampled_from(CURRENT), stt.sampled_from(TEMP), stt.integers(0, 3),
    stt.sampled_from(MOS), stt.sampled_from(TEMP),
    stt.one_of(stt.none(), stt.tuples(stt.sampled_from(THRESHOLDS), stt.integers(-3, 3))))


def _feed(st, seg):
    _, hi, lo, hc, cc, dstack, cur, temp, t_ch, mos, amb, _ = seg
    snap = st.snap
    for c in range(16):
        snap.cell_mv[c] = 3300
    snap.cell_mv[hc] = hi
    if cc != hc:
        snap.cell_mv[cc] = lo
    snap.stack_mv = sum(snap.cell_mv) + dstack
    snap.pack_mv = snap.stack_mv
    for ch in range(7):
        snap.temp_dc[ch] = 250
    snap.temp_dc[t_ch] = temp
    snap.temp_dc[4] = mos
    snap.temp_dc[6] = amb
    snap.current_ma = cur


def _observed(prot):
    st = prot.st
    ev = st.events
    return (st.alarms, st.protections, st.faults, st.lockout, ev.next_seq,
            [ev.get(q) for q in range(ev.first_seq(), ev.next_seq)],
            bytes(prot.act), bytes(prot.pend), list(prot.trip_t),
            [prot.since[s] for s in range(len(prot.since)) if prot.pend[s]])


@settings(max_examples=150, deadline=None)
@given(segs=stt.lists(segment, min_size=2, max_size=12),
       dts=stt.lists(stt.integers(40, 1500), min_size=1, max_size=6))
def test_incremental_levels_equal_full_evaluation(segs, dts):
    runs = []
    for inc in (True, False):
        prm = Params()
        st = PackState()
        prot = Protection(prm, st)
        prot.incremental = inc
        runs.append((prm, st, prot))
    now = (1 << 30) - 20000  # across the tick wrap
    k = 0
    for seg in segs:
        for prm, st, _ in runs:
            _feed(st, seg)
            if seg[-1] is not None:
                idx, d = seg[-1]
                prm.v[idx] = prm.v[idx] + d
            st.chg_fet = st.dsg_fet = True
        end = now + seg[0]
        while now < end:
            for prm, st, prot in runs:
                st.snap.ok = True
                st.snap.reads += 1
                prot.update(now & ((1 << 30) - 1))
            assert _observed(runs[0][2]) == _observed(runs[1][2])
            now += dts[k % len(dts)]
            k += 1
