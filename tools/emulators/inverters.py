# Owns the inverter emulators (see __init__). Each is a service of the bench's
# virtual-time runner (name, period_ms, tick(now_ms)) plus current_ma(request):
# the current it lets flow for the profile's wish (+ = charge).
import os
import struct

import cantools

DBC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dbc", "bms_inverter.dbc")
_db = None


def db():
    global _db
    if _db is None:
        _db = cantools.database.load_file(DBC)
    return _db


KINDS = ("victron", "sma", "pylon")
# silence before the inverter's own alarm (PROTOCOLS 1): Victron ~3 s without 0x351,
# SMA 60 s (F952 without 0x355), Pylon-family hybrids ~10 s
SILENCE_MS = {"victron": 3000, "sma": 60000, "pylon": 10000}
VOLTAGE_BAND_MV = 100  # charge tapers to 0 over the last 0.1 V below CVL


class _Base:
    period_ms = 100

    def __init__(self, kind, wire):
        self.kind = kind
        self._wire = wire  # the CAN port or RS485 end unplug()/plug() power
        self.cvl_mv = self.ccl_ma = self.dcl_ma = 0
        self.voltage_mv = 0
        self.soc_pct = None
        self.alarm = False  # the inverter's own "battery lost" alarm
        self.limits_seen = False
        self.last_ms = None
        self.rx = 0
        self.silence_ms = SILENCE_MS[kind]
        self.plugged = True
        self.log = []  # (t_ms, what) of alarm changes

    def _watch(self, now_ms):
        lost = self.last_ms is None or now_ms - self.last_ms > self.silence_ms
        if lost != self.alarm and (self.limits_seen or not lost):
            self.alarm = lost
            self.log.append((now_ms, "alarm" if lost else "ok"))

    def unplug(self):
        self.plugged = False
        self._wire.powered = False

    def plug(self):
        self.plugged = True
        self._wire.powered = True

    def current_ma(self, request_ma):
        if self.alarm or not self.limits_seen or not self.plugged:
            return 0
        if request_ma > 0:
            allowed = self.ccl_ma
            gap = self.cvl_mv - self.voltage_mv
            if gap <= 0:
                allowed = 0
            elif gap < VOLTAGE_BAND_MV:
                allowed = allowed * gap // VOLTAGE_BAND_MV
            return min(request_ma, allowed)
        return max(request_ma, -self.dcl_ma)


class CanInverter(_Base):
    """kind victron (sends 0x307 'VIC' + 0x305), sma (0x305 with its own
    measurements, every 1 s), pylon (0x305 of zeros every 1 s)."""

    def __init__(self, kind, port, name=None):
        _Base.__init__(self, kind, port)
        self.name = name or "inverter-" + kind
        self.port = port
        self._next_tx = 0
        self._slot = [0, None, 0, 0]

    def tick(self, now_ms):
        port = self.port
        m = db()
        while port.any():
            f = port.recv(self._slot)
            fid = f[0]
            if fid == 0x351:
                d = m.decode_message(fid, bytes(f[1]), allow_truncated=True, decode_choices=False)
                self.cvl_mv = int(round(d["ChargeVoltageLimit"] * 1000))
                self.ccl_ma = int(round(d["ChargeCurrentLimit"] * 1000))
                self.dcl_ma = int(round(d["DischargeCurrentLimit"] * 1000))
                self.limits_seen = True
                self.last_ms = now_ms
                self.rx += 1
            elif fid == 0x356:
                d = m.decode_message(fid, bytes(f[1]), allow_truncated=True)
                self.voltage_mv = int(round(d["Voltage"] * 1000))
            elif fid == 0x355:
                self.soc_pct = m.decode_message(fid, bytes(f[1]), allow_truncated=True)["SOC"]
        self._watch(now_ms)
        if self.plugged and now_ms >= self._next_tx:
            self._next_tx = now_ms + 1000
            if self.kind == "victron":
                port.send(0x307, b"\x12\x40\x00\x00VIC\x00", 0)
            elif self.kind == "sma":
                data = struct.pack("<Hhhbb", self.voltage_mv // 100, 0, 250, self.soc_pct or 0, 0)
                port.send(0x305, data, 0)
            else:
                port.send(0x305, bytes(8), 0)


class Rs485Inverter(_Base):
    """A Pylon-family hybrid polling 0x92 (limits) and 0x42 (analog) each
    second on the RS485 end it is given (world.links[0].a)."""

    def __init__(self, kind, end, tap=None, adr=2):
        _Base.__init__(self, kind, end)
        self.name = "inverter-rs485-" + kind
        self.end = end
        self.tap = tap  # tap(t_ms, bytes) for the trace
        self.adr = adr
        self._next_tx = 0
        self._buf = bytearray()
        self._turn = 0
        self._pending = 0

    def tick(self, now_ms):
        data = self.end.read()
        if data:
            self._buf.extend(data)
            while b"\r" in self._buf:
                i = self._buf.index(b"\r")
                frame = bytes(self._buf[:i + 1])
                del self._buf[:i + 1]
                if self.tap:
                    self.tap(now_ms, frame)
                self._reply(now_ms, frame)
        self._watch(now_ms)
        if self.plugged and now_ms >= self._next_tx:
            # 92 and 42 alternate every 500 ms: each is asked once a second, so
            # the limits in force are never older than a second (as on CAN)
            self._next_tx = now_ms + 500
            cid2 = 0x92 if self._turn % 2 == 0 else 0x42
            self._turn += 1
            self._pending = cid2
            req = request(0x20, self.adr, cid2, bytes([self.adr]))
            if self.tap:
                self.tap(now_ms, req)
            self.end.write(req)

    def _reply(self, now_ms, frame):
        r = decode(frame)
        if r is None or r["rtn"] != 0:
            return
        info = r["info"]
        if self._pending == 0x92:
            cvl, dvl, ccl, dcl, _flags = struct.unpack(">HHhhB", info[1:10])
            self.cvl_mv, self.ccl_ma, self.dcl_ma = cvl, ccl * 100, dcl * 100
            self.limits_seen = True
            self.last_ms = now_ms
            self.rx += 1
        else:
            n = info[2]
            k = info[3 + 2 * n]
            off = 4 + 2 * n + 2 * k
            _cur, volt = struct.unpack(">hH", info[off:off + 4])
            self.voltage_mv = volt


def _sum(s):
    return (~(sum(s) & 0xFFFF) + 1) & 0xFFFF


def request(ver, adr, cid2, info=b""):
    hexinfo = info.hex().upper().encode()
    n = len(hexinfo)
    lsum = ((~((n & 15) + ((n >> 4) & 15) + ((n >> 8) & 15)) + 1) & 15)
    body = b"%02X%02X%02X%02X%04X" % (ver, adr, 0x46, cid2, (lsum << 12) | n) + hexinfo
    return b"~" + body + b"%04X" % _sum(body) + b"\r"


def decode(frame):
    """An independent decoder of a reply: dict or None when malformed."""
    if len(frame) < 18 or frame[:1] != b"~" or frame[-1:] != b"\r":
        return None
    body = frame[1:-5]
    if int(frame[-5:-1], 16) != _sum(body):
        return None
    length = int(body[8:12], 16)
    n = length & 0xFFF
    if len(body) - 12 != n:
        return None
    return {"ver": int(body[0:2], 16), "adr": int(body[2:4], 16), "cid1": int(body[4:6], 16),
            "rtn": int(body[6:8], 16), "length": length, "info": bytes.fromhex(body[12:].decode()),
            "cid2_sent": None}


def make(kind, bus, world):
    """The emulator for a scenario: on world.can or on world.links[0].a."""
    if bus == "rs485":
        def tap(t, data):
            world.emit(_rs485_line(world.t_ms(), data))
        return Rs485Inverter(kind, world.links[0].a, tap)
    return CanInverter(kind, world.can.attach("inverter", -1))


def _rs485_line(t_ms, data):
    import json
    return json.dumps({"t_ms": t_ms, "bus": "rs485", "data": data.hex()}, separators=(",", ":"))
