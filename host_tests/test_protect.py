"""bms.protect in simulated time: every protection trips after its delay and not
before, releases at its release value and not before, blocks the FET the manual
says; over-current retry and lock-out; latched faults; events; the event ring;
and the update under MicroPython's heap_lock on every path."""
import pytest

from defs import codes
from bms import params as P
from bms.params import Params
from bms.protect import Protection, Events, LOCK_CHG, LOCK_DSG
from bms.state import PackState
from heap_probe import LOCKED
from defs.afe import ALERT_SCD, ALERT_COV, ALERT_OCC, ALERT_OCD, ALERT_CUV

CYCLE = 100


class Rig:
    """A pack state fed by hand, the protection logic, and the FET rule of the
    control stage (codes.chg_allowed / dsg_allowed), one cycle per step()."""

    def __init__(self, stuck_check=False, **overrides):
        self.params = Params()
        if not stuck_check:
            # cells() moves the stack without a current change, which a real
            # pack cannot do: the stuck-reading rule is tested on its own
            self.params.set_by_name("sensor_stuck_ms", 600000)
        for name, value in overrides.items():
            self.params.set_by_name(name, value)
        self.st = PackState()
        self.st.soc_valid = True
        self.st.soc_pct = 50
        self.prot = Protection(self.params, self.st)
        self.now = 1000
        self.cells(3300)
        self.temps(250)
        self.current(0)
        self.st.snap.pack_mv = self.st.snap.stack_mv
        self.step()

    def cells(self, mv, index=None):
        snap = self.st.snap
        for c in range(16):
            if index is None or c == index:
                snap.cell_mv[c] = mv
        snap.stack_mv = sum(snap.cell_mv)

    def temps(self, dc, index=None):
        for ch in range(7):
            if index is None or ch == index:
                self.st.snap.temp_dc[ch] = dc

    def current(self, ma):
        self.st.snap.current_ma = ma

    def step(self, n=1, ok=True):
        st = self.st
        for _ in range(n):
            if ok:
                st.snap.ok = True
                st.snap.reads += 1
                st.afe_errors = 0
            else:
                st.snap.ok = False
                st.afe_errors += 1
            self.prot.update(self.now)
            # what the control stage does after protect
            st.hw_alerts &= ~st.hw_clear
            self.cleared = st.hw_clear
            st.hw_clear = 0
            st.chg_fet = codes.chg_allowed(st)
            st.dsg_fet = codes.dsg_allowed(st)
            self.now += CYCLE

    def run_ms(self, ms):
        self.step(ms // CYCLE)

    def prot_on(self, name):
        return bool(self.st.protections & codes.bit(codes.PROTECTIONS, name))

    def alarm_on(self, name):
        return bool(self.st.alarms & codes.bit(codes.ALARMS, name))

    def fault_on(self, name):
        return bool(self.st.faults & codes.bit(codes.FAULTS, name))

    def events(self):
        ev = self.st.events
        return [ev.get(s) for s in range(ev.first_seq(), ev.next_seq)]

    def named_events(self):
        out = []
        for kind, code, raised, t, value in self.events():
            table = (codes.ALARMS, codes.PROTECTIONS, codes.FAULTS)[kind]
            out.append((table[code], raised, t, value))
        return out


def v(name):
    return P.TABLE[P.index_of(name)][2]


def trips_after(rig, delay_ms, check):
    """Cycles (from now) until check() holds; asserts not before delay_ms."""
    start = rig.now
    while not check():
        rig.step()
        assert rig.now - start < delay_ms + 10 * CYCLE, "never tripped"
    elapsed = rig.now - CYCLE - start  # the update that saw it ran at now - CYCLE
    assert delay_ms <= elapsed <= delay_ms + CYCLE, elapsed
    return elapsed


def test_quiet_pack_has_nothing_and_both_fets_on():
    r = Rig()
    r.run_ms(5000)
    assert (r.st.alarms, r.st.protections, r.st.faults) == (0, 0, 0)
    assert r.st.chg_fet and r.st.dsg_fet
    assert r.events() == []


# --- voltage -----------------------------------------------------------------

@pytest.mark.parametrize("level", ["p1", "p2"])
def test_cell_ov_trips_after_delay_blocks_charge_only_releases_at_release(level):
    r = Rig()
    thr = v("cell_ov_%s_mv" % level)
    nxt = v("cell_ov_p2_mv") if level == "p1" else 4000
    r.cells(min(thr + 10, nxt - 1), index=5)
    trips_after(r, v("cell_ov_%s_delay_ms" % level), lambda: r.prot_on("COVP"))
    assert not r.st.chg_fet and r.st.dsg_fet
    rel = v("cell_ov_%s_rel_mv" % level)
    if level == "p2":
        # P1 has tripped meanwhile too; make sure it is the P2 release tested
        r.run_ms(v("cell_ov_p1_delay_ms"))
    r.cells(rel + 1, index=5)
    r.run_ms(3000)
    assert r.prot_on("COVP")
    rel1 = v("cell_ov_p1_rel_mv")
    r.cells(min(rel, rel1), index=5)
    r.step()
    assert not r.prot_on("COVP") and r.st.chg_fet and r.st.dsg_fet


def test_cell_ov_not_tripped_by_a_spike_shorter_than_delay():
    r = Rig()
    r.cells(3620, index=0)
    r.run_ms(v("cell_ov_p1_delay_ms") - CYCLE)
    r.cells(3300, index=0)
    r.step()
    r.cells(3620, index=0)
    r.run_ms(v("cell_ov_p1_delay_ms") - CYCLE)
    assert not r.prot_on("COVP") and r.st.chg_fet


def test_cell_ov_released_by_discharge_current_below_threshold():
    r = Rig()
    r.cells(3620, index=0)
    r.run_ms(2000)
    assert r.prot_on("COVP")
    r.cells(3500, index=0)  # above release 3400, below threshold
    r.run_ms(1000)
    assert r.prot_on("COVP")
    r.current(-5000)
    r.step()
    assert not r.prot_on("COVP")


def test_cell_ov_alarm_does_not_block():
    r = Rig()
    r.cells(3560, index=0)
    trips_after(r, v("cell_ov_alarm_delay_ms"), lambda: r.alarm_on("OV"))
    assert r.st.protections == 0 and r.st.chg_fet and r.st.dsg_fet
    r.cells(v("cell_ov_alarm_rel_mv"), index=0)
    r.step()
    assert not r.alarm_on("OV")


def test_cell_uv_blocks_discharge_only_and_charge_current_releases():
    r = Rig()
    r.cells(2790, index=7)
    trips_after(r, v("cell_uv_p1_delay_ms"), lambda: r.prot_on("CUVP"))
    assert r.st.chg_fet and not r.st.dsg_fet
    # the UV alarm (2.9 V, 2 s), timed from the same drop, comes on once its longer delay has run
    assert not r.alarm_on("UV")
    r.run_ms(v("cell_uv_alarm_delay_ms") - v("cell_uv_p1_delay_ms"))
    assert r.alarm_on("UV") and r.prot_on("CUVP")
    r.cells(v("cell_uv_p1_rel_mv") - 1, index=7)
    r.run_ms(2000)
    assert r.prot_on("CUVP")
    r.cells(v("cell_uv_p1_rel_mv"), index=7)
    r.step()
    assert not r.prot_on("CUVP") and r.st.dsg_fet
    # by charge current
    r.cells(2790, index=7)
    r.run_ms(2000)
    assert r.prot_on("CUVP")
    r.cells(2850, index=7)
    r.current(3000)
    r.step()
    assert not r.prot_on("CUVP")


def test_pack_ov_and_uv():
    # pack levels lowered so the stack crosses them without any cell level
    r = Rig(pack_ov_p2_rel_mv=52900, pack_ov_p1_rel_mv=52900, pack_ov_alarm_rel_mv=52900,
            pack_ov_alarm_mv=53000, pack_ov_p1_mv=53500, pack_ov_p2_mv=54000)
    r.cells(3350)  # 53.6 V
    trips_after(r, v("pack_ov_p1_delay_ms"), lambda: r.prot_on("POVP"))
    assert not r.prot_on("COVP") and not r.st.chg_fet and r.st.dsg_fet
    r.run_ms(1000)
    assert r.alarm_on("TOV")
    r.cells(3307)  # 52.912 V: above release
    r.run_ms(2000)
    assert r.prot_on("POVP")
    r.cells(3306)  # 52.896 V
    r.step()
    assert not r.prot_on("POVP") and r.st.chg_fet
    r = Rig(pack_uv_alarm_rel_mv=52000, pack_uv_p1_rel_mv=52000, pack_uv_p2_rel_mv=52000,
            pack_uv_alarm_mv=51800, pack_uv_p1_mv=51500, pack_uv_p2_mv=51000)
    r.cells(3200)  # 51.2 V
    trips_after(r, v("pack_uv_p1_delay_ms"), lambda: r.prot_on("PUVP"))
    assert r.st.chg_fet and not r.st.dsg_fet and not r.prot_on("CUVP")
    r.cells(3249)  # 51.984 V
    r.run_ms(2000)
    assert r.prot_on("PUVP")
    r.cells(3250)  # 52.0 V
    r.step()
    assert not r.prot_on("PUVP") and r.st.dsg_fet


# --- current -------------------------------------------------------------------

def test_charge_oc_retry_then_lockout_after_three_and_reset():
    r = Rig()
    retry = v("oc_retry_ms")
    for n in range(1, 4):
        r.current(80000)  # above P1 (75 A), below P2 (85 A)
        trips_after(r, v("chg_oc_p1_delay_ms"), lambda: r.prot_on("COCP"))
        assert not r.st.chg_fet and r.st.dsg_fet
        r.current(0)  # the FET is open
        if n < 3:
            assert r.st.lockout == 0
            r.run_ms(retry - 2 * CYCLE)
            assert r.prot_on("COCP")
            r.run_ms(2 * CYCLE)
            assert not r.prot_on("COCP") and r.st.chg_fet
    assert r.st.lockout == LOCK_CHG
    r.run_ms(10 * retry)
    assert r.prot_on("COCP") and not r.st.chg_fet and r.st.dsg_fet
    r.prot.reset(r.now)
    r.step()
    assert not r.prot_on("COCP") and r.st.lockout == 0 and r.st.chg_fet


def test_oc_count_resets_when_trips_are_not_consecutive():
    r = Rig()
    for _ in range(5):
        r.current(-130000)  # above P2 (120 A)
        trips_after(r, v("dsg_oc_p2_delay_ms"), lambda: r.prot_on("DOCP"))
        assert r.st.chg_fet and not r.st.dsg_fet
        r.current(0)
        r.run_ms(v("oc_retry_ms") + v("oc_count_reset_ms") + CYCLE)
        assert not r.prot_on("DOCP")
    assert r.st.lockout == 0


def test_discharge_oc_p1_allows_five_minutes_of_peak():
    r = Rig()
    r.current(-110000)  # 110 A: allowed for 5 min (`000`)
    r.run_ms(299000)
    assert not r.prot_on("DOCP") and r.alarm_on("DOC")
    r.run_ms(2000)
    assert r.prot_on("DOCP") and not r.st.dsg_fet


def test_short_circuit_from_hw_and_firmware_released_by_charging_or_reset():
    r = Rig()
    r.st.hw_alerts = ALERT_SCD
    r.step()
    assert r.prot_on("SCP") and not r.st.chg_fet and not r.st.dsg_fet
    r.run_ms(5000)
    assert r.prot_on("SCP")
    r.st.snap.pack_mv = 56000  # a charger on P+/P- while both FETs are off
    r.step()
    assert r.cleared & ALERT_SCD
    r.step()
    assert not r.prot_on("SCP") and r.st.chg_fet and r.st.dsg_fet
    # firmware level, released by reset
    r.st.snap.pack_mv = 0
    r.current(-v("scp_ma"))
    r.step()
    assert r.prot_on("SCP")
    r.current(0)
    r.run_ms(5000)
    assert r.prot_on("SCP")
    r.prot.reset(r.now)
    r.step()
    assert not r.prot_on("SCP")


def test_reversed_polarity_is_a_fault_released_by_charging():
    r = Rig()
    r.st.snap.pack_mv = -50000
    r.step()
    assert r.fault_on("REVERSED") and not r.st.chg_fet and not r.st.dsg_fet
    r.run_ms(2000)
    r.st.snap.pack_mv = 56000
    r.step()
    assert not r.fault_on("REVERSED")


@pytest.mark.parametrize("bit,prot,fet", [(ALERT_COV, "COVP", "chg"), (ALERT_CUV, "CUVP", "dsg"),
                                          (ALERT_OCC, "COCP", "chg"), (ALERT_OCD, "DOCP", "dsg")])
def test_hw_alerts_raise_their_protection_and_are_cleared_on_release(bit, prot, fet):
    r = Rig()
    r.st.hw_alerts = bit
    if bit == ALERT_COV:
        r.cells(3760, index=2)
    elif bit == ALERT_CUV:
        r.cells(2200, index=2)
    r.step()
    assert r.prot_on(prot)
    assert getattr(r.st, fet + "_fet") is False
    other = "dsg" if fet == "chg" else "chg"
    if bit in (ALERT_COV, ALERT_CUV):
        r.run_ms(1000)
        assert r.prot_on(prot) and not r.cleared
        r.cells(3300, index=2)
        r.step()
        assert r.cleared == bit
    else:
        r.run_ms(v("oc_retry_ms") - 2 * CYCLE)
        assert r.prot_on(prot) and not r.cleared
        r.run_ms(2 * CYCLE)
        assert r.cleared == bit
    r.run_ms(3 * CYCLE)
    assert not r.prot_on(prot) and getattr(r.st, other + "_fet")


@pytest.mark.parametrize("bit,prot", [(ALERT_COV, "COVP"), (ALERT_CUV, "CUVP")])
def test_hw_voltage_alert_released_only_on_plausible_readings(bit, prot):
    """0xFFFF from a bad transfer is no cell voltage: the alert it tripped stays (its
    protection with it) while the read is implausible, the CELL fault takes over, and the
    release comes with the first plausible read, which no longer holds the protection."""
    r = Rig()
    r.st.hw_alerts = bit
    r.cells(0xFFFF if bit == ALERT_COV else 0, index=5)
    for _ in range(30):
        r.step()
        assert not r.cleared and r.prot_on(prot) and not r.st.snap.plausible
    assert r.fault_on("CELL")
    r.cells(3300, index=5)
    r.st.snap.reads += 1
    r.prot.update(r.now)
    assert r.st.hw_clear == bit and r.st.snap.plausible
    assert not r.prot_on(prot)  # released this cycle: the estimate after it sees no COVP/CUVP


def test_hw_alert_not_released_while_cells_and_stack_disagree():
    r = Rig()
    r.st.hw_alerts = ALERT_COV
    r.st.snap.stack_mv = 16 * 3300 + 1500  # beyond stack_sum_tol_mv: a cell reads wrong
    r.run_ms(3000)
    assert r.fault_on("SAMPLE") and r.prot_on("COVP") and not r.cleared
    r.cells(3300)
    r.step()
    assert r.cleared == ALERT_COV


def test_soc_takes_no_calibration_point_from_an_implausible_read():
    """The estimate runs after protect on the same read: COV tripped by a 0xFFFF reading
    (`soc.py` sets 100 % at COV) and 0 V (CUV, 0 %) leave the SOC where it was."""
    from bms.soc import SocEstimator

    def read(r, mv=None, index=None):
        if mv is not None:
            r.cells(mv, index=index)
        snap = r.st.snap
        snap.min_cell_mv, snap.max_cell_mv = min(snap.cell_mv), max(snap.cell_mv)  # as acquire does
        snap.dt_ms = CYCLE
        r.step()
        est.update(r.st, 0, CYCLE)

    for bit, bad in ((ALERT_COV, 0xFFFF), (ALERT_CUV, 0)):
        r = Rig()
        est = SocEstimator(r.params.v)
        read(r)  # first read: the OCV guess on the plateau
        before = r.st.soc_ppm
        assert 300000 < before < 800000
        r.st.hw_alerts = bit
        read(r, bad, 7)
        for _ in range(50):
            read(r)
        assert r.st.hw_alerts == bit and r.prot_on("COVP" if bit == ALERT_COV else "CUVP")
        assert r.st.soc_ppm == before and est.cal_count == 0
        read(r, 3300, 7)  # plausible again: the alert is released, still no point
        assert r.cleared == bit
        assert r.st.soc_ppm == before and est.cal_count == 0


# --- temperature ------------------------------------------------------------------

@pytest.mark.parametrize("fam,code,alarm,channel,value,fets", [
    ("chg_ht", "CHTP", "COT", 1, 470, (False, True)),
    ("dsg_ht", "DHTP", "DOT", 2, 560, (False, False)),  # also above charge limits
    ("chg_lt", "CLTP", "CUT", 0, -20, (False, True)),
    ("dsg_lt", "DLTP", "DUT", 3, -120, (False, False)),  # also below charging limit
    ("mos_ot", "MOS OT", "MOS OT", 4, 950, (False, False)),
    ("amb_ht", "EOTP", "EOT", 6, 650, (False, False)),
    ("amb_lt", "EUTP", "EUT", 6, -250, (False, False)),
])
def test_temperature_protections(fam, code, alarm, channel, value, fets):
    r = Rig()
    r.temps(value, index=channel)
    trips_after(r, v(fam + "_p1_delay_ms"), lambda: r.prot_on(code))
    assert r.alarm_on(alarm)
    assert (r.st.chg_fet, r.st.dsg_fet) == fets
    rel = v(fam + "_p1_rel_mv".replace("mv", "dc"))
    high = value > 250
    r.temps(rel + (1 if high else -1), index=channel)
    r.run_ms(2000)
    assert r.prot_on(code)
    r.temps(rel, index=channel)
    r.step()
    assert not r.prot_on(code)


def test_charge_high_temperature_blocks_only_charge():
    r = Rig()
    r.temps(460, index=0)  # 46 C: above charge 45 C, below discharge 50 C
    r.run_ms(6000)
    assert r.prot_on("CHTP") and not r.prot_on("DHTP")
    assert not r.st.chg_fet and r.st.dsg_fet


# --- imbalance --------------------------------------------------------------------

def test_imbalance_alarm_protection_and_failure():
    r = Rig()
    r.cells(3500)
    r.cells(3500 - 350, index=4)
    trips_after(r, v("imb_alarm_delay_ms"), lambda: r.alarm_on("IMB"))
    assert r.st.protections == 0
    r.cells(3500 - 600, index=4)  # 2.9 V: no under voltage protection
    trips_after(r, v("imb_p1_delay_ms"), lambda: r.prot_on("IMB"))
    assert r.st.protections == codes.bit(codes.PROTECTIONS, "IMB")
    assert not r.st.chg_fet and r.st.dsg_fet  # imbalance stops charging only
    r.cells(3500 - v("imb_p1_rel_mv") - 1, index=4)
    r.run_ms(1000)
    assert r.prot_on("IMB")
    r.cells(3500 - v("imb_p1_rel_mv"), index=4)
    r.step()
    assert not r.prot_on("IMB")
    r.cells(3500 - 1050, index=4)  # > 1 V (`004`)
    trips_after(r, v("imb_fail_delay_ms"), lambda: r.fault_on("IMB"))
    r.cells(3300)
    r.run_ms(60000)
    assert r.fault_on("IMB") and not r.st.chg_fet and not r.st.dsg_fet  # latched


# --- faults -------------------------------------------------------------------------

def test_afe_silent_latches_after_failed_reads_and_reset_clears():
    r = Rig()
    r.step(v("afe_fail_reads") - 1, ok=False)
    assert not r.fault_on("AFE")
    r.step(1, ok=False)
    assert r.fault_on("AFE") and not r.st.chg_fet and not r.st.dsg_fet
    r.step(50)
    assert r.fault_on("AFE")
    r.prot.reset(r.now)
    r.step()
    assert r.st.faults == 0 and r.st.chg_fet and r.st.dsg_fet


@pytest.mark.parametrize("temp", [-600, 1800])
def test_ntc_open_or_short_latches(temp):
    r = Rig()
    r.temps(temp, index=2)
    trips_after(r, v("sensor_fail_delay_ms"), lambda: r.fault_on("NTC"))
    assert not r.prot_on("CLTP") and not r.prot_on("CHTP")  # the bad channel is left out
    r.temps(250, index=2)
    r.run_ms(5000)
    assert r.fault_on("NTC")


def test_cell_out_of_physical_range_latches_cell_fault():
    r = Rig()
    r.cells(0, index=9)  # open sense wire
    trips_after(r, v("sensor_fail_delay_ms"), lambda: r.fault_on("CELL"))
    assert not r.prot_on("CUVP")  # implausible reading is not an under voltage
    assert not r.st.chg_fet and not r.st.dsg_fet


def test_sum_of_cells_vs_stack_latches_sample_fault():
    r = Rig()
    r.cells(3300)
    r.st.snap.stack_mv = 16 * 3300 - 1500
    trips_after(r, v("sensor_fail_delay_ms"), lambda: r.fault_on("SAMPLE"))


def test_stuck_cell_and_stuck_current():
    r = Rig(stuck_check=True)
    r.cells(3300)
    r.step(3)
    # a load step: the stack drops 300 mV, cell 3 and the current reading do not move
    for c in range(16):
        if c != 3:
            r.st.snap.cell_mv[c] = 3280
    r.st.snap.stack_mv = sum(r.st.snap.cell_mv)
    r.step()
    r.run_ms(v("sensor_stuck_ms") - 2 * CYCLE)
    assert not r.fault_on("CELL") and not r.fault_on("CURRENT")
    r.run_ms(2 * CYCLE)
    assert r.fault_on("CELL") and r.fault_on("CURRENT")


def test_a_reading_that_moves_with_the_step_is_not_stuck():
    r = Rig(stuck_check=True)
    r.step(3)
    r.cells(3280)
    r.current(-40000)
    r.step()
    r.run_ms(2 * v("sensor_stuck_ms"))
    assert r.st.faults == 0


def ntc_rig(**over):
    r = Rig(**over)
    r.st.snap.dt_ms = CYCLE  # acquire's measured interval
    r.step(3)
    return r


def test_cell_ntcs_stuck_while_mosfet_and_ambient_heat_up_are_an_ntc_fault():
    """Issue 14: four cell NTCs at 25.0 C while the MOSFET NTCs reach 66.8 C and the
    ambient 70 C: a temperature sensor failure (`000` 3.4: failure mode, both FETs off,
    manual intervention) ntc_stuck_ms after another channel moved ntc_stuck_move_dc."""
    r = ntc_rig()
    move = v("ntc_stuck_move_dc")
    t = 250
    sus_t = None
    k = 0
    while not r.fault_on("NTC"):
        if k % 10 == 0 and t < 700:  # ambient and MOSFETs warm by 1 C every 10 s
            t += 1
            r.temps(t, index=6)
            r.temps(min(t, 668), index=4)
            r.temps(min(t, 668), index=5)
        r.step()
        if sus_t is None and t - 250 >= move:
            sus_t = r.now - CYCLE  # the update that saw the move
        k += 1
        assert k < 20000, "never tripped"
    elapsed = r.now - CYCLE - sus_t
    assert v("ntc_stuck_ms") <= elapsed <= v("ntc_stuck_ms") + CYCLE, elapsed
    assert not r.st.chg_fet and not r.st.dsg_fet
    assert ("NTC", True) in [(e[0], e[1]) for e in r.named_events()]
    assert [e[3] for e in r.named_events() if e[0] == "NTC"] == [250]  # the stuck reading
    r.temps(251, index=0)  # latched: a later change does not release it
    r.run_ms(1000)
    assert r.fault_on("NTC")
    r.prot.reset(r.now)
    r.step()
    assert not r.fault_on("NTC")


def test_ntc_that_stays_the_same_under_i2r_heat_is_stuck():
    """Nothing else moves, but 0.5 C for ntc_stuck_heat_1c_ms / 0.25 must warm the cells
    and FETs (heat ~ (I / capacity)^2 * t)."""
    r = ntc_rig(ntc_stuck_heat_1c_ms=60000)
    r.current(-v("rated_capacity_mah") // 2)
    sus_ms = 60 * 1000 * 4  # 0.5 C: a quarter of the heat per second
    r.run_ms(sus_ms + v("ntc_stuck_ms") - 3 * CYCLE)
    assert not r.fault_on("NTC")
    r.run_ms(4 * CYCLE)
    assert r.fault_on("NTC")


def test_half_the_current_takes_four_times_longer():
    r = ntc_rig(ntc_stuck_heat_1c_ms=60000)
    r.current(v("rated_capacity_mah") // 4)  # 1/4 C charge: 1/16 of the heat per second
    r.run_ms(60 * 1000 * 16 + v("ntc_stuck_ms") - 3 * CYCLE)
    assert not r.fault_on("NTC")
    r.run_ms(4 * CYCLE)
    assert r.fault_on("NTC")


def test_stable_room_at_rest_is_no_stuck_ntc():
    """All temperatures genuinely constant (a pack at rest in a stable room): no fault,
    however long, even at the most sensitive settings."""
    r = ntc_rig(ntc_stuck_ms=10000, ntc_stuck_move_dc=10, ntc_stuck_heat_1c_ms=60000)
    r.current(300)  # inside the dead band: no heat to speak of
    r.run_ms(1800 * 1000)
    assert r.st.faults == 0 and r.st.chg_fet and r.st.dsg_fet


def test_mosfets_heating_say_nothing_about_the_room_or_the_cells():
    """Hot FETs (their own I^2R) leave the ambient and the cell NTCs where they are."""
    r = ntc_rig(ntc_stuck_ms=10000)
    for t in range(250, 900):
        r.temps(t, index=4)
        r.temps(t, index=5)
        r.step(5)
    r.run_ms(60000)
    assert r.st.faults == 0


def test_ntcs_that_move_together_or_move_at_all_are_not_stuck():
    r = ntc_rig(ntc_stuck_ms=10000)
    t = 250
    for k in range(900):  # everything warms 45 C; cell NTC 2 lags but still moves
        if k % 2 == 0:
            t += 1
        r.temps(t)
        r.temps(250 + k // 20, index=2)
        r.step(5)
    assert r.st.faults == 0


def test_mos_failure_when_current_flows_through_an_open_fet():
    r = Rig()
    r.cells(3620, index=0)
    r.run_ms(2000)
    assert r.prot_on("COVP") and not r.st.chg_fet
    r.current(10000)  # charge current through the open charge FET
    trips_after(r, v("mos_fail_delay_ms"), lambda: r.fault_on("CHG MOS"))
    r = Rig()
    r.cells(2700, index=0)
    r.run_ms(2000)
    assert not r.st.dsg_fet
    r.current(-10000)
    trips_after(r, v("mos_fail_delay_ms"), lambda: r.fault_on("DSG MOS"))


def test_precharge_failure_latches():
    r = Rig()
    r.st.precharge_failed = True
    r.step()
    assert r.fault_on("PRECHARGE") and not r.st.chg_fet and not r.st.dsg_fet
    r.st.precharge_failed = False
    r.run_ms(1000)
    assert r.fault_on("PRECHARGE")


def test_usoc_alarm():
    r = Rig()
    r.st.soc_pct = 10
    r.step()
    assert r.alarm_on("USOC") and r.st.protections == 0
    r.st.soc_pct = 14
    r.step()
    assert r.alarm_on("USOC")
    r.st.soc_pct = 15
    r.step()
    assert not r.alarm_on("USOC")


# --- events ------------------------------------------------------------------------

def test_events_have_code_time_and_value():
    r = Rig()
    t0 = r.now
    r.cells(3700, index=3)
    r.run_ms(3000)
    r.cells(3300, index=3)
    r.step()
    ev = r.named_events()
    raised = [e for e in ev if e[1]]
    cleared = [e for e in ev if not e[1]]
    assert ("COVP", True, t0 + v("cell_ov_p2_delay_ms"), 3700) in raised
    assert ("OV", True, t0 + v("cell_ov_alarm_delay_ms"), 3700) in raised
    assert {e[0] for e in cleared} == {"COVP", "OV"}
    assert all(e[3] == 3300 for e in cleared)
    assert r.st.events.describe(r.st.events.first_seq()).startswith("raise ")


def test_event_ring_drops_oldest_and_counts():
    ev = Events(4)
    for n in range(10):
        ev.record(codes.KIND_FAULT, n % 8, n % 2, 100 * n, n)
    assert ev.next_seq == 10 and ev.dropped == 6 and ev.first_seq() == 6
    assert ev.get(5) is None and ev.get(10) is None
    assert [ev.get(s)[4] for s in range(6, 10)] == [6, 7, 8, 9]
    assert ev.get(9) == (codes.KIND_FAULT, 1, True, 900, 9)


def test_event_ring_keeps_every_kind_code_and_direction():
    # every code of every table, raised and cleared, comes back as recorded
    tables = (codes.ALARMS, codes.PROTECTIONS, codes.FAULTS)
    want = [(kind, code, raised, -(1 << 29) + code, code - 1000)
            for kind in (codes.KIND_ALARM, codes.KIND_PROTECTION, codes.KIND_FAULT)
            for code in range(len(tables[kind])) for raised in (True, False)]
    ev = Events(len(want))
    for e in want:
        ev.record(*e)
    assert [ev.get(s) for s in range(len(want))] == want


def test_temperature_drivers_follow_the_rule():
    # the ambient drives every NTC, cell NTCs each other, MOSFET NTCs each other
    from bms import protect
    from defs.snapshot import N_TEMPS, N_CELL_TEMPS, T_AMB
    for ch in range(N_TEMPS):
        want = 0 if ch == T_AMB else sum(1 << j for j in range(N_TEMPS) if j != ch and (
            j == T_AMB or (j < N_CELL_TEMPS) == (ch < N_CELL_TEMPS)))
        assert protect._DRIVERS[ch] == want, ch


def test_masks_match_the_manual():
    chg = set(codes.names(codes.PROTECTIONS, codes.CHG_BLOCK))
    dsg = set(codes.names(codes.PROTECTIONS, codes.DSG_BLOCK))
    assert {"COVP", "POVP", "COCP", "CHTP", "CLTP"} <= chg - dsg
    assert {"CUVP", "PUVP", "DOCP", "DHTP", "DLTP"} <= dsg - chg
    assert {"SCP", "MOS OT", "EOTP", "EUTP"} <= chg & dsg
    assert codes.FAULT_CHG_BLOCK == codes.FAULT_DSG_BLOCK == (1 << len(codes.FAULTS)) - 1


def test_ticks_wrap_does_not_break_delays():
    r = Rig()
    r.now = (1 << 30) - 500
    r.cells(3620, index=0)
    trips_after(r, v("cell_ov_p1_delay_ms"), lambda: r.prot_on("COVP"))


# --- MicroPython: every path allocation-free ---------------------------------------

HEAP_LOCK_PROTECT = r"""
from bms.params import Params
from bms.state import PackState
from bms.protect import Protection
from defs.afe import ALERT_SCD, ALERT_COV, ALERT_OCC

prm = Params()
st = PackState()
st.soc_valid = True
st.soc_pct = 5
pr = Protection(prm, st)
snap = st.snap
for c in range(16):
    snap.cell_mv[c] = 3300
snap.stack_mv = 16 * 3300
for ch in range(7):
    snap.temp_dc[ch] = 250
snap.dt_ms = 100  # the stuck-temperature rule counts heat over it
state = {"now": 1000, "err": None}

def one():
    snap.ok = True
    snap.reads += 1
    pr.update(state["now"])

""" + LOCKED + r"""
def step():
    if locked(one) == "allocates":
        return "allocates"
    st.hw_alerts &= ~st.hw_clear
    st.hw_clear = 0
    state["now"] += 100
    return None

SCALARS = {"current": "current_ma", "stack": "stack_mv", "pack": "pack_mv"}

def scenario():
    steps = (
        ("cell_mv", 0, 3700), ("cell_mv", 0, 2600), ("cell_mv", 1, 0), ("temp", 2, -600),
        ("temp", 0, 600), ("current", 0, 90000), ("current", 0, -130000), ("current", 0, -400000),
        ("hw", 0, ALERT_SCD | ALERT_COV | ALERT_OCC), ("stack", 0, 40000), ("pack", 0, -60000),
        ("reset", 0, 0))
    for kind, idx, val in steps:
        if kind in ("cell_mv", "temp"):
            (snap.cell_mv if kind == "cell_mv" else snap.temp_dc)[idx] = val
        elif kind == "hw":
            st.hw_alerts = val
        elif kind == "reset":
            pr.reset(state["now"])
        else:
            setattr(snap, SCALARS[kind], val)
        for _ in range(40):
            err = step()
            if err:
                return kind + " " + err
    return "ok %d %d %d %d" % (st.events.next_seq, st.protections != 0, st.faults != 0, st.events.dropped)

print(scenario())
"""


def test_update_is_allocation_free_in_micropython_on_every_path(mpy):
    r = mpy.run(HEAP_LOCK_PROTECT, timeout_s=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[0] == "ok", r.stdout
    assert int(out[1]) > 10 and out[2] == "1" and out[3] == "1"


def test_code_tables_follow_defs():
    """bms.protect's bytes constants: each family's alarm and protection code
    (bms.params F_* order), the hardware alerts' bits and protection codes,
    and which temperature channels drive each channel's stuck check."""
    from bms import protect
    from defs.snapshot import N_CELL_TEMPS, T_MOS0, T_MOS1, T_AMB, N_TEMPS
    a, pr = codes.ALARMS.index, codes.PROTECTIONS.index
    fams = ((P.F_CELL_OV, "OV", "COVP"), (P.F_CELL_UV, "UV", "CUVP"), (P.F_PACK_OV, "TOV", "POVP"),
            (P.F_PACK_UV, "TUV", "PUVP"), (P.F_CHG_OC, "COC", "COCP"), (P.F_DSG_OC, "DOC", "DOCP"),
            (P.F_CHG_HT, "COT", "CHTP"), (P.F_CHG_LT, "CUT", "CLTP"), (P.F_DSG_HT, "DOT", "DHTP"),
            (P.F_DSG_LT, "DUT", "DLTP"), (P.F_MOS_OT, "MOS OT", "MOS OT"), (P.F_AMB_HT, "EOT", "EOTP"),
            (P.F_AMB_LT, "EUT", "EUTP"), (P.F_IMB, "IMB", "IMB"))
    assert sorted(f for f, _, _ in fams) == list(range(P.N_FAMILIES))
    assert [protect._FAM_ALARM[f] for f, _, _ in fams] == [a(n) for _, n, _ in fams]
    assert [protect._FAM_PROT[f] for f, _, _ in fams] == [pr(n) for _, _, n in fams]
    assert list(protect._HW_BITS) == [ALERT_CUV, ALERT_COV, ALERT_OCC, ALERT_OCD, ALERT_SCD]
    assert list(protect._HW_PROT) == [pr("CUVP"), pr("COVP"), pr("COCP"), pr("DOCP"), pr("SCP")]
    cells = set(range(N_CELL_TEMPS))
    mos = {T_MOS0, T_MOS1}
    for ch in range(N_TEMPS):
        group = cells if ch in cells else mos if ch in mos else set()
        drivers = (group - {ch}) | ({T_AMB} if ch != T_AMB else set())
        assert protect._DRIVERS[ch] == sum(1 << j for j in drivers), ch
