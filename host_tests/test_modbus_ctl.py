# The host handler's writes that land (app.host, app.hostctl, app.hostfile) on a
# bench pack (simworld: the real App with its persist service and a flash in
# memory): parameter writes saved and journalled, the history as FC 0x14 file
# records, clock, calibration and device control. Requests built by pymodbus,
# replies decoded by pymodbus (test_modbus.ask); history records decoded here
# with struct from the layout app.hostfile documents; behaviour checked on the
# PackState, the parameters, the store and the event log.
import struct
import sys

import pytest
from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.file_message import FileRecord, ReadFileRecordRequest
from pymodbus.pdu.register_message import (ReadHoldingRegistersRequest, WriteMultipleRegistersRequest,
                                           WriteSingleRegisterRequest)

import bms
import simworld
from app.host import Host
from app import hostctl as H
from app.hostctl import Journal, CTL
from bms import auth as A
from bms import params as P
from bms import sleep
from bms.params import Params
from bms.system import SystemView, from_pack
from defs import codes, modes
from proto import modbus as mb
from sim import scenario as scn
from sim.mock_afe import FAULTS
from store import eventlog as EV
from test_modbus import Auth, Port, ask, regs, login, diag
from test_prows import spy_rows, assert_let_go

SCP = '''{"packs": 1, "duration_s": 600, "seed": 3, "initial": {"soc_pct": 80, "ambient_c": 25},
 "events": [{"t_s": 10, "set": "current_a", "value": -20},
  {"t_s": 20, "fault": "short_circuit", "pack": 0, "on": true},
  {"t_s": 22, "fault": "short_circuit", "pack": 0, "on": false}%s]}'''
QUIET = '''{"packs": 1, "duration_s": 600, "seed": 3, "initial": {"soc_pct": 60, "ambient_c": 25},
 "events": [{"t_s": 5, "set": "current_a", "value": -20}]}'''


def _rig(text, until_ms=8000, afe_errors=None, pack=0):
    w = simworld.World(scn.parse(text, FAULTS), lambda line: None, afe_errors=afe_errors)
    w.run_until(until_ms)
    app = w.packs[pack].app
    view = SystemView()
    from_pack(view, app.state, app.params)
    h = Host(app.state, app.params, view, Port(), Auth(), journal=Journal(app.persist))
    h.link = app.link
    h.restart = app.host.build()[0].restart  # app.compose's: the counters saved, then app.restart (the bench's)
    w.runner.add(h)  # its clock, as the App's services have
    h.world = w
    h.app = app
    return h


@pytest.fixture
def rig():
    return _rig(QUIET)


def ok(r):
    assert not isinstance(r, ExceptionResponse), "exception %02x" % r.exception_code
    return r


def exc(r):
    assert isinstance(r, ExceptionResponse), r
    return r.exception_code


def cmd(h, k, value):
    """Command k (its CTL offset) as one write: FC06 for 1 register, FC16 for an int32."""
    if k in (H.H_CLOCK, H.H_I_OFFSET, H.H_FCC, H.H_SOC, H.H_CYCLES, H.H_V_GAIN, H.H_I_GAIN):
        if k == H.H_CLOCK:
            words = list(struct.unpack(">HH", struct.pack(">I", value)))
        else:
            words = regs(value)
        return ask(h, WriteMultipleRegistersRequest(address=CTL + k, registers=words))
    return ask(h, WriteSingleRegisterRequest(address=CTL + k, registers=[value]))


def read_ctl(h, k, n=1):
    return ok(ask(h, ReadHoldingRegistersRequest(address=CTL + k, count=n))).registers


def i32(words):
    return struct.unpack(">i", struct.pack(">HH", *words))[0]


def files(h, *subs):
    """FC 0x14 with sub-requests (file, record, registers): the records' bytes, or the exception."""
    r = ask(h, ReadFileRecordRequest(records=[FileRecord(file_number=f, record_number=rec,
                                                         record_length=2 * n) for f, rec, n in subs]))
    if isinstance(r, ExceptionResponse):
        return r.exception_code
    return [bytes(x.record_data) for x in r.records]


EV_REGS = 9  # app.hostfile's documented record: seq, t_s (u32), boot (u16), flags|kind, code|pack, value (i32)


def events(h, first, n):
    """Events first .. first + n - 1, decoded from the documented layout (13 a request:
    a reply holds 253 bytes)."""
    out = []
    while n > 0:
        m = min(n, 13)
        got = files(h, (2 + first // 10000, first % 10000, m * EV_REGS))
        assert isinstance(got, list), got
        (data,) = got
        assert len(data) == 2 * EV_REGS * m
        for k in range(m):
            seq, t_s, boot, flags, kind, code, pack, value = struct.unpack_from(">IIHBBBBi", data, 18 * k)
            out.append(dict(seq=seq, t_s=t_s, boot=boot, flags=flags, kind=kind, code=code, pack=pack,
                            value=value))
        first += m
        n -= m
    return out


def index(h):
    (data,) = files(h, (1, 0, 6))
    return struct.unpack(">III", data)


def newest(h, n):
    count, oldest, last = index(h)
    n = min(n, count)
    return events(h, last - n + 1, n)


def journalled(h, kind, n=60):
    """(code, value, raised) of the newest n records of this kind."""
    return [(e["code"], e["value"], e["flags"] & EV.F_RAISED) for e in newest(h, n) if e["kind"] == kind]


def step(h, ms=1000):
    w = h.world
    w.run_until(w.t_ms() + ms)


# ---- 1. parameter writes land --------------------------------------------------------

def test_an_accepted_parameter_write_is_saved_and_journalled_with_old_and_new(rig):
    login(rig)
    i = P.CELL_OV_ALARM_MV
    ok(ask(rig, WriteMultipleRegistersRequest(address=1000 + 2 * i, registers=regs(3500))))
    assert rig.params.v[i] == 3500
    fresh = Params()
    rig.app.store.params.load(fresh)  # what the flash holds now
    assert fresh.v[i] == 3500
    old, new = newest(rig, 2)
    assert (old["kind"], old["code"], old["value"], old["flags"] & EV.F_RAISED) == (EV.KIND_PARAM, i + 1, 3550, 0)
    assert (new["kind"], new["code"], new["value"], new["flags"] & EV.F_RAISED) == (EV.KIND_PARAM, i + 1, 3500, 1)


def test_a_write_validate_refuses_names_why_and_changes_nothing(rig):
    login(rig)
    seq = rig.app.store.log.next_seq
    i = P.CELL_OV_ALARM_MV  # alarm above its protection level: the order of levels breaks
    before = list(rig.params.v)
    assert exc(ask(rig, WriteMultipleRegistersRequest(address=1000 + 2 * i, registers=regs(3700)))) == 3
    (reason, reg, pid, _), text = diag(rig)
    assert (reason, reg, pid) == (H.R_INVALID, 1000 + 2 * i, i + 1) and text
    fresh = Params()
    rig.app.store.params.load(fresh)
    assert list(rig.params.v) == before and fresh.v[i] == 3550 and rig.app.store.log.next_seq == seq


def test_the_pack_holds_no_parameter_rows_after_start_nor_after_writes(monkeypatch):
    # bms.prows (3.4 KB of bytes on the heap from a .mpy on littlefs) is
    # imported for each use only: start, a write, a refused one, a gain, defaults
    got = spy_rows(monkeypatch)
    rig = _rig(QUIET)
    assert "bms.prows" not in sys.modules and not hasattr(bms, "prows")
    login(rig)
    i = P.CELL_OV_ALARM_MV
    ok(ask(rig, WriteMultipleRegistersRequest(address=1000 + 2 * i, registers=regs(3500))))
    assert exc(ask(rig, WriteMultipleRegistersRequest(address=1000 + 2 * i, registers=regs(4000)))) == 3
    ok(cmd(rig, H.H_V_GAIN, 1001000))
    ok(cmd(rig, H.H_DEFAULTS, 1))
    assert rig.params.v[i] == 3550 and rig.params.v[P.CAL_V_GAIN_PPM] == 1000000
    assert_let_go(got)


# ---- 2. history by range ------------------------------------------------------------------

def test_history_index_and_records_decode_to_what_was_logged(rig):
    p = rig.app.persist
    for k in range(5):
        p.log(EV.C_EVENTS_LOST, -1000 * k - 7)
    log = rig.app.store.log
    count, oldest, last = index(rig)
    assert (count, oldest, last) == (log.next_seq - log.oldest_seq(), log.oldest_seq(), log.next_seq - 1)
    got = events(rig, last - 4, 5)
    assert [e["seq"] for e in got] == list(range(last - 4, last + 1))
    assert [e["value"] for e in got] == [-7, -1007, -2007, -3007, -4007]
    assert all(e["kind"] == EV.KIND_STORE and e["code"] == EV.C_EVENTS_LOST and e["flags"] & EV.F_RAISED
               for e in got)
    assert all(e["boot"] == rig.app.state.boots and e["pack"] == 0 for e in got)
    first = events(rig, oldest, 1)[0]
    assert first["kind"] == EV.KIND_STORE and first["code"] == EV.C_BOOT  # the log starts with the boot


def test_records_by_sequence_number_span_files_at_10000():
    h = _rig(QUIET, 2000)
    log = h.app.store.log
    log.clear(0, 1, 0)  # an emptied history whose sequence has reached 19998
    log.next_seq = 19998
    log.first = [-1] * log.segments
    log._count = log.per_seg
    for k in range(4):
        log.append(100 + k, 1, 0, EV.KIND_STORE, EV.C_EVENTS_LOST, 0, k)
    assert index(h) == (4, 19998, 20001)
    (a,) = files(h, (3, 9998, 2 * EV_REGS))
    (b,) = files(h, (4, 0, 2 * EV_REGS))
    seqs = [struct.unpack_from(">I", d, 18 * k)[0] for d in (a, b) for k in range(2)]
    assert seqs == [19998, 19999, 20000, 20001]
    assert [struct.unpack_from(">I", d, 18 * k + 4)[0] for d in (a, b) for k in range(2)] == [100, 101, 102, 103]
    assert files(h, (3, 9999, 2 * EV_REGS)) == mb.EX_ILLEGAL_ADDRESS  # 9999 + 1 crosses the file's end
    assert files(h, (3, 9997, EV_REGS)) == mb.EX_ILLEGAL_ADDRESS  # older than the oldest held


@pytest.mark.parametrize("subs", [
    [(1, 0, 7)], [(1, 5, 2)], [(0, 0, 9)],  # past the index; file 0 is none of ours
    [(2, 0, 8)], [(2, 0, 10)],  # not whole events
    [(2, 0, 9 * 14)],  # 14 events: the reply would pass 253 bytes
    [(1, 0, 6), (2, 9000, 9)],  # the second sub-request past the newest
])
def test_out_of_range_file_records_get_02(rig, subs):
    assert files(rig, *subs) == mb.EX_ILLEGAL_ADDRESS


def test_record_number_over_9999_gets_03(rig):
    r = ask(rig, ReadFileRecordRequest(records=[FileRecord(file_number=2, record_number=10000, record_length=18)]))
    assert exc(r) == mb.EX_ILLEGAL_VALUE


def test_history_clear_needs_an_installer_session(rig):
    log = rig.app.store.log
    seq = log.next_seq
    held = seq - log.oldest_seq()
    assert exc(cmd(rig, H.H_HISTORY_CLEAR, 1)) == mb.EX_ILLEGAL_FUNCTION
    assert log.next_seq == seq and rig.auth.refusals == [A.R_NO_SESSION]
    login(rig, level=1)
    assert exc(cmd(rig, H.H_HISTORY_CLEAR, 1)) == mb.EX_ILLEGAL_FUNCTION
    login(rig)
    ok(cmd(rig, H.H_HISTORY_CLEAR, 1))
    count, oldest, last = index(rig)
    got = events(rig, oldest, count)
    assert got[0]["code"] == EV.C_LOG_CLEARED and got[0]["value"] == held  # every record before removed
    assert [(e["kind"], e["code"], e["value"]) for e in got[1:]] == [
        (EV.KIND_HOST, H.H_HISTORY_CLEAR, 0), (EV.KIND_HOST, H.H_HISTORY_CLEAR, 1)]


# ---- 3. device control, calibration, clock ------------------------------------------------

def test_fet_off_opens_the_charge_fet_on_the_next_control_tick_and_0_releases_it(rig):
    st = rig.app.state
    assert st.chg_fet and st.dsg_fet
    assert exc(cmd(rig, H.H_FETS, 1)) == mb.EX_ILLEGAL_FUNCTION and st.host_fet_off == 0
    login(rig)
    ok(cmd(rig, H.H_FETS, 1))
    assert st.chg_fet  # the control stage acts, not the handler
    step(rig, 500)
    assert not st.chg_fet and st.dsg_fet and read_ctl(rig, H.H_FETS) == [1]
    ok(cmd(rig, H.H_FETS, 2))
    step(rig, 500)
    assert st.chg_fet and not st.dsg_fet
    ok(cmd(rig, H.H_FETS, 0))
    step(rig, 3000)  # the discharge FET closes after a new pre-charge
    assert st.chg_fet and st.dsg_fet
    assert exc(cmd(rig, H.H_FETS, 4)) == mb.EX_ILLEGAL_VALUE and st.host_fet_off == 0


def _scp_then(text_event, until_ms=60000):
    h = _rig(SCP % text_event, 30000)
    st = h.app.state
    assert st.protections & codes.bit(codes.PROTECTIONS, "SCP") and not st.dsg_fet
    return h


def test_installer_reset_clears_a_latched_short_circuit_exactly_like_the_button():
    press = ', {"t_s": 40, "press": "button", "pack": 0, "hold_s": 7}'
    by_button = _scp_then(press)
    by_button.world.run_until(60000)
    by_host = _scp_then("")
    st = by_host.app.state
    by_host.world.run_until(47000)  # the moment the button's press is released
    login(by_host)
    ok(cmd(by_host, H.H_RESET, 1))
    assert st.protect_reset_req == 1
    by_host.world.run_until(60000)
    a, b = by_button.app.state, by_host.app.state
    assert b.protections == a.protections and not b.protections & codes.bit(codes.PROTECTIONS, "SCP")
    assert (b.faults, b.lockout, b.mode, b.chg_fet, b.dsg_fet, b.reset_presses, b.seq) == (
        a.faults, a.lockout, a.mode, a.chg_fet, a.dsg_fet, a.reset_presses, a.seq)
    assert journalled(by_host, EV.KIND_HOST) == [(H.H_RESET, a.faults, 0), (H.H_RESET, 1, 1)]


def test_reset_without_a_session_is_refused_counted_and_changes_nothing():
    h = _scp_then("")
    st = h.app.state
    assert exc(cmd(h, H.H_RESET, 1)) == mb.EX_ILLEGAL_FUNCTION
    login(h, level=1)  # a user session is not enough
    assert exc(cmd(h, H.H_RESET, 1)) == mb.EX_ILLEGAL_FUNCTION
    assert h.auth.refusals == [A.R_NO_SESSION, A.R_LEVEL] and h.refused == 2  # auth's reason codes
    h.world.run_until(60000)
    assert st.protect_reset_req == 0 and st.protections & codes.bit(codes.PROTECTIONS, "SCP")
    assert st.link_refused == 0  # and the link's reset stays refused (test_link_security)


def test_calibrations_reach_the_estimator_on_its_next_tick_and_are_journalled(rig):
    st = rig.app.state
    login(rig)
    rated = rig.params.v[P.RATED_CAPACITY_MAH]
    assert i32(read_ctl(rig, H.H_FCC, 2)) == rated
    ok(cmd(rig, H.H_FCC, 90000))
    assert exc(cmd(rig, H.H_SOC, 500000)) == H.EX_BUSY  # the first is not applied yet
    step(rig, 300)
    assert st.fcc_mah == 90000 and st.soh_pct == 90 and st.cal_done == st.cal_req == 1
    ok(cmd(rig, H.H_SOC, 500000))
    step(rig, 300)
    assert abs(st.soc_ppm - 500000) < 1000 and st.soc_pct in (49, 50)
    ok(cmd(rig, H.H_CYCLES, 42))
    step(rig, 300)
    assert st.cycles == 42 and st.dsg_ah == 42 * rated // 1000
    ok(cmd(rig, H.H_I_OFFSET, -123))
    step(rig, 300)
    assert st.i_offset_ma == -123 and i32(read_ctl(rig, H.H_I_OFFSET, 2)) == -123
    got = journalled(rig, EV.KIND_HOST)
    assert got[:2] == [(H.H_FCC, rated, 0), (H.H_FCC, 90000, 1)] and got[-1] == (H.H_I_OFFSET, -123, 1)
    assert (H.H_CYCLES, 42, 1) in got and (H.H_SOC, 500000, 1) in got


@pytest.mark.parametrize("k, value", [(H.H_FCC, 40000), (H.H_SOC, 1000001), (H.H_I_OFFSET, 501),
                                      (H.H_CYCLES, -1), (H.H_CLOCK, 5)])
def test_a_calibration_out_of_range_gets_03_names_why_and_changes_nothing(rig, k, value):
    st = rig.app.state
    login(rig)
    assert exc(cmd(rig, k, value)) == mb.EX_ILLEGAL_VALUE
    (reason, reg, _, _), text = diag(rig)
    assert reason == H.R_RANGE and reg == CTL + k and str(value) in text
    assert st.cal_req == 0 and not rig.app.persist.clock.is_set()


def test_clock_set_reaches_persist_and_reads_back(rig):
    p = rig.app.persist
    assert read_ctl(rig, H.H_CLOCK, 3) == [0, 0, 0]
    assert exc(cmd(rig, H.H_CLOCK, 1700000000)) == mb.EX_ILLEGAL_FUNCTION and not p.clock.is_set()
    login(rig)
    ok(cmd(rig, H.H_CLOCK, 1700000000))
    assert p.clock.now() == (1700000000, 0)
    step(rig, 5000)
    hi, lo, is_set = read_ctl(rig, H.H_CLOCK, 3)
    assert is_set == 1 and 1700000004 <= (hi << 16 | lo) <= 1700000006
    got = [(e["kind"], e["code"], e["value"]) for e in newest(rig, 3)]
    assert got == [(EV.KIND_STORE, EV.C_CLOCK_SET, 1700000000), (EV.KIND_HOST, H.H_CLOCK, -1),
                   (EV.KIND_HOST, H.H_CLOCK, 1700000000)]


def test_sleep_and_wake_commands_go_through_the_control_stage(rig):
    st = rig.app.state
    login(rig)
    ok(cmd(rig, H.H_SLEEP, 1))
    step(rig, 500)
    assert st.sleep_reason == sleep.BY_COMMAND and read_ctl(rig, H.H_SLEEP) == [1]
    ok(cmd(rig, H.H_SLEEP, 2))
    step(rig, 500)
    assert st.sleep_reason == 0 and read_ctl(rig, H.H_SLEEP) == [0]
    assert exc(cmd(rig, H.H_SLEEP, 0)) == mb.EX_ILLEGAL_VALUE


def test_buzzer_needs_only_a_user_session_and_lands_as_its_parameter(rig):
    assert exc(cmd(rig, H.H_BUZZER, 1)) == mb.EX_ILLEGAL_FUNCTION
    login(rig, level=1)
    ok(cmd(rig, H.H_BUZZER, 1))
    assert rig.params.v[P.BUZZER_ENABLE] == 1 and read_ctl(rig, H.H_BUZZER) == [1]
    fresh = Params()
    rig.app.store.params.load(fresh)
    assert fresh.v[P.BUZZER_ENABLE] == 1
    old, new = newest(rig, 2)
    assert (old["kind"], old["code"], old["value"], new["value"]) == (EV.KIND_PARAM, P.BUZZER_ENABLE + 1, 0, 1)
    assert exc(cmd(rig, H.H_FETS, 1)) == mb.EX_ILLEGAL_FUNCTION  # user level: no FET control


def test_restore_defaults_puts_the_parameters_back(rig):
    login(rig)
    i = P.CELL_OV_ALARM_MV
    ok(ask(rig, WriteMultipleRegistersRequest(address=1000 + 2 * i, registers=regs(3500))))
    ok(cmd(rig, H.H_DEFAULTS, 1))
    assert rig.params.v[i] == 3550
    fresh = Params()
    rig.app.store.params.load(fresh)
    assert fresh.v[i] == 3550
    assert exc(cmd(rig, H.H_DEFAULTS, 2)) == mb.EX_ILLEGAL_VALUE


@pytest.mark.parametrize("req", [
    WriteSingleRegisterRequest(address=CTL + H.H_CLOCK, registers=[1]),  # half a 2-register command
    WriteMultipleRegistersRequest(address=CTL + H.H_FETS, registers=[0, 0]),  # two commands at once
    WriteSingleRegisterRequest(address=CTL + H.H_CLOCK_SET, registers=[1]),  # read-only
    WriteMultipleRegistersRequest(address=CTL + H.H_SOC + 1, registers=[0, 0]),  # not a command's start
])
def test_a_write_that_is_not_exactly_one_command_gets_02(rig, req):
    login(rig)
    st = rig.app.state
    assert exc(ask(rig, req)) == mb.EX_ILLEGAL_ADDRESS
    assert st.host_fet_off == 0 and st.cal_req == 0 and not rig.app.persist.clock.is_set()


def test_info_has_firmware_version_and_serial(rig):
    r = ok(ask(rig, ReadHoldingRegistersRequest(address=0, count=13))).registers
    assert r[3] == 1 << 8 | 0  # 1.0, as FC 0x2B/0x0E says (test_modbus)
    assert struct.pack(">8H", *r[5:13]) == b"BMS-MPY-00000001"


def test_regmap_describes_every_control_register_the_handler_reads(rig):
    from tools import regmap
    d = regmap.describe()
    (ctl,) = [b for b in d["blocks"] if b["name"] == "control"]
    assert (ctl["register"], ctl["regs"]) == (CTL, H.CTL_REGS)
    covered = set()
    for f in ctl["fields"]:
        covered.update(range(f["register"], f["register"] + f["regs"]))
        assert f["meaning"] and f["access"] in ("R", "W", "RW")
        ok(ask(rig, ReadHoldingRegistersRequest(address=f["register"], count=f["regs"])))
    assert covered == set(range(CTL, CTL + H.CTL_REGS))
    hist = {f["name"]: f for f in d["files"]}
    assert hist["history"]["record_regs"] == EV_REGS and hist["history_index"]["records"] == 6


# ---- 4. voltage and current calibration (gain, offset) ------------------------------------

def test_gains_and_offset_correct_what_the_pack_reports_against_the_physics():
    """The mock AFE reads every voltage 2 % high and the current 1 % high plus
    300 mA; with the gains and the offset the PC tool writes, the snapshot and
    the reported current match the pack model again (protect and every report
    read these)."""
    h = _rig(QUIET, afe_errors={"voltage_gain_ppm": 20000, "current_gain_ppm": 10000, "current_offset_ma": 300})
    st, model = h.app.state, h.world.packs[0].model
    step(h, 500)
    assert st.snap.stack_mv - model.stack_mv() > 0.019 * model.stack_mv()  # as read: 2 % high
    assert st.current_ma == model.current_ma * 101 // 100 + 300  # 1 % high, 300 mA off
    login(h)
    v_ppm = 1000000 * 1000000 // 1020000  # 1 / 1.02
    i_ppm = 1000000 * 1000000 // 1010000
    ok(cmd(h, H.H_V_GAIN, v_ppm))
    ok(cmd(h, H.H_I_GAIN, i_ppm))
    ok(cmd(h, H.H_I_OFFSET, 297))  # the offset in corrected units: 300 / 1.01
    step(h, 1000)
    assert h.params.v[P.CAL_V_GAIN_PPM] == v_ppm and i32(read_ctl(h, H.H_I_GAIN, 2)) == i_ppm
    for c in range(16):
        assert abs(st.snap.cell_mv[c] - model.cell_mv(c)) <= 1
    assert abs(st.snap.stack_mv - model.stack_mv()) <= 2 and abs(st.snap.pack_mv - model.pack_mv()) <= 2
    assert abs(st.snap.current_ma - model.current_ma) <= 3 and abs(st.current_ma - model.current_ma) <= 3
    assert st.snap.current_raw_ma - st.snap.current_ma == 297  # the estimator learns from this one
    # stored as parameters (params.bin) and journalled as parameter writes
    fresh = Params()
    h.app.store.params.load(fresh)
    assert (fresh.v[P.CAL_V_GAIN_PPM], fresh.v[P.CAL_I_GAIN_PPM]) == (v_ppm, i_ppm)
    got = journalled(h, EV.KIND_PARAM)
    assert (P.CAL_V_GAIN_PPM + 1, 1000000, 0) in got and (P.CAL_V_GAIN_PPM + 1, v_ppm, 1) in got
    assert (P.CAL_I_GAIN_PPM + 1, i_ppm, 1) in got


def test_the_current_offset_is_in_the_reported_current():
    h = _rig(QUIET, afe_errors={"current_offset_ma": -400})
    st, model = h.app.state, h.world.packs[0].model
    step(h, 500)
    assert st.current_ma - model.current_ma == -400
    login(h)
    ok(cmd(h, H.H_I_OFFSET, -400))
    step(h, 500)
    assert st.current_ma == model.current_ma and st.snap.current_ma == model.current_ma


@pytest.mark.parametrize("k, value", [(H.H_V_GAIN, 949999), (H.H_I_GAIN, 1050001)])
def test_a_gain_out_of_range_gets_03_and_changes_nothing(rig, k, value):
    login(rig)
    assert exc(cmd(rig, k, value)) == mb.EX_ILLEGAL_VALUE
    (reason, reg, _, _), text = diag(rig)
    assert reason == H.R_RANGE and reg == CTL + k and str(value) in text
    assert rig.params.v[P.CAL_V_GAIN_PPM] == rig.params.v[P.CAL_I_GAIN_PPM] == 1000000


def test_a_gain_without_a_session_is_refused_and_counted(rig):
    assert exc(cmd(rig, H.H_V_GAIN, 990000)) == mb.EX_ILLEGAL_FUNCTION
    assert rig.auth.refusals == [A.R_NO_SESSION] and rig.params.v[P.CAL_V_GAIN_PPM] == 1000000


# ---- 5. remove a pack from the system, MCU restart -----------------------------------------

THREE = '{"packs": 3, "duration_s": 600, "seed": 3, "initial": {"soc_pct": 60, "ambient_c": 25}, "events": []}'


def test_removing_a_lost_pack_ends_the_parallel_failure_and_is_journalled():
    h = _rig(THREE, until_ms=12000)
    st, t, w = h.app.state, h.app.link.table, h.world
    assert st.link_role == 2 and st.link_online == 3
    w.power(2, False)  # the pack at link address 3 switched off
    step(h, 5000)
    assert t.offline() == 1 and st.link_failure and read_ctl(h, H.H_REMOVE) == [1]
    assert exc(cmd(h, H.H_REMOVE, 3)) == mb.EX_ILLEGAL_FUNCTION  # no session: refused, counted
    assert h.auth.refusals == [A.R_NO_SESSION]
    login(h)
    for a, why in ((2, "online"), (4, "not in the system"), (1, "outside"), (33, "outside")):
        assert exc(cmd(h, H.H_REMOVE, a)) == mb.EX_ILLEGAL_VALUE
        assert why in diag(h)[1]
    step(h, 500)
    assert t.seen[3] and t.offline() == 1  # nothing changed
    ok(cmd(h, H.H_REMOVE, 3))
    step(h, 500)
    assert not t.seen[3] and t.offline() == 0 and not st.link_failure and read_ctl(h, H.H_REMOVE) == [0]
    assert not h.app.system.view.parallel_failure and h.app.system.view.packs_online == 2
    assert journalled(h, EV.KIND_HOST)[-2:] == [(H.H_REMOVE, 1, 0), (H.H_REMOVE, 3, 1)]
    w.power(2, True)  # switched on again: it joins as a new pack
    step(h, 8000)
    assert t.online[3] and st.link_online == 3


def test_remove_on_a_slave_is_refused():
    h = _rig(THREE, until_ms=12000, pack=1)
    assert h.app.state.link_role == 3
    login(h)
    assert exc(cmd(h, H.H_REMOVE, 3)) == mb.EX_ILLEGAL_VALUE and "not the master" in diag(h)[1]


def test_restart_replies_then_restarts_the_firmware_with_its_counters_saved(rig):
    w = rig.world
    old = rig.app
    boots = old.state.boots
    assert exc(cmd(rig, H.H_RESTART, 1)) == mb.EX_ILLEGAL_FUNCTION and rig.auth.refusals == [A.R_NO_SESSION]
    login(rig)
    assert exc(cmd(rig, H.H_RESTART, 2)) == mb.EX_ILLEGAL_VALUE
    ok(cmd(rig, H.H_CYCLES, 42))
    step(rig, 300)
    ok(cmd(rig, H.H_RESTART, 1))  # the reply is out before anything restarts
    assert w.packs[0].app is old
    step(rig, 1000)
    new = w.packs[0].app
    assert new is not old and new.state.boots == boots + 1 and new.state.cycles == 42  # saved before it
    assert not old.state.safe_reason
    assert journalled(rig, EV.KIND_HOST)[-2:] == [(H.H_RESTART, 0, 0), (H.H_RESTART, 1, 1)]
    step(rig, 3000)
    assert new.state.snap.reads > 10  # the new firmware runs on


def test_restart_without_a_way_to_restart_gets_02(rig):
    rig.restart = None
    login(rig)
    assert exc(cmd(rig, H.H_RESTART, 1)) == mb.EX_ILLEGAL_ADDRESS


def test_inverter_protocol_and_baud_are_parameters_the_next_start_takes(rig):
    login(rig)
    for i, v in ((P.INV_PROTOCOL_COUNT, 1), (P.INV_BAUD_HIGH_COUNT, 1)):
        ok(ask(rig, WriteMultipleRegistersRequest(address=1000 + 2 * i, registers=regs(v))))
    assert rig.app.inverter.protocol_id == 0  # read at start
    ok(cmd(rig, H.H_RESTART, 1))
    step(rig, 1000)
    inv = rig.world.packs[0].app.inverter
    assert inv.protocol_id == 1 and inv.baud == 115200


def test_any_request_on_the_pc_port_wakes_a_sleeping_pack(rig):
    # SPEC 10 (`003` 2.4): wake on "activity on the PC port"; a read needs no session
    st = rig.app.state
    login(rig)
    ok(cmd(rig, H.H_SLEEP, 1))
    step(rig, 500)
    assert st.sleep_reason == sleep.BY_COMMAND
    step(rig, 3000)
    assert st.sleep_reason == sleep.BY_COMMAND  # no request: it stays asleep
    rig.auth.logout(1)  # no session now: a plain read (port 1: RTU)
    r = ask(rig, ReadHoldingRegistersRequest(address=0, count=1))
    assert not isinstance(r, ExceptionResponse)
    step(rig, 500)
    assert st.sleep_reason == 0 and st.mode != modes.SLEEP
