"""Inverter emulators in a closed loop on the bench (issue 7): each keeps the
pack's current within the limits the BMS sends; pulling the inverter out
raises the BMS alarm, the safe limits, the 60-minute power-off request and the
emulator's own alarm; the scenario key is checked."""
import json

import pytest

import simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS


def world(inv, duration_s=120, current_a=100, soc=50, **extra):
    doc = {"duration_s": duration_s, "inverter": inv, "initial": {"soc_pct": soc},
           "events": [{"t_s": 3, "set": "current_a", "value": current_a}]}
    doc.update(extra)
    lines = []
    w = simworld.World(scn.parse(json.dumps(doc), FAULTS), lines.append)
    return w, lines


@pytest.mark.parametrize("inv", ["victron", "sma", "pylon", {"bus": "rs485", "emulator": "pylon"}])
def test_emulator_limits_charge_and_discharge(inv):
    w, lines = world(inv, 60, 100)
    w.run_until(30000)
    st = w.packs[0].app.state
    e = w.inverter
    assert e.limits_seen and not e.alarm
    assert 0 < st.current_ma <= st.ccl_ma + 1000  # 100 A asked, CCL (70 A) let through
    w.system_request_ma = -150000
    w.run_until(60000)
    assert -st.dcl_ma - 1000 <= st.current_ma < 0
    assert not [ln for ln in lines if '"error"' in ln]
    bus = "rs485" if isinstance(inv, dict) else "can"
    assert any('"bus":"%s"' % bus in ln.replace(" ", "") for ln in lines)


def test_charge_stops_at_cvl_through_the_emulator():
    w, _ = world("pylon", 600, 100, soc=99)
    w.run()
    st = w.packs[0].app.state
    assert w.inverter.voltage_mv <= st.cvl_mv + 200 or st.ccl_ma == 0


def test_pulling_the_inverter_out():
    w, lines = world("pylon", 3 * 3600, 0, params={"inv_lost_ms": 15000})
    w.run_until(20000)
    st = w.packs[0].app.state
    assert st.inverter_bus == 1 and not st.inverter_lost
    w.inverter.unplug()
    w.run_until(40000)
    assert st.inverter_lost and not st.inverter_sleep_req
    assert w.inverter.current_ma(50000) == 0
    w.run_until(20000 + 3600 * 1000 + 2000)
    assert st.inverter_sleep_req and st.inverter_silent_ms >= 3600 * 1000
    # `004` 6.3: losing the inverter for 60 minutes powers the pack down
    from bms import modes, sleep
    assert st.mode == modes.SLEEP and st.sleep_reason == sleep.BY_INVERTER
    assert not (st.chg_fet or st.dsg_fet)


def test_scenario_key_checked():
    for bad in ("abb", {"bus": "usb"}, {"emulator": "x"}, {"protocol_id": 5}, 3):
        with pytest.raises(scn.ScenarioError):
            scn.parse(json.dumps({"inverter": bad}), FAULTS)
    assert scn.parse(json.dumps({"inverter": "none"}), FAULTS).inverter is None
    assert scn.parse(json.dumps({"inverter": "sma"}), FAULTS).inverter == ("sma", "can", 0)
