# Owns how bmsctl reaches a pack: one exchange(unit, pdu) -> pdu over
# - Modbus TCP (a gateway such as the bench's --modbus-tcp, or a TCP/RTU
#   converter in front of the master's PC port): MBAP framing;
# - Modbus RTU on a serial port (the master's Link IN or its USB port, or the
#   bench's --pty): RTU framing, CRC-16;
# - CAN (python-can: socketcan, slcan, pcan, udp_multicast for the bench, ...):
#   the same PDUs over ISO-TP (can-isotp) on 29-bit ids 0x18EF_TA_SA: the
#   SAE J1939-21 "Proprietary A" PGN (61184, PDU1: destination-specific),
#   TA = the pack's link address, SA = TESTER_ADDRESS. (0x18DA_TA_SA, ISO
#   15765-2 normal fixed addressing, stays free for UDS, the update issue.)
# Framing is pymodbus's (FramerSocket, FramerRTU) and can-isotp's: independent
# of the board's implementation. Every failure is a TransportError with one
# plain line.
import socket
import time

from pymodbus.framer import FramerRTU, FramerSocket
from tools.bmsctl.mbpdu import decoder
from tools.canbus import open_bus

TESTER_ADDRESS = 0xF1  # the usual tester source address
HOST_PRIORITY = 6
HOST_PF = 0xEF  # J1939 Proprietary A


class TransportError(Exception):
    pass


class Tcp:
    def __init__(self, host, port, timeout_s=3.0):
        self.where = "%s:%d" % (host, port)
        self.timeout_s = timeout_s
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as e:
            raise TransportError("cannot connect to %s: %s" % (self.where, e.strerror or e))
        self.framer = FramerSocket(decoder())
        self.tid = 0

    def exchange(self, unit, pdu):
        self.tid = (self.tid + 1) & 0xFFFF
        try:
            self.sock.sendall(self.framer.encode(pdu, unit, self.tid))
            buf = b""
            deadline = time.monotonic() + self.timeout_s
            while time.monotonic() < deadline:
                used, dev, tid, reply = self.framer.decode(buf)
                if used and reply and tid == self.tid:
                    return reply
                if used:
                    buf = buf[used:]
                    continue
                data = self.sock.recv(4096)
                if not data:
                    raise TransportError("%s closed the connection" % self.where)
                buf += data
        except socket.timeout:
            pass
        except OSError as e:
            raise TransportError("%s: %s" % (self.where, e.strerror or e))
        raise TransportError("no answer from unit %d at %s within %.1f s" % (unit, self.where, self.timeout_s))

    def close(self):
        self.sock.close()


class Rtu:
    def __init__(self, device, baud=9600, timeout_s=1.0):
        import serial  # pyserial (a pymodbus dependency)
        self.where = device
        self.timeout_s = timeout_s
        try:
            self.port = serial.Serial(device, baudrate=baud, timeout=0.02)
        except (OSError, serial.SerialException) as e:
            raise TransportError("cannot open %s: %s" % (device, e))
        self.framer = FramerRTU(decoder())

    def exchange(self, unit, pdu):
        self.port.reset_input_buffer()
        self.port.write(self.framer.encode(pdu, unit, 0))
        buf = b""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            buf += self.port.read(256)
            used, dev, _tid, reply = self.framer.decode(buf)
            if used and reply and dev == unit:
                return reply
            if used:
                buf = buf[used:]
        raise TransportError("no answer from unit %d on %s within %.1f s" % (unit, self.where, self.timeout_s))

    def close(self):
        self.port.close()


def can_ids(pack_address):
    """(host -> pack, pack -> host) 29-bit ids of one pack's host channel."""
    base = (HOST_PRIORITY << 26) | (HOST_PF << 16)
    return base | (pack_address << 8) | TESTER_ADDRESS, base | (TESTER_ADDRESS << 8) | pack_address


class Can:
    """Modbus PDUs over ISO-TP; unit = the pack's link address (1 = master).
    Each pack answers for itself, so `live` asks `parallel` packs at a time,
    and our flow control asks for a whole reply at once (block size 0): the
    figures of `make perf` (README "Benchmarks")."""
    parallel = 4

    def __init__(self, interface, channel, bitrate=None, timeout_s=2.0):
        import can
        self.where = "%s:%s" % (interface, channel)
        self.timeout_s = timeout_s
        try:
            self.bus = open_bus(interface, channel, bitrate)
        except Exception as e:  # python-can raises many kinds for a missing interface
            raise TransportError("cannot open CAN %s: %s" % (self.where, e))
        self._stacks = {}
        self._notifier = can.Notifier(self.bus, [])  # one reader of the bus for every pack's stack

    def _stack(self, unit):
        import isotp
        st = self._stacks.get(unit)
        if st is None:
            tx, rx = can_ids(unit)
            addr = isotp.Address(isotp.AddressingMode.Normal_29bits, txid=tx, rxid=rx)
            st = isotp.NotifierBasedCanStack(self.bus, self._notifier, address=addr,
                                             params={"tx_padding": 0xCC, "blocking_send": True, "blocksize": 0})
            st.start()
            self._stacks[unit] = st
        return st

    def exchange(self, unit, pdu):
        import isotp
        st = self._stack(unit)
        try:
            st.send(pdu, send_timeout=self.timeout_s)
            reply = st.recv(block=True, timeout=self.timeout_s)
        except isotp.BlockingSendFailure as e:
            raise TransportError("pack %d on %s: the request did not go out: %s" % (unit, self.where, e))
        if reply is None:
            raise TransportError("no answer from pack %d on %s within %.1f s" % (unit, self.where, self.timeout_s))
        return bytes(reply)

    def close(self):
        for st in self._stacks.values():
            st.stop()
        self._notifier.stop()
        self.bus.shutdown()


def open_transport(spec, timeout_s=None):
    """'tcp:HOST:PORT', 'rtu:DEVICE[:BAUD]' or 'can:INTERFACE:CHANNEL[:BITRATE]'."""
    kind, _, rest = spec.partition(":")
    try:
        if kind == "tcp":
            host, _, port = rest.rpartition(":")
            return Tcp(host or "127.0.0.1", int(port), timeout_s or 3.0)
        if kind == "rtu":
            dev, _, baud = rest.partition(":")
            if not dev:
                raise ValueError
            return Rtu(dev, int(baud) if baud else 9600, timeout_s or 1.0)
        if kind == "can":
            iface, _, chan = rest.partition(":")
            chan, _, rate = chan.partition(":")
            if not iface or not chan:
                raise ValueError
            return Can(iface, chan, int(rate) if rate else None, timeout_s or 2.0)
    except ValueError:
        pass
    raise TransportError("--via wants tcp:HOST:PORT, rtu:DEVICE[:BAUD] or can:INTERFACE:CHANNEL[:BITRATE], "
                         "got %r" % spec)
