# The SunSpec read map (lib/proto/sunspec.py through app.host): every point
# offset the board names against pysunspec2's model JSON, and pysunspec2's own
# client scanning the map over Modbus TCP on loopback (a tiny in-test server
# around Host.pdu) and reading 1, 802 and 805 back as the PackState has them.
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
from bms.system import SystemView, from_pack
from defs import codes
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
    return out, o, (sum(p["size"] for p in rows[0]["points"]) if rows else 0)


@pytest.mark.parametrize("model, prefix, length", [(1, "C_", ss.L_1), (802, "B_", ss.L_802),
                                                   (805, "M_", ss.L_805)])
def test_point_offsets_match_pysunspec2_json(model, prefix, length):
    offs, fixed, row = _offsets(model)
    names = [n for n in dir(ss) if n.startswith(prefix)]
    assert len(names) > 5
    for n in names:
        point = n[len(prefix):]
        if point == "CELLS":
            assert getattr(ss, n) == fixed
            continue
        assert getattr(ss, n) == offs[point], n
    assert length == fixed - 2 + (ss.N_CELLS * row if row else 0)
    if row:
        assert row == ss.CELL_REGS


def _state():
    st = PackState()
    s = st.snap
    s.reads = 1
    for i in range(16):
        s.cell_mv[i] = 3290 + 3 * i
    s.stack_mv = sum(s.cell_mv)
    s.min_cell_mv, s.max_cell_mv, s.min_cell, s.max_cell = 3290, 3335, 0, 15
    for i in range(7):
        s.temp_dc[i] = (231, 245, 262, 250, 301, 299, 220)[i]
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


@pytest.fixture
def device():
    st = _state()
    params = Params()
    view = SystemView()
    from_pack(view, st, params)
    host = Host(st, params, view, None, None, unit=1)
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.host = host
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    d = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=srv.server_address[1], timeout=5)
    try:
        d.scan()
        yield d, st
    finally:
        d.close()
        srv.shutdown()
        srv.server_close()


def test_pysunspec2_scans_the_map_and_reads_the_pack(device):
    d, st = device
    assert d.base_addr == 40000
    assert set(d.models) == {1, "common", 802, "battery", 805, "lithium-ion-module"}
    c = d.common[0]
    assert c.Mn.value == "BMS-MPY" and c.SN.value == "BMS-MPY-00000001" and c.DA.value == 1
    b = d.battery[0]
    assert b.SoC.cvalue == st.soc_pct == 62
    assert b.V.cvalue == pytest.approx(st.snap.stack_mv / 1000, abs=0.005)
    assert b.A.cvalue == pytest.approx(st.current_ma / 1000, abs=0.05)
    assert b.SoH.cvalue == 97 and b.AChaMax.cvalue == 70 and b.ADisChaMax.cvalue == 100
    assert b.CellVMax.cvalue == pytest.approx(3.335) and b.CellVMin.cvalue == pytest.approx(3.290)
    assert b.Typ.value == 4 and b.State.value == 3 and b.ChaSt.value == 3  # Li-ion, connected, discharging
    # Evt1 (model_802.json symbols): OVER_VOLT_WARNING (bit 10) from OV, OVER_DISCHARGE_CURRENT_ALARM (7) from DOCP
    assert b.Evt1.value == (1 << 10) | (1 << 7)
    assert b.W.cvalue == pytest.approx(st.current_ma * st.snap.stack_mv / 1e6, abs=10)
    assert b.DisChaRte.value is None and b.NCyc.value is None  # not implemented: 0xFFFF, 0xFFFFFFFF
    m = d.models[805][0]
    assert m.NCell.value == 16 and m.NCyc.value == 123 and m.NCellBal.value == 3
    assert [cell.CellV.cvalue for cell in m.groups["lithium-ion-module-cell"]] == pytest.approx(
        [v / 1000 for v in st.snap.cell_mv])
    assert [cell.CellSt.value for cell in m.groups["lithium-ion-module-cell"]][:3] == [1, 0, 1]
    assert m.CellTmpMax.cvalue == pytest.approx(26.2) and m.CellTmpMin.cvalue == pytest.approx(23.1)
    assert m.groups["lithium-ion-module-cell"][0].CellTmp.value is None


def test_reads_follow_the_state(device):
    d, st = device
    st.soc_pct = 15
    d.models[805][0].read()
    assert d.models[805][0].SoC.value == 15
