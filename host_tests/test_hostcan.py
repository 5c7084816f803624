# The host protocol on CAN (firmware/app/hostcan.py): a tester speaking
# can-isotp on 29-bit ids 0x18EF_TA_SA (the ids tools/bmsctl/transport.py
# uses) reads the pack's registers and SunSpec map through the real handler
# (app.host), gets pymodbus-decodable replies, talks only to the pack it
# addresses, and a second tester is kept out while the first holds the channel.
import isotp
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest

from tools import paths  # noqa: F401
from tools.bmsctl.transport import can_ids
from app.host import Host
from app import hostcan, hostport
from bms.params import Params
from bms.state import PackState
from bms.system import SystemView, from_pack


class Can:
    FLAG_EXT_ID = 2

    def __init__(self):
        self.sent = []
        self.full = False

    def send(self, id_, data, flags):
        if self.full:
            return None
        self.sent.append((id_, bytes(data), flags))
        return 0


class Rig:
    def __init__(self, address=3, sa=0xF1):
        st = PackState()
        st.soc_pct = 57
        params = Params()
        view = SystemView()
        from_pack(view, st, params)
        self.host = Host(st, params, view, None, None, unit=1)
        self.can = Can()
        self.addr = address
        self.svc = hostcan.HostCan(self.host, self.can, lambda: self.addr)
        tx, rx = can_ids(address)
        tx = (tx & ~0xFF) | sa
        rx = (rx & ~0xFF00) | (sa << 8)
        self.tx_id, self.rx_id = tx, rx
        self.inbox = []
        self.tester = isotp.TransportLayerLogic(
            rxfn=self._rx, txfn=lambda m: self.svc.on_frame("can", [m.arbitration_id, bytes(m.data), 2, 0]),
            address=isotp.Address(isotp.AddressingMode.Normal_29bits, txid=tx, rxid=rx),
            params={"tx_padding": 0x55})
        self.now = 0

    def _rx(self, timeout=0):
        while self.can.sent:
            id_, data, flags = self.can.sent.pop(0)
            if id_ == self.rx_id:
                return isotp.CanMessage(arbitration_id=id_, data=data, extended_id=True)
        return None

    def ask(self, pdu, steps=400):
        self.tester.send(pdu)
        for _ in range(steps):
            self.tester.process()
            self.svc.tick(self.now)
            self.now += 10
            self.tester.process()
            if self.tester.available():
                return self.tester.recv()
        return None


def _read(addr, count):
    r = ReadHoldingRegistersRequest(address=addr, count=count)
    return bytes([r.function_code]) + r.encode()


def test_a_tester_reads_the_map_over_isotp():
    rig = Rig()
    reply = rig.ask(_read(40000, 4))  # 'SunS', model 1's id and length
    resp = DecodePDU(False).decode(bytes(reply))
    assert resp.registers[:3] == [0x5375, 0x6E53, 1]
    reply = rig.ask(_read(0, 5))
    assert DecodePDU(False).decode(bytes(reply)).function_code == 3
    # a multi-frame reply (125 registers = 252 bytes) comes through flow control
    reply = rig.ask(_read(40000, 60))
    assert len(reply) == 2 + 120
    # the reply frames went to 0x18EF_F1_03, from the pack's address
    assert rig.svc.requests == 3


def test_only_the_addressed_pack_answers():
    rig = Rig(address=3)
    rig.addr = 4  # the pack's address is now 4: frames for 3 are not ours
    assert rig.ask(_read(0, 1), steps=50) is None
    assert rig.svc.requests == 0


def test_a_second_tester_is_kept_out_while_the_first_holds_the_channel():
    rig = Rig()
    assert rig.ask(_read(0, 1)) is not None
    tx, _ = can_ids(3)
    other = (tx & ~0xFF) | 0xF2
    rig.svc.on_frame("can", [other, bytes([0x05, 0x03, 0, 0, 0, 1, 0, 0]), 2, 0])
    assert rig.svc.busy == 1 and rig.svc.requests == 1


def test_a_full_transmit_buffer_delays_the_reply_and_loses_nothing():
    rig = Rig()
    rig.can.full = True
    rig.tester.send(_read(0, 5))
    for _ in range(5):
        rig.tester.process()
        rig.svc.tick(rig.now)
        rig.now += 10
    assert not rig.can.sent
    rig.can.full = False
    got = None
    for _ in range(100):
        rig.tester.process()
        rig.svc.tick(rig.now)
        rig.now += 10
        rig.tester.process()
        if rig.tester.available():
            got = rig.tester.recv()
            break
    assert got is not None and got[0] == 3 and got[1] == 10


def test_the_link_dbc_documents_the_host_ids():
    import os
    import cantools
    db = cantools.database.load_file(os.path.join(paths.ROOT, "tools", "dbc", "bms_link.dbc"))
    req = db.get_message_by_name("HOST_REQUEST")
    rsp = db.get_message_by_name("HOST_REPLY")
    assert req.is_extended_frame and rsp.is_extended_frame
    assert (req.frame_id, rsp.frame_id) == can_ids(1)
    ident, mask, flags = hostport.SELECTION
    assert req.frame_id & mask == ident & mask and flags == 2
    # no link frame is taken for a host frame (proto.link's prefix differs)
    from proto import link
    lid, lmask, _ = link.CAN_FILTER
    assert req.frame_id & lmask != lid & lmask


def test_a_frame_of_another_pgn_is_not_taken():
    rig = Rig()
    uds = 0x18DA03F1  # UDS (ISO 15765-2 normal fixed addressing) to the same pack
    rig.svc.on_frame("can", [uds, bytes([0x02, 0x10, 0x02, 0, 0, 0, 0, 0]), 2, 0])
    assert rig.svc.requests == 0 and rig.svc.tester == -1


def through_mcp2515(filters, sent):
    """The ids of sent [(id, flags)] that an MCP2515 (the SPI-level chip model,
    drivers.mcp2515) with filters receives from another node, in order."""
    import sim_mcp2515 as sim
    from drivers.mcp2515 import MCP2515
    bus = sim.Bus(500000)
    nodes = []
    for name in ("a", "b"):
        chip = bus.attach(sim.Mcp2515(8000000, seed=len(nodes) + 1, name=name))
        can = MCP2515(chip.spi, chip.cs, osc_hz=8000000, sleep_ms=lambda ms: None)
        can.init(500000, 0)
        nodes.append(can)
    a, b = nodes
    a.set_filters(None)
    b.set_filters(filters)
    got = []
    fr = [0, memoryview(bytearray(8)), 0, 0]
    for i, f in sent:
        a.send(i, b"\x00", f)
        bus.step()
        r = b.recv(fr)
        if r:
            got.append(r[0])
    return got


def test_the_selections_fit_an_mcp2515_and_let_the_right_frames_in():
    # link (29-bit), inverter (11-bit) and host (29-bit) share the chip's two masks
    from proto import link, pylon_can
    assert hostport.SELECTION[1] == link.CAN_FILTER[1]
    ext = 2
    sent = [(link.can_id(link.T_STATUS, 2, 1), ext), (0x305, 0), (can_ids(1)[0], ext),
            (0x0CF00400, ext), (0x351, 0)]  # a J1939 EEC1 (priority 3) and another 11-bit id: not ours
    got = through_mcp2515((link.CAN_FILTER, pylon_can.CAN_FILTER, hostport.SELECTION), sent)
    assert got == [sent[0][0], 0x305, can_ids(1)[0]]


def test_while_host_traffic_is_on_the_bus_every_pack_reads_its_port_each_tick():
    class Rx:
        polls = 0

        def poll(self):
            self.polls += 1
    rig = Rig(address=3)
    rx = Rx()
    rig.svc.can_rx = rx
    rig.svc.tick(0)
    assert rx.polls == 0  # no host traffic: the link's tick reads the port
    assert rig.svc.period_ms == hostcan.IDLE_MS  # and this service ticks at the idle period
    # a request to another pack (address 5) is host traffic too: this pack keeps its queue empty
    tx, _ = can_ids(5)
    rig.svc.on_frame("can", [tx, bytes([0x05, 0x03, 0, 0, 0, 1, 0, 0]), 2, 0])
    assert rig.svc.requests == 0
    assert rig.svc.period_ms == hostcan.ACTIVE_MS
    rig.svc.tick(10)
    rig.svc.tick(20)
    assert rx.polls == 2
    rig.svc.tick(20 + hostcan._IDLE_MS)  # the bus has been quiet since: back to the link's reads
    rig.svc.tick(30 + hostcan._IDLE_MS)
    assert rx.polls == 2 and rig.svc.period_ms == hostcan.IDLE_MS
