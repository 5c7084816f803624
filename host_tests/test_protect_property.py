"""Property (hypothesis) over random measurement sequences fed to bms.protect
with the control stage's FET rule, at random cycle intervals:
- no FET stays on once an input has been beyond a protection threshold (that
  blocks the FET) for that threshold's delay: the FET is off after the first
  update that sees the delay run out, i.e. within delay + one control period of
  the crossing;
- no protection or alarm clears while its input is still beyond its release
  value (except the manual's documented current releases of COVP/CUVP, which
  need the input back inside the threshold)."""
from hypothesis import given, settings, strategies as stt

from defs import codes
from bms import params as P
from bms.params import Params
from bms.protect import Protection
from bms.state import PackState

CELL_HI = (3300, 3399, 3400, 3449, 3450, 3500, 3549, 3550, 3600, 3620, 3650, 3700)
CELL_LO = (3300, 3100, 3000, 2999, 2950, 2900, 2850, 2800, 2700, 2500, 2400)
CURRENT = (0, 400, -400, 3000, -3000, 60000, 72000, 76000, 90000, -98000, -101000, -125000)
TEMP = (250, 399, 400, 420, 460, 500, 560, 610, 80, 30, 0, -30, -60, -110, -210)
MOS = (300, 700, 800, 850, 910, 1060)

segment = stt.tuples(
    stt.integers(100, 5000),  # how long these values hold (ms)
    stt.sampled_from(CELL_HI), stt.sampled_from(CELL_LO), stt.sampled_from(CURRENT),
    stt.sampled_from(TEMP), stt.sampled_from(MOS))

# (family, which FETs its P1/P2 levels block: "c" charge, "d" discharge)
CHECKED = ((P.F_CELL_OV, "c"), (P.F_CELL_UV, "d"), (P.F_CHG_OC, "c"), (P.F_DSG_OC, "d"),
           (P.F_CHG_HT, "c"), (P.F_CHG_LT, "c"), (P.F_DSG_HT, "d"), (P.F_DSG_LT, "d"),
           (P.F_MOS_OT, "cd"))
PROT_CODE = {P.F_CELL_OV: "COVP", P.F_CELL_UV: "CUVP", P.F_CHG_OC: "COCP", P.F_DSG_OC: "DOCP",
             P.F_CHG_HT: "CHTP", P.F_CHG_LT: "CLTP", P.F_DSG_HT: "DHTP", P.F_DSG_LT: "DLTP",
             P.F_MOS_OT: "MOS OT"}
ALARM_CODE = {P.F_CELL_OV: "OV", P.F_CELL_UV: "UV", P.F_CHG_OC: "COC", P.F_DSG_OC: "DOC",
              P.F_CHG_HT: "COT", P.F_CHG_LT: "CUT", P.F_DSG_HT: "DOT", P.F_DSG_LT: "DUT",
              P.F_MOS_OT: "MOS OT"}


def inputs(st):
    s = st.snap
    cells = list(s.cell_mv)
    t = list(s.temp_dc)
    i = s.current_ma
    return {P.F_CELL_OV: max(cells), P.F_CELL_UV: min(cells), P.F_CHG_OC: i, P.F_DSG_OC: -i,
            P.F_CHG_HT: max(t[:4]), P.F_CHG_LT: min(t[:4]), P.F_DSG_HT: max(t[:4]),
            P.F_DSG_LT: min(t[:4]), P.F_MOS_OT: max(t[4], t[5])}


def beyond(f, lvl, x, v):
    base = P.FAM_ROW0 + P.FAM_ROWS * f + 3 * lvl
    high = f in P.HIGH_FAMS
    return x >= v[base] if high else x <= v[base]


def outside_release(f, lvl, x, v):
    base = P.FAM_ROW0 + P.FAM_ROWS * f + 3 * lvl
    high = f in P.HIGH_FAMS
    return x > v[base + 1] if high else x < v[base + 1]


@settings(max_examples=300)
@given(segs=stt.lists(segment, min_size=2, max_size=16), dts=stt.lists(stt.integers(40, 300), min_size=1,
                                                                          max_size=8),
       hot_cell=stt.integers(0, 15), cold_cell=stt.integers(0, 15), t_ch=stt.integers(0, 3))
def test_fets_follow_protections_and_nothing_clears_early(segs, dts, hot_cell, cold_cell, t_ch):
    prm = Params()
    v = prm.v
    st = PackState()
    prot = Protection(prm, st)
    snap = st.snap
    now = (1 << 30) - 20000  # across the tick wrap
    since = {}
    k = 0
    dead = v[P.CURRENT_DEADBAND_MA]
    for dur, hi, lo, cur, temp, mos in segs:
        for c in range(16):
            snap.cell_mv[c] = 3300
        snap.cell_mv[hot_cell] = hi
        if cold_cell != hot_cell:
            snap.cell_mv[cold_cell] = lo
        snap.stack_mv = sum(snap.cell_mv)
        snap.pack_mv = snap.stack_mv
        for ch in range(7):
            snap.temp_dc[ch] = 250
        snap.temp_dc[t_ch] = temp
        snap.temp_dc[4] = mos
        snap.current_ma = cur
        end = now + dur
        x = inputs(st)
        while now < end:
            old_p, old_a = st.protections, st.alarms
            snap.ok = True
            snap.reads += 1
            prot.update(now & ((1 << 30) - 1))
            st.chg_fet = codes.chg_allowed(st)
            st.dsg_fet = codes.dsg_allowed(st)
            for f, fets in CHECKED:
                for lvl in (1, 2):
                    key = (f, lvl)
                    if beyond(f, lvl, x[f], v):
                        since.setdefault(key, now)
                        delay = v[P.FAM_ROW0 + P.FAM_ROWS * f + 3 * lvl + 2]
                        if now - since[key] >= delay:
                            if "c" in fets:
                                assert not st.chg_fet, (PROT_CODE[f], lvl, now - since[key])
                            if "d" in fets:
                                assert not st.dsg_fet, (PROT_CODE[f], lvl, now - since[key])
                    else:
                        since.pop(key, None)
                # clears
                pbit = codes.bit(codes.PROTECTIONS, PROT_CODE[f])
                if old_p & pbit and not st.protections & pbit:
                    still = outside_release(f, 1, x[f], v) and outside_release(f, 2, x[f], v)
                    if f == P.F_CELL_OV and cur <= -dead:
                        still = beyond(f, 1, x[f], v)
                    if f == P.F_CELL_UV and cur >= dead:
                        still = beyond(f, 1, x[f], v)
                    assert not still, ("cleared early", PROT_CODE[f], x[f])
                abit = codes.bit(codes.ALARMS, ALARM_CODE[f])
                if old_a & abit and not st.alarms & abit:
                    assert not outside_release(f, 0, x[f], v), ("alarm cleared early", ALARM_CODE[f], x[f])
            now += dts[k % len(dts)]
            k += 1
