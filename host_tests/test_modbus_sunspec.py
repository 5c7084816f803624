# The SunSpec read map (lib/proto/sunspec.py through app.host): every point
# offset the board names against pysunspec2's model JSON, and pysunspec2's own
# client scanning the map over Modbus TCP on loopback (a tiny in-test server
# around Host.pdu) and reading 1, 802 and 805 back as the PackState has them.
import contextlib
import json
import os
import socket
import socketserver
import struct
import threading

import pytest
import sunspec2
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from app.host import Host
from bms.params import Params
from bms.state import PackState
from bms import parallel
from bms.system import SystemView, aggregate, own_row
from defs import codes
from proto import link
from proto import modbus as mb
from proto import sunspec as ss

MODELS = os.path.join(os.path.dirname(sunspec2.__file__), "models", "json")


def _offsets(model):
    with open(os.path.join(MODELS, "model_%d.json" % model)) as f:
        g = json.load(f)["group"]
    o, out = 0, {}
    for p in g["points"]:
        out[p["name"]] = o
        o += p["size"]
    rows = g.get("groups", [])
    row = {}
    r = 0
    for p in rows[0]["points"] if rows else ():
        row[p["name"]] = r
        r += p["size"]
    return out, o, row, r


# (model, prefix of its points, prefix of its repeating row's points, length, rows)
MODELS_MAPPED = [(1, "C_", None, ss.L_1, 0), (802, "B_", None, ss.L_802, 0),
                 (803, "K_", "S_", ss.L_803, ss.MAX_STRINGS), (804, "G_", "R_", ss.L_804, 1),
                 (805, "M_", None, ss.L_805, ss.N_CELLS)]


@pytest.mark.parametrize("model, prefix, row_prefix, length, rows", MODELS_MAPPED)
def test_point_offsets_match_pysunspec2_json(model, prefix, row_prefix, length, rows):
    offs, fixed, row_offs, row = _offsets(model)
    names = [n for n in dir(ss) if n.startswith(prefix)]
    assert len(names) > 5
    for n in names:
        point = n[len(prefix):]
        if point in ("CELLS", "STRINGS", "MODULES"):  # where the repeating rows start
            assert getattr(ss, n) == fixed
            continue
        assert getattr(ss, n) == offs[point], n
    if row_prefix:
        got = {n[len(row_prefix):]: getattr(ss, n) for n in dir(ss) if n.startswith(row_prefix)}
        assert got == row_offs  # every point of the row named, at its offset
    assert length == fixed - 2 + rows * row
    if model == 805:
        assert row == ss.CELL_REGS
    if model == 803:
        assert row == ss.STRING_REGS and rows == link.MAX_PACKS
    if model == 804:
        assert row == ss.MODULE_REGS


def _state():
    st = PackState()
    s = st.snap
    s.reads = 1
    for i in range(16):
        s.cell_mv[i] = 3290 + 3 * i
    s.stack_mv = sum(s.cell_mv)
    for i in range(7):
        s.temp_dc[i] = (231, 245, 262, 250, 301, 299, 220)[i]
    s.extremes()  # as acquire does
    st.current_ma = -23456
    st.soc_pct = 62
    st.soh_pct = 97
    st.cycles = 123
    st.cvl_mv, st.ccl_ma, st.dcl_ma, st.dvl_mv = 56000, 70000, 100000, 48000
    st.chg_fet = st.dsg_fet = True
    st.balance_mask = 0b1000000000000101
    st.alarms = codes.bit(codes.ALARMS, "OV")
    st.protections = codes.bit(codes.PROTECTIONS, "DOCP")
    return st


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        host = self.server.host
        out = bytearray(mb.MAX_PDU)
        while True:
            head = self._read(7)
            if head is None:
                return
            tid, pid, length, unit = struct.unpack(">HHHB", head)
            req = bytearray(self._read(length - 1) or b"")
            k = host.pdu(unit, req, len(req), out, "tcp")
            if k:
                self.request.sendall(struct.pack(">HHHB", tid, 0, k + 1, unit) + bytes(out[:k]))

    def _read(self, n):
        b = b""
        while len(b) < n:
            c = self.request.recv(n - len(b))
            if not c:
                return None
            b += c
        return b


class _Link:
    """What app.host reads of app.link: the master's pack table (built: every
    row, as app.link builds it at the first peer report; else as at boot)."""

    def __init__(self, built=True):
        self.table = parallel.Table().build() if built else parallel.Table()


def _slave(seed):
    st = _state()
    for i in range(16):
        st.snap.cell_mv[i] = 3270 + seed + i
    st.snap.stack_mv = sum(st.snap.cell_mv)
    st.snap.extremes()
    st.current_ma = -11000 - 100 * seed
    st.soc_pct = 60 - seed
    st.alarms = st.protections = 0
    return st


def _system(params):
    """The master (address 1) with a slave online at 2 and one lost at 3: its
    state, the pack table as app.link fills it, the system view."""
    st = _state()
    st.link_role, st.link_address = parallel.MASTER, 1
    lk = _Link()
    t = lk.table
    f = link.F_CHG_OK | link.F_DSG_OK | link.F_CHG_FET | link.F_DSG_FET
    for a, pst in ((1, st), (2, _slave(5)), (3, _slave(9))):
        own_row(t, a, pst, params, f)
        t.seen[a] = t.online[a] = 1
        t.heard += a > 1
    t.online[3] = 0
    view = SystemView()
    aggregate(view, t, st, parallel.N)
    return st, lk, view


def _serve(host):
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.host = host
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@contextlib.contextmanager
def _scanned(host):
    """pysunspec2's client on host's map, scanned."""
    srv = _serve(host)
    d = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=srv.server_address[1], timeout=5)
    try:
        d.scan()
        yield d
    finally:
        d.close()
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def device():
    params = Params()
    st, lk, view = _system(params)
    host = Host(st, params, view, None, None, unit=1)
    host.link = lk
    with _scanned(host) as d:
        yield d, st, lk.table, view


def test_pysunspec2_scans_the_map_and_reads_the_pack(device):
    d, st, t, view = device
    assert d.base_addr == 40000
    assert set(d.models) == {1, "common", 802, "battery", 803, "lithium_ion_bank", 804, "lithium_ion_string",
                             805, "lithium-ion-module"}
    c = d.common[0]
    assert c.Mn.value == "BMS-MPY" and c.SN.value == "BMS-MPY-00000001" and c.DA.value == 1
    # 802: the system, packs 1 and 2 connected (3 lost): mean voltage, summed current, SoC by capacity
    s2 = _slave(5)
    b = d.battery[0]
    assert b.SoC.cvalue == (62 + 55 + 1) // 2
    assert b.V.cvalue == pytest.approx((st.snap.stack_mv + s2.snap.stack_mv) / 2000, abs=0.005)
    assert b.A.cvalue == pytest.approx((st.current_ma + s2.current_ma) / 1000, abs=0.05)
    assert b.SoH.cvalue == 97
    assert b.CellVMax.cvalue == pytest.approx(3.335) and b.CellVMin.cvalue == pytest.approx(3.275)
    assert (b.CellVMaxStr.value, b.CellVMaxMod.value) == (1, 1)  # string = the pack's link address
    assert (b.CellVMinStr.value, b.CellVMinMod.value) == (2, 1)
    assert b.Typ.value == 4 and b.State.value == 3 and b.ChaSt.value == 3  # Li-ion, connected, discharging
    # Evt1 (model_802.json symbols): OVER_VOLT_WARNING (bit 10) from OV, OVER_DISCHARGE_CURRENT_ALARM (7) from DOCP
    assert b.Evt1.value == (1 << 10) | (1 << 7)
    assert b.DisChaRte.value is None and b.NCyc.value is None  # not implemented: 0xFFFF, 0xFFFFFFFF
    m = d.models[805][0]
    assert m.NCell.value == 16 and m.NCyc.value == 123 and m.NCellBal.value == 3
    assert (m.StrIdx.value, m.ModIdx.value) == (1, 1)
    assert [cell.CellV.cvalue for cell in m.groups["lithium-ion-module-cell"]] == pytest.approx(
        [v / 1000 for v in st.snap.cell_mv])
    assert [cell.CellSt.value for cell in m.groups["lithium-ion-module-cell"]][:3] == [1, 0, 1]
    assert m.CellTmpMax.cvalue == pytest.approx(26.2) and m.CellTmpMin.cvalue == pytest.approx(23.1)
    assert m.groups["lithium-ion-module-cell"][0].CellTmp.value is None


def test_803_is_the_system_as_a_bank_of_pack_strings(device):
    d, st, t, view = device
    s2 = _slave(5)
    k = d.models[803][0]
    assert k.NStr.value == 32 and k.NStrCon.value == 2  # 32 string slots (link addresses), 2 connected
    rows = k.groups["string"]
    assert len(rows) == 32
    for r, pst in ((rows[0], st), (rows[1], s2)):
        assert r.StrNMod.value == 1 and r.StrSt.value == 0b11  # enabled, contactor closed
        assert r.StrConSt.value == 0b11  # charge and discharge FETs
        assert r.StrSoC.cvalue == pst.soc_pct and r.StrSoH.cvalue == pst.soh_pct
        assert r.StrA.cvalue == pytest.approx(pst.current_ma / 1000, abs=0.1)
        assert r.StrCellVMax.cvalue == pytest.approx(pst.snap.max_cell_mv / 1000)
        assert r.StrCellVMin.cvalue == pytest.approx(pst.snap.min_cell_mv / 1000)
        assert r.StrCellVAvg.cvalue == pytest.approx(pst.snap.stack_mv / 16000, abs=0.001)
        assert r.StrModTmpMax.cvalue == pytest.approx(26.2) and r.StrModTmpMin.cvalue == pytest.approx(23.1)
        assert r.StrModTmpAvg.value is None  # the table has each pack's extremes only
    assert rows[0].StrEvt1.value == (1 << 10) | (1 << 7) and rows[1].StrEvt1.value == 0
    lost = rows[2]  # heard before, silent now: COMMUNICATION_ERROR, nothing else
    assert lost.StrNMod.value == 1 and lost.StrSt.value == 0 and lost.StrEvt1.value == 1
    assert lost.StrSoC.value is None and lost.StrA.value is None and lost.StrCellVMax.value is None
    for r in rows[3:]:
        assert r.StrNMod.value == 0 and r.StrSt.value == 0 and r.StrSoC.value is None
    assert k.StrVMax.cvalue == pytest.approx(st.snap.stack_mv / 1000, abs=0.01) and k.StrVMaxStr.value == 1
    assert k.StrVMin.cvalue == pytest.approx(s2.snap.stack_mv / 1000, abs=0.01) and k.StrVMinStr.value == 2
    assert k.StrAMax.cvalue == pytest.approx(s2.current_ma / 1000, abs=0.1) and k.StrAMaxStr.value == 2
    assert k.StrAMin.cvalue == pytest.approx(st.current_ma / 1000, abs=0.1) and k.StrAMinStr.value == 1
    assert k.StrAAvg.cvalue == pytest.approx((st.current_ma + s2.current_ma) / 2000, abs=0.1)
    assert k.ModTmpMax.cvalue == pytest.approx(26.2) and k.ModTmpMin.cvalue == pytest.approx(23.1)


def test_804_is_this_packs_string_of_one_module(device):
    d, st, t, view = device
    g = d.models[804][0]
    assert g.Idx.value == 1 and g.NMod.value == 1 and g.St.value == 0b11 and g.ConSt.value == 0b11
    assert g.SoC.cvalue == 62 and g.DoD.cvalue == 38 and g.SoH.cvalue == 97 and g.NCyc.value == 123
    assert g.NCellBal.value == 3
    assert g.A.cvalue == pytest.approx(st.current_ma / 1000, abs=0.1)
    assert g.V.cvalue == pytest.approx(st.snap.stack_mv / 1000, abs=0.01)
    assert g.CellVMax.cvalue == pytest.approx(3.335) and g.CellVMin.cvalue == pytest.approx(3.290)
    assert g.CellVAvg.cvalue == pytest.approx(sum(st.snap.cell_mv) / 16000, abs=0.001)
    assert g.ModTmpMax.cvalue == pytest.approx(26.2) and g.ModTmpAvg.cvalue == pytest.approx(
        sum(st.snap.temp_dc[:4]) / 40, abs=0.1)
    assert g.Evt1.value == (1 << 10) | (1 << 7)
    mod = g.groups["lithium_ion_string_module"]
    assert len(mod) == 1
    r = mod[0]
    assert r.ModNCell.value == 16 and r.ModSoC.cvalue == 62 and r.ModSoH.cvalue == 97
    assert r.ModCellVMax.cvalue == pytest.approx(3.335) and r.ModCellVMaxCell.value == 16
    assert r.ModCellVMin.cvalue == pytest.approx(3.290) and r.ModCellVMinCell.value == 1
    assert r.ModCellTmpMin.cvalue == pytest.approx(23.1) and r.ModCellTmpMaxCell.value is None


def test_reads_follow_the_state(device):
    d, st, t, view = device
    st.soc_pct = 15
    d.models[805][0].read()
    assert d.models[805][0].SoC.value == 15
    t.online[2] = 0  # the slave lost
    d.models[803][0].read()
    assert d.models[803][0].groups["string"][1].StrEvt1.value == 1


def test_a_pack_before_its_first_read_and_without_a_role():
    """No measurement yet, no link role: every model still decodes, with
    SunSpec's not-implemented values where nothing is known."""
    params = Params()
    st = PackState()
    host = Host(st, params, SystemView(), None, None, unit=1)
    host.link = _Link(built=False)
    with _scanned(host) as d:
        assert {802, 803, 804, 805} <= set(d.models)
        k = d.models[803][0]
        assert k.NStrCon.value == 0 and k.StrVMax.value is None and k.ModTmpMax.value is None
        assert all(r.StrNMod.value == 0 for r in k.groups["string"])
        g = d.models[804][0]
        assert g.SoC.value is None and g.A.value is None and g.groups["lithium_ion_string_module"][0].ModSoC.value is None


def test_a_slave_shows_its_own_string_once_it_has_reported():
    """A slave's 803 holds only its own string, at its link address: before
    its first report (its table not built yet, as at boot) no string; after
    it (the rows built, its own row written as app.link writes it) its string
    alone, as its report carries it."""
    params = Params()
    st = _slave(5)
    st.link_role, st.link_address = parallel.SLAVE, 5
    host = Host(st, params, SystemView(), None, None, unit=1)
    host.link = _Link(built=False)
    with _scanned(host) as d:
        assert [r.StrNMod.value for r in d.models[803][0].groups["string"]] == [0] * 32
        t = host.link.table.build()
        own_row(t, 5, st, params, link.F_CHG_OK | link.F_DSG_OK | link.F_CHG_FET | link.F_DSG_FET)
        k = d.models[803][0]
        k.read()
        assert [r.StrNMod.value for r in k.groups["string"]] == [1 if a == 5 else 0 for a in range(1, 33)]
        r = k.groups["string"][4]
        assert r.StrSoC.cvalue == st.soc_pct and r.StrA.cvalue == pytest.approx(st.current_ma / 1000, abs=0.1)
