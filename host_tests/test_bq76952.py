# The BQ76952 driver (lib/drivers/bq76952.py) against the register-level chip
# model (host_tests/sim_bq76952.py): configuration and protections decoded
# from the model's data memory in the chip's own units, the read path with
# CRC on and off, transfer errors, FETs, balancing, alerts, low-power commands,
# and the read path under micropython.heap_lock() in the real MicroPython.
import os
import random
import struct
import textwrap

import pytest

from defs.snapshot import Snapshot
from drivers import bq76952 as bq
from drivers import bq76952cfg as cfg
from defs.afe import HwLimits, ALERT_COV, ALERT_SCD, ALERT_CUV
from sim_bq76952 import SimBQ76952, DM_BASE
from heap_probe import LOCKED, assert_prints_ok

HERE = os.path.dirname(os.path.abspath(__file__))
SHUNT_UOHM = 250
LIMITS = HwLimits(cov_mv=3750, cuv_mv=2300, occ_ma=90000, ocd_ma=220000, scd_ma=400000,
                  cov_delay_ms=2000, cuv_delay_ms=2000, occ_delay_ms=1000, ocd_delay_ms=100,
                  scd_delay_us=200)
# SCD thresholds by setting, mV (TRM SLUUBY2B, Protections:SCD:Threshold)
SCD_TABLE_MV = [10, 20, 40, 60, 80, 100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500]


def make(crc=False, busy_polls=1, configure=True):
    sim = SimBQ76952(crc=crc, busy_polls=busy_polls)
    drv = bq.BQ76952(sim, crc=crc, shunt_uohm=SHUNT_UOHM, poll_us=0)
    if configure:
        drv.configure(LIMITS)
    return sim, drv


def dm(sim, addr, fmt):
    return struct.unpack_from(fmt, sim.dm, addr - DM_BASE)[0]


def test_crc8_matches_the_examples_of_ti():
    # SLUAA11B 4: FET_ENABLE write and a Cell 1 read
    assert bq.crc8(bytes([0x10, 0x3E, 0x22])) == 0x63
    assert bq.crc8(bytes([0x00])) == 0x00
    assert bq.crc8(bytes([0x10, 0x14, 0x11, 0x68])) == 0x33
    assert bq.crc8(bytes([0x0B])) == 0x31


def _crc8_bitwise(data):
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def test_crc8_table_is_the_polynomial_x8_x2_x_1():
    # the driver's table is a bytes constant: every entry against the
    # bit-by-bit division (TRM 11.1), and random messages
    assert all(bq.crc8(bytes([i])) == _crc8_bitwise([i]) for i in range(256))
    rnd = random.Random(7)
    for _ in range(200):
        msg = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40)))
        assert bq.crc8(msg) == _crc8_bitwise(msg)


def test_scd_code_is_the_highest_table_level_at_or_below_the_target():
    # against the TRM's SCD table: every target current from below the first
    # level to above the last, 250 uOhm and 500 uOhm shunts
    for shunt in (250, 500):
        for ma in range(40000, 2100000, 7919):
            mv = ma * shunt / 1e6
            if mv < SCD_TABLE_MV[0]:
                with pytest.raises(ValueError):
                    cfg.scd_code(ma, shunt)
                continue
            want = max(k for k, v in enumerate(SCD_TABLE_MV) if v <= mv + 1e-9)
            assert cfg.scd_code(ma, shunt) == want


@pytest.mark.parametrize("crc", [False, True])
def test_configure_writes_the_data_memory(crc):
    sim, drv = make(crc)
    assert sim.rejected == 0 and sim.dm_rejected == 0 and sim.nacks == 0
    assert not sim.cfg_update
    assert dm(sim, 0x9304, "<H") == 0xFFFF  # 16 cells
    assert dm(sim, 0x9303, "<B") == 0x06  # 10 mA, 10 mV
    assert dm(sim, 0x9308, "<B") & 0x0C == 0x0C  # FET_CTRL_EN, HOST_FET_EN
    # thermistor pins: cells TS1 TS3 HDQ DCHG, FETs DDSG CFETOFF (18k pull-up, 18K model)
    for addr in (0x92FD, 0x92FF, 0x9300, 0x9301):
        assert dm(sim, addr, "<B") == 0x07
    for addr in (0x9302, 0x92FA):
        assert dm(sim, addr, "<B") == 0x0F
    assert dm(sim, 0x91A8, "<f") == pytest.approx(7.4768 / (SHUNT_UOHM / 1000), rel=1e-6)
    assert sim.mfg_status & 0x10  # FET test mode left


def test_protections_in_chip_units_round_to_the_safe_side():
    sim, drv = make()
    r_mohm = SHUNT_UOHM / 1000
    cov = dm(sim, 0x9278, "<B") * 50.6
    assert LIMITS.cov_mv - 50.6 < cov <= LIMITS.cov_mv
    cuv = dm(sim, 0x9275, "<B") * 50.6
    assert LIMITS.cuv_mv <= cuv < LIMITS.cuv_mv + 50.6
    occ_a = dm(sim, 0x9280, "<B") * 2 / r_mohm
    assert LIMITS.occ_ma / 1000 - 2 / r_mohm < occ_a <= LIMITS.occ_ma / 1000
    ocd_a = dm(sim, 0x9282, "<B") * 2 / r_mohm
    assert LIMITS.ocd_ma / 1000 - 2 / r_mohm < ocd_a <= LIMITS.ocd_ma / 1000
    scd_a = SCD_TABLE_MV[dm(sim, 0x9286, "<B")] / r_mohm
    assert scd_a <= LIMITS.scd_ma / 1000
    nxt = dm(sim, 0x9286, "<B") + 1
    assert nxt == len(SCD_TABLE_MV) or SCD_TABLE_MV[nxt] / r_mohm > LIMITS.scd_ma / 1000
    # delays: (setting + 2) * 3.3 ms, at most the asked one, less than a step short
    for addr, fmt, ms, hi in ((0x9279, "<H", LIMITS.cov_delay_ms, 2047), (0x9276, "<H", LIMITS.cuv_delay_ms, 2047),
                              (0x9281, "<B", LIMITS.occ_delay_ms, 127), (0x9283, "<B", LIMITS.ocd_delay_ms, 127)):
        got = (dm(sim, addr, fmt) + 2) * 3.3
        assert got <= ms + 1e-9
        assert got > ms - 3.3 or dm(sim, addr, fmt) == hi
    scd_us = (dm(sim, 0x9287, "<B") - 1) * 15
    assert LIMITS.scd_delay_us - 15 < scd_us <= LIMITS.scd_delay_us
    assert dm(sim, 0x9261, "<B") & 0xBC == 0xBC  # SCD OCD1 OCC COV CUV enabled
    assert dm(sim, 0x9265, "<B") == 0x98 and dm(sim, 0x9269, "<B") == 0xE4


@pytest.mark.parametrize("mv", range(2000, 4400, 7))
def test_voltage_codes_never_on_the_unsafe_side(mv):
    assert cfg.cov_code(mv) * 50.6 <= mv or cfg.cov_code(mv) == 20
    assert cfg.cuv_code(mv) * 50.6 >= mv or cfg.cuv_code(mv) == 90


def test_data_memory_write_outside_config_update_is_noticed():
    sim, drv = make(configure=False)
    with pytest.raises(bq.Bq76952Error):
        cfg.dm_write(drv, 0x9278, "<B", 70)
    assert sim.dm_rejected == 1
    assert drv.comm_errors == 1
    assert dm(sim, 0x9278, "<B") == 86


def test_model_ignores_a_wrong_checksum_or_length():
    sim = SimBQ76952()
    sim.cfg_update = True
    sim.writeto_mem(0x08, 0x3E, bytes([0x78, 0x92, 70]))
    tot = 0x78 + 0x92 + 70
    sim.writeto_mem(0x08, 0x60, bytes([~tot & 0xFF ^ 1, 5]))  # bad checksum
    sim.writeto_mem(0x08, 0x60, bytes([~tot & 0xFF, 6]))  # bad length
    assert sim.rejected == 2 and dm(sim, 0x9278, "<B") == 86
    sim.writeto_mem(0x08, 0x60, bytes([~tot & 0xFF, 5]))
    assert dm(sim, 0x9278, "<B") == 70


def test_model_nacks_a_write_with_a_bad_crc():
    sim = SimBQ76952(crc=True)
    with pytest.raises(OSError):
        sim.writeto_mem(0x08, 0x3E, bytes([0x22, 0x00, 0x00, 0x00]))
    assert sim.nacks == 1


@pytest.mark.parametrize("crc", [False, True])
def test_read_fills_the_snapshot(crc):
    sim, drv = make(crc)
    sim.cell_mv = [3200 + 10 * c for c in range(16)]
    sim.stack_mv, sim.pack_mv, sim.ld_mv = 53120, 40000, 39990
    sim.current_ma = -123450
    sim.temp_dk = [2731 + 100 * k for k in range(10)]  # 0x68 + 2k: 0.0, 10.0, 20.0 ... degC
    sim.render()
    snap = Snapshot()
    assert drv.read(snap)
    assert list(snap.cell_mv) == sim.cell_mv
    assert (snap.stack_mv, snap.pack_mv, snap.current_ma) == (53120, 40000, -123450)
    assert drv.ld_mv == 39990
    # sources TS1 (0x70: k=4), TS3 (k=6), HDQ (7), DCHG (8), DDSG (9), CFETOFF (1), internal (0)
    assert list(snap.temp_dc) == [400, 600, 700, 800, 900, 100, 0]
    assert drv.comm_errors == 0


@pytest.mark.parametrize("crc", [False, True])
def test_a_failed_transfer_leaves_the_snapshot_and_counts(crc):
    sim, drv = make(crc)
    snap = Snapshot()
    assert drv.read(snap)
    before = (list(snap.cell_mv), list(snap.temp_dc), snap.stack_mv, snap.pack_mv, snap.current_ma)
    sim.cell_mv = [2500] * 16
    sim.current_ma = 5000
    sim.render()
    if crc:
        sim.crc_errors = 1
        assert not drv.read(snap)
        assert drv.comm_errors == 1
    sim.silent = True
    assert not drv.read(snap)
    assert not drv.read(snap)
    assert drv.comm_errors == (3 if crc else 2)
    assert (list(snap.cell_mv), list(snap.temp_dc), snap.stack_mv, snap.pack_mv, snap.current_ma) == before
    sim.silent = False
    assert drv.read(snap) and snap.cell_mv[0] == 2500 and snap.current_ma == 5000


def test_set_fets_and_a_lost_command_is_sent_again():
    sim, drv = make()
    assert sim.fets() == 0  # FET_INIT_OFF: nothing conducts before the host allows it
    assert drv.set_fets(True, False, False)
    assert sim.fets() & 0x05 == 0x01  # CHG on, DSG off
    assert drv.set_fets(False, False, True)
    assert sim.fets() == 0x08  # PDSG only
    sim.silent = True
    assert drv.set_fets(True, True, False) is False
    assert drv.comm_errors == 1
    sim.silent = False
    snap = Snapshot()
    assert drv.read(snap)  # sends the pending FET_CONTROL first
    assert sim.fets() & 0x05 == 0x05
    assert drv.fet_status & 0x05 == 0x05


class _Pin:
    def __init__(self):
        self.v = None

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


def test_a_board_pre_charge_pin_replaces_the_chips_pdsg():
    # the host cannot command the chip's PDSG: boards drive their own
    # pre-charge MOSFET from an MCU pin, the chip's PDSG stays forced off
    pin = _Pin()
    sim = SimBQ76952()
    drv = bq.BQ76952(sim, shunt_uohm=SHUNT_UOHM, poll_us=0, pchg_pin=pin)
    assert pin.v == 0  # off from construction
    drv.configure(LIMITS)
    assert drv.set_fets(False, False, True)
    assert pin.v == 1 and sim.fets() == 0  # pre-charge pin only, no PDSG
    assert drv.set_fets(False, True, False)
    assert pin.v == 0 and sim.fets() == 0x04  # DSG follows, pre-charge off
    sim.silent = True
    assert drv.set_fets(False, True, True) is False
    assert pin.v == 1
    assert drv.set_fets(False, False, False) is False
    assert pin.v == 0  # opens even with the bus gone


def test_leaving_fet_test_mode_only_toggles_when_needed():
    sim, drv = make()
    assert sim.mfg_status & 0x10
    cfg.enable_fet_control(drv)  # FET_ENABLE toggles: must not be sent again
    assert sim.mfg_status & 0x10


def test_alerts_latch_and_clear():
    sim, drv = make()
    drv.set_fets(True, True, False)
    snap = Snapshot()
    sim.trip(0x08 | 0x80)  # COV and SCD
    assert drv.read(snap)
    assert drv.read_alerts() == ALERT_COV | ALERT_SCD
    assert sim.fets() & 0x05 == 0  # the chip holds both off
    sim.recover(0x80)
    assert drv.clear_alerts(ALERT_SCD)
    assert sim.alarm_status & 0x4000 == 0
    assert drv.read(snap) and drv.read_alerts() == ALERT_COV  # COV still active, SCD gone
    sim.recover(0x08)
    drv.clear_alerts(ALERT_COV)
    assert drv.read(snap) and drv.read_alerts() == 0
    assert sim.fets() & 0x05 == 0x05
    sim.trip(0x04)  # CUV is enabled by program_protections
    assert drv.read(snap) and drv.read_alerts() == ALERT_CUV


def test_balancing():
    sim, drv = make()
    assert drv.set_balance(0x8001)
    assert sim.balance_mask == 0x8001
    drv.set_balance(0)
    assert sim.balance_mask == 0


def test_low_power_and_identity_commands():
    sim, drv = make(crc=True, busy_polls=3)
    assert cfg.device_number(drv) == 0x7695
    cfg.sleep_enable(drv, False)
    assert not sim.sleep_allowed
    cfg.deep_sleep(drv)
    assert sim.deep_sleep
    cfg.exit_deep_sleep(drv)
    assert not sim.deep_sleep
    cfg.shutdown(drv)
    assert sim.shutdown


def test_a_subcommand_that_never_completes_raises_and_counts():
    sim, drv = make(configure=False)
    sim.busy_polls = 10000
    with pytest.raises(bq.Bq76952Error):
        cfg.device_number(drv)
    assert drv.comm_errors == 1


HEAP_LOCK = """
from drivers.bq76952 import BQ76952
from defs.afe import HwLimits
from defs.snapshot import Snapshot
""" + LOCKED + """
def main():
    if not lock_works():
        return "probe failed"
    for crc in (False, True):
        sim = SimBQ76952(crc=crc)
        d = BQ76952(sim, crc=crc, poll_us=0)
        d.configure(HwLimits(3750, 2300, 90000, 220000, 400000, 2000, 2000, 1000, 100, 200))
        s = Snapshot()
        sim.cell_mv[3] = 3456
        sim.current_ma = -20000
        sim.render()
        steps = (("read", lambda: d.read(s), True),
                 ("set_fets", lambda: d.set_fets(True, True, False), True),
                 ("set_balance", lambda: d.set_balance(5), True),
                 ("read_alerts", lambda: d.read_alerts(), 0),
                 ("clear_alerts", lambda: d.clear_alerts(8), True))
        for name, fn, want in steps:
            for _ in range(3):
                got = locked(fn)
                if got == "allocates":
                    return name + " allocates crc " + str(crc)
                if got != want:
                    return name + " returned " + str(got)
        if s.cell_mv[3] != 3456 or s.current_ma != -20000:
            return "wrong values"
        if crc:
            sim.crc_errors = 1
            got = locked(lambda: d.read(s))
            if got is not False:
                return "crc error read: " + str(got)
        sim.silent = True
        got = locked(lambda: d.read(s))
        if got is not False:
            return "silent read: " + str(got)
    return "ok"

print(main())
"""


def test_read_path_runs_under_heap_lock_in_micropython(mpy):
    with open(os.path.join(HERE, "sim_bq76952.py"), encoding="utf-8") as f:
        sim_src = f.read()
    assert_prints_ok(mpy, sim_src + "\n" + textwrap.dedent(HEAP_LOCK))


def test_a_subcommand_response_with_a_bad_checksum_is_refused():
    sim, drv = make(configure=False)
    respond = sim._respond

    def bad(n):
        respond(n)
        sim._chk ^= 0xFF

    sim._respond = bad
    with pytest.raises(bq.Bq76952Error):
        cfg.device_number(drv)
    assert drv.comm_errors == 1


def test_fewer_cells_and_a_different_sense_resistor():
    sim = SimBQ76952()
    drv = bq.BQ76952(sim, n_cells=15, shunt_uohm=500, poll_us=0)
    drv.configure(LIMITS)
    assert dm(sim, 0x9304, "<H") == 0x7FFF
    assert dm(sim, 0x9280, "<B") == 90000 * 500 // 2000000  # 22 -> 44 mV = 88 A
    assert drv.set_balance(0xFFFF) and sim.balance_mask == 0x7FFF


def test_a_limit_the_chip_cannot_hold_is_refused_before_any_write():
    sim, drv = make()
    writes = sim.writes
    low_occ = HwLimits(3750, 2300, 10000, 220000, 400000, 2000, 2000, 1000, 100, 200)  # 2.5 mV
    with pytest.raises(ValueError):
        drv.program_protections(low_occ)
    assert sim.writes == writes and not sim.cfg_update


# What the chip does with a data-memory value, in our units, written from the
# TRM (SLUUBY2B 13.6) and not from the driver: (address, format, value -> the
# chip's level, one step of the chip, the safe side: +1 = the chip's level may
# only be at or above the request, -1 at or below).
def _uohm(mv_x1000):
    return mv_x1000 * 1000 // SHUNT_UOHM  # uV across the shunt -> mA


CHIP_UNITS = {
    "cov_mv": (0x9278, "<B", lambda c: c * 506 // 10, 51, -1),
    "cuv_mv": (0x9275, "<B", lambda c: -(-c * 506 // 10), 51, +1),
    "occ_ma": (0x9280, "<B", lambda c: _uohm(c * 2000), _uohm(2000), -1),
    "ocd_ma": (0x9282, "<B", lambda c: _uohm(c * 2000), _uohm(2000), -1),
    "cov_delay_ms": (0x9279, "<H", lambda c: (c + 2) * 33 / 10, 3.3, -1),
    "cuv_delay_ms": (0x9276, "<H", lambda c: (c + 2) * 33 / 10, 3.3, -1),
    "occ_delay_ms": (0x9281, "<B", lambda c: (c + 2) * 33 / 10, 3.3, -1),
    "ocd_delay_ms": (0x9283, "<B", lambda c: (c + 2) * 33 / 10, 3.3, -1),
    "scd_delay_us": (0x9287, "<B", lambda c: (c - 1) * 15, 15, -1),
}


def _chip_scd_ma(sim):
    return _uohm(SCD_TABLE_MV[dm(sim, 0x9286, "<B")] * 1000)


def _sweep(lo, hi):
    step = max(1, (hi - lo) // 40)
    return sorted(set([lo, lo + 1, hi - 1, hi] + list(range(lo, hi, step))))


@pytest.mark.parametrize("row", [r for r in __import__("bms.params", fromlist=["TABLE"]).TABLE
                                 if r[1].startswith("hw_")], ids=lambda r: r[1])
def test_every_value_a_hw_row_accepts_is_programmed_on_the_chip(row):
    # each hw_* row over its whole range (edges and 40 steps between) through
    # program_protections on the chip model, the result read back from the
    # chip's data memory in the TRM's units: no refusal, and the chip's level
    # within one of its steps of the request, on the safe side
    _, name, default, lo, hi, _ = row
    field = name[3:]
    assert lo <= default <= hi
    for v in _sweep(lo, hi):
        sim, drv = make(configure=False)
        kw = dict(LIMITS.__dict__)
        kw[field] = v
        drv.program_protections(HwLimits(**kw))
        assert sim.dm_rejected == 0 and not sim.cfg_update
        if field == "scd_ma":
            got = _chip_scd_ma(sim)
            assert got <= v, (name, v, got)
            assert got >= _uohm(SCD_TABLE_MV[0] * 1000)
            # the next setting up would be above the request
            nxt = [m for m in SCD_TABLE_MV if _uohm(m * 1000) > got]
            assert not nxt or _uohm(nxt[0] * 1000) > v
            continue
        addr, fmt, level, one_step, side = CHIP_UNITS[field]
        got = level(dm(sim, addr, fmt))
        if side < 0:
            assert v - one_step < got <= v, (name, v, got)
        else:
            assert v <= got < v + one_step, (name, v, got)


def test_the_hw_rows_use_the_chips_range():
    # one unit beyond a row's edge the chip either refuses (a threshold) or
    # cannot follow (a delay past its longest setting): the rows stop there
    from bms import params as P
    rows = {r[1]: r for r in P.TABLE}
    drv = bq.BQ76952(SimBQ76952(), shunt_uohm=SHUNT_UOHM)
    kw = dict(LIMITS.__dict__)
    kw["occ_ma"] = rows["hw_occ_ma"][3] - 1
    with pytest.raises(ValueError):
        cfg.protection_codes(drv, HwLimits(**kw))
    for name, longest in (("hw_cov_delay_ms", 6761.7), ("hw_cuv_delay_ms", 6761.7),
                          ("hw_occ_delay_ms", 425.7), ("hw_ocd_delay_ms", 425.7),
                          ("hw_scd_delay_us", 450)):
        assert rows[name][4] <= longest < rows[name][4] + 100, name


def test_every_board_has_the_shunt_the_hw_rows_are_made_for():
    import inspect
    import bq_board
    import bq_build
    assert inspect.signature(bq.BQ76952).parameters["shunt_uohm"].default == SHUNT_UOHM
    assert "shunt_uohm" not in inspect.getsource(bq_board) + inspect.getsource(bq_build)


def test_comm_error_counter_wraps_below_the_small_int_limit():
    sim, drv = make(configure=False)
    drv.comm_errors = (1 << 30) - 1
    with pytest.raises(bq.Bq76952Error):
        cfg.dm_write(drv, 0x9278, "<B", 70)
    assert drv.comm_errors == 0


DROPPED_SETUP = """
from drivers.bq76952 import BQ76952
from defs.afe import HwLimits
lim = HwLimits(3750, 2300, 90000, 220000, 400000, 2000, 2000, 1000, 100, 200)
sim = SimBQ76952(crc=True)
d = BQ76952(sim, crc=True, poll_us=0)
"""
DROPPED_CALLS = """
d.configure(lim)
d.program_protections(lim)
d.all_fets_off()
"""


def test_the_set_up_code_leaves_the_heap_after_each_call(dropped_after_each_call):
    # drivers.once: bq76952cfg is imported for configure / program_protections /
    # all_fets_off and dropped after each: nothing of it stays referenced (the
    # heap is the same after every round), and it was really gone (importing
    # it to keep costs its code)
    with open(os.path.join(HERE, "sim_bq76952.py"), encoding="utf-8") as f:
        sim_src = f.read()
    dropped_after_each_call(sim_src + "\n" + DROPPED_SETUP, DROPPED_CALLS, "drivers.bq76952cfg", 2048, "256K")
