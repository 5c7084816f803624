# Owns the limits the inverter is told (SPEC 8, 9, 10; issue 4): charge voltage
# limit (CVL), charge and discharge current limits (CCL, DCL), discharge
# voltage limit (DVL) and the force-charge request bits.
#  - CCL: max_chg_ma, tapered linearly from chg_taper_cell_mv on the highest
#    cell to ccl_min_ma at cell_ov_alarm_mv; at or above that the charge stops
#    (released at cell_ov_alarm_rel_mv). DCL: max_dsg_ma, tapered from
#    dsg_taper_cell_mv on the lowest cell to 0 at cell_uv_p1_mv.
#  - Temperature: charge derated linearly from chg_derate_cold_dc down to 0 at
#    CLTP P1 (coldest cell NTC) and from chg_derate_hot_dc to 0 at CHTP P1
#    (hottest); discharge likewise with the DLTP/DHTP P1 levels.
#  - 0 where a protection or fault forbids (defs.codes), asleep, and for a
#    FET control holds open (st.fets_held: the PC tool's, maintenance mode).
#  - CVL: charge_mv; float_mv after a charge end until the stack falls below
#    recharge_mv or a full/forced charge is requested. Stopping a charge never
#    sends CVL 0 (PROTOCOLS 1: Deye W31, Victron "CVL <= 55 V with CCL 0"):
#    CVL = the present stack voltage and CCL = 0.
#  - Requests: FC_I at SOC <= force_chg1_pct, FC_II at <= force_chg2_pct (both
#    released at force_chg_rel_pct); FC_FULL when the SOC has not reached
#    full_req_pct for full_req_day_count days; FC_RECHARGE after
#    recharge_standby_ms of standby below recharge_mv (`003` 5.5), until the
#    next charge end. Long periods are counted in seconds and days from the
#    measured intervals, never as tick differences.
from defs.const import const
from bms import params as P
from defs import codes, modes
from defs.codes import FC_I, FC_II, FC_FULL, FC_RECHARGE

_DAY_S = const(86400)


def taper(x, start, end, hi, lo):
    """hi while x is on the start side, lo at or beyond end, linear between
    (start < end or start > end)."""
    if start < end:
        if x <= start:
            return hi
        if x >= end:
            return lo
        return hi - (hi - lo) * (x - start) // (end - start)
    if x >= start:
        return hi
    if x <= end:
        return lo
    return hi - (hi - lo) * (start - x) // (start - end)


def derate_pml(t_lo, t_hi, zero_cold, full_cold, full_hot, zero_hot):
    """Permille of the current allowed at cell temperatures t_lo..t_hi."""
    if zero_cold < full_cold <= t_lo and t_hi <= full_hot < zero_hot:
        return 1000  # between the derating starts (the levels in the order validate keeps)
    a = taper(t_lo, full_cold, zero_cold, 1000, 0)
    b = taper(t_hi, full_hot, zero_hot, 1000, 0)
    return a if a < b else b


class Limits:
    def __init__(self, v):
        self.v = v
        self.stopped = False  # charge stopped at the top (hysteresis)
        self.floating = False
        self._ms = 0  # ms below one second, for the two long timers
        self.low_s = 0  # standby below recharge_mv, seconds
        self.full_s = 0  # seconds of the current day without full_req_pct
        self.full_days = 0  # days without full_req_pct

    def start(self, st):
        """Before the first read: CVL never 0, DVL the low cut-off."""
        st.cvl_mv = self.v[P.CHARGE_MV]
        st.dvl_mv = self.v[P.LOW_CUTOFF_MV]

    def update(self, st, dt_ms):
        v = self.v
        snap = st.snap
        vmin = snap.min_cell_mv
        vmax = snap.max_cell_mv
        t_lo = snap.min_temp_dc  # acquire found the extremes
        t_hi = snap.max_temp_dc

        # long timers in whole seconds from the measured intervals
        self._ms += dt_ms
        secs = self._ms // 1000
        self._ms -= secs * 1000
        soc = st.soc_pct
        fc = st.force_charge
        if st.mode == modes.STANDBY and snap.stack_mv < v[P.RECHARGE_MV]:
            self.low_s += secs
            if self.low_s * 1000 >= v[P.RECHARGE_STANDBY_MS]:
                self.low_s = v[P.RECHARGE_STANDBY_MS] // 1000
                fc |= FC_RECHARGE
        else:
            self.low_s = 0
        if soc >= v[P.FULL_REQ_PCT] or st.soc_full:
            self.full_s = 0
            self.full_days = 0
            fc &= ~FC_FULL
        else:
            self.full_s += secs
            while self.full_s >= _DAY_S:
                self.full_s -= _DAY_S
                self.full_days += 1
            if self.full_days >= v[P.FULL_REQ_DAY_COUNT]:
                self.full_days = v[P.FULL_REQ_DAY_COUNT]
                fc |= FC_FULL
        if st.soc_full:
            fc &= ~FC_RECHARGE
        if st.soc_valid:
            if soc <= v[P.FORCE_CHG1_PCT]:
                fc |= FC_I
            elif soc >= v[P.FORCE_CHG_REL_PCT]:
                fc &= ~FC_I
            if soc <= v[P.FORCE_CHG2_PCT]:
                fc |= FC_II
            elif soc >= v[P.FORCE_CHG_REL_PCT]:
                fc &= ~FC_II
        st.force_charge = fc

        # charge voltage: absorption, or float after a charge end
        if st.soc_full:
            self.floating = True
        if snap.stack_mv < v[P.RECHARGE_MV] or fc & (FC_FULL | FC_RECHARGE):
            self.floating = False
        cvl = v[P.FLOAT_MV] if self.floating else v[P.CHARGE_MV]

        # charge current
        if vmax >= v[P.CELL_OV_ALARM_MV]:
            self.stopped = True
        elif vmax <= v[P.CELL_OV_ALARM_REL_MV]:
            self.stopped = False
        ccl = taper(vmax, v[P.CHG_TAPER_CELL_MV], v[P.CELL_OV_ALARM_MV], v[P.MAX_CHG_MA], v[P.CCL_MIN_MA])
        ccl = ccl * derate_pml(t_lo, t_hi, v[P.CHG_LT_P1_DC], v[P.CHG_DERATE_COLD_DC],
                               v[P.CHG_DERATE_HOT_DC], v[P.CHG_HT_P1_DC]) // 1000
        if self.stopped or not codes.chg_allowed(st) or st.sleep_reason or st.fets_held & 1:
            ccl = 0
        if ccl == 0:
            # stop by lowering CVL to the present voltage too, never to 0
            stack = snap.stack_mv
            if 0 < stack < cvl:
                cvl = stack if stack > v[P.PACK_UV_P2_MV] else v[P.PACK_UV_P2_MV]
        st.cvl_mv = cvl
        st.ccl_ma = ccl

        # discharge current
        dcl = taper(vmin, v[P.DSG_TAPER_CELL_MV], v[P.CELL_UV_P1_MV], v[P.MAX_DSG_MA], 0)
        dcl = dcl * derate_pml(t_lo, t_hi, v[P.DSG_LT_P1_DC], v[P.DSG_DERATE_COLD_DC],
                               v[P.DSG_DERATE_HOT_DC], v[P.DSG_HT_P1_DC]) // 1000
        if not codes.dsg_allowed(st) or st.sleep_reason or st.fets_held & 2:
            dcl = 0
        st.dcl_ma = dcl
        st.dvl_mv = v[P.LOW_CUTOFF_MV]
