"""Inverter CAN (issue 7): every frame the service sends, decoded with cantools
and tools/dbc/bms_inverter.dbc (not with our encoder), against the system view
in normal, alarm, protection, force-charge, full-charge, stop and lost cases;
periods, bus detection, presence (alarm, safe limits, sleep request)."""
import os

import cantools
import pytest
from hypothesis import given, strategies as hs

from app.inverter import Inverter, BUS_CAN, BUS_NONE
from defs import codes
from defs.codes import FC_I, FC_II, FC_FULL
from bms.params import Params, index_of
from bms.state import PackState
from bms.system import SystemView
from proto import pylon_can as pc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DB = cantools.database.load_file(os.path.join(ROOT, "tools", "dbc", "bms_inverter.dbc"))


class FakeCan:
    def __init__(self):
        self.sent = []

    def any(self):
        return False

    def send(self, id_, data, flags=0):
        self.sent.append((id_, bytes(data)))
        return 0


def view(**kw):
    v = SystemView()
    v.packs_online = 1
    v.voltage_mv = 53120
    v.current_ma = -12340
    v.soc_pct = 57
    v.soh_pct = 98
    v.capacity_mah = 100000
    v.cvl_mv = 56000
    v.ccl_ma = 70000
    v.dcl_ma = 100000
    v.dvl_mv = 48000
    v.min_cell_mv, v.max_cell_mv = 3311, 3325
    v.min_temp_dc, v.max_temp_dc = 231, 287
    v.valid = True
    for k, x in kw.items():
        setattr(v, k, x)
    return v


def make(v, protocol=0, **prm):
    p = Params()
    p.set(index_of("inv_protocol_count"), protocol)
    for k, x in prm.items():
        p.set(index_of(k), x)
    st = PackState()
    can = FakeCan()
    inv = Inverter(st, p, v, can, None)
    return inv, st, can


def burst(inv, can, t0=0):
    """Hear the inverter, run ticks until one period's frames are out."""
    can.sent.clear()
    inv._now = t0
    inv.on_frame("can", [0x305, memoryview(bytes(8)), 0, 0])
    for t in range(t0, t0 + 1000, 50):
        inv.tick(t)
    return {fid: DB.decode_message(fid, data, allow_truncated=True, decode_choices=False)
            for fid, data in can.sent}


def frame_set(proto):
    """[(id, dlc)] of the encoder's frames, in sending order."""
    enc = pc.CanEncoder(proto)
    return [(pc.ID_BASE | enc.spec[2 * k], len(enc.frames[k])) for k in range(len(enc.frames))]


def test_frame_sets_and_dlcs_per_protocol():
    # PROTOCOLS 1: the Pylon family 351/355/356/359/35C/35E (+379), 0x351 without
    # DVL (DLC 6) in Pylon V1.2; Victron/SMA 351/355/356/35A (+35E/35F/370-373/379)
    want = {0: [0x351, 0x355, 0x356, 0x359, 0x35A, 0x35C, 0x35E, 0x35F, 0x370, 0x371, 0x372, 0x373, 0x379],
            1: [0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E, 0x379]}
    for proto in (0, 1):
        fs = frame_set(proto)
        assert [i for i, _ in fs] == want[proto]
        inv, st, can = make(view(), proto)
        burst(inv, can)
        assert [(f, len(d)) for f, d in can.sent] == fs
        for fid, data in can.sent:
            assert len(data) <= DB.get_message_by_frame_id(fid).length
    assert dict(frame_set(1))[0x351] == 6 and dict(frame_set(0))[0x351] == 8
    assert dict(frame_set(1))[0x355] == 4 and dict(frame_set(0))[0x355] == 6


def test_normal_values_decode_against_the_view():
    v = view()
    inv, st, can = make(v, 0)
    d = burst(inv, can)
    assert d[0x351]["ChargeVoltageLimit"] == pytest.approx(56.0)
    assert d[0x351]["ChargeCurrentLimit"] == pytest.approx(70.0)
    assert d[0x351]["DischargeCurrentLimit"] == pytest.approx(100.0)
    assert d[0x351]["DischargeVoltageLimit"] == pytest.approx(48.0)
    assert d[0x355]["SOC"] == 57 and d[0x355]["SOH"] == 98 and d[0x355]["SOCHiRes"] == pytest.approx(57)
    assert d[0x356]["Voltage"] == pytest.approx(53.12)
    assert d[0x356]["Current"] == pytest.approx(-12.3)  # discharging: negative
    assert d[0x356]["Temperature"] == pytest.approx(28.7)
    assert d[0x359]["ModuleCount"] == 1 and (d[0x359]["Mark1"], d[0x359]["Mark2"]) == (0x50, 0x4E)
    assert all(d[0x359][k] == 0 for k in d[0x359] if k.startswith(("Prot", "Alarm")))
    assert d[0x35C]["ChargeEnable"] == 1 and d[0x35C]["DischargeEnable"] == 1
    assert d[0x35C]["ForceCharge1"] == d[0x35C]["ForceCharge2"] == d[0x35C]["FullChargeRequest"] == 0
    assert all(x == 2 for x in d[0x35A].values())  # every field "cleared"
    assert bytes(dict(can.sent)[0x35E]).startswith(b"PYLON")  # Deye
    assert d[0x35F]["OnlineCapacity"] == 100 and d[0x379]["InstalledCapacity"] == 100
    assert d[0x372]["ModulesOnline"] == 1 and d[0x372]["ModulesOffline"] == 0
    assert d[0x373]["MinCellVoltage"] == pytest.approx(3.311)
    assert d[0x373]["MaxCellVoltage"] == pytest.approx(3.325)
    assert d[0x373]["MinTemperature"] == 23 and d[0x373]["MaxTemperature"] == 29


def test_alarm_and_protection_flags():
    A = codes.mask(codes.ALARMS, ("OV", "COT"))
    P = codes.mask(codes.PROTECTIONS, ("CUVP", "DOCP"))
    v = view(alarms=A, protections=P, faults=codes.bit(codes.FAULTS, "AFE"), dcl_ma=0,
             packs_blocking_discharge=1)
    inv, st, can = make(v, 0)
    d = burst(inv, can)
    f = d[0x359]
    assert f["ProtUnderVoltage"] == 1 and f["ProtDischargeOverCurrent"] == 1 and f["ProtOverVoltage"] == 0
    assert f["AlarmHighVoltage"] == 1 and f["AlarmHighTemp"] == 1 and f["AlarmLowVoltage"] == 0
    assert f["ProtSystemError"] == 1 and f["AlarmInternalComm"] == 1
    a = d[0x35A]
    assert a["AlarmGeneral"] == 1 and a["AlarmLowVoltage"] == 1 and a["AlarmHighDischargeCurrent"] == 1
    assert a["AlarmBmsInternal"] == 1 and a["AlarmHighVoltage"] == 2
    assert a["WarnHighVoltage"] == 1 and a["WarnHighTempCharge"] == 1 and a["WarnLowVoltage"] == 2
    assert d[0x35C]["DischargeEnable"] == 0 and d[0x35C]["ChargeEnable"] == 1
    assert d[0x351]["DischargeCurrentLimit"] == 0
    assert d[0x372]["ModulesBlockingDischarge"] == 1


# 0x35A (PROTOCOLS 1: 2-bit fields, 01 active, 10 cleared): which protections (P),
# faults (F) and alarms (A) make each field active
_ALARM_FIELDS = {
    "HighVoltage": ("P", ("COVP", "POVP")), "LowVoltage": ("P", ("CUVP", "PUVP")),
    "HighTemp": ("P", ("DHTP", "MOS OT", "EOTP")), "LowTemp": ("P", ("DLTP", "EUTP")),
    "HighTempCharge": ("P", ("CHTP",)), "LowTempCharge": ("P", ("CLTP",)),
    "HighDischargeCurrent": ("P", ("DOCP",)), "HighChargeCurrent": ("P", ("COCP",)),
    "Contactor": ("F", ("CHG MOS", "DSG MOS", "PRECHARGE")), "ShortCircuit": ("P", ("SCP",)),
    "BmsInternal": ("F", tuple(n for n in codes.FAULTS if n not in ("CHG MOS", "DSG MOS", "PRECHARGE", "IMB"))),
}
_WARN_FIELDS = {
    "HighVoltage": ("OV", "TOV"), "LowVoltage": ("UV", "TUV", "USOC"), "HighTemp": ("DOT", "EOT", "MOS OT"),
    "LowTemp": ("DUT", "EUT"), "HighTempCharge": ("COT",), "LowTempCharge": ("CUT",),
    "HighDischargeCurrent": ("DOC",), "HighChargeCurrent": ("COC",), "Contactor": (), "ShortCircuit": (),
    "BmsInternal": (), "CellImbalance": ("IMB",),
}


@given(hs.sets(hs.sampled_from(codes.PROTECTIONS)), hs.sets(hs.sampled_from(codes.ALARMS)),
       hs.sets(hs.sampled_from(codes.FAULTS)))
def test_every_0x35a_field_follows_its_codes(prot, alarms, faults):
    v = view(protections=codes.mask(codes.PROTECTIONS, prot), alarms=codes.mask(codes.ALARMS, alarms),
             faults=codes.mask(codes.FAULTS, faults))
    enc = pc.CanEncoder(pc.PROTO_VICTRON_SMA)
    enc.encode(v)
    k = [pc.ID_BASE | enc.spec[2 * i] for i in range(len(enc.frames))].index(0x35A)
    d = DB.decode_message(0x35A, bytes(enc.frames[k]), decode_choices=False)
    want = {"AlarmGeneral": bool(prot or faults), "WarnGeneral": bool(alarms),
            "AlarmCellImbalance": "IMB" in prot or "IMB" in faults}
    for name, (kind, names) in _ALARM_FIELDS.items():
        want["Alarm" + name] = bool(set(names) & (prot if kind == "P" else faults))
    for name, names in _WARN_FIELDS.items():
        want["Warn" + name] = bool(set(names) & alarms)
    assert d == {n: 1 if on else 2 for n, on in want.items()}


def test_force_and_full_charge_requests():
    for fc, key in ((FC_I, "ForceCharge1"), (FC_II, "ForceCharge2"), (FC_FULL, "FullChargeRequest")):
        inv, st, can = make(view(force_charge=fc), 1)
        d = burst(inv, can)
        assert d[0x35C][key] == 1
        assert sum(d[0x35C][k] for k in ("ForceCharge1", "ForceCharge2", "FullChargeRequest")) == 1


def test_stop_charging_sends_present_voltage_never_zero():
    # charge stopped (CCL 0): CVL = present voltage, never 0 (Deye W31, Victron)
    inv, st, can = make(view(ccl_ma=0, cvl_mv=56000, voltage_mv=55210), 1)
    d = burst(inv, can)
    assert d[0x351]["ChargeVoltageLimit"] == pytest.approx(55.2)
    assert d[0x351]["ChargeCurrentLimit"] == 0 and d[0x35C]["ChargeEnable"] == 0
    inv, st, can = make(view(cvl_mv=0), 1)
    assert burst(inv, can)[0x351]["ChargeVoltageLimit"] > 0


def _round_div(a, b):
    return -((-a + b // 2) // b) if a < 0 else (a + b // 2) // b


@given(hs.integers(0, 70000), hs.integers(0, 70000), hs.integers(0, 200000), hs.integers(0, 200000),
       hs.integers(-300000, 300000), hs.integers(40000, 50000))
def test_cvl_never_zero_and_limits_round_trip(cvl, volt, ccl, dcl, cur, dvl):
    # decoded with the DBC, compared with what PROTOCOLS 1 says the fields carry:
    # CVL/DVL 0.1 V, CCL/DCL 0.1 A, 0x356 voltage 0.01 V and current 0.1 A; with CCL 0
    # the CVL is the present voltage (Deye W31), never 0 (Victron)
    v = view(cvl_mv=cvl, voltage_mv=volt, ccl_ma=ccl, dcl_ma=dcl, current_ma=cur, dvl_mv=dvl)
    enc = pc.CanEncoder(0)
    enc.encode(v)
    fr = dict((pc.ID_BASE | enc.spec[2 * k], bytes(buf)) for k, buf in enumerate(enc.frames))
    d = DB.decode_message(0x351, fr[0x351])
    want = cvl
    if ccl == 0 and volt > 0 and (cvl == 0 or cvl > volt):
        want = volt
    if want == 0:
        want = volt or dvl
    assert round(d["ChargeVoltageLimit"] * 10) == max(1, _round_div(want, 100))
    assert round(d["ChargeCurrentLimit"] * 10) == min(32767, _round_div(ccl, 100))
    assert round(d["DischargeCurrentLimit"] * 10) == min(32767, _round_div(dcl, 100))
    assert round(d["DischargeVoltageLimit"] * 10) == _round_div(dvl, 100)
    m = DB.decode_message(0x356, fr[0x356], allow_truncated=True)
    assert round(m["Voltage"] * 100) == min(32767, _round_div(volt, 10))
    assert round(m["Current"] * 10) == _round_div(cur, 100)


def test_period_and_sma_minimum():
    inv, st, can = make(view(), 0)
    burst(inv, can)
    n = len(can.sent)
    for t in range(1000, 5000, 50):
        inv._now = t
        inv.on_frame("can", [0x305, memoryview(bytes(8)), 0, 0])
        inv.tick(t)
    assert len(can.sent) == 5 * n  # one set per second
    with pytest.raises(ValueError):
        Params().set(index_of("inv_can_period_ms"), 100)  # SMA: at least 200 ms


def test_silent_until_heard_and_invalid_view_sends_nothing():
    inv, st, can = make(view(), 0)
    for t in range(0, 3000, 50):
        inv.tick(t)
    assert can.sent == [] and st.inverter_bus == BUS_NONE
    inv, st, can = make(view(valid=False), 0)
    burst(inv, can)
    assert can.sent == [] and st.inverter_bus == BUS_CAN


def test_presence_alarm_safe_limits_then_sleep_request():
    inv, st, can = make(view(), 1, inv_lost_ms=5000, inv_sleep_ms=60000)
    burst(inv, can)
    assert not st.inverter_lost
    t = 1000
    while t < 6100:
        inv.tick(t)
        t += 50
    assert st.inverter_lost and not st.inverter_sleep_req
    can.sent.clear()
    for k in range(20):
        inv.tick(t)
        t += 50
    d = {fid: DB.decode_message(fid, data, allow_truncated=True) for fid, data in can.sent}
    assert d[0x351]["ChargeCurrentLimit"] == 0 and d[0x351]["DischargeCurrentLimit"] == 0
    assert d[0x351]["ChargeVoltageLimit"] == pytest.approx(53.1)
    while t < 61000:
        inv.tick(t)
        t += 50
    assert st.inverter_sleep_req and st.inverter_silent_ms >= 60000
    inv._now = t
    inv.on_frame("can", [0x307, memoryview(b"\x00\x00\x00\x00VIC\x00"), 0, 0])
    inv.tick(t)
    assert not st.inverter_lost and not st.inverter_sleep_req


def test_dip_overrides_params():
    class Dip:
        protocol_id = 1
        baud = 115200
    st = PackState()
    inv = Inverter(st, Params(), view(), FakeCan(), None, Dip())
    assert inv.protocol_id == 1 and st.inverter_baud == 115200 and inv.enc.spec == pc.CanEncoder(pc.PROTO_PYLON).spec
