# Owns the state-of-charge estimate and the lifetime counters (SPEC 9, issue 4):
#  - coulomb counting over the measured time between samples, in integer mAh
#    plus a mA*ms remainder so nothing drifts and nothing leaves small-int
#    range on the board; a current inside the dead band counts as 0;
#  - the current sensor's offset, learned where no current can flow (a reading
#    inside the dead band in the direction of an open FET, or with both open)
#    and taken off every counted sample;
#  - correction from the open-circuit voltage only after a rest (soc_rest_ms)
#    and only on the steep ends of the LiFePO4 curve (lowest cell at or below
#    soc_ocv_low_mv: the empty end is the lowest cell's; highest cell at or
#    above soc_ocv_high_mv: the full end is the highest cell's); never on the
#    plateau;
#  - 100 % at charge end (cut-off current at the charge voltage for a while, or
#    COVP / the AFE's COV), shown as at most 99 % until then; 0 % at CUVP; every
#    calibration point only from a plausible read (snap.plausible);
#  - full-charge capacity learned from a discharge between two calibration
#    points at least soh_min_span_pct apart (SOH = learned / rated);
#  - charged/discharged Ah and Wh, cycles = discharged Ah / rated capacity.
# Pure: time comes in as the measured interval, values go to the pack state.
from defs.const import const
from array import array
from bms.ocv import soc_ppm_from_ocv
from bms import params as P
from defs.codes import PROTECTIONS
from defs.afe import ALERT_COV, ALERT_CUV

_MAMS_PER_MAH = const(3600000)
_MAH_PER_AH = const(1000)
_DWMS_PER_WH = const(36000000)  # 0.1 W * ms per Wh
_CHUNK_MS = const(1000)  # |I| * 1000 ms stays below 2**30 for |I| < 1000 A
_MAX_MA = const(1000000)
_FULL_PPM = const(1000000)
_OFFSET_WINDOW_MS = const(10000)  # average of the zero-current readings
_COVP = 1 << PROTECTIONS.index("COVP")
_CUVP = 1 << PROTECTIONS.index("CUVP")
# what the PC tool sets (set_by_host; app.host checks the range)
SET_I_OFFSET = const(1)  # current offset, mA
SET_FCC = const(2)  # full-charge capacity, mAh
SET_SOC = const(3)  # SOC, ppm
SET_CYCLES = const(4)  # cycle count


def ratio_ppm(a, b):
    """a / b in ppm for 0 <= a <= b < 2**20 without leaving small ints."""
    q = a * 1000 // b
    return q * 1000 + (a * 1000 - q * b) * 1000 // b


def gained(x, d_ppm):
    """x * (1 + d_ppm / 1e6) for |x| <= 2**20, |d_ppm| <= 1e6, in small ints
    (within 2 of exact): a calibration gain, or a sensor's gain error (lib/sim)."""
    return x + x // 1000 * d_ppm // 1000 + x % 1000 * d_ppm // 1000000


def part_of(total, ppm):
    """total * ppm / 1e6 for total < 2**20, ppm <= 1e6, in small ints."""
    return total // 1000 * ppm // 1000 + total % 1000 * ppm // 1000000


# The charge and energy counters, in one array (no object each): counter k holds
# whole units at c[k] and the remainder at c[k + 1] (0 <= rem < unit)
_NET = const(0)  # counted charge since the last calibration point (signed), mAh
_CHG = const(2)  # charged since that point, mAh
_CHG_AH = const(4)  # lifetime throughput, mAh below the Ah in state
_DSG_AH = const(6)
_CHG_E = const(8)  # Wh (input 0.1 W) below the Wh in state
_DSG_E = const(10)
_N_COUNTERS = const(6)


def counter_add(c, k, i_ma, dt_ms, unit=_MAMS_PER_MAH, limit=0):
    """Add i_ma for dt_ms to counter k of the array c: whole mAh plus a mA*ms
    remainder; with unit=_DWMS_PER_WH an energy counter (whole Wh, the input
    is 0.1 W, |x| <= 1e6). limit > 0: the units saturate at +-limit, so a
    count that never meets a calibration point stays a small int. Returns the
    whole units it crossed (signed)."""
    before = mah = c[k]
    rem = c[k + 1]
    while dt_ms > 0:
        d = dt_ms if dt_ms < _CHUNK_MS else _CHUNK_MS
        rem += i_ma * d
        dt_ms -= d
        if rem >= unit or rem < 0:
            q = rem // unit
            mah += q
            rem -= q * unit
    if limit:
        if mah > limit:
            mah = limit
        elif mah < -limit:
            mah = -limit
    c[k] = mah
    c[k + 1] = rem
    return mah - before


def _clear(c, k):
    c[k] = 0
    c[k + 1] = 0


class SocEstimator:
    """The SOC rules over the pack state; update() once per new good read.
    The coulomb counter itself (set_ppm, count, ppm) is plain: the count
    between 0 and capacity_mah (perf compares the estimate with it alone)."""

    def __init__(self, v):
        self.v = v
        self.rated_mah = v[P.RATED_CAPACITY_MAH]
        self.capacity_mah = self.rated_mah  # the counter's: the learned capacity once known
        self.charge_mah = 0
        self._rem_mams = 0  # mA*ms not yet a whole mAh, 0 <= rem < 3.6e6
        self.started = False
        self.cal_count = 0  # calibrations so far (full, empty, OCV)
        self.learn_count = 0  # capacities learned
        self._rest_ms = 0
        self._end_ms = 0  # time the charge-end (cut-off current) condition held
        self._at_full = False
        self._at_empty = False
        self._cal_ppm = -1  # last calibration point, -1 none yet
        # the counters (_NET.._DSG_E); _NET and _CHG saturate at twice the
        # rated capacity (_lim), beyond which neither changes a calibration's outcome
        self._c = array("i", [0] * (2 * _N_COUNTERS))
        self._lim = 2 * self.rated_mah
        self._off_ms = 0
        self._off_sum = 0  # mA*ms of readings where no current can flow

    # --- the coulomb counter ---

    def set_ppm(self, soc_ppm):
        self.charge_mah = part_of(self.capacity_mah, soc_ppm)
        self._rem_mams = 0

    def count(self, current_ma, dt_ms):
        """Add current_ma flowing for dt_ms (the measured interval)."""
        if current_ma > _MAX_MA:
            current_ma = _MAX_MA
        elif current_ma < -_MAX_MA:
            current_ma = -_MAX_MA
        while dt_ms > 0:
            d = dt_ms if dt_ms < _CHUNK_MS else _CHUNK_MS
            dt_ms -= d
            self._rem_mams += current_ma * d
            q = self._rem_mams // _MAMS_PER_MAH
            if q:
                self.charge_mah += q
                self._rem_mams -= q * _MAMS_PER_MAH
            if self.charge_mah < 0:
                self.charge_mah = 0
                self._rem_mams = 0
            elif self.charge_mah >= self.capacity_mah:
                self.charge_mah = self.capacity_mah
                self._rem_mams = 0

    def ppm(self):
        return ratio_ppm(self.charge_mah, self.capacity_mah)

    # --- calibration ---

    def _use_fcc(self, st):
        fcc = st.fcc_mah if st.fcc_mah > 0 else self.rated_mah
        if fcc != self.capacity_mah:
            p = self.ppm()
            self.capacity_mah = fcc
            self.set_ppm(p)

    def calibrate(self, st, ppm):
        """A known SOC: learn the capacity if the last point is far enough
        above it (a discharge), then restart counting from here."""
        if 0 <= ppm < self._cal_ppm:
            span = self._cal_ppm - ppm
            net = -self._c[_NET]
            if (span >= self.v[P.SOH_MIN_SPAN_PCT] * 10000 and net > 0
                    and self._c[_CHG] * 20 <= self.rated_mah):  # a discharge: < 5 % charged in between
                fcc = net * 1000 // (span // 1000)
                lo = self.rated_mah // 2
                hi = self.rated_mah + self.rated_mah // 10
                fcc = lo if fcc < lo else (hi if fcc > hi else fcc)
                st.fcc_mah = fcc
                soh = fcc * 100 // self.rated_mah
                st.soh_pct = soh if soh < 100 else 100
                self.learn_count += 1
        self._use_fcc(st)
        self.set_ppm(ppm)
        self._cal_ppm = ppm
        _clear(self._c, _NET)
        _clear(self._c, _CHG)
        self.cal_count += 1

    def restore(self, st, soc_ppm, full, fcc_mah, cycles, chg_ah, dsg_ah, chg_wh, dsg_wh, i_offset_ma):
        """The stored estimator state, before the first read (app.persist at
        start): soc_ppm < 0 (not known) leaves the OCV guess to start()."""
        if soc_ppm >= 0:
            st.soc_restore_ppm = soc_ppm
        st.soc_full = bool(full)
        st.fcc_mah = fcc_mah
        st.cycles = cycles
        st.chg_ah = chg_ah
        st.dsg_ah = dsg_ah
        st.chg_wh = chg_wh
        st.dsg_wh = dsg_wh
        st.i_offset_ma = i_offset_ma

    def set_by_host(self, st, what, value):
        """A calibration the PC tool sent (SET_*). A SOC set by hand starts
        the count again and is no point to learn the capacity from; a cycle
        count sets the discharged Ah it is computed from."""
        if what == SET_I_OFFSET:
            st.i_offset_ma = value
        elif what == SET_FCC:
            st.fcc_mah = value
            soh = value * 100 // self.rated_mah
            st.soh_pct = soh if soh < 100 else 100
            self._use_fcc(st)
        elif what == SET_SOC:
            if not self.started:
                st.soc_restore_ppm = value
                return
            self._use_fcc(st)
            self.set_ppm(value)
            self._cal_ppm = -1
            _clear(self._c, _NET)
            _clear(self._c, _CHG)
            self._publish(st, self.ppm())
        elif what == SET_CYCLES:
            r = self.rated_mah
            st.dsg_ah = value * (r // _MAH_PER_AH) + value * (r % _MAH_PER_AH) // _MAH_PER_AH
            _clear(self._c, _DSG_AH)
            st.cycles = value

    def start(self, st, snap, vmin, vmax):
        """The first good read: the restored SOC, else the OCV guess."""
        self._use_fcc(st)
        if st.soc_restore_ppm >= 0:
            self.set_ppm(st.soc_restore_ppm if st.soc_restore_ppm <= _FULL_PPM else _FULL_PPM)
        elif snap.plausible and vmin <= self.v[P.SOC_OCV_LOW_MV]:
            self.calibrate(st, soc_ppm_from_ocv(vmin))
        elif snap.plausible and vmax >= self.v[P.SOC_OCV_HIGH_MV]:
            self.calibrate(st, soc_ppm_from_ocv(vmax))
        else:
            # the average cell, interpolated below 1 mV (plateau: only a guess)
            n = len(snap.cell_mv)
            mv = snap.stack_mv // n
            frac = snap.stack_mv - mv * n
            a = soc_ppm_from_ocv(mv)
            b = soc_ppm_from_ocv(mv + 1)
            self.set_ppm(a + (b - a) * frac // n)
        self.started = True

    # --- each read ---

    def update(self, st, raw_ma, dt_ms):
        v = self.v
        snap = st.snap
        vmin = snap.min_cell_mv
        vmax = snap.max_cell_mv
        if not self.started:
            self.start(st, snap, vmin, vmax)
            self._publish(st, self.ppm())
            return
        self._use_fcc(st)
        deadband = v[P.CURRENT_DEADBAND_MA]
        self._learn_offset(st, raw_ma, dt_ms, deadband)
        i = raw_ma - st.i_offset_ma
        if -deadband < i < deadband:
            i = 0
        if i > _MAX_MA:
            i = _MAX_MA
        elif i < -_MAX_MA:
            i = -_MAX_MA
        if i:  # no current moves no counter: each holds 0 <= remainder < unit, a count in range
            self.count(i, dt_ms)
            counter_add(self._c, _NET, i, dt_ms, _MAMS_PER_MAH, self._lim)
            self._lifetime(st, i, dt_ms, snap.stack_mv)

        # charge end: COVP (or the AFE's COV), or the cut-off current at the
        # charge voltage for charge_end_delay_ms; a read that failed plausibility
        # (snap.plausible, protect) is no calibration point and restarts the timers
        ok = snap.plausible
        if ok and 0 < i <= v[P.CHARGE_END_MA] and vmax >= v[P.CHARGE_END_CELL_MV]:
            self._end_ms += dt_ms
            if self._end_ms > v[P.CHARGE_END_DELAY_MS]:
                self._end_ms = v[P.CHARGE_END_DELAY_MS]
        else:
            self._end_ms = 0
        ended = ok and (st.protections & _COVP or st.hw_alerts & ALERT_COV
                        or (self._end_ms >= v[P.CHARGE_END_DELAY_MS] and self._end_ms > 0))
        if ended:
            if not self._at_full:
                self._at_full = True
                self.calibrate(st, _FULL_PPM)
            else:
                self.set_ppm(_FULL_PPM)
            st.soc_full = True
        elif ok and (st.protections & _CUVP or st.hw_alerts & ALERT_CUV):
            if not self._at_empty:
                self._at_empty = True
                self.calibrate(st, 0)
        else:
            # at rest: the OCV, only on the steep ends
            if ok and i == 0 and st.current_ma == 0:
                self._rest_ms += dt_ms
                if self._rest_ms >= v[P.SOC_REST_MS]:
                    self._rest_ms = 0
                    if vmin <= v[P.SOC_OCV_LOW_MV]:
                        self.calibrate(st, soc_ppm_from_ocv(vmin))
                    elif vmax >= v[P.SOC_OCV_HIGH_MV] and not st.soc_full:
                        self.calibrate(st, soc_ppm_from_ocv(vmax))
            else:
                self._rest_ms = 0
        ppm = self.ppm()
        if ppm < 990000:
            self._at_full = False
            st.soc_full = False
        if ppm > 50000:
            self._at_empty = False
        self._publish(st, ppm)

    def _publish(self, st, ppm):
        """ppm: self.ppm()."""
        st.soc_ppm = ppm
        pct = ppm // 10000
        if pct > 99 and not st.soc_full:
            pct = 99  # 100 % only once a charge has ended (`000` Q1, Q5)
        st.soc_pct = pct

    def _learn_offset(self, st, raw_ma, dt_ms, deadband):
        """Readings where no current can flow are the sensor's offset."""
        still = -deadband < raw_ma < deadband and not st.pchg_fet and (
            (not st.chg_fet and not st.dsg_fet) or (not st.chg_fet and raw_ma >= 0)
            or (not st.dsg_fet and raw_ma <= 0))
        if not still or dt_ms > _OFFSET_WINDOW_MS:
            self._off_ms = 0
            self._off_sum = 0
            return
        self._off_sum += raw_ma * dt_ms  # < 5 A * 10 s: small
        self._off_ms += dt_ms
        if self._off_ms >= _OFFSET_WINDOW_MS:
            st.i_offset_ma = self._off_sum // self._off_ms
            self._off_ms = 0
            self._off_sum = 0

    def _lifetime(self, st, i, dt_ms, stack_mv):
        """Lifetime Ah, Wh and cycles."""
        c = self._c
        if i > 0:
            if counter_add(c, _CHG_AH, i, dt_ms):
                st.chg_ah += c[_CHG_AH] // _MAH_PER_AH
                c[_CHG_AH] %= _MAH_PER_AH
            counter_add(c, _CHG, i, dt_ms, _MAMS_PER_MAH, self._lim)
            if counter_add(c, _CHG_E, _dw(stack_mv, i), dt_ms, _DWMS_PER_WH):
                st.chg_wh += c[_CHG_E]
                c[_CHG_E] = 0
        elif i < 0:
            if counter_add(c, _DSG_AH, -i, dt_ms):
                if c[_DSG_AH] >= _MAH_PER_AH:
                    st.dsg_ah += c[_DSG_AH] // _MAH_PER_AH
                    c[_DSG_AH] %= _MAH_PER_AH
                    # dsg_ah * 1000 // rated, split so no product passes 2**30
                    r = self.rated_mah
                    st.cycles = st.dsg_ah // r * _MAH_PER_AH + st.dsg_ah % r * _MAH_PER_AH // r
            if counter_add(c, _DSG_E, _dw(stack_mv, -i), dt_ms, _DWMS_PER_WH):
                st.dsg_wh += c[_DSG_E]
                c[_DSG_E] = 0


_DW_MAX_MV = const(100000)  # a 16-cell stack stays far below; a broken reading may not


def _dw(mv, ma):
    """Power in 0.1 W of mv * ma (ma <= 1e6), in small ints: at most 1e6."""
    if mv > _DW_MAX_MV:
        mv = _DW_MAX_MV
    return mv // 100 * (ma // 100) // 10 if ma >= 100000 else mv * (ma // 10) // 10000
