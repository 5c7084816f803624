"""One writer per PackState field (issue 11): lib/bms/state.py names each
field's writer module first in the comment beside it. While bench scenarios
run (one pack through the protections it can reach cheaply, the button's
reset and sleep/wake, a power cycle; 8 packs with a cable pulled and a pack
switched off and on; a Pylontech inverter on CAN and on RS485), a recording
PackState notes the module of every attribute write (the caller's frame);
each field must then have exactly its named writer, or none when declared
"in place" (made at start, filled in place) or "none yet". The bench itself
(tools/, lib/sim) writes no field. A static pass checks the assignments in
the deployed sources the run does not reach."""
import collections
import os
import re
import sys

import pytest

from tools import paths
import simworld
import app.app as app_mod
from bms import state as state_mod
from proto import link
from sim import scenario as scn
from sim.mock_afe import FAULTS

STATE_PY = os.path.join(paths.ROOT, "lib", "bms", "state.py")
_FIELD = re.compile(r"^\s*self\.(\w+) = .*#\s*([a-z_.]+(?: in place)?|none yet)(?::|$)")


def declared():
    """{field: writer} from state.py: a module name, "<module> in place" or "none yet"."""
    out = {}
    with open(STATE_PY) as f:
        for ln in f:
            if re.match(r"^\s*self\.\w+ = ", ln):
                m = _FIELD.match(ln.rstrip("\n"))
                assert m, "state.py: no writer named beside: " + ln.strip()
                out[m.group(1)] = m.group(2)
    return out


class _Recorder:
    def __init__(self):
        self.writers = collections.defaultdict(set)

    def state_class(self):
        rec = self

        class RecordingState(state_mod.PackState):
            def __setattr__(self, name, value):
                mod = sys._getframe(1).f_globals.get("__name__")
                if mod != "bms.state":  # the start values
                    rec.writers[name].add(mod)
                object.__setattr__(self, name, value)

        return RecordingState


def _run(text):
    simworld.World(scn.parse(text, FAULTS), lambda line: None).run()


_SINGLE = """{"packs": 1, "duration_s": 270, "seed": 3, "initial": {"soc_pct": 80, "ambient_c": 25},
 "events": [
  {"t_s": 5, "sensor": "cell_mv", "pack": 0, "index": 0, "value": 3750},
  {"t_s": 30, "sensor": "cell_mv", "pack": 0, "index": 0, "value": null},
  {"t_s": 40, "sensor": "cell_mv", "pack": 0, "index": 1, "value": 2300},
  {"t_s": 60, "sensor": "cell_mv", "pack": 0, "index": 1, "value": null},
  {"t_s": 70, "sensor": "ntc_c", "pack": 0, "index": 0, "value": 70},
  {"t_s": 90, "sensor": "ntc_c", "pack": 0, "index": 0, "value": null},
  {"t_s": 100, "set": "current_a", "value": -150},
  {"t_s": 130, "set": "current_a", "value": 0},
  {"t_s": 140, "fault": "short_circuit", "pack": 0, "on": true},
  {"t_s": 142, "fault": "short_circuit", "pack": 0, "on": false},
  {"t_s": 150, "fault": "ntc_open", "pack": 0, "index": 1, "on": true},
  {"t_s": 160, "fault": "ntc_open", "pack": 0, "index": 1, "on": false},
  {"t_s": 170, "fault": "afe_silent", "pack": 0, "on": true},
  {"t_s": 180, "fault": "afe_silent", "pack": 0, "on": false},
  {"t_s": 190, "press": "button", "pack": 0, "hold_s": 7},
  {"t_s": 210, "press": "button", "pack": 0, "hold_s": 3.5},
  {"t_s": 225, "press": "button", "pack": 0, "hold_s": 3.5},
  {"t_s": 240, "power": "off", "pack": 0},
  {"t_s": 245, "power": "on", "pack": 0}
 ]}"""

_PARALLEL8 = """{"packs": 8, "duration_s": 100, "seed": 11,
 "initial": {"soc_pct": [40, 42, 44, 46, 48, 50, 52, 54], "ambient_c": 25},
 "events": [
  {"t_s": 10, "set": "current_a", "value": 120},
  {"t_s": 30, "link": "unplug", "between": [3, 4]},
  {"t_s": 50, "link": "plug", "between": [3, 4]},
  {"t_s": 60, "power": "off", "pack": 5},
  {"t_s": 75, "power": "on", "pack": 5}
 ]}"""

# the master's (address 1) link command to pack 2: refused and counted
_CMD = '{"t_s": 30, "inject": "can", "id": %d, "ext": true, "data": "%02x00"}' % (
    link.can_id(link.T_CMD, link.MASTER, 2), link.CMD_RESET_PROTECT)
_PYLON_CAN = """{"packs": 2, "duration_s": 45, "seed": 5, "initial": {"soc_pct": [60, 62]},
 "inverter": "pylon", "events": [%s]}""" % _CMD
# bytes that are no request on the master's Link IN: counted as bad
_BAD = '{"t_s": 20, "inject": "rs485", "into": 0, "data": "%s"}' % b"~garbage\r".hex()
_PYLON_RS485 = """{"packs": 2, "duration_s": 45, "seed": 5, "initial": {"soc_pct": [60, 62]},
 "inverter": {"protocol_id": 1, "bus": "rs485", "emulator": "pylon"}, "events": [%s]}""" % _BAD


def _record(monkeypatch, texts, after=None):
    rec = _Recorder()
    monkeypatch.setattr(app_mod, "PackState", rec.state_class())
    for text in texts:
        _run(text)
    if after is not None:
        after()
    return rec.writers


def _safe_state_with_failing_fets():
    """What the scenarios cannot reach: the safe state (safe_reason) whose
    set_fets never goes through (fet_errors, fet_off_failed)."""
    w = simworld.World(scn.parse('{"duration_s": 3}', FAULTS), lambda line: None)
    w.run()
    app = w.packs[0].app
    app.board.afe.set_fets = lambda chg, dsg, pchg: False
    app.safe_state("test")


# Fields these scenarios do not write; the static pass below still checks
# their assignments. Growing this list needs a reason beside the name.
NOT_REACHED = {
    "store_failures": "a flash failing at start (test_start_failures)",
    "store_errors": "a flash error while running (test_power_cycle_soc)",
    "events_lost": "more events than the ring holds between two persist ticks",
    "soh_pct": "a capacity learned over a long discharge (test_soc)",
    # the PC tool's requests: no scenario here sends one (test_modbus_ctl, test_pc_tool_bench)
    "protect_reset_req": "a reset from an installer session (test_modbus_ctl)",
    "host_fet_off": "a FET command (test_modbus_ctl)",
    "host_requests": "a request on the host protocol (test_modbus_ctl: the PC port wakes a sleeping pack)",
    "cal_what": "a calibration (test_modbus_ctl)",
    "cal_value": "a calibration (test_modbus_ctl)",
    "cal_req": "a calibration (test_modbus_ctl)",
    "cal_done": "a calibration applied by the estimate stage (test_modbus_ctl)",
    "host_sleep_cmd": "a sleep/wake command (test_modbus_ctl)",
    "host_sleep_req": "a sleep/wake command (test_modbus_ctl)",
    "update_hold": "an update session, UDS or Modbus (test_uds_update, test_modbus_update)",
}


def _deployed_assignments():
    """{field: {module}} of `st.F =`, `state.F +=`, ... in firmware/, lib/ (not lib/sim) and boards/."""
    fields = set(declared())
    pat = re.compile(r"\b(?:st|state|self\.state|self\.st|app\.state)\.(\w+)\s*(?:=|\+=|-=|\|=|&=)(?!=)")
    out = collections.defaultdict(set)
    for top in ("firmware", "lib", "boards"):
        for d, _dirs, files in os.walk(os.path.join(paths.ROOT, top)):
            if os.sep + "sim" in d[len(paths.ROOT):]:
                continue
            for fn in files:
                if not fn.endswith(".py"):
                    continue
                rel = os.path.relpath(os.path.join(d, fn), os.path.join(paths.ROOT, top))
                mod = rel[:-3].replace(os.sep, ".")
                with open(os.path.join(d, fn)) as f:
                    for m in pat.finditer(f.read()):
                        if m.group(1) in fields:
                            out[m.group(1)].add(mod)
    return out


def _problems(writers):
    decl = declared()
    bad = []
    for name in sorted(set(writers) - set(decl)):
        bad.append("%s: not a declared field, written by %s" % (name, sorted(writers[name])))
    for name, w in sorted(decl.items()):
        got = writers.get(name, set())
        if w == "none yet" or w.endswith(" in place"):
            if got:
                bad.append("%s: declared %r, written by %s" % (name, w, sorted(got)))
        elif not got:
            if name not in NOT_REACHED:
                bad.append("%s: %s never wrote it in the run" % (name, w))
        elif got != {w}:
            bad.append("%s: declared writer %s, written by %s" % (name, w, sorted(got)))
    return bad


@pytest.fixture(scope="module")
def run_writers():
    mp = pytest.MonkeyPatch()
    try:
        yield _record(mp, (_SINGLE, _PARALLEL8, _PYLON_CAN, _PYLON_RS485), _safe_state_with_failing_fets)
    finally:
        mp.undo()


def test_every_field_has_exactly_the_writer_state_py_names(run_writers):
    assert _problems(run_writers) == []
    for name in NOT_REACHED:
        assert name not in run_writers, name + " is reached now: take it off NOT_REACHED"


def test_the_deployed_sources_assign_each_field_in_its_writer_only():
    decl = declared()
    bad = []
    for name, mods in sorted(_deployed_assignments().items()):
        w = decl[name].split(" ")[0]  # "<module> in place": made at start, replaced nowhere else
        if mods != {w}:
            bad.append("%s: declared %s, assigned in %s" % (name, w, sorted(mods)))
    assert bad == []


def test_state_py_names_a_writer_for_every_field():
    st = state_mod.PackState()
    assert set(declared()) == set(vars(st))


def test_a_planted_second_writer_fails(run_writers):
    """The check can fail: alarms written by the link too, and a field the bench writes."""
    planted = collections.defaultdict(set, {k: set(v) for k, v in run_writers.items()})
    planted["alarms"].add("app.link")
    planted["cycles"].add("simworld")
    bad = _problems(planted)
    assert any(b.startswith("alarms: declared writer bms.protect") and "app.link" in b for b in bad)
    assert any(b.startswith("cycles:") and "simworld" in b for b in bad)


def test_a_planted_second_writer_in_the_firmware_is_recorded(monkeypatch):
    """End to end: a link tick that also writes st.alarms is caught by the recorder."""
    from app import link as link_mod
    tick = link_mod.Link.tick
    exec_globals = {"__name__": "app.link"}
    exec("def planted(self, now_ms):\n    self.state.alarms = self.state.alarms\n", exec_globals)

    def both(self, now_ms):
        tick(self, now_ms)
        exec_globals["planted"](self, now_ms)
    monkeypatch.setattr(link_mod.Link, "tick", both)
    writers = _record(monkeypatch, ('{"duration_s": 2}',))
    assert writers["alarms"] == {"bms.protect", "app.link"}
    assert any(b.startswith("alarms: declared writer bms.protect") for b in _problems(writers))
