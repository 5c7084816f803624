# Owns the protection logic (SPEC 2): alarms, protections and latched faults
# from the snapshot and the pack state, their release rules, the over-current
# retry and lock-out, the AFE's hardware alerts folded in as a second channel,
# and the bounded event ring. Pure: time comes in as now_ms (wrapping ticks),
# results go out as PackState bitmasks (bit positions: defs.codes). update()
# allocates nothing: every buffer is made in __init__ (it runs under
# micropython.heap_lock() on the board's control step).
#
# Rules (thresholds, releases and delays are parameters, bms.params):
# - Level families (bms.params.FAMILIES): alarm, P1 and P2 levels. A level trips
#   when its input has been at/beyond the threshold on every good read for its
#   delay (checked each cycle, so within one cycle of the delay), and releases
#   when the input is back at/inside the release value. Inputs: max/min cell,
#   stack, current (+ charge / - discharge as magnitude), max/min cell NTC, max
#   MOSFET NTC, ambient NTC, max-min cell. Readings that fail plausibility (cell
#   outside cell_phys_*, NTC outside ntc_*) are left out of the inputs; their
#   fault stops both FETs anyway.
# - COVP/POVP (P1/P2) also release when discharge current flows (<= -dead band)
#   and the input is below the P1 threshold; CUVP/PUVP when charge current flows
#   and the input is above the P1 threshold (`000` 3.4).
# - COCP/DOCP (P1/P2) release oc_retry_ms after the trip, if the current is at or
#   below the release value; oc_lock_count consecutive trips (each within
#   oc_count_reset_ms of the previous release) lock the protection: st.lockout
#   bit LOCK_CHG / LOCK_DSG, released only by reset().
# - SCP: the AFE's SCD alert, or discharge current >= scp_ma for scp_delay_ms.
#   Reversed polarity (fault REVERSED): P+/P- at or below -rev_pol_mv. Both
#   release when charge current flows, or when a charger holds P+/P- at or above
#   charger_wake_mv and 0.5 V above the stack with both FETs off ("charge to
#   release"), or by reset().
# - Faults latch until reset(): AFE (afe_errors >= afe_fail_reads), NTC (out of
#   ntc_min_dc..ntc_max_dc, or stuck), CELL (out of cell_phys_* range, or stuck), SAMPLE
#   (|sum of cells - stack| > stack_sum_tol_mv), CURRENT (current stuck), IMB
#   (max-min cell > imb_fail_mv), CHG MOS / DSG MOS (|current| >= mos_fail_ma in
#   the direction of a FET commanded off last cycle; discharge through the
#   pre-charge FET excepted), PRECHARGE (st.precharge_failed). Plausibility
#   faults must persist sensor_fail_delay_ms (mos_fail_delay_ms,
#   imb_fail_delay_ms for theirs).
# - Stuck reading: a cell (or the current) that reads exactly the same across a
#   read in which the stack voltage stepped by >= sensor_stuck_step_mv becomes
#   suspect; a suspect reading still unchanged sensor_stuck_ms later is a fault.
#   Any change of the reading clears the suspicion. A temperature channel is
#   suspect when it reads the same while a channel that drives it moved by
#   ntc_stuck_move_dc since it last changed (the ambient drives every NTC; cell
#   NTCs drive each other, MOSFET NTCs each other: FETs heated by the current
#   say nothing about the room), or (cell and MOSFET NTCs) while the
#   current put ntc_stuck_heat_1c_ms (time at 1 C, (I / rated)^2 * t) of I^2*R
#   heat into the pack; still the same ntc_stuck_ms later it is an NTC fault.
# - AFE hardware alerts (st.hw_alerts, read by the control stage): SCD->SCP,
#   OCD->DOCP, OCC->COCP, COV->COVP, CUV->CUVP, raised while latched. When the
#   firmware's release rule for that protection holds (P1 release value / the
#   current rule for COV and CUV, the retry delay for OCC/OCD, charge-to-release
#   for SCD) on a plausible read (snap.plausible, set here: every cell inside
#   cell_phys_*, their sum within stack_sum_tol_mv of the stack; an implausible
#   read keeps the alert and the CELL/SAMPLE fault takes over), this module sets
#   the alert's bit in st.hw_clear, counts the request in st.hw_clear_req and
#   drops its protection; the control stage, which owns every AFE write, calls
#   afe.clear_alerts(st.hw_clear) once per new request.
# - PARALLEL alarm: while st.link_failure (app.link) holds; its event (value:
#   packs online) comes after those of this module's other bits.
# - USOC alarm: st.soc_pct <= usoc_alarm_pct, released at usoc_alarm_rel_pct.
from defs.const import const
from array import array

from defs import codes
from bms import params as P
from defs.snapshot import N_CELLS, N_CELL_TEMPS, T_MOS0, T_MOS1, T_AMB, N_TEMPS
from defs.ticks import ticks_diff
from defs.afe import ALERT_CUV, ALERT_COV, ALERT_OCC, ALERT_OCD, ALERT_SCD
from defs.events import Events

LOCK_CHG = const(1)  # st.lockout: charge over current locked out
LOCK_DSG = const(2)  # st.lockout: discharge over current locked out

_NF = P.N_FAMILIES
_NS = _NF * P.N_LEVELS

_A = codes.ALARMS.index
_PR = codes.PROTECTIONS.index
_FL = codes.FAULTS.index
# per family (bms.params.FAMILIES order): alarm code, protection code
_FAM_ALARM = (_A("OV"), _A("UV"), _A("TOV"), _A("TUV"), _A("COC"), _A("DOC"), _A("COT"),
              _A("CUT"), _A("DOT"), _A("DUT"), _A("MOS OT"), _A("EOT"), _A("EUT"), _A("IMB"))
_FAM_PROT = (_PR("COVP"), _PR("CUVP"), _PR("POVP"), _PR("PUVP"), _PR("COCP"), _PR("DOCP"),
             _PR("CHTP"), _PR("CLTP"), _PR("DHTP"), _PR("DLTP"), _PR("MOS OT"), _PR("EOTP"),
             _PR("EUTP"), _PR("IMB"))
_FAM_BASE = tuple(f[1] for f in P.FAMILIES)
_FAM_HIGH = tuple(f[2] for f in P.FAMILIES)

_P_COVP = _PR("COVP")
_P_CUVP = _PR("CUVP")
_P_COCP = _PR("COCP")
_P_DOCP = _PR("DOCP")
_P_SCP = _PR("SCP")
_A_USOC = _A("USOC")
_A_PARALLEL = _A("PARALLEL")
_F_CELL = _FL("CELL")
_F_NTC = _FL("NTC")
_F_SAMPLE = _FL("SAMPLE")
_F_AFE = _FL("AFE")
_F_CHG_MOS = _FL("CHG MOS")
_F_DSG_MOS = _FL("DSG MOS")
_F_PRECHARGE = _FL("PRECHARGE")
_F_REVERSED = _FL("REVERSED")
_F_IMB = _FL("IMB")
_F_CURRENT = _FL("CURRENT")
_F_STORE = _FL("STORE")
_N_FAULTS = len(codes.FAULTS)

# hardware alerts, in this order: bit, protection code
_HW_BITS = (ALERT_CUV, ALERT_COV, ALERT_OCC, ALERT_OCD, ALERT_SCD)
_HW_PROT = (_P_CUVP, _P_COVP, _P_COCP, _P_DOCP, _P_SCP)
_HW_ALL = ALERT_CUV | ALERT_COV | ALERT_OCC | ALERT_OCD | ALERT_SCD

_BIG = const(1 << 29)
# A charger on P+/P- pushes above the battery; an inverter's DC link or a
# parallel pack only holds it near the stack voltage.
_CHARGER_MARGIN_MV = const(500)


class Protection:
    def __init__(self, params, state):
        self.p = params
        self.st = state
        if getattr(state, "events", None) is None:
            state.events = Events()
        self.events = state.events
        # level slots: family * 3 + level (0 alarm, 1 p1, 2 p2)
        self.act = bytearray(_NS)
        self.pend = bytearray(_NS)
        self.since = array("i", [0] * _NS)
        # _levels skips the families that cannot change (False: every level
        # evaluated, the reference the property test compares against)
        self.incremental = True
        self.trip_t = array("i", [0] * _NS)
        self.val = array("i", [0] * _NF)  # each family's input this read
        self.fok = bytearray(_NF)  # the input is valid this read
        # values reported with events, per code bit
        self.aval = array("i", [0] * len(codes.ALARMS))
        self.pval = array("i", [0] * len(codes.PROTECTIONS))
        self.fval = array("i", [0] * _N_FAULTS)
        # timers of fault conditions, per fault bit
        self.fpend = bytearray(_N_FAULTS)
        self.fsince = array("i", [0] * _N_FAULTS)
        self.latched = 0  # latched fault bits
        # short circuit / reversed polarity (released by charging or reset)
        self.scp = False
        self.scp_pend = False
        self.scp_since = 0
        self.rev = False
        self.usoc = False
        # over-current: consecutive trips, time of the last release (0 chg, 1 dsg)
        self.oc_count = bytearray(2)
        self.oc_rel_t = array("i", [0, 0])
        self.lockout = 0
        # hardware alerts seen, and when each was first seen
        self.hw_seen = 0
        self.hw_t = array("i", [0] * len(_HW_BITS))
        self.hw_clear = 0  # alert bits to clear, published at the end of update
        # stuck readings: previous reading, suspicion and its start (16 cells + current)
        self.prev = array("i", [0] * (N_CELLS + 1))
        self.sus = bytearray(N_CELLS + 1)
        self.sus_t = array("i", [0] * (N_CELLS + 1))
        self.prev_stack = 0
        self.have_prev = False
        # stuck temperatures: per channel ch, row ch holds every channel's reading when
        # ch last changed (so [ch][ch] is ch's own reading), suspicion and its start,
        # and the heat since (ms at 1 C)
        self.tbase = array("h", [0] * (N_TEMPS * N_TEMPS))
        self.tsus = bytearray(N_TEMPS)
        self.tsus_t = array("i", [0] * N_TEMPS)
        self.theat = array("i", [0] * N_TEMPS)
        self.heat_us = 0  # heat below 1 ms at 1 C, carried to the next read
        self._seen = 0
        self._store_seen = 0
        self.cmax = 0
        self.cmin = 0

    # --- helpers (no allocation) ---

    def _hold(self, k, cond, now, delay):
        """Fault-condition timer k: True once cond has held for delay ms."""
        if not cond:
            self.fpend[k] = 0
            return False
        if not self.fpend[k]:
            self.fpend[k] = 1
            self.fsince[k] = now
        return ticks_diff(now, self.fsince[k]) >= delay

    def _latch(self, k, value):
        if not self.latched & (1 << k):
            self.latched |= 1 << k
            self.fval[k] = value

    def _charge_to_release(self, i_ma):
        """SCP / reversed polarity release: charge current flows, or a charger
        holds P+/P- up while both FETs are off."""
        st = self.st
        v = self.p.v
        if i_ma >= v[P.CURRENT_DEADBAND_MA]:
            return True
        pack = st.snap.pack_mv
        return (not st.chg_fet and not st.dsg_fet and pack >= v[P.CHARGER_WAKE_MV]
                and pack >= st.snap.stack_mv + _CHARGER_MARGIN_MV)

    # --- the per-cycle update ---

    def update(self, now_ms):
        st = self.st
        v = self.p.v
        snap = st.snap
        if self._hold(_F_AFE, st.afe_errors >= v[P.AFE_FAIL_READS], now_ms, 0):
            self._latch(_F_AFE, st.afe_errors)
        if st.precharge_failed:
            self._latch(_F_PRECHARGE, 1)
        if st.fet_off_failed:  # app.safe_state: set_fets(False...) never went through
            self._latch(_F_AFE, st.fet_errors)
        if st.store_failures != self._store_seen:  # app: the store failed at start
            self._store_seen = st.store_failures
            self._latch(_F_STORE, st.store_failures)
        if snap.ok and snap.reads and snap.reads != self._seen:
            self._seen = snap.reads
            self._measure(now_ms)
            self._levels(now_ms)
            self._sensors(now_ms)
            self._special(now_ms)
        self._commit(now_ms)
        if self.hw_clear:
            st.hw_clear = self.hw_clear
            st.hw_clear_req += 1
            self.hw_clear = 0

    def _measure(self, now):
        st = self.st
        v = self.p.v
        snap = st.snap
        cells = snap.cell_mv
        lo = v[P.CELL_PHYS_MIN_MV]
        hi = v[P.CELL_PHYS_MAX_MV]
        cmax = -1
        cmin = _BIG
        total = 0
        bad = 0
        c = 0
        while c < N_CELLS:
            x = cells[c]
            total += x
            if x < lo or x > hi:
                if bad == 0:
                    bad = x if x > 0 else -1
            else:
                if x > cmax:
                    cmax = x
                if x < cmin:
                    cmin = x
            c += 1
        self.cmax = cmax
        self.cmin = cmin
        val = self.val
        fok = self.fok
        okc = 1 if cmax >= 0 else 0
        val[P.F_CELL_OV] = cmax
        val[P.F_CELL_UV] = cmin
        val[P.F_IMB] = cmax - cmin
        fok[P.F_CELL_OV] = fok[P.F_CELL_UV] = fok[P.F_IMB] = okc
        stack = snap.stack_mv
        val[P.F_PACK_OV] = val[P.F_PACK_UV] = stack
        fok[P.F_PACK_OV] = fok[P.F_PACK_UV] = 1
        i = snap.current_ma
        val[P.F_CHG_OC] = i
        val[P.F_DSG_OC] = -i
        fok[P.F_CHG_OC] = fok[P.F_DSG_OC] = 1
        # temperatures
        temps = snap.temp_dc
        tlo = v[P.NTC_MIN_DC]
        thi = v[P.NTC_MAX_DC]
        tmax = -_BIG
        tmin = _BIG
        tbad = 0
        ch = 0
        while ch < N_TEMPS:
            t = temps[ch]
            if t < tlo or t > thi:
                if tbad == 0:
                    tbad = t if t != 0 else 1
            elif ch < N_CELL_TEMPS:
                if t > tmax:
                    tmax = t
                if t < tmin:
                    tmin = t
            ch += 1
        okt = 1 if tmax > -_BIG else 0
        val[P.F_CHG_HT] = val[P.F_DSG_HT] = tmax
        val[P.F_CHG_LT] = val[P.F_DSG_LT] = tmin
        fok[P.F_CHG_HT] = fok[P.F_DSG_HT] = fok[P.F_CHG_LT] = fok[P.F_DSG_LT] = okt
        m = -_BIG
        t = temps[T_MOS0]
        if tlo <= t <= thi:
            m = t
        t = temps[T_MOS1]
        if tlo <= t <= thi and t > m:
            m = t
        val[P.F_MOS_OT] = m
        fok[P.F_MOS_OT] = 1 if m > -_BIG else 0
        t = temps[T_AMB]
        val[P.F_AMB_HT] = val[P.F_AMB_LT] = t
        fok[P.F_AMB_HT] = fok[P.F_AMB_LT] = 1 if tlo <= t <= thi else 0
        # plausibility faults that need the sums above
        d = v[P.SENSOR_FAIL_DELAY_MS]
        if self._hold(_F_CELL, bad != 0, now, d):
            self._latch(_F_CELL, bad)
        if self._hold(_F_NTC, tbad != 0, now, d):
            self._latch(_F_NTC, tbad)
        diff = total - stack
        if diff < 0:
            diff = -diff
        if self._hold(_F_SAMPLE, diff > v[P.STACK_SUM_TOL_MV], now, d):
            self._latch(_F_SAMPLE, total - stack)
        snap.plausible = bad == 0 and diff <= v[P.STACK_SUM_TOL_MV]

    def _levels(self, now):
        v = self.p.v
        st = self.st
        dead = v[P.CURRENT_DEADBAND_MA]
        i_ma = st.snap.current_ma
        retry = v[P.OC_RETRY_MS]
        lock = self.lockout
        act = self.act
        pend = self.pend
        since = self.since
        inc = self.incremental
        f = 0
        while f < _NF:
            if not self.fok[f]:
                f += 1
                continue
            x = self.val[f]
            high = _FAM_HIGH[f]
            b = _FAM_BASE[f]
            s = f * 3
            # a family with no level active or timing whose input is inside all
            # three thresholds stays as it is: the loop below would only clear
            # pend, which is clear
            if inc and not (act[s] or act[s + 1] or act[s + 2] or pend[s] or pend[s + 1] or pend[s + 2]):
                if (x < v[b] and x < v[b + 3] and x < v[b + 6]) if high else (
                        x > v[b] and x > v[b + 3] and x > v[b + 6]):
                    f += 1
                    continue
            # current releases need the input inside every protection level
            over1 = x >= v[b + 3] if high else x <= v[b + 3]
            lvl = 0
            while lvl < 3:
                s = f * 3 + lvl
                k = b + 3 * lvl
                thr = v[k]
                rel = v[k + 1]
                if high:
                    over = x >= thr
                    back = x <= rel
                else:
                    over = x <= thr
                    back = x >= rel
                if act[s]:
                    release = back
                    if lvl:
                        if f == P.F_CELL_OV or f == P.F_PACK_OV:
                            release = back or (i_ma <= -dead and not over1)
                        elif f == P.F_CELL_UV or f == P.F_PACK_UV:
                            release = back or (i_ma >= dead and not over1)
                        elif f == P.F_CHG_OC:
                            release = back and not lock & LOCK_CHG and ticks_diff(now, self.trip_t[s]) >= retry
                        elif f == P.F_DSG_OC:
                            release = back and not lock & LOCK_DSG and ticks_diff(now, self.trip_t[s]) >= retry
                    if release:
                        act[s] = 0
                        pend[s] = 0
                elif over:
                    if not pend[s]:
                        pend[s] = 1
                        since[s] = now
                    if ticks_diff(now, since[s]) >= v[k + 2]:
                        act[s] = 1
                        pend[s] = 0
                        self.trip_t[s] = now
                else:
                    pend[s] = 0
                lvl += 1
            f += 1

    def _stuck(self, k, x, step, now, stuck_ms):
        """Stuck-reading rule for reading k (cell 0..15, 16 = current)."""
        if not self.have_prev or x != self.prev[k]:
            self.sus[k] = 0
        elif step and not self.sus[k]:
            self.sus[k] = 1
            self.sus_t[k] = now
        self.prev[k] = x
        return self.sus[k] and ticks_diff(now, self.sus_t[k]) >= stuck_ms

    def _sensors(self, now):
        v = self.p.v
        st = self.st
        snap = st.snap
        stack = snap.stack_mv
        ds = stack - self.prev_stack
        step = self.have_prev and (ds >= v[P.SENSOR_STUCK_STEP_MV] or -ds >= v[P.SENSOR_STUCK_STEP_MV])
        stuck_ms = v[P.SENSOR_STUCK_MS]
        c = 0
        while c < N_CELLS:
            x = snap.cell_mv[c]
            if self._stuck(c, x, step, now, stuck_ms):
                self._latch(_F_CELL, x)
            c += 1
        i_ma = snap.current_ma
        if self._stuck(N_CELLS, i_ma, step, now, stuck_ms):
            self._latch(_F_CURRENT, i_ma)
        self._ntc_stuck(now)
        self.prev_stack = stack
        self.have_prev = True
        # imbalance failure (`004`: delta > 1 V)
        if self.fok[P.F_IMB]:
            dv = self.val[P.F_IMB]
            if self._hold(_F_IMB, dv > v[P.IMB_FAIL_MV], now, v[P.IMB_FAIL_DELAY_MS]):
                self._latch(_F_IMB, dv)
        # MOSFET failure: current through a FET commanded off last cycle
        mf = v[P.MOS_FAIL_MA]
        md = v[P.MOS_FAIL_DELAY_MS]
        if self._hold(_F_CHG_MOS, i_ma >= mf and not st.chg_fet, now, md):
            self._latch(_F_CHG_MOS, i_ma)
        if self._hold(_F_DSG_MOS, -i_ma >= mf and not st.dsg_fet and not st.pchg_fet, now, md):
            self._latch(_F_DSG_MOS, i_ma)

    def _ntc_stuck(self, now):
        """Stuck-temperature rule (before have_prev is set for this read)."""
        v = self.p.v
        snap = self.st.snap
        temps = snap.temp_dc
        base = self.tbase
        tlo = v[P.NTC_MIN_DC]
        thi = v[P.NTC_MAX_DC]
        move = v[P.NTC_STUCK_MOVE_DC]
        heat_lim = v[P.NTC_STUCK_HEAT_1C_MS]
        # this read's heat in ms at 1 C, (I / rated)^2 * dt, in small ints
        i = snap.current_ma
        if i < 0:
            i = -i
        if i > 1000000:
            i = 1000000
        x = i * 1000 // v[P.RATED_CAPACITY_MAH]  # 1000 = 1 C
        if x > 30000:
            x = 30000
        dt = snap.dt_ms
        if dt > 1000:
            dt = 1000
        q = x * x  # (C * 1000)^2; q // 1000 * dt is us at 1 C, carried below 1 ms
        us = q // 1000 * dt + q % 1000 * dt // 1000 + self.heat_us
        inc = us // 1000
        self.heat_us = us - inc * 1000
        # did any channel move since the last read ([j][j] is j's last reading)
        moved = False
        j = 0
        while j < N_TEMPS:
            if temps[j] != base[j * N_TEMPS + j]:
                moved = True
            j += 1
        ch = 0
        while ch < N_TEMPS:
            t = temps[ch]
            row = ch * N_TEMPS
            if not self.have_prev or t != base[row + ch] or t < tlo or t > thi:
                j = 0
                while j < N_TEMPS:
                    base[row + j] = temps[j]
                    j += 1
                self.tsus[ch] = 0
                self.theat[ch] = 0
            elif not self.tsus[ch]:
                sus = False
                if ch < T_AMB:  # cell and MOSFET NTCs: on what the current heats
                    h = self.theat[ch] + inc
                    if h > heat_lim:
                        h = heat_lim
                    self.theat[ch] = h
                    sus = h >= heat_lim
                j = 0
                while moved and ch != T_AMB and j < N_TEMPS and not sus:
                    u = temps[j]
                    b = base[row + j]
                    if (j != ch and (j == T_AMB or (j < N_CELL_TEMPS) == (ch < N_CELL_TEMPS))
                            and tlo <= u <= thi and tlo <= b <= thi):
                        sus = u - b >= move or b - u >= move
                    j += 1
                if sus:
                    self.tsus[ch] = 1
                    self.tsus_t[ch] = now
            elif ticks_diff(now, self.tsus_t[ch]) >= v[P.NTC_STUCK_MS]:
                self._latch(_F_NTC, t)
            ch += 1

    def _special(self, now):
        v = self.p.v
        st = self.st
        snap = st.snap
        i_ma = snap.current_ma
        # short circuit, firmware level
        if not self.scp:
            if -i_ma >= v[P.SCP_MA]:
                if not self.scp_pend:
                    self.scp_pend = True
                    self.scp_since = now
                if ticks_diff(now, self.scp_since) >= v[P.SCP_DELAY_MS]:
                    self.scp = True
                    self.scp_pend = False
                    self.pval[_P_SCP] = i_ma
            else:
                self.scp_pend = False
        elif self._charge_to_release(i_ma) and not st.hw_alerts & ALERT_SCD:
            self.scp = False
        # reversed polarity
        if snap.pack_mv <= -v[P.REV_POL_MV]:
            if not self.rev:
                self.rev = True
                self.fval[_F_REVERSED] = snap.pack_mv
        elif self.rev and self._charge_to_release(i_ma):
            self.rev = False
        # USOC alarm (the estimate runs after this stage: last cycle's SOC)
        if st.soc_valid:
            if st.soc_pct <= v[P.USOC_ALARM_PCT]:
                self.usoc = True
            elif st.soc_pct >= v[P.USOC_ALARM_REL_PCT]:
                self.usoc = False
            self.aval[_A_USOC] = st.soc_pct
        # hardware alerts: note when first seen, ask the control stage to clear
        # them once the firmware's release rule holds
        ha = st.hw_alerts
        dead = v[P.CURRENT_DEADBAND_MA]
        k = 0
        while k < 5:
            bit = _HW_BITS[k]
            if ha & bit:
                if not self.hw_seen & bit:
                    self.hw_seen |= bit
                    self.hw_t[k] = now
                if bit == ALERT_COV:
                    rel = self.cmax <= v[P.CELL_OV_P1_REL_MV] or (
                        i_ma <= -dead and self.cmax < v[P.CELL_OV_P1_MV])
                elif bit == ALERT_CUV:
                    rel = self.cmin >= v[P.CELL_UV_P1_REL_MV] or (
                        i_ma >= dead and self.cmin > v[P.CELL_UV_P1_MV])
                elif bit == ALERT_OCC:
                    rel = not self.lockout & LOCK_CHG and ticks_diff(now, self.hw_t[k]) >= v[P.OC_RETRY_MS]
                elif bit == ALERT_OCD:
                    rel = not self.lockout & LOCK_DSG and ticks_diff(now, self.hw_t[k]) >= v[P.OC_RETRY_MS]
                else:
                    rel = self._charge_to_release(i_ma)
                if rel and snap.plausible:
                    self.hw_clear |= bit
            else:
                self.hw_seen &= ~bit
            k += 1

    def _commit(self, now):
        """Masks from the internal state; events for every changed bit; the
        over-current lock-out counting; results into the pack state."""
        st = self.st
        v = self.p.v
        act = self.act
        val = self.val
        na = 0
        np_ = 0
        f = 0
        while f < _NF:
            s = f * 3
            a = _FAM_ALARM[f]
            pr = _FAM_PROT[f]
            if self.fok[f]:
                self.aval[a] = val[f]
                self.pval[pr] = val[f]
            if act[s]:
                na |= 1 << a
            if act[s + 1] or act[s + 2]:
                np_ |= 1 << pr
            f += 1
        if self.usoc:
            na |= 1 << _A_USOC
        if self.scp:
            np_ |= 1 << _P_SCP
        # an alert whose release is asked for this cycle no longer holds its
        # protection (the control stage clears it before the estimate runs)
        ha = st.hw_alerts & self.hw_seen & ~self.hw_clear
        k = 0
        while k < 5:
            if ha & _HW_BITS[k]:
                np_ |= 1 << _HW_PROT[k]
            k += 1
        nf = self.latched
        if self.rev:
            nf |= 1 << _F_REVERSED
        # over-current retry counting and lock-out
        old = st.protections
        j = 0
        while j < 2:
            b = 1 << (_P_COCP if j == 0 else _P_DOCP)
            lk = LOCK_CHG if j == 0 else LOCK_DSG
            if np_ & b and not old & b:
                if self.oc_count[j] < 255:
                    self.oc_count[j] += 1
                if self.oc_count[j] >= v[P.OC_LOCK_COUNT]:
                    self.lockout |= lk
            elif old & b and not np_ & b:
                self.oc_rel_t[j] = now
            elif (not np_ & b and self.oc_count[j]
                  and ticks_diff(now, self.oc_rel_t[j]) >= v[P.OC_COUNT_RESET_MS]):
                self.oc_count[j] = 0
            j += 1
        if self.lockout & LOCK_CHG:
            np_ |= 1 << _P_COCP
        if self.lockout & LOCK_DSG:
            np_ |= 1 << _P_DOCP
        par = 1 << _A_PARALLEL
        self._diff(codes.KIND_ALARM, st.alarms & ~par, na, self.aval, now)
        self._diff(codes.KIND_PROTECTION, old, np_, self.pval, now)
        self._diff(codes.KIND_FAULT, st.faults, nf, self.fval, now)
        if st.link_failure:
            na |= par
        if (na ^ st.alarms) & par:
            self.events.record(codes.KIND_ALARM, _A_PARALLEL, (na & par) != 0, now, st.link_online)
        st.alarms = na
        st.protections = np_
        st.faults = nf
        st.lockout = self.lockout

    def _diff(self, kind, old, new, vals, now):
        ch = old ^ new
        k = 0
        while ch:
            if ch & 1:
                self.events.record(kind, k, (new >> k) & 1, now, vals[k])
            ch >>= 1
            k += 1

    # --- manual intervention ---

    def reset(self, now_ms):
        """Button reset or PC command: clears latched faults, the lock-outs,
        short circuit and reversed polarity, and restarts every level (levels
        whose input is still beyond their threshold trip again after their
        delay). Asks the control stage to clear every AFE alert. The new
        state (and its events) is committed at the next update."""
        n = 0
        while n < _NS:
            self.act[n] = 0
            self.pend[n] = 0
            n += 1
        n = 0
        while n < _N_FAULTS:
            self.fpend[n] = 0
            n += 1
        n = 0
        while n <= N_CELLS:
            self.sus[n] = 0
            n += 1
        n = 0
        while n < N_TEMPS:
            self.tsus[n] = 0
            n += 1
        self.latched = 0
        self.scp = False
        self.scp_pend = False
        self.rev = False
        self.lockout = 0
        self.oc_count[0] = self.oc_count[1] = 0
        self.hw_seen = 0
        self.hw_clear |= _HW_ALL
