# Owns the physics of the simulated pack: a string of LiFePO4 cells (charge,
# capacity, resistance, self-discharge, each with a seeded spread), the
# back-to-back charge/discharge FETs with a pre-charge path, an external short,
# and a lumped thermal model (four cell groups, one per cell NTC, and the
# MOSFET bank). Integer maths only; it knows nothing of the AFE chip or its
# protections (see mock_afe).
#
# Units: charge in nC (= uA*ms = mA*us), so I*T moves an exact integer amount;
# temperatures in micro-degC; heat in aJ (1e-18 J = mA^2*uOhm*us). Accumulators
# are exact (remainders are carried), so nothing drifts with the step size.
#
# Default figures and where they come from:
#  - 100 Ah cells; 0.5 mOhm DC resistance per cell (Victron LFP 12.8 V/100 Ah
#    technical data: 2 mOhm for 4 cells; EVE LF105 spec gives 0.20 mOhm at
#    1 kHz AC, DC is a few times that); +-10 % resistance spread.
#  - +-2 % capacity spread, +-1 % SOC spread: matched grade-A cells.
#  - self-discharge 3 %/month, +-50 % spread (Discover Helios ESS manual:
#    "approximately 3.5 % per month" for an LFP pack at rest).
#  - 50 mA passive balancing bleed (typical AFE-internal balancing).
#  - Heat capacity 22 J/K per Ah of cell (about 2 kg per 100 Ah cell at
#    ~1.1 J/(g*K) for LFP), 3 h cell-to-ambient time constant (enclosed pack);
#    FET bank 1 mOhm on, 0.7 V body diode, 200 J/K with heatsink, 5 min.
#    These thermal figures are engineering estimates, not from a datasheet.
from sim.ocv import ocv_span

N_GROUPS = 4  # cell NTC groups
CELL_MAX_MV = 5000  # physical clamp of a terminal voltage
_NC_PER_MAH = 3600000000
_UC_PER_DC = 100000  # micro-degC per deci-degC
_CELL_J_PER_K_AH = 22
_MS_PER_MONTH = 30 * 24 * 3600 * 1000


class PackModel:
    def __init__(self, rng, n_cells=16, capacity_mah=100000, soc_pct=50, ambient_dc=250,
                 capacity_spread_ppm=20000, soc_spread_ppm=10000, resistance_uohm=500,
                 self_discharge_ppm_per_month=30000, balance_ma=50,
                 resistance_spread_ppm=100000, self_discharge_spread_ppm=500000,
                 fet_uohm=1000, fet_diode_mv=700, pchg_ma=500, short_uohm=5000,
                 cell_tau_s=10800, mos_heat_jk=200, mos_tau_s=300, ext_mv=0):
        """soc_spread_ppm is absolute (10000 = each cell within +-1 % SOC of
        soc_pct); the other spreads are relative to their value."""
        self.rng = rng
        self.n_cells = n_cells
        self.balance_ma = balance_ma
        self.fet_uohm = fet_uohm
        self.fet_diode_mv = fet_diode_mv
        self.pchg_ma = pchg_ma
        self.short_uohm = short_uohm
        self.ambient_dc = ambient_dc
        self.ext_mv = ext_mv  # P+/P- voltage from outside when no FET path conducts

        self.cmd_chg = False  # gate drive from the AFE
        self.cmd_dsg = False
        self.cmd_pchg = False
        self.chg_stuck_on = False  # power-stage faults; stuck-on wins over stuck-off
        self.chg_stuck_off = False
        self.dsg_stuck_on = False
        self.dsg_stuck_off = False
        self.short = False  # external short across P+/P-
        self.balance_mask = 0
        self.current_ma = 0

        self._nc_per_ppm = []  # capacity / 1e6: a cell's capacity in nC is
        # always a multiple of 1e6 (1 mAh = 3.6e9 nC), so SOC = q // this, exactly
        self._q = []  # nC
        self._r = [0] * n_cells  # uOhm
        self._sd = [0] * n_cells  # uA
        for c in range(n_cells):
            cap_mah = rng.spread(capacity_mah, capacity_spread_ppm)
            soc = soc_pct * 10000 + rng.randint(-soc_spread_ppm, soc_spread_ppm)
            soc = min(1000000, max(0, soc))
            self._nc_per_ppm.append(cap_mah * (_NC_PER_MAH // 1000000))
            self._q.append(cap_mah * _NC_PER_MAH * soc // 1000000)
            self._r[c] = rng.spread(resistance_uohm, resistance_spread_ppm)
            # ppm/month of capacity as a constant current: uAh/month / h/month
            self._sd[c] = rng.spread(
                cap_mah * 1000 * self_discharge_ppm_per_month // 1000000 * 3600000 // _MS_PER_MONTH,
                self_discharge_spread_ppm)

        # Thermal nodes 0..3: cell groups; 4: MOSFET bank.
        self._node_r = [0] * (N_GROUPS + 1)  # uOhm heated by I^2R
        self._node_c = [0] * (N_GROUPS + 1)  # heat capacity, pJ/K = aJ/uK
        self._node_g = [0] * (N_GROUPS + 1)  # conductance to ambient, uW/K
        for c in range(n_cells):
            g = c * N_GROUPS // n_cells
            self._node_r[g] += self._r[c]
            self._node_c[g] += self.capacity_nc(c) // _NC_PER_MAH * _CELL_J_PER_K_AH * 1000000000
        for g in range(N_GROUPS):
            self._node_g[g] = self._node_c[g] // (cell_tau_s * 1000000)
        self._node_r[N_GROUPS] = fet_uohm
        self._node_c[N_GROUPS] = mos_heat_jk * 1000000000000
        self._node_g[N_GROUPS] = self._node_c[N_GROUPS] // (mos_tau_s * 1000000)
        self._node_t = [ambient_dc * _UC_PER_DC] * (N_GROUPS + 1)  # micro-degC
        # Longest explicit-Euler thermal step: 1/32 of the shortest time constant.
        self._heat_max_us = min(cell_tau_s, mos_tau_s) * 1000000 // 32
        self._node_acc = [0] * (N_GROUPS + 1)  # aJ not yet turned into a whole uK

        self._ocv = [0] * n_cells  # mV, refreshed by _cells
        self._q_lo = [0] * n_cells  # charge window in which _ocv still holds
        self._q_hi = [0] * n_cells
        self._mv = [0] * n_cells
        self._stack_mv = 0
        self._pack_mv = 0
        self._cells(0, 0, 0, 0)

    # --- FETs and current ---

    def chg_on(self):
        return self.chg_stuck_on or (self.cmd_chg and not self.chg_stuck_off)

    def dsg_on(self):
        return self.dsg_stuck_on or (self.cmd_dsg and not self.dsg_stuck_off)

    def short_ma(self):
        """Magnitude of the current an external short would draw (mA)."""
        r = self.fet_uohm + self.short_uohm
        emf = 0
        for c in range(self.n_cells):
            r += self._r[c]
            emf += self._ocv[c]
        return emf * 1000000 // r

    def flow_ma(self, requested_ma):
        """The current (mA, + = charge) that flows for requested_ma with the
        present FET state. Charge current needs the charge FET (it then passes
        the discharge FET's body diode); discharge current needs the discharge
        FET (through the charge FET or its body diode), or else passes the
        pre-charge FET limited to pchg_ma. A short replaces the request."""
        if self.short:
            requested_ma = -self.short_ma()
        if requested_ma > 0:
            return requested_ma if self.chg_on() else 0
        if requested_ma < 0:
            if self.dsg_on():
                return requested_ma
            if self.cmd_pchg:
                return max(requested_ma, -self.pchg_ma)
        return 0

    def _diode(self, i_ma):
        """True when i_ma flows through a body diode (its FET is off)."""
        if i_ma > 0:
            return not self.dsg_on()
        if i_ma < 0:
            return self.dsg_on() and not self.chg_on()
        return False

    # --- time ---

    def step(self, dt_ms, requested_ma):
        """Advance dt_ms with the current the FETs let through."""
        i = self.flow_ma(requested_ma)
        self.current_ma = i
        self._heat(i, dt_ms * 1000)
        self._cells(i * 1000 * dt_ms, dt_ms, self.balance_mask, self.balance_ma * 1000 * dt_ms)

    def pulse_us(self, dt_us, i_ma):
        """Pass i_ma for dt_us (a short before the AFE's SCD cuts it): charge
        and heat only; self-discharge and bleed over microseconds are ignored."""
        self.current_ma = i_ma
        self._heat(i_ma, dt_us)
        self._cells(i_ma * dt_us, 0, 0, 0)

    def _heat(self, i_ma, dt_us):
        h = self._heat_max_us
        while dt_us > h:
            self._heat_step(i_ma, h)
            dt_us -= h
        self._heat_step(i_ma, dt_us)

    def _heat_step(self, i_ma, dt_us):
        i2 = i_ma * i_ma
        amb = self.ambient_dc * _UC_PER_DC
        t = self._node_t
        if i2 == 0 and t.count(amb) == N_GROUPS + 1:
            return  # no heat, all at ambient: every remainder stays below its capacity, nothing moves
        acc = self._node_acc
        r = self._node_r
        g = self._node_g
        cap = self._node_c
        mos_extra = 0
        if self._diode(i_ma):
            # mA * mV * us = 1e-12 J
            mos_extra = (i_ma if i_ma > 0 else -i_ma) * self.fet_diode_mv * dt_us * 1000000
        for n in range(N_GROUPS + 1):
            # mA^2 * uOhm * us and uW/K * uK * us are both aJ
            a = acc[n] + (i2 * r[n] + g[n] * (amb - t[n])) * dt_us
            if n == N_GROUPS:
                a += mos_extra
            d = a // cap[n]
            acc[n] = a - d * cap[n]
            t[n] += d

    def _cells(self, di_nc, sd_ms, mask, bleed_nc):
        """Move di_nc into every cell, self-discharge for sd_ms, bleed the
        masked cells by bleed_nc, then refresh voltages (the hot loop: the
        OCV lookup is skipped while a cell's charge stays in the window where
        its OCV, in whole mV, cannot change)."""
        i = self.current_ma
        q = self._q
        k = self._nc_per_ppm
        r = self._r
        sd = self._sd
        ocv = self._ocv
        q_lo = self._q_lo
        q_hi = self._q_hi
        mv = self._mv
        stack = 0
        for c in range(self.n_cells):
            x = q[c] + di_nc - sd[c] * sd_ms
            if mask >> c & 1:
                x -= bleed_nc
            q[c] = x
            if x < q_lo[c] or x >= q_hi[c]:
                v, lo, hi = ocv_span(x // k[c])
                ocv[c] = v
                q_lo[c] = lo * k[c]
                q_hi[c] = hi * k[c]
            v = ocv[c] + i * r[c] // 1000000
            if v < 0:
                v = 0
            elif v > CELL_MAX_MV:
                v = CELL_MAX_MV
            mv[c] = v
            stack += v
        self._stack_mv = stack
        if self.short:
            # P+/P- is the short itself: |I| * R_short
            self._pack_mv = (i if i > 0 else -i) * self.short_uohm // 1000000
        elif self.chg_on() or self.dsg_on() or self.cmd_pchg:
            p = stack + i * self.fet_uohm // 1000000
            if self._diode(i):
                p += self.fet_diode_mv if i > 0 else -self.fet_diode_mv
            self._pack_mv = p
        else:
            self._pack_mv = self.ext_mv

    # --- readings (true values) ---

    def cell_mv(self, i):
        return self._mv[i]

    def ocv_mv(self, i):
        return self._ocv[i]

    def stack_mv(self):
        return self._stack_mv

    def pack_mv(self):
        """Voltage on P+/P-: the stack plus the FET drop (and body-diode drop)
        while any FET path conducts, |I|*R_short during a short, else ext_mv
        (whatever the charger/inverter side holds; 0 = nothing connected)."""
        return self._pack_mv

    def cell_temp_dc(self, k):
        return self._node_t[k] // _UC_PER_DC

    def mos_temp_dc(self):
        return self._node_t[N_GROUPS] // _UC_PER_DC

    def cell_temp_uc(self, k):
        return self._node_t[k]

    def mos_temp_uc(self):
        return self._node_t[N_GROUPS]

    def charge_nc(self, i):
        return self._q[i]

    def capacity_nc(self, i):
        return self._nc_per_ppm[i] * 1000000

    def resistance_uohm(self, i):
        return self._r[i]

    def self_discharge_ua(self, i):
        return self._sd[i]

    def soc_ppm(self, i):
        return self._q[i] // self._nc_per_ppm[i]

    def pack_soc_ppm(self):
        """True SOC of the series string: what can still be discharged over
        what could be, limited by the emptiest and the fullest cell:
        min(q) / (min(q) + min(cap - q)), clamped to 0..1_000_000."""
        left = None
        room = None
        for c in range(self.n_cells):
            q = self._q[c]
            r = self.capacity_nc(c) - q
            if left is None or q < left:
                left = q
            if room is None or r < room:
                room = r
        if left <= 0:
            return 0
        if room <= 0:
            return 1000000
        return left * 1000000 // (left + room)
