# Owns the relay of the host protocol along the packs (issue 13, "through the
# master"): a Modbus RTU request on the master's PC port (Link IN) for unit u
# other than 1 is for the pack at link address u (unit 1 is the system and the
# master's own pack, app.host). Two paths, by the board's link transport:
# - CAN: the master forwards the PDU with ISO-TP (proto.isotp) on 0x18EF_u_SA,
#   SA = the master's link address (1): it is that pack's tester
#   (app.hostcan), so the pack's session for it is bound to the master's
#   relay (hostcan.PORT_BASE + 1); the pack's reply PDU (0x18EF_SA_u, handed
#   over by app.hostcan) goes back as the RTU reply for u.
# - RS485 chain (boards without CAN): the master writes the RTU frame as it
#   came down Link OUT; a slave takes RTU requests only on its Link IN (from
#   upstream: the master's relay), answers the frames for its own link address
#   on Link IN (its session is bound to that port, app.host.PORT_RTU), passes
#   the frames for any other pack's address down its Link OUT (addresses along
#   the chain may have gaps and need not increase: fixed addresses), drops the
#   rest (unit 1, broadcasts); replies come up whole: each slave frames the
#   RTU replies on its Link OUT (proto.modbus.Framer(replies=True); the
#   router keeps their 0x7E bytes binary) and writes the one it waits for up
#   its Link IN, the master returns it on its PC port. Nothing that comes up a
#   Link OUT is ever taken as a request. A slave on a CAN board answers no RTU
#   on its Link IN (its relay path is CAN).
# Gateway exceptions (Modbus Application Protocol 7): 0x0A (path unavailable)
# for a unit with no pack online, on a pack that is not the master, or with no
# path; 0x0B (target failed to respond) when no reply came within the wait
# (TIMEOUT_MS, on the chain HOP_MS more per pack that may be between: the
# packs online but the master and the target, as the chain order is not
# known). A reply counts only
# from the pack waited on and when it answers the request (proto.modbus.answers:
# the function, the byte count of a read, the echo of a write): a pack's late
# reply to a request that timed out is dropped and counted (late). One request
# at a time: another one while a relay is under way is dropped and counted (the
# Modbus master on the PC waits for each reply); a slave on the chain takes a
# new request from upstream in place of the one it waits on (the master gave
# up on that one, counted as a timeout). Broadcasts (unit 0) are not
# relayed. While it waits the relay polls its path every tick (the CAN port, or
# Link OUT), so the reply streams in without the link's 100 ms between reads:
# every ACTIVE_MS, every app.host.UPDATE_MS for an update's blocks (FC 0x41,
# FC 0x15; app.hostcan on the pack asked turns its ISO-TP as often then).
# No allocation per request or frame.
from app.service import Service, head_view
from app.hostcan import BASE, send_due
from app.host import PORT_RTU, UPDATE_MS
from bms import parallel
from defs.ticks import ticks_diff
from proto import isotp
from proto import modbus as mb
from proto.link import MASTER, valid_address

from defs.const import const

EX_PATH_UNAVAILABLE = const(0x0A)
EX_TARGET_FAILED = const(0x0B)
# below the PC side's wait (tools/gateway.REPLY_TIMEOUT_MS): a 125-register
# read over CAN takes ~600 ms on the bench (the pack reads CAN every 100 ms link
# tick, then 36 frames at one per 10 ms tick)
TIMEOUT_MS = const(800)
# RS485 chain: each pack between the master and the target adds up to one link
# tick (100 ms) before it reads the request, and a few ms per hop up
HOP_MS = const(120)
_GAP_MS = const(500)  # no reply byte this long: a reply cut short is dropped

ACTIVE_MS = const(10)  # the period while a request is relayed
IDLE_MS = const(100)  # and while none is (a service's period may change; the runners read it each time)


def _wait_ms(online):
    """The wait for a reply along the RS485 chain of `online` packs."""
    return TIMEOUT_MS + (online - 2) * HOP_MS if online > 2 else TIMEOUT_MS


class Relay(Service):
    name = "host-relay"
    period_ms = IDLE_MS

    def __init__(self, host, can, can_rx, link, rx_out=None):
        """host: app.host.Host (its pdu(), reply(), framer and output buffer);
        can, can_rx: the CAN port and its reader (None: no CAN); link:
        app.link.Link (roles: our address and role; table: packs online);
        rx_out: the reader of Link OUT (app.router), the path on a board
        without CAN (app.compose subscribes on_rs485 to its binary bytes with
        self.replies)."""
        self.host = host
        self.can = can
        self.can_rx = can_rx
        self.link = link
        self.ch = None
        self._mv = None
        self.down = None  # Link OUT's reader: the RS485 path
        self.replies = None  # the RTU reply framer on Link OUT
        if can is not None:
            self.ch = isotp.Channel(mb.MAX_PDU, mb.MAX_PDU, 0)
            self._mv = memoryview(self.ch.frame)
            self._req = memoryview(self.ch.tx)
        elif rx_out is not None:
            self.down = rx_out
            self.replies = mb.Framer(True)
            self._tx = bytearray(mb.MAX_ADU)  # the request frame passed down
            self._req = memoryview(self._tx)[1:]
            self._rep = memoryview(self.replies.buf)[1:]
            self._tx_v = {}
            self._rx_v = {}
        self.unit = 0  # the pack a request is relayed to (0: none)
        self._n = 0  # the request's PDU length
        self._start_ms = 0
        self._wait_ms = TIMEOUT_MS
        self._fc = 0
        self.now_ms = 0
        self.relayed = 0  # replies returned (master)
        self.unavailable = 0  # answered 0x0A
        self.timeouts = 0  # answered 0x0B (master), given up (slave)
        self.busy = 0  # requests dropped: one was under way
        self.late = 0  # replies not waited for, or not answering the request
        self.errors = 0  # frames the CAN port would not take
        self.passed = 0  # slave, RS485: requests passed down and replies passed up
        self.dropped = 0  # slave: RTU requests on Link IN not ours to answer or pass down

    def takes(self, sa):
        """A CAN frame to us from source address sa is a pack's reply (ours),
        not a tester's request: sa is the pack we wait on or a pack the
        master has heard."""
        if self.ch is None:
            return False
        if self.unit and sa == self.unit:
            return True
        r = self.link.roles
        return r.role == parallel.MASTER and sa != r.address and valid_address(sa) and \
            self.link.table.seen[sa] != 0

    def route(self, frame, m):
        """An RTU request frame[:m] (unit .. CRC) from our Link IN. False: the
        host answers it (unit 1 or a broadcast, not on a slave); True: it is
        relayed, passed down, answered here as our link address (a slave on
        the RS485 chain) or dropped."""
        unit = frame[0]
        r = self.link.roles
        if r.role == parallel.SLAVE:
            a = r.address
            if self.down is not None and unit == a:
                host = self.host
                k = host.pdu(host.unit, host._req, m - 3, host._out, PORT_RTU)
                if k:
                    host.reply(a, k)
            elif self.down is not None and valid_address(unit) and unit != a and unit != MASTER:
                if self.unit:
                    self.timeouts += 1  # the master sends one at a time: it gave up on that one
                self._send_down(unit, frame, m, _wait_ms(self.link.hello_online))
                self.passed += 1
            else:
                self.dropped += 1
            return True
        if unit == self.host.unit or unit == mb.BROADCAST:
            return False
        self._request(unit, frame, m)
        return True

    def _request(self, unit, frame, m):
        """Master: relay the request frame[:m] to the pack at link address
        unit; the RTU reply follows from tick() (or at once: 0x0A)."""
        fc = frame[1]
        if self.unit:
            self.busy += 1
            return
        n = m - 3
        r = self.link.roles
        ch = self.ch
        if (ch is None and self.down is None) or r.role != parallel.MASTER or not valid_address(unit) or \
                unit == r.address or not self.link.table.online[unit] or (ch is not None and n > len(ch.tx)):
            self.unavailable += 1
            self._reply_exception(unit, fc, EX_PATH_UNAVAILABLE)
            return
        self._fc = fc
        if ch is None:
            self._send_down(unit, frame, m, _wait_ms(self.link.state.link_online))
            return
        ch.reset()
        tx = ch.tx
        for i in range(n):
            tx[i] = frame[1 + i]
        ch.send(n, self.now_ms)
        self._wait(unit, frame, n, TIMEOUT_MS)
        self.errors += send_due(ch, self.can, BASE | (unit << 8) | (r.address & 0xFF), self._mv, self.now_ms)

    def _send_down(self, unit, frame, m, wait_ms):
        tx = self._tx
        for i in range(m):
            tx[i] = frame[i]
        self._wait(unit, frame, m - 3, wait_ms)
        self.down.port.write(head_view(self._tx_v, tx, m))

    def _wait(self, unit, frame, n, wait_ms):
        self.unit = unit
        self._n = n
        self._start_ms = self.now_ms
        self._wait_ms = wait_ms
        fc = frame[1]  # an update's blocks: the path is polled every UPDATE_MS (app.host)
        self.period_ms = UPDATE_MS if fc == mb.FC_UPDATE_BLOCK or fc == mb.FC_WRITE_FILE else ACTIVE_MS

    def on_frame(self, sa, data):
        """A CAN frame from pack sa to us (app.hostcan hands it over)."""
        if sa != self.unit:
            self.late += 1
            return
        ch = self.ch
        n = ch.on_frame(data, self.now_ms)
        if not n:
            return
        if not mb.answers(self._req, self._n, ch.rx, n):
            self.late += 1  # a reply to a request that timed out: the one to ours may follow
            return
        out = self.host._out
        rx = ch.rx
        for i in range(n):
            out[i] = rx[i]
        self.relayed += 1
        self.unit = 0
        self.host.reply(sa, n)

    def on_rs485(self, buf, n):
        """Binary bytes from Link OUT (buf[:n]): RTU replies coming up the chain."""
        fr = self.replies
        fr.heard(self.now_ms)
        for i in range(n):
            m = fr.feed(buf[i])
            if m:
                self._reply(m)

    def _reply(self, m):
        fr = self.replies
        unit = fr.buf[0]
        if not self.unit or unit != self.unit or not mb.answers(self._req, self._n, self._rep, m - 3):
            self.late += 1
            return
        self.unit = 0
        host = self.host
        if self.link.roles.role == parallel.SLAVE:
            if host.port is not None:
                host.port.write(head_view(self._rx_v, fr.buf, m))  # up our Link IN, whole
            self.passed += 1
            return
        out = host._out
        rep = self._rep
        for i in range(m - 3):
            out[i] = rep[i]
        self.relayed += 1
        host.reply(unit, m - 3)

    def tick(self, now_ms):
        self.now_ms = now_ms
        fr = self.replies
        if fr is not None:
            fr.quiet(now_ms, _GAP_MS)
        if not self.unit:  # while the host sees an update's requests, the next one comes soon: no 100 ms sleep
            self.period_ms = UPDATE_MS if self.host.period_ms == UPDATE_MS else IDLE_MS
            return
        ch = self.ch
        if ch is not None:
            self.can_rx.poll()  # the reply's frames (and the others' frames) between link ticks
        else:
            self.down.poll(now_ms)  # the reply (and the link frames) between link ticks
        u = self.unit
        if not u:
            return
        if ch is not None:
            self.errors += send_due(ch, self.can, BASE | (u << 8) | (self.link.roles.address & 0xFF), self._mv,
                                    now_ms)
        if ticks_diff(now_ms, self._start_ms) >= self._wait_ms:
            self.timeouts += 1
            self.unit = 0
            if ch is not None:
                ch.reset()
            if self.link.roles.role != parallel.SLAVE:  # a slave gives up silently: the master answers
                self._reply_exception(u, self._fc, EX_TARGET_FAILED)

    def _reply_exception(self, unit, fc, code):
        self.host.reply(unit, mb.exception(self.host._out, fc, code))
