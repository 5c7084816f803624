# Owns reading a pack's SunSpec map through any bmsctl transport: pysunspec2
# (the SunSpec Alliance's client) does the scan and the point decoding (scale
# factors, "not implemented" values), bmsctl only supplies the register reads.
from sunspec2.modbus.client import SunSpecModbusClientDevice, SunSpecModbusClientError

from tools.bmsctl.transport import TransportError

READ_HOLDING = 3
MAX_REGS = 125  # Modbus limit per FC 03 request


class ModbusException(Exception):
    """The pack answered with a Modbus exception."""

    def __init__(self, unit, fc, code):
        Exception.__init__(self, "unit %d: function 0x%02x refused with exception %d (%s)" % (
            unit, fc, code, EXCEPTIONS.get(code, "unknown")))
        self.code = code


EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
              4: "device failure", 6: "busy", 0x0A: "gateway: no pack at that unit",
              0x0B: "gateway: target did not respond"}


def read_registers(transport, unit, addr, count):
    """count holding registers from addr as bytes (big-endian, as SunSpec reads them)."""
    out = b""
    while count > 0:
        n = min(count, MAX_REGS)
        reply = transport.exchange(unit, bytes((READ_HOLDING, addr >> 8, addr & 0xFF, n >> 8, n & 0xFF)))
        if reply[0] & 0x80:
            raise ModbusException(unit, READ_HOLDING, reply[1] if len(reply) > 1 else 0)
        if reply[0] != READ_HOLDING or len(reply) < 2 or reply[1] != 2 * n or len(reply) != 2 + 2 * n:
            raise TransportError("unit %d: a malformed reply to FC 03 at %d" % (unit, addr))
        out += reply[2:]
        addr += n
        count -= n
    return out


class Device(SunSpecModbusClientDevice):
    """A SunSpec device on one unit id of a bmsctl transport."""

    def __init__(self, transport, unit):
        SunSpecModbusClientDevice.__init__(self)
        self.transport = transport
        self.unit = unit

    def read(self, addr, count):
        # pysunspec2 (1.3) passes floats where a model's group count point is read
        # after its head (model.py: len(data) / 2), e.g. 803's NStr and 804's NMod
        return read_registers(self.transport, self.unit, int(addr), int(count))


def scan(transport, unit):
    """A scanned Device, or None when the unit has no SunSpec map."""
    d = Device(transport, unit)
    try:
        d.scan(connect=False)
    except (SunSpecModbusClientError, TransportError, ModbusException):
        return None
    return d if d.models else None


def point(model, name):
    """A point's value with its scale factor applied (None: not implemented)."""
    p = model.points.get(name)
    return None if p is None else p.cvalue
