# Owns the system view: what the master tells the inverter about the whole
# battery (SPEC 7, 8): voltage, summed current, SOC/SOH, limits, extreme cells
# and temperatures with where they are, module counts and the union of alarm
# states. Filled in place without allocation. from_pack() makes the view of a
# single pack; the parallel-packs issue adds the aggregate over many packs.
from defs.const import const
from defs import codes
from bms.params import RATED_CAPACITY_MAH
from proto import link
from proto.link import F_CHG_OK, F_DSG_OK, F_HOLD
from proto.wire import u16


class SystemView:
    def __init__(self):
        self.packs_online = 0
        self.packs_blocking_charge = 0
        self.packs_blocking_discharge = 0
        self.packs_offline = 0
        self.voltage_mv = 0
        self.current_ma = 0  # + = charge
        self.soc_pct = 0
        self.soh_pct = 0
        self.capacity_mah = 0  # installed (rated) capacity of the online packs
        self.cvl_mv = 0
        self.ccl_ma = 0
        self.dcl_ma = 0
        self.dvl_mv = 0
        self.force_charge = 0  # defs.codes.FC_* bits
        self.min_cell_mv = 0
        self.min_cell_pack = 0
        self.min_cell_index = 0
        self.max_cell_mv = 0
        self.max_cell_pack = 0
        self.max_cell_index = 0
        self.min_temp_dc = 0
        self.min_temp_pack = 0
        self.min_temp_index = 0
        self.max_temp_dc = 0
        self.max_temp_pack = 0
        self.max_temp_index = 0
        self.alarms = 0
        self.protections = 0
        self.faults = 0
        self.valid = False  # False until a pack has a good measurement
        # link: (parallel packs) the master's address table behind the view
        self.parallel_failure = False  # a pack lost or an address conflict
        self.generation = 0  # formed-system generation (bms.parallel.Roles.form)


def from_pack(view, st, params, pack=0):
    """The view of one pack (the single-pack system)."""
    snap = st.snap
    if not snap.reads:
        view.valid = False
        return
    chg_ok = codes.chg_allowed(st)
    dsg_ok = codes.dsg_allowed(st)
    view.packs_online = 1
    view.packs_blocking_charge = 0 if chg_ok else 1
    view.packs_blocking_discharge = 0 if dsg_ok else 1
    view.packs_offline = 0
    view.voltage_mv = snap.stack_mv
    view.current_ma = st.current_ma
    view.soc_pct = st.soc_pct
    view.soh_pct = st.soh_pct
    view.capacity_mah = params.v[RATED_CAPACITY_MAH]
    view.cvl_mv = st.cvl_mv
    view.ccl_ma = st.ccl_ma
    view.dcl_ma = st.dcl_ma
    view.dvl_mv = st.dvl_mv
    view.force_charge = st.force_charge
    view.min_cell_mv = snap.min_cell_mv  # acquire found the extremes (cells and NTCs)
    view.max_cell_mv = snap.max_cell_mv
    view.min_cell_pack = view.max_cell_pack = pack
    view.min_cell_index = snap.min_cell
    view.max_cell_index = snap.max_cell
    view.min_temp_dc = snap.min_temp_dc
    view.max_temp_dc = snap.max_temp_dc
    view.min_temp_pack = view.max_temp_pack = pack
    view.min_temp_index = snap.min_temp
    view.max_temp_index = snap.max_temp
    view.alarms = st.alarms
    view.protections = st.protections
    view.faults = st.faults
    view.valid = True


# --- the aggregate over parallel packs (SPEC 7) -----------------------------
# Rules (table rows with online set; rows hold what the packs reported, the
# master's own row is written every cycle by own_row()):
#  - connected = online and not holding its FETs open (F_HOLD); only connected
#    packs make voltage (mean), SOC/SOH (capacity-weighted) and the limits.
#  - current = sum over online packs.
#  - CVL = min, DVL = max over connected packs.
#  - CCL: packs allowed to charge (F_CHG_OK) and connected. Each pack k takes a
#    share s_k of the system current; s_k = max(its measured share, 1/n)
#    (measured when |system current| >= n * SHARE_MIN_MA in that direction,
#    else 1/n). CCL = min_k (CCL_k / s_k): at the system current CCL no pack
#    exceeds its own CCL when it takes at most s_k; equal sharing gives
#    n * min CCL_k. A pack in protection/failure (not F_CHG_OK) leaves the
#    totals; if none may charge CCL = 0. DCL likewise with F_DSG_OK.
#  - counts: online, blocking charge (online and not F_CHG_OK or held),
#    blocking discharge, offline (reported before, silent now).
#  - alarms, protections, faults: union over online packs.
SHARE_MIN_MA = const(2000)


def full_mah(st, params):
    """The pack's full charge capacity: learned, else rated (what the 0x42
    reply and the link's CAPACITY report carry)."""
    return st.fcc_mah if st.fcc_mah > 0 else params.v[RATED_CAPACITY_MAH]


def own_row(t, a, st, params, flags):
    """Write pack st's own values into row a of a bms.parallel.Table (a row
    it holds: 1 at boot, any once built), in the units the link reports
    carry (so the master's row matches its report)."""
    snap = st.snap
    t.voltage_mv[a] = snap.stack_mv
    t.current_ma[a] = link.current_ma(st.current_ma)
    t.soc_pct[a] = st.soc_pct
    t.soh_pct[a] = st.soh_pct
    t.flags[a] = flags
    t.cap_ah[a] = params.v[RATED_CAPACITY_MAH] // 1000
    t.full_mah[a] = full_mah(st, params)
    t.cycles[a] = st.cycles & 0xFFFF
    t.cvl_mv[a] = u16(st.cvl_mv)
    t.ccl_ma[a] = (st.ccl_ma // 10) * 10
    t.dcl_ma[a] = (st.dcl_ma // 10) * 10
    t.dvl_mv[a] = u16(st.dvl_mv)
    t.min_cell_mv[a] = snap.min_cell_mv  # acquire found the extremes (cells and NTCs)
    t.max_cell_mv[a] = snap.max_cell_mv
    t.idx_cell[a] = (snap.min_cell << 4) | snap.max_cell
    t.min_temp_dc[a] = snap.min_temp_dc
    t.max_temp_dc[a] = snap.max_temp_dc
    t.idx_temp[a] = (snap.min_temp << 4) | snap.max_temp  # the link report's idx_temp byte
    t.alarms[a] = st.alarms & 0xFFFF
    t.protections[a] = st.protections & 0xFFFF
    t.faults[a] = st.faults & 0xFFFF


def _limit(t, ok_flag, hold_flag, lim, total, sign, n_rows):
    """min over allowed connected packs of lim_k / share_k (see above)."""
    n = 0
    for a in range(1, n_rows):
        if t.online[a] and (t.flags[a] & ok_flag) and not (t.flags[a] & hold_flag):
            n += 1
    if n == 0:
        return 0
    measured = total * sign >= n * SHARE_MIN_MA
    best = -1
    for a in range(1, n_rows):
        if t.online[a] and (t.flags[a] & ok_flag) and not (t.flags[a] & hold_flag):
            share = 1000 // n
            if measured:
                m = t.current_ma[a] * sign * 1000 // (total * sign)
                if m > share:
                    share = m
            v = lim[a] * 1000 // share
            if best < 0 or v < best:
                best = v
    return best


def aggregate(view, t, st, n_rows, own=1):
    """The system view over table t's online rows (st: the master's own state,
    for the force-charge bits). The master alone (row own online, no other
    pack ever heard; 1 = proto.link.MASTER) is its own row: alone() gives the
    same view without the loops."""
    if t.online[own] and not t.heard:
        alone(view, t, own, st, F_CHG_OK, F_DSG_OK, F_HOLD)
    else:
        aggregate_rows(view, t, st, n_rows, F_CHG_OK, F_DSG_OK, F_HOLD)


def _unconnected(view, st):
    """No connected pack: nothing to charge or discharge."""
    view.voltage_mv = 0
    view.soc_pct = view.soh_pct = 0
    view.capacity_mah = 0
    view.cvl_mv = st.cvl_mv
    view.dvl_mv = st.dvl_mv
    view.ccl_ma = view.dcl_ma = 0
    view.valid = False


def _extremes(view, t, lc, hc, lt, ht):
    view.min_cell_mv = t.min_cell_mv[lc]
    view.min_cell_pack = lc
    view.min_cell_index = t.idx_cell[lc] >> 4
    view.max_cell_mv = t.max_cell_mv[hc]
    view.max_cell_pack = hc
    view.max_cell_index = t.idx_cell[hc] & 15
    view.min_temp_dc = t.min_temp_dc[lt]
    view.min_temp_pack = lt
    view.min_temp_index = t.idx_temp[lt] >> 4
    view.max_temp_dc = t.max_temp_dc[ht]
    view.max_temp_pack = ht
    view.max_temp_index = t.idx_temp[ht] & 15


def alone(view, t, a, st, f_chg_ok, f_dsg_ok, f_hold):
    """aggregate_rows() with row a the only row online and none offline: the
    weighted means of one row are its values, its share of the current is all
    of it (so CCL/DCL are its own, or 0 when it may not)."""
    f = t.flags[a]
    held = (f & f_hold) != 0
    view.packs_online = 1
    view.packs_blocking_charge = 1 if held or not (f & f_chg_ok) else 0
    view.packs_blocking_discharge = 1 if held or not (f & f_dsg_ok) else 0
    view.packs_offline = 0
    view.current_ma = t.current_ma[a]
    view.alarms = t.alarms[a]
    view.protections = t.protections[a]
    view.faults = t.faults[a]
    view.force_charge = st.force_charge
    if held:
        _unconnected(view, st)
        return
    _extremes(view, t, a, a, a, a)
    view.voltage_mv = t.voltage_mv[a]
    c = t.cap_ah[a]
    view.capacity_mah = c * 1000
    view.soc_pct = t.soc_pct[a] if c else 0
    view.soh_pct = t.soh_pct[a] if c else 0
    view.cvl_mv = t.cvl_mv[a]
    view.dvl_mv = t.dvl_mv[a] if t.dvl_mv[a] > -1 else -1
    view.ccl_ma = t.ccl_ma[a] if f & f_chg_ok else 0
    view.dcl_ma = t.dcl_ma[a] if f & f_dsg_ok else 0
    view.valid = True


def aggregate_rows(view, t, st, n_rows, f_chg_ok, f_dsg_ok, f_hold):
    """The aggregate over every online row of t."""
    online = blk_c = blk_d = 0
    conn = 0
    v_sum = i_sum = 0
    cap = soc_w = soh_w = 0
    cvl = dvl = -1
    al = pr = fa = 0
    lc = hc = lt = ht = 0  # rows of the lowest/highest cell and temperature
    for a in range(1, n_rows):
        if not t.online[a]:
            continue
        online += 1
        f = t.flags[a]
        held = (f & F_HOLD) != 0
        if held or not (f & F_CHG_OK):
            blk_c += 1
        if held or not (f & F_DSG_OK):
            blk_d += 1
        i_sum += t.current_ma[a]
        al |= t.alarms[a]
        pr |= t.protections[a]
        fa |= t.faults[a]
        if held:
            continue
        conn += 1
        v_sum += t.voltage_mv[a]
        c = t.cap_ah[a]
        cap += c
        soc_w += t.soc_pct[a] * c
        soh_w += t.soh_pct[a] * c
        if cvl < 0 or t.cvl_mv[a] < cvl:
            cvl = t.cvl_mv[a]
        if t.dvl_mv[a] > dvl:
            dvl = t.dvl_mv[a]
        # the first on a tie
        if conn == 1 or t.min_cell_mv[a] < t.min_cell_mv[lc]:
            lc = a
        if conn == 1 or t.max_cell_mv[a] > t.max_cell_mv[hc]:
            hc = a
        if conn == 1 or t.min_temp_dc[a] < t.min_temp_dc[lt]:
            lt = a
        if conn == 1 or t.max_temp_dc[a] > t.max_temp_dc[ht]:
            ht = a
    view.packs_online = online
    view.packs_blocking_charge = blk_c
    view.packs_blocking_discharge = blk_d
    view.packs_offline = t.offline()
    view.current_ma = i_sum
    view.alarms = al
    view.protections = pr
    view.faults = fa
    view.force_charge = st.force_charge
    if conn == 0:
        _unconnected(view, st)
        return
    _extremes(view, t, lc, hc, lt, ht)
    view.voltage_mv = v_sum // conn
    view.capacity_mah = cap * 1000
    view.soc_pct = (soc_w + cap // 2) // cap if cap else 0
    view.soh_pct = (soh_w + cap // 2) // cap if cap else 0
    view.cvl_mv = cvl
    view.dvl_mv = dvl
    view.ccl_ma = _limit(t, F_CHG_OK, F_HOLD, t.ccl_ma, i_sum, 1, n_rows)
    view.dcl_ma = _limit(t, F_DSG_OK, F_HOLD, t.dcl_ma, i_sum, -1, n_rows)
    view.valid = True
