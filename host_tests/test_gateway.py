# The bench's PC port (tools/gateway.py): a Modbus TCP client (pymodbus) gets
# through the gateway what an RTU device on the master's Link IN answers, under
# its own transaction id; a unit that does not answer is the gateway exception
# 0x0B; the bench paces itself to real time. The RTU device here is a stand-in
# answering FC 03 from a register list (the board's handler has its own tests).
import threading

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU

from tools import paths  # noqa: F401
from tools import gateway
from sim.bus import SerialLink
from sim.vtime import VirtualRunner


class _Device:
    """Unit 7: FC 03 from REGS; any other unit is silent."""
    name = "stand-in"
    period_ms = 5
    REGS = [1000 + i for i in range(64)]

    def __init__(self, end):
        self.end = end
        self.framer = FramerRTU(DecodePDU(True))
        self.seen = []

    def tick(self, now_ms):
        data = self.end.read()
        if not data:
            return
        used, unit, _tid, pdu = self.framer.decode(bytes(data))
        self.seen.append((unit, bytes(pdu)))
        if unit != 7 or pdu[0] != 3:
            return
        addr = int.from_bytes(pdu[1:3], "big")
        count = int.from_bytes(pdu[3:5], "big")
        body = b"".join(r.to_bytes(2, "big") for r in self.REGS[addr:addr + count])
        self.end.write(self.framer.encode(bytes((3, len(body))) + body, unit, 0))


class _World:
    def __init__(self, duration_ms):
        self.links = [SerialLink()]
        self.runner = VirtualRunner(0)
        self.sc = type("Sc", (), {"duration_ms": duration_ms})()
        self.inverter = None

    def run_until(self, t):
        self.runner.run_until(t)


@pytest.fixture
def world():
    w = _World(60_000)
    dev = _Device(w.links[0].b)
    w.runner.add(dev)
    port = gateway.local_port()
    rtu, lines = gateway.attach(w, "127.0.0.1:%d" % port)
    stop = threading.Event()
    t = threading.Thread(target=gateway.pace, args=(w, stop), daemon=True)
    t.start()
    yield w, dev, rtu, port, lines
    stop.set()
    t.join(5)


def test_tcp_request_reaches_the_rtu_device_and_its_reply_comes_back(world):
    w, dev, rtu, port, lines = world
    assert lines == ["bench: Modbus TCP gateway on 127.0.0.1:%d (unit 1 = the system, N = the pack at link address N)" % port]
    with ModbusTcpClient("127.0.0.1", port=port, timeout=5) as c:
        r = c.read_holding_registers(10, count=4, device_id=7)
        assert not r.isError()
        assert r.registers == [1010, 1011, 1012, 1013]
        r2 = c.read_holding_registers(0, count=2, device_id=7)
        assert r2.registers == [1000, 1001]
    # the RTU side saw the unit id and the PDU the client sent
    assert dev.seen[0] == (7, bytes.fromhex("03000a0004"))
    assert rtu.requests == 2 and rtu.timeouts == 0


def test_a_silent_unit_is_the_gateway_exception_0x0b(world):
    _w, _dev, rtu, port, _ = world
    with ModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0) as c:
        r = c.read_holding_registers(0, count=1, device_id=9)
        assert r.isError()
        assert r.exception_code == gateway.GATEWAY_NO_RESPONSE
    assert rtu.timeouts == 1


def test_the_gateway_serves_loopback_only():
    with pytest.raises(gateway.GatewayError, match="loopback"):
        gateway.parse_address("0.0.0.0:5020")
    with pytest.raises(gateway.GatewayError, match="HOST:PORT"):
        gateway.parse_address("5020x")
    assert gateway.parse_address(":5020") == ("127.0.0.1", 5020)


def test_pace_runs_simulated_time_at_wall_speed():
    import time
    w = _World(300)
    t0 = time.monotonic()
    gateway.pace(w)
    took = time.monotonic() - t0
    assert w.runner.now_ms == 300
    assert took >= 0.29  # not faster than real time


def test_the_pty_carries_raw_rtu_both_ways():
    import os
    import time
    w = _World(60_000)
    dev = _Device(w.links[0].b)
    w.runner.add(dev)
    rtu, lines = gateway.attach(w, pty=True)
    assert lines == ["bench: Modbus RTU port on %s" % rtu.pty.path]
    stop = threading.Event()
    t = threading.Thread(target=gateway.pace, args=(w, stop), daemon=True)
    t.start()
    try:
        fd = os.open(rtu.pty.path, os.O_RDWR | os.O_NOCTTY)
        framer = FramerRTU(DecodePDU(False))
        os.write(fd, framer.encode(bytes.fromhex("0300020003"), 7, 0))
        got = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            used, unit, _tid, pdu = framer.decode(got)
            if used and pdu:
                break
            os.set_blocking(fd, False)
            try:
                got += os.read(fd, 256)
            except BlockingIOError:
                time.sleep(0.01)
        os.close(fd)
        assert unit == 7
        assert pdu == bytes.fromhex("0306") + b"".join(r.to_bytes(2, "big") for r in (1002, 1003, 1004))
    finally:
        stop.set()
        t.join(5)


def test_the_can_bridge_carries_frames_both_ways():
    import can
    from sim.bus import CanBus
    w = _World(60_000)
    w.with_can = True
    w.can = CanBus("can", lambda: w.runner.now_ms)
    pack = w.can.attach("pack0", 0)
    chan = "239.74.163.%d" % (gateway.local_port() % 200 + 20)
    rtu, lines = gateway.attach(w, can_spec="udp_multicast:" + chan)
    assert rtu is None and lines == ["bench: CAN bus bridged to udp_multicast:" + chan]
    host = can.Bus(interface="udp_multicast", channel=chan, receive_own_messages=False)
    try:
        pack.send(0x18EFF101, b"\x02\x03\x04", pack.FLAG_EXT_ID)
        host.send(can.Message(arbitration_id=0x351, data=b"\x11\x22", is_extended_id=False))
        got = None
        for _ in range(200):
            w.run_until(w.runner.now_ms + 5)
            m = host.recv(0.005)
            if m is not None and m.arbitration_id != 0x351:  # (the host's own frame comes back on multicast)
                got = m
            if got is not None and pack.any():
                break
        assert got is not None and got.arbitration_id == 0x18EFF101 and got.is_extended_id
        assert bytes(got.data) == b"\x02\x03\x04"
        fr = pack.recv()
        assert fr[0] == 0x351 and bytes(fr[1]) == b"\x11\x22" and not fr[2] & pack.FLAG_EXT_ID
        for _ in range(20):
            w.run_until(w.runner.now_ms + 5)
        assert not pack.any()  # once: the bridge's own frame coming back is not put on the bus again
    finally:
        host.shutdown()
