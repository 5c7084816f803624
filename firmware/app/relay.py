# Owns the master's relay of the host protocol (issue 13, "through the
# master"): a Modbus RTU request on the master's PC port (Link IN) for unit u
# other than 1 is for the pack at link address u (unit 1 is the system and the
# master's own pack, app.host). The master forwards the PDU over CAN with
# ISO-TP (proto.isotp) on 0x18EF_u_SA, SA = the master's link address (1): it
# is that pack's tester (app.hostcan), so the pack's session for it is bound
# to the master's relay (hostcan.PORT_BASE + 1); the pack's reply PDU
# (0x18EF_SA_u, handed over by app.hostcan) goes back as the RTU reply for u.
# Gateway exceptions (Modbus Application Protocol 7): 0x0A (path unavailable)
# for a unit with no pack online, on a pack that is not the master, and on a
# board without CAN (the RS485 chain carries no relay yet); 0x0B (target
# failed to respond) when no reply came within TIMEOUT_MS. One request at a
# time: another one while a relay is under way is dropped and counted (the
# Modbus master on the PC waits for each reply). Broadcasts (unit 0) are not
# relayed. While it waits the relay polls the CAN port every tick, so the
# pack's reply streams in without flow-control pauses (our block size 0). No
# allocation per request or frame.
from app.service import Service
from app.hostcan import BASE, send_due
from bms import parallel
from defs.ticks import ticks_diff
from proto import isotp
from proto import modbus as mb
from proto.link import valid_address

from defs.const import const

EX_PATH_UNAVAILABLE = const(0x0A)
EX_TARGET_FAILED = const(0x0B)
# below the PC side's wait (tools/gateway.REPLY_TIMEOUT_MS, 1 s): a 125-register
# read takes ~600 ms on the bench (the pack reads CAN every 100 ms link tick,
# then 36 frames at one per 10 ms tick)
TIMEOUT_MS = const(800)


ACTIVE_MS = const(10)  # the period while a request is relayed
IDLE_MS = const(100)  # and while none is (a service's period may change; the runners read it each time)


class Relay(Service):
    name = "host-relay"
    period_ms = IDLE_MS

    def __init__(self, host, can, can_rx, link):
        """host: app.host.Host (its reply() and output buffer); can, can_rx:
        the CAN port and its reader (None: no CAN, every unit is 0x0A);
        link: app.link.Link (roles: our address and role; table: packs online)."""
        self.host = host
        self.can = can
        self.can_rx = can_rx
        self.link = link
        self.ch = isotp.Channel(mb.MAX_PDU, mb.MAX_PDU, 0) if can is not None else None
        self._mv = memoryview(self.ch.frame) if can is not None else None
        self.unit = 0  # the pack a request is relayed to (0: none)
        self._start_ms = 0
        self._fc = 0
        self.now_ms = 0
        self.relayed = 0  # replies returned
        self.unavailable = 0  # answered 0x0A
        self.timeouts = 0  # answered 0x0B
        self.busy = 0  # requests dropped: one was under way
        self.late = 0  # frames from a pack we were not waiting on
        self.errors = 0  # frames the CAN port would not take

    def takes(self, sa):
        """A frame to us from source address sa is a pack's reply (ours),
        not a tester's request: sa is the pack we wait on or a pack the
        master has heard."""
        if self.ch is None:
            return False
        if self.unit and sa == self.unit:
            return True
        r = self.link.roles
        return r.role == parallel.MASTER and sa != r.address and valid_address(sa) and \
            self.link.table.seen[sa] != 0

    def request(self, unit, req, n):
        """Relay request PDU req[:n] to the pack at link address unit; the
        RTU reply follows from tick() (or at once: 0x0A)."""
        if self.unit:
            self.busy += 1
            return
        fc = req[0]
        r = self.link.roles
        if self.ch is None or r.role != parallel.MASTER or not valid_address(unit) or \
                unit == r.address or not self.link.table.online[unit] or n > len(self.ch.tx):
            self.unavailable += 1
            self._reply_exception(unit, fc, EX_PATH_UNAVAILABLE)
            return
        ch = self.ch
        ch.reset()
        tx = ch.tx
        for i in range(n):
            tx[i] = req[i]
        ch.send(n, self.now_ms)
        self.unit = unit
        self._fc = fc
        self._start_ms = self.now_ms
        self.period_ms = ACTIVE_MS
        self.errors += send_due(ch, self.can, BASE | (unit << 8) | (r.address & 0xFF), self._mv, self.now_ms)

    def on_frame(self, sa, data):
        """A frame from pack sa to us (app.hostcan hands it over)."""
        if sa != self.unit:
            self.late += 1
            return
        ch = self.ch
        n = ch.on_frame(data, self.now_ms)
        if not n:
            return
        out = self.host._out
        rx = ch.rx
        for i in range(n):
            out[i] = rx[i]
        self.relayed += 1
        self.unit = 0
        self.host.reply(sa, n)

    def tick(self, now_ms):
        self.now_ms = now_ms
        if not self.unit:
            self.period_ms = IDLE_MS
            return
        self.can_rx.poll()  # the reply's frames (and the others' frames) between link ticks
        u = self.unit
        if not u:
            return
        ch = self.ch
        self.errors += send_due(ch, self.can, BASE | (u << 8) | (self.link.roles.address & 0xFF), self._mv, now_ms)
        if ticks_diff(now_ms, self._start_ms) >= TIMEOUT_MS:
            self.timeouts += 1
            self.unit = 0
            ch.reset()
            self._reply_exception(u, self._fc, EX_TARGET_FAILED)

    def _reply_exception(self, unit, fc, code):
        self.host.reply(unit, mb.exception(self.host._out, fc, code))
