# Owns the protection logic (SPEC 2): alarms, protections and latched faults
# from the snapshot and the pack state, their release rules, the over-current
# retry and lock-out, the AFE's hardware alerts folded in as a second channel,
# and the bounded event ring. Pure: time comes in as now_ms (wrapping ticks),
# results go out as PackState bitmasks (bit positions: defs.codes). update()
# allocates nothing: every buffer is made in __init__ (it runs under
# micropython.heap_lock() on the board's control step).
#
# Rules (thresholds, releases and delays are parameters, bms.params):
# - Level families (bms.params F_*): alarm, P1 and P2 levels. A level trips
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
# The code tables below are bytes constants: from ROMFS they stay in the image
# (a tuple, or bytes built at import, sits on the heap); host_tests/test_protect.py
# computes them from defs.codes, defs.afe and defs.snapshot.
# per family (bms.params.F_* order): alarm code (OV UV TOV TUV COC DOC COT CUT
# DOT DUT MOS_OT EOT EUT IMB), protection code (COVP CUVP POVP PUVP COCP DOCP
# CHTP CLTP DHTP DLTP MOS_OT EOTP EUTP IMB)
_FAM_ALARM = const(b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0d\x0a\x0b\x0e")
_FAM_PROT = const(b"\x00\x02\x01\x03\x04\x05\x07\x09\x08\x0a\x0b\x0c\x0d\x0e")
# per family: its first row is _ROW0 + _ROWS * f; the families that trip high, and low
_ROW0 = P.FAM_ROW0
_ROWS = P.FAM_ROWS
_HIGH_FAMS = P.HIGH_FAMS
_LOW_FAMS = P.LOW_FAMS

_P_COCP = _PR("COCP")
_P_DOCP = _PR("DOCP")
_P_SCP = _PR("SCP")
_B_OC = (1 << _P_COCP) | (1 << _P_DOCP)
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
_N_ALARMS = len(codes.ALARMS)
_N_PROTS = len(codes.PROTECTIONS)
# fault-condition timers (Protection.fpend bits) checked together
_B_PLAUSIBLE = (1 << _F_CELL) | (1 << _F_NTC) | (1 << _F_SAMPLE)
_B_MOS = (1 << _F_CHG_MOS) | (1 << _F_DSG_MOS)
_B_IMB = 1 << _F_IMB
del _A, _PR, _FL  # bound methods: only needed for the lookups above

# hardware alerts, in this order (CUV COV OCC OCD SCD): bit (defs.afe ALERT_*),
# protection code (CUVP COVP COCP DOCP SCP)
_HW_BITS = const(b"\x04\x08\x10\x20\x80")
_HW_PROT = const(b"\x02\x00\x04\x05\x06")
_HW_ALL = ALERT_CUV | ALERT_COV | ALERT_OCC | ALERT_OCD | ALERT_SCD

# Protection.since, one array of tick stamps in sections (one buffer, not
# six arrays): the level slots (from 0), the fault-condition timers, the
# over-current releases (0 chg, 1 dsg), the hardware alerts' first sight
# (_HW_BITS order), the stuck readings' suspicion (cells, then the current)
# and the stuck temperatures' suspicion
_S_FAULT = _NS
_S_OC = _S_FAULT + _N_FAULTS
_S_HW = _S_OC + 2
_S_SUS = _S_HW + 5
_S_TSUS = _S_SUS + N_CELLS + 1
_S_SCP = _S_TSUS + N_TEMPS  # the firmware short circuit's pending current
_N_SINCE = _S_SCP + 1

# Protection.vals, the values in one array: each family's input as of its last
# valid read (from 0, F_* order), then the values reported with the events of
# each alarm, protection and fault bit
_V_A = _NF
_V_P = _V_A + _N_ALARMS
_V_F = _V_P + _N_PROTS
_N_VALS = _V_F + _N_FAULTS

# Protection.slot, per level slot: idle, the input beyond the threshold for
# less than the delay, tripped
_PENDING = const(1)
_ACTIVE = const(2)

# per temperature channel: bit j for each channel j that drives it (stuck
# temperatures: the ambient (bit 6) drives every NTC, cell NTCs (bits 0-3) each
# other, MOSFET NTCs (bits 4, 5) each other; the ambient has none), in channel
# order: the four cell NTCs, the two MOSFET NTCs, the ambient
_DRIVERS = const(b"\x4e\x4d\x4b\x47\x60\x50\x00")
_ALL_TEMPS = (1 << N_TEMPS) - 1

_BIG = const(1 << 29)
# A charger on P+/P- pushes above the battery; an inverter's DC link or a
# parallel pack only holds it near the stack voltage.
_CHARGER_MARGIN_MV = const(500)


class _Whole:
    def __getitem__(self, s):
        return s


# a slice of a whole array, made once: `a[:] = b` builds (allocates) one each time
_ALL = _Whole()[:]
del _Whole


class Protection:
    # False (set on an instance): every rule evaluated in full on every read,
    # none of the shortcuts taken (the reference the equivalence tests compare against)
    incremental = True

    def __init__(self, params, state):
        self.p = params
        self.st = state
        if getattr(state, "events", None) is None:
            state.events = Events()
        # level slots: family * 3 + level (0 alarm, 1 p1, 2 p2), each 0 (idle),
        # _PENDING or _ACTIVE; since[slot]: when the slot began pending, while it
        # is active when it tripped (the over-current retry counts from there);
        # the other timers (_S_*) follow
        self.slot = bytearray(_NS)
        self.since = array("i", [0] * _N_SINCE)
        self.busy = 0  # bit per family with a level active or timing
        self.amask = 0  # alarm and protection bits of the active levels
        self.pmask = 0
        self.vals = array("i", [0] * _N_VALS)  # the families' inputs and the events' values (_V_*)
        self.fok = bytearray(_NF)  # the input is valid this read
        self.fok[P.F_PACK_OV] = self.fok[P.F_PACK_UV] = self.fok[P.F_CHG_OC] = self.fok[P.F_DSG_OC] = 1
        # timers of fault conditions: bit per fault running (since when: _S_FAULT)
        self.fpend = 0
        self.latched = 0  # latched fault bits
        # short circuit / reversed polarity (released by charging or reset)
        self.scp = False
        self.scp_pend = False  # since when: _S_SCP
        self.rev = False
        self.usoc = False
        # over-current: consecutive trips (0 chg, 1 dsg; the last release: _S_OC)
        self.oc_count = bytearray(2)
        self.lockout = 0
        # hardware alerts seen (when each was first seen: _S_HW)
        self.hw_seen = 0
        self.hw_clear = 0  # alert bits to clear, published at the end of update
        # stuck readings: previous read's cells and current, suspicion (bit k:
        # cell k, N_CELLS the current; its start: _S_SUS)
        self.pcell = array("H", [0] * N_CELLS)
        self.prev_i = 0
        self.sus = 0
        self.prev_stack = 0
        self.have_prev = False
        # stuck temperatures: per channel ch, row ch holds every channel's reading when
        # ch last changed (so [ch][ch] is ch's own reading), suspicion (bit ch; its
        # start: _S_TSUS), and the heat since (ms at 1 C); tlast: the previous read
        self.tbase = array("h", [0] * (N_TEMPS * N_TEMPS))
        self.tlast = array("h", [0] * N_TEMPS)
        self.tsus = 0
        # the range and move the drivers were last checked with, and whether
        # every driver is to be checked at the next move (after a reset)
        self.tlo = self.thi = self.tmove = 0
        self.tcheck = True
        self.theat = array("i", [0] * N_TEMPS)
        # heat every unchanged channel got since theat was last brought up to date
        self.heat_owed = 0
        self.heat_us = 0  # heat below 1 ms at 1 C, carried to the next read
        self._seen = 0
        self._store_seen = 0

    # --- helpers (no allocation) ---

    def _hold(self, k, cond, now, delay):
        """Fault-condition timer k: True once cond has held for delay ms."""
        b = 1 << k
        if not cond:
            self.fpend &= ~b
            return False
        if not self.fpend & b:
            self.fpend |= b
            self.since[_S_FAULT + k] = now
        return ticks_diff(now, self.since[_S_FAULT + k]) >= delay

    def _latch(self, k, value):
        if not self.latched & (1 << k):
            self.latched |= 1 << k
            self.vals[_V_F + k] = value

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
    # A rule whose inputs cannot change its state this read is skipped (a
    # level family at rest inside its thresholds, the stuck-reading rule
    # without a step or a suspect, the temperatures' without a move, a suspect
    # or heat near the limit, and on a move only the drivers that moved; the
    # alerts' without an alert, the over-current count without an over
    # current): each shortcut leaves exactly the state the full rule would
    # (self.incremental; host_tests/test_protect_incremental.py).

    def update(self, now_ms):
        st = self.st
        v = self.p.v
        snap = st.snap
        if st.afe_errors >= v[P.AFE_FAIL_READS]:
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
            tbad = self._measure(now_ms)
            self._levels(now_ms)
            self._sensors(now_ms, tbad)
            self._special(now_ms)
        self._commit(now_ms)
        if self.hw_clear:
            st.hw_clear = self.hw_clear
            st.hw_clear_req += 1
            self.hw_clear = 0

    def _measure(self, now):
        """The families' inputs and the plausibility faults; returns the first
        implausible temperature (0: none)."""
        st = self.st
        v = self.p.v
        snap = st.snap
        full = not self.incremental
        cells = snap.cell_mv
        total = sum(cells)
        cmax = max(cells)
        cmin = min(cells)
        lo = v[P.CELL_PHYS_MIN_MV]
        hi = v[P.CELL_PHYS_MAX_MV]
        bad = 0
        if cmin < lo or cmax > hi or full:
            # the inputs are the plausible cells' extremes
            cmax = -1
            cmin = _BIG
            c = 0
            while c < N_CELLS:
                x = cells[c]
                if x < lo or x > hi:
                    if bad == 0:
                        bad = x if x > 0 else -1
                else:
                    if x > cmax:
                        cmax = x
                    if x < cmin:
                        cmin = x
                c += 1
        val = self.vals
        fok = self.fok
        ok = 1 if cmax >= 0 else 0
        fok[P.F_CELL_OV] = fok[P.F_CELL_UV] = fok[P.F_IMB] = ok
        if ok:
            val[P.F_CELL_OV] = cmax
            val[P.F_CELL_UV] = cmin
            val[P.F_IMB] = cmax - cmin
        stack = snap.stack_mv
        val[P.F_PACK_OV] = val[P.F_PACK_UV] = stack
        i = snap.current_ma
        val[P.F_CHG_OC] = i
        val[P.F_DSG_OC] = -i
        # temperatures
        temps = snap.temp_dc
        tlo = v[P.NTC_MIN_DC]
        thi = v[P.NTC_MAX_DC]
        tbad = 0
        if min(temps) >= tlo and max(temps) <= thi and not full:
            # every channel plausible; the N_CELL_TEMPS (4) cell NTCs come first
            tmax = max(temps[0], temps[1], temps[2], temps[3])
            tmin = min(temps[0], temps[1], temps[2], temps[3])
            m = max(temps[T_MOS0], temps[T_MOS1])
        else:
            tmax = -_BIG
            tmin = _BIG
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
            m = -_BIG
            t = temps[T_MOS0]
            if tlo <= t <= thi:
                m = t
            t = temps[T_MOS1]
            if tlo <= t <= thi and t > m:
                m = t
        ok = 1 if tmax > -_BIG else 0
        fok[P.F_CHG_HT] = fok[P.F_DSG_HT] = fok[P.F_CHG_LT] = fok[P.F_DSG_LT] = ok
        if ok:
            val[P.F_CHG_HT] = val[P.F_DSG_HT] = tmax
            val[P.F_CHG_LT] = val[P.F_DSG_LT] = tmin
        ok = 1 if m > -_BIG else 0
        fok[P.F_MOS_OT] = ok
        if ok:
            val[P.F_MOS_OT] = m
        t = temps[T_AMB]
        ok = 1 if tlo <= t <= thi else 0
        fok[P.F_AMB_HT] = fok[P.F_AMB_LT] = ok
        if ok:
            val[P.F_AMB_HT] = val[P.F_AMB_LT] = t
        # plausibility faults that need the sums above
        diff = total - stack
        if diff < 0:
            diff = -diff
        tol = v[P.STACK_SUM_TOL_MV]
        if bad or tbad or diff > tol or self.fpend & _B_PLAUSIBLE:
            d = v[P.SENSOR_FAIL_DELAY_MS]
            if self._hold(_F_CELL, bad != 0, now, d):
                self._latch(_F_CELL, bad)
            if self._hold(_F_NTC, tbad != 0, now, d):
                self._latch(_F_NTC, tbad)
            if self._hold(_F_SAMPLE, diff > tol, now, d):
                self._latch(_F_SAMPLE, total - stack)
        snap.plausible = bad == 0 and diff <= tol
        return tbad

    def _levels(self, now):
        """Every family with a level active or timing, or whose input is at or
        beyond one of its thresholds (_family); any other would only clear
        pend, which is clear."""
        v = self.p.v
        val = self.vals
        fok = self.fok
        busy = self.busy if self.incremental else -1
        for f in _HIGH_FAMS:
            b = _ROW0 + _ROWS * f
            if fok[f] and (busy >> f & 1 or val[f] >= v[b] or val[f] >= v[b + 3] or val[f] >= v[b + 6]):
                self._family(f, b, True, val[f], now)
        for f in _LOW_FAMS:
            b = _ROW0 + _ROWS * f
            if fok[f] and (busy >> f & 1 or val[f] <= v[b] or val[f] <= v[b + 3] or val[f] <= v[b + 6]):
                self._family(f, b, False, val[f], now)

    def _family(self, f, b, high, x, now):
        """The three levels of family f (first row b) on input x, and the
        family's bits in busy, amask and pmask."""
        v = self.p.v
        i_ma = self.st.snap.current_ma
        dead = v[P.CURRENT_DEADBAND_MA]
        slot = self.slot
        since = self.since
        # current releases need the input inside every protection level
        over1 = x >= v[b + 3] if high else x <= v[b + 3]
        s = f * 3
        lvl = 0
        while lvl < 3:
            n = s + lvl
            k = b + 3 * lvl
            thr = v[k]
            rel = v[k + 1]
            if high:
                over = x >= thr
                back = x <= rel
            else:
                over = x <= thr
                back = x >= rel
            if slot[n] == _ACTIVE:
                release = back
                if lvl:
                    if f == P.F_CELL_OV or f == P.F_PACK_OV:
                        release = back or (i_ma <= -dead and not over1)
                    elif f == P.F_CELL_UV or f == P.F_PACK_UV:
                        release = back or (i_ma >= dead and not over1)
                    elif f == P.F_CHG_OC:
                        release = (back and not self.lockout & LOCK_CHG
                                   and ticks_diff(now, since[n]) >= v[P.OC_RETRY_MS])
                    elif f == P.F_DSG_OC:
                        release = (back and not self.lockout & LOCK_DSG
                                   and ticks_diff(now, since[n]) >= v[P.OC_RETRY_MS])
                if release:
                    slot[n] = 0
            elif over:
                if not slot[n]:
                    slot[n] = _PENDING
                    since[n] = now
                if ticks_diff(now, since[n]) >= v[k + 2]:
                    slot[n] = _ACTIVE
                    since[n] = now
            else:
                slot[n] = 0
            lvl += 1
        a = 1 << _FAM_ALARM[f]
        if slot[s] == _ACTIVE:
            self.amask |= a
        else:
            self.amask &= ~a
        a = 1 << _FAM_PROT[f]
        if slot[s + 1] == _ACTIVE or slot[s + 2] == _ACTIVE:
            self.pmask |= a
        else:
            self.pmask &= ~a
        if slot[s] or slot[s + 1] or slot[s + 2]:
            self.busy |= 1 << f
        else:
            self.busy &= ~(1 << f)

    def _stuck(self, k, x, prev, step, now, stuck_ms):
        """Stuck-reading rule for reading k (cell 0..15, 16 = current), prev
        its previous read."""
        b = 1 << k
        if not self.have_prev or x != prev:
            self.sus &= ~b
        elif step and not self.sus & b:
            self.sus |= b
            self.since[_S_SUS + k] = now
        return self.sus & b and ticks_diff(now, self.since[_S_SUS + k]) >= stuck_ms

    def _sensors(self, now, tbad):
        v = self.p.v
        st = self.st
        snap = st.snap
        stack = snap.stack_mv
        i_ma = snap.current_ma
        ds = stack - self.prev_stack
        step = self.have_prev and (ds >= v[P.SENSOR_STUCK_STEP_MV] or -ds >= v[P.SENSOR_STUCK_STEP_MV])
        # without a step no reading becomes suspect: only a suspect one can change
        if step or self.sus or not self.incremental:
            stuck_ms = v[P.SENSOR_STUCK_MS]
            cells = snap.cell_mv
            prev = self.pcell
            c = 0
            while c < N_CELLS:
                x = cells[c]
                if self._stuck(c, x, prev[c], step, now, stuck_ms):
                    self._latch(_F_CELL, x)
                c += 1
            if self._stuck(N_CELLS, i_ma, self.prev_i, step, now, stuck_ms):
                self._latch(_F_CURRENT, i_ma)
        self.pcell[_ALL] = snap.cell_mv
        self.prev_i = i_ma
        self._ntc_stuck(now, tbad)
        self.prev_stack = stack
        self.have_prev = True
        # imbalance failure (`004`: delta > 1 V)
        if self.fok[P.F_IMB]:
            dv = self.vals[P.F_IMB]
            if (dv > v[P.IMB_FAIL_MV] or self.fpend & _B_IMB) and self._hold(
                    _F_IMB, dv > v[P.IMB_FAIL_MV], now, v[P.IMB_FAIL_DELAY_MS]):
                self._latch(_F_IMB, dv)
        # MOSFET failure: current through a FET commanded off last cycle
        mf = v[P.MOS_FAIL_MA]
        chg = i_ma >= mf and not st.chg_fet
        dsg = -i_ma >= mf and not st.dsg_fet and not st.pchg_fet
        if chg or dsg or self.fpend & _B_MOS:
            md = v[P.MOS_FAIL_DELAY_MS]
            if self._hold(_F_CHG_MOS, chg, now, md):
                self._latch(_F_CHG_MOS, i_ma)
            if self._hold(_F_DSG_MOS, dsg, now, md):
                self._latch(_F_DSG_MOS, i_ma)

    def _ntc_stuck(self, now, tbad):
        """Stuck-temperature rule (before have_prev is set for this read);
        tbad: an implausible channel this read."""
        v = self.p.v
        snap = self.st.snap
        temps = snap.temp_dc
        heat_lim = v[P.NTC_STUCK_HEAT_1C_MS]
        # this read's heat in ms at 1 C, (I / rated)^2 * dt, in small ints
        inc = 0
        i = snap.current_ma
        if i:
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
        heat = self.heat_owed + inc
        # no channel moved, none is out of range or suspect, and none's heat
        # reaches the limit: each channel's only change is its heat, owed
        if (self.have_prev and not tbad and not self.tsus and temps == self.tlast
                and max(self.theat) + heat < heat_lim and self.incremental):
            self.heat_owed = heat
            return
        self.heat_owed = 0
        base = self.tbase
        tlo = v[P.NTC_MIN_DC]
        thi = v[P.NTC_MAX_DC]
        move = v[P.NTC_STUCK_MOVE_DC]
        # the drivers to check: those that moved since the last read. A pair
        # whose driver stood still was checked at the last move (a suspect
        # leaves none unchecked) with the same readings; all of them after a
        # reset or with another range or move
        drv = 0
        if temps != self.tlast:
            if (self.tcheck or move != self.tmove or tlo != self.tlo or thi != self.thi
                    or not self.incremental):
                drv = _ALL_TEMPS
            else:
                j = 0
                while j < N_TEMPS:
                    if temps[j] != self.tlast[j]:
                        drv |= 1 << j
                    j += 1
            self.tcheck = False
            self.tmove = move
            self.tlo = tlo
            self.thi = thi
        ch = 0
        while ch < N_TEMPS:
            t = temps[ch]
            row = ch * N_TEMPS
            bit = 1 << ch
            if not self.have_prev or t != base[row + ch] or t < tlo or t > thi:
                j = 0
                while j < N_TEMPS:
                    base[row + j] = temps[j]
                    j += 1
                self.tsus &= ~bit
                self.theat[ch] = 0
            elif not self.tsus & bit:
                sus = False
                if ch < T_AMB:  # cell and MOSFET NTCs: on what the current heats
                    h = self.theat[ch] + heat
                    if h > heat_lim:
                        h = heat_lim
                    self.theat[ch] = h
                    sus = h >= heat_lim
                d = drv & _DRIVERS[ch]
                j = 0
                while d and not sus:
                    if d & 1:
                        u = temps[j]
                        b = base[row + j]
                        if tlo <= u <= thi and tlo <= b <= thi:
                            sus = u - b >= move or b - u >= move
                    d >>= 1
                    j += 1
                if sus:
                    self.tsus |= bit
                    self.since[_S_TSUS + ch] = now
            elif ticks_diff(now, self.since[_S_TSUS + ch]) >= v[P.NTC_STUCK_MS]:
                self._latch(_F_NTC, t)
            ch += 1
        self.tlast[_ALL] = temps

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
                    self.since[_S_SCP] = now
                if ticks_diff(now, self.since[_S_SCP]) >= v[P.SCP_DELAY_MS]:
                    self.scp = True
                    self.scp_pend = False
                    self.vals[_V_P + _P_SCP] = i_ma
            else:
                self.scp_pend = False
        elif self._charge_to_release(i_ma) and not st.hw_alerts & ALERT_SCD:
            self.scp = False
        # reversed polarity
        if snap.pack_mv <= -v[P.REV_POL_MV]:
            if not self.rev:
                self.rev = True
                self.vals[_V_F + _F_REVERSED] = snap.pack_mv
        elif self.rev and self._charge_to_release(i_ma):
            self.rev = False
        # USOC alarm (the estimate runs after this stage: last cycle's SOC)
        if st.soc_valid:
            if st.soc_pct <= v[P.USOC_ALARM_PCT]:
                self.usoc = True
            elif st.soc_pct >= v[P.USOC_ALARM_REL_PCT]:
                self.usoc = False
            self.vals[_V_A + _A_USOC] = st.soc_pct
        # hardware alerts: note when first seen, ask the control stage to clear
        # them once the firmware's release rule holds (on a plausible read the
        # cells' extremes are the families' inputs)
        ha = st.hw_alerts
        if not (ha or self.hw_seen or not self.incremental):
            return
        dead = v[P.CURRENT_DEADBAND_MA]
        cmax = self.vals[P.F_CELL_OV]
        cmin = self.vals[P.F_CELL_UV]
        k = 0
        while k < 5:
            bit = _HW_BITS[k]
            if ha & bit:
                if not self.hw_seen & bit:
                    self.hw_seen |= bit
                    self.since[_S_HW + k] = now
                if bit == ALERT_COV:
                    rel = cmax <= v[P.CELL_OV_P1_REL_MV] or (i_ma <= -dead and cmax < v[P.CELL_OV_P1_MV])
                elif bit == ALERT_CUV:
                    rel = cmin >= v[P.CELL_UV_P1_REL_MV] or (i_ma >= dead and cmin > v[P.CELL_UV_P1_MV])
                elif bit == ALERT_OCC:
                    rel = not self.lockout & LOCK_CHG and ticks_diff(now, self.since[_S_HW + k]) >= v[P.OC_RETRY_MS]
                elif bit == ALERT_OCD:
                    rel = not self.lockout & LOCK_DSG and ticks_diff(now, self.since[_S_HW + k]) >= v[P.OC_RETRY_MS]
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
        full = not self.incremental
        na = self.amask
        np_ = self.pmask
        if self.usoc:
            na |= 1 << _A_USOC
        if self.scp:
            np_ |= 1 << _P_SCP
        # an alert whose release is asked for this cycle no longer holds its
        # protection (the control stage clears it before the estimate runs)
        ha = st.hw_alerts & self.hw_seen & ~self.hw_clear
        if ha or full:
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
        if (np_ | old) & _B_OC or self.oc_count[0] or self.oc_count[1] or full:
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
                    self.since[_S_OC + j] = now
                elif (not np_ & b and self.oc_count[j]
                      and ticks_diff(now, self.since[_S_OC + j]) >= v[P.OC_COUNT_RESET_MS]):
                    self.oc_count[j] = 0
                j += 1
        if self.lockout & LOCK_CHG:
            np_ |= 1 << _P_COCP
        if self.lockout & LOCK_DSG:
            np_ |= 1 << _P_DOCP
        par = 1 << _A_PARALLEL
        alarms = st.alarms & ~par
        if na != alarms or np_ != old or full:
            # the families' events report their input of the last valid read
            val = self.vals
            f = 0
            while f < _NF:
                val[_V_A + _FAM_ALARM[f]] = val[f]
                val[_V_P + _FAM_PROT[f]] = val[f]
                f += 1
            self._diff(codes.KIND_ALARM, alarms, na, _V_A, now)
            self._diff(codes.KIND_PROTECTION, old, np_, _V_P, now)
        if nf != st.faults:
            self._diff(codes.KIND_FAULT, st.faults, nf, _V_F, now)
        if st.link_failure:
            na |= par
        if (na ^ st.alarms) & par:
            st.events.record(codes.KIND_ALARM, _A_PARALLEL, (na & par) != 0, now, st.link_online)
        st.alarms = na
        st.protections = np_
        st.faults = nf
        st.lockout = self.lockout

    def _diff(self, kind, old, new, base, now):
        """An event for every bit that changed; its value: vals[base + bit]."""
        ch = old ^ new
        k = 0
        while ch:
            if ch & 1:
                self.st.events.record(kind, k, (new >> k) & 1, now, self.vals[base + k])
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
            self.slot[n] = 0
            n += 1
        self.busy = self.amask = self.pmask = 0
        self.fpend = 0
        self.sus = 0
        self.tsus = 0
        self.tcheck = True  # a suspect cleared here may have a pair that holds
        self.latched = 0
        self.scp = False
        self.scp_pend = False
        self.rev = False
        self.lockout = 0
        self.oc_count[0] = self.oc_count[1] = 0
        self.hw_seen = 0
        self.hw_clear |= _HW_ALL
