# Owns the simulated AFE chip: it measures a PackModel (with configurable
# sensor errors), drives its FETs and balancing, runs the chip's own hardware
# protections (COV/CUV/OCC/OCD with ms delays, SCD with a us delay) and takes
# fault injection and reading overrides for tests and scenarios. read() runs
# inside the firmware's control step, so it allocates nothing.
#
# What the protections look at: the current comparators (OCC/OCD/SCD) see the
# true current, as the chip's comparators sit on the shunt; COV/CUV see the
# chip's own cell measurement, so injected cell-reading faults (offset, stuck,
# open wire) reach them, while noise and override() only change what read()
# reports. Current trips cut the step at the exact ms the delay runs out; cell
# voltages are sampled at the end of each step and must stay over/under the
# threshold over samples spanning the delay.
from array import array

from defs.snapshot import N_CELLS, N_TEMPS, N_CELL_TEMPS, T_MOS0, T_MOS1
from bms.soc import gained
from defs.afe import Afe, ALERT_COV, ALERT_CUV, ALERT_OCC, ALERT_OCD, ALERT_SCD

FAULTS = (
    "cell_offset", "cell_stuck", "cell_open_wire",
    "ntc_open", "ntc_short", "ntc_stuck",
    "afe_silent", "afe_crc",
    "current_offset", "current_stuck",
    "short_circuit",
    "chg_fet_stuck_on", "chg_fet_stuck_off", "dsg_fet_stuck_on", "dsg_fet_stuck_off",
)
_CELL_FAULTS = ("cell_offset", "cell_stuck", "cell_open_wire")
_NTC_FAULTS = ("ntc_open", "ntc_short", "ntc_stuck")
OVERRIDES = ("cell_mv", "ntc_dc", "current_ma")

NTC_OPEN_DC = -600  # open NTC: the divider reads as extreme cold
NTC_SHORT_DC = 1800  # shorted NTC: extreme heat
_CRC_DEFAULT_PML = 100
_CHG_OFF = ALERT_COV | ALERT_OCC | ALERT_SCD
_DSG_OFF = ALERT_CUV | ALERT_OCD | ALERT_SCD


class MockAfe(Afe):
    FAULTS = FAULTS

    def __init__(self, model, rng=None, cell_noise_mv=0, current_offset_ma=0,
                 current_gain_ppm=0, temp_error_dc=0, voltage_gain_ppm=0):
        """Sensor errors: cell readings get fresh uniform noise of +-cell_noise_mv
        on every read; the current reads (1 + gain) * I + offset; every voltage
        (cells, stack, pack side) reads (1 + voltage_gain_ppm / 1e6) * V; each
        temperature channel has a fixed error drawn once in +-temp_error_dc.
        rng defaults to the model's."""
        n = model.n_cells
        if n > N_CELLS:
            raise ValueError("model has %d cells, a snapshot holds %d" % (n, N_CELLS))
        self.model = model
        self.n_cells = n
        self._rng = model.rng if rng is None else rng
        self.comm_errors = 0
        self._noise_mv = cell_noise_mv
        self._draws = array("i", [0] * n)  # read()'s noise, drawn in one call
        self._i_offset_ma = current_offset_ma
        self._i_gain_ppm = current_gain_ppm
        self._v_gain_ppm = voltage_gain_ppm
        self._t_err = array("i", [0] * N_TEMPS)
        if temp_error_dc:
            for ch in range(N_TEMPS):
                self._t_err[ch] = self._rng.randint(-temp_error_dc, temp_error_dc)

        self._limits = None
        self._alerts = 0
        self._cov_ms = -1  # -1: not over threshold at the last sample
        self._cuv_ms = -1
        self._occ_ms = 0  # time the current has been over threshold
        self._ocd_ms = 0
        self._req_chg = False
        self._req_dsg = False
        self._req_pchg = False

        self._cell_off = array("i", [0] * n)
        self._cell_stuck = bytearray(n)
        self._cell_stuck_mv = array("i", [0] * n)
        self._open_wire = bytearray(n)
        self._ntc_open = bytearray(N_TEMPS)
        self._ntc_short = bytearray(N_TEMPS)
        self._ntc_stuck = bytearray(N_TEMPS)
        self._ntc_stuck_dc = array("i", [0] * N_TEMPS)
        self._silent = False
        self._crc_pml = 0
        self._i_fault_ma = 0
        self._i_stuck = False
        self._i_stuck_ma = 0

        self._ov_cell = bytearray(n)
        self._ov_cell_mv = array("i", [0] * n)
        self._ov_ntc = bytearray(N_TEMPS)
        self._ov_ntc_dc = array("i", [0] * N_TEMPS)
        self._ov_i = False
        self._ov_i_ma = 0
        self._plain_sense = True  # no cell fault: the chip senses the model's cell_mv
        self._plain_cells = True  # nor a cell override: read() reports them as they are
        self._plain_ntcs = True  # no NTC fault or override

    def _plain(self):
        # bench speed: read() and step() take the model's readings directly
        # while nothing is injected (what the general path gives them too)
        self._plain_sense = not (any(self._cell_off) or any(self._cell_stuck) or any(self._open_wire))
        self._plain_cells = self._plain_sense and not any(self._ov_cell)
        self._plain_ntcs = not (any(self._ntc_open) or any(self._ntc_short) or any(self._ntc_stuck)
                                or any(self._ov_ntc))

    # --- what the chip measures (noise-free, before overrides) ---

    def _sensed_cell_mv(self, c):
        if self._cell_stuck[c]:
            return self._cell_stuck_mv[c]
        if self._open_wire[c]:
            # The sense line above cell c is open: this input sees ~0 V and the
            # cell above measures across both (across all of them, for
            # several adjacent open lines).
            return self._cell_off[c]
        m = self.model
        v = m.cell_mv(c)
        j = c - 1
        while j >= 0 and self._open_wire[j]:
            v += m.cell_mv(j)
            j -= 1
        return v + self._cell_off[c]

    def _sensed_temp_dc(self, ch):
        if self._ntc_open[ch]:
            return NTC_OPEN_DC
        if self._ntc_short[ch]:
            return NTC_SHORT_DC
        if self._ntc_stuck[ch]:
            return self._ntc_stuck_dc[ch]
        m = self.model
        if ch < N_CELL_TEMPS:
            t = m.cell_temp_dc(ch)
        elif ch == T_MOS0 or ch == T_MOS1:
            t = m.mos_temp_dc()
        else:
            t = m.ambient_dc
        return t + self._t_err[ch]

    def _sensed_current_ma(self):
        if self._i_stuck:
            return self._i_stuck_ma
        i = self.model.current_ma
        return gained(i, self._i_gain_ppm) + self._i_offset_ma + self._i_fault_ma

    # --- Afe interface ---

    def read(self, snap):
        if self._silent:
            self.comm_errors += 1
            return False
        if self._crc_pml and self._rng.randint(0, 999) < self._crc_pml:
            self.comm_errors += 1
            return False
        m = self.model
        noise = self._noise_mv
        if self._plain_cells:
            mv = m._mv  # already clamped to 0..CELL_MAX_MV
            out = snap.cell_mv
            n = self.n_cells
            if noise:
                # what _read_cells gives: a draw per cell, in order
                d = self._draws
                self._rng.fill(d, n, -noise, noise)
                for c in range(n):
                    v = mv[c] + d[c]
                    out[c] = 0 if v < 0 else (v if v < 65535 else 65535)
            else:
                for c in range(n):
                    out[c] = mv[c]
        else:
            self._read_cells(snap, noise)
        if self._plain_ntcs:
            t_err = self._t_err
            out = snap.temp_dc
            ch = 0
            while ch < N_CELL_TEMPS:
                out[ch] = _int16(m.cell_temp_dc(ch) + t_err[ch])
                ch += 1
            t = m.mos_temp_dc()
            while ch < N_TEMPS:
                out[ch] = _int16((t if ch == T_MOS0 or ch == T_MOS1 else m.ambient_dc) + t_err[ch])
                ch += 1
        else:
            self._read_temps(snap)
        snap.stack_mv = m.stack_mv()
        snap.pack_mv = m.pack_mv()
        g = self._v_gain_ppm
        if g:
            out = snap.cell_mv
            for c in range(self.n_cells):
                out[c] = gained(out[c], g)
            snap.stack_mv = gained(snap.stack_mv, g)
            snap.pack_mv = gained(snap.pack_mv, g)
        snap.current_ma = self._ov_i_ma if self._ov_i else self._sensed_current_ma()
        return True

    def _read_cells(self, snap, noise):
        rng = self._rng
        c = 0
        while c < self.n_cells:
            if self._ov_cell[c]:
                v = self._ov_cell_mv[c]
            else:
                v = self._sensed_cell_mv(c)
                if noise:
                    v += rng.randint(-noise, noise)
            if v < 0:
                v = 0
            elif v > 65535:
                v = 65535
            snap.cell_mv[c] = v
            c += 1

    def _read_temps(self, snap):
        ch = 0
        while ch < N_TEMPS:
            if self._ov_ntc[ch]:
                t = self._ov_ntc_dc[ch]
            else:
                t = self._sensed_temp_dc(ch)
            snap.temp_dc[ch] = _int16(t)
            ch += 1

    def set_fets(self, chg, dsg, pchg):
        self._req_chg = bool(chg)
        self._req_dsg = bool(dsg)
        self._req_pchg = bool(pchg)
        self._apply_fets()

    def set_balance(self, mask):
        self.model.balance_mask = mask & ((1 << self.n_cells) - 1)

    def program_protections(self, limits):
        self._limits = limits
        self._cov_ms = -1
        self._cuv_ms = -1
        self._occ_ms = 0
        self._ocd_ms = 0

    def read_alerts(self):
        return self._alerts

    def clear_alerts(self, mask):
        self._alerts &= ~mask
        if mask & ALERT_COV:
            self._cov_ms = -1
        if mask & ALERT_CUV:
            self._cuv_ms = -1
        if mask & ALERT_OCC:
            self._occ_ms = 0
        if mask & ALERT_OCD:
            self._ocd_ms = 0
        self._apply_fets()

    def _apply_fets(self):
        # A tripped protection holds its FETs off whatever the host asks;
        # discharge-side trips also hold the pre-charge FET off.
        m = self.model
        a = self._alerts
        m.cmd_chg = self._req_chg and not a & _CHG_OFF
        m.cmd_dsg = self._req_dsg and not a & _DSG_OFF
        m.cmd_pchg = self._req_pchg and not a & _DSG_OFF

    def _trip(self, bit):
        self._alerts |= bit
        self._apply_fets()

    # --- time ---

    def step(self, dt_ms, requested_ma):
        """Advance the pack dt_ms with requested_ma asked by the charger/load
        (+ = charge), running the hardware protections."""
        m = self.model
        lim = self._limits
        if lim is None:
            m.step(dt_ms, requested_ma)
            return
        alerts = self._alerts
        if not alerts & ALERT_SCD:
            i = m.flow_ma(requested_ma)
            if -i > lim.scd_ma:
                m.pulse_us(lim.scd_delay_us, i)
                self._trip(ALERT_SCD)
        left = dt_ms
        while left > 0:
            i = m.flow_ma(requested_ma)
            seg = left
            bit = 0
            if i > lim.occ_ma and not self._alerts & ALERT_OCC:
                if self._occ_ms + seg >= lim.occ_delay_ms:
                    seg = lim.occ_delay_ms - self._occ_ms
                    bit = ALERT_OCC
            elif -i > lim.ocd_ma and not self._alerts & ALERT_OCD:
                if self._ocd_ms + seg >= lim.ocd_delay_ms:
                    seg = lim.ocd_delay_ms - self._ocd_ms
                    bit = ALERT_OCD
            if seg > 0:
                m.step(seg, requested_ma)
            self._occ_ms = self._occ_ms + seg if i > lim.occ_ma else 0
            self._ocd_ms = self._ocd_ms + seg if -i > lim.ocd_ma else 0
            if bit:
                self._trip(bit)
            left -= seg

        if self._plain_sense:
            vmax = max(m._mv)  # what the loop below gives while no cell fault is injected
            vmin = min(m._mv)
        else:
            vmax = vmin = self._sensed_cell_mv(0)
            for c in range(1, self.n_cells):
                v = self._sensed_cell_mv(c)
                if v > vmax:
                    vmax = v
                elif v < vmin:
                    vmin = v
        a = self._alerts
        self._cov_ms = _held(vmax > lim.cov_mv and not a & ALERT_COV, self._cov_ms, dt_ms)
        if self._cov_ms >= lim.cov_delay_ms:
            self._trip(ALERT_COV)
        self._cuv_ms = _held(vmin < lim.cuv_mv and not a & ALERT_CUV, self._cuv_ms, dt_ms)
        if self._cuv_ms >= lim.cuv_delay_ms:
            self._trip(ALERT_CUV)
        if self._alerts != alerts:
            # A trip at the end of the step: the FETs are off from now on, so
            # the current and the voltages (IR drop) are those of the new state.
            m.step(0, requested_ma)

    # --- test hooks ---

    def set_fault(self, name, on, index=0, value=0):
        """Inject (on=True) or remove a fault; FAULTS lists the names. Cell
        faults take a cell index, NTC faults a temp_dc channel (0..6)."""
        if name not in FAULTS:
            raise ValueError("unknown fault %r (known: %s)" % (name, ", ".join(FAULTS)))
        if name in _CELL_FAULTS:
            _check_index(name, index, self.n_cells)
        elif name in _NTC_FAULTS:
            _check_index(name, index, N_TEMPS)
        elif index != 0:
            raise ValueError("fault %r takes no index (got %d)" % (name, index))
        on = bool(on)
        m = self.model
        if name == "cell_offset":
            self._cell_off[index] = value if on else 0
        elif name == "cell_stuck":
            if on:
                self._cell_stuck_mv[index] = self._sensed_cell_mv(index)
            self._cell_stuck[index] = on
        elif name == "cell_open_wire":
            self._open_wire[index] = on
        elif name == "ntc_open":
            self._ntc_open[index] = on
        elif name == "ntc_short":
            self._ntc_short[index] = on
        elif name == "ntc_stuck":
            if on:
                self._ntc_stuck_dc[index] = self._sensed_temp_dc(index)
            self._ntc_stuck[index] = on
        elif name == "afe_silent":
            self._silent = on
        elif name == "afe_crc":
            self._crc_pml = (min(1000, max(0, value)) or _CRC_DEFAULT_PML) if on else 0
        elif name == "current_offset":
            self._i_fault_ma = value if on else 0
        elif name == "current_stuck":
            if on:
                self._i_stuck_ma = self._sensed_current_ma()
            self._i_stuck = on
        elif name == "short_circuit":
            m.short = on
        elif name == "chg_fet_stuck_on":
            m.chg_stuck_on = on
        elif name == "chg_fet_stuck_off":
            m.chg_stuck_off = on
        elif name == "dsg_fet_stuck_on":
            m.dsg_stuck_on = on
        else:
            m.dsg_stuck_off = on
        self._plain()

    def override(self, kind, index, value):
        """Report value instead of the measurement of cell index (mV), NTC
        channel index (dC) or the current (index 0, mA); None removes it."""
        on = value is not None
        v = value if on else 0
        if kind == "cell_mv":
            _check_index(kind, index, self.n_cells)
            self._ov_cell[index] = on
            self._ov_cell_mv[index] = v
        elif kind == "ntc_dc":
            _check_index(kind, index, N_TEMPS)
            self._ov_ntc[index] = on
            self._ov_ntc_dc[index] = v
        elif kind == "current_ma":
            _check_index(kind, index, 1)
            self._ov_i = on
            self._ov_i_ma = v
        else:
            raise ValueError("unknown override %r (known: %s)" % (kind, ", ".join(OVERRIDES)))
        self._plain()


def _check_index(name, index, n):
    if not 0 <= index < n:
        raise ValueError("%s: index %d out of range 0..%d" % (name, index, n - 1))


def _int16(t):
    return -32768 if t < -32768 else (32767 if t > 32767 else t)


def _held(cond, ms, dt_ms):
    """Timer of a sampled condition: -1 while false, 0 at the first sample
    it holds, then the time it has held."""
    if not cond:
        return -1
    return 0 if ms < 0 else ms + dt_ms
