# Owns the host protocol's place on the link connector's ports until a host
# speaks (issue 12): the PC tool's / SCADA's protocol (app.host, app.hostcan,
# app.relay, the journal and their imports: ~17 KB of RAM from ROMFS) is
# built at the first request for it, on CAN a frame of the host PGN
# (0x18EF_TA_SA, app.hostcan) to this pack's link address, on Link IN a
# binary chunk (app.router: a request's unit byte starts one) whose first
# byte is a unit the host or its relay takes: any unit on a pack that is not
# a slave (1: its own, the others relayed or answered 0x0A), on a slave of
# the RS485 chain its link address or another pack's but the master's (a
# slave on a CAN board answers no RTU on Link IN). That very frame, those
# very bytes then go to the built services (an RTU request is framed from
# its first byte), and from then on every frame, byte and tick, each built
# service on its own period as a runner would run it. Before that this is
# one object that on CAN only reads the port every ACTIVE_MS while host
# traffic is on the bus (app.hostcan does the same: a pack not asked still
# empties its receive queue of the others' frames). A build that runs out of
# memory is counted (failed) and its request dropped; the next request tries
# again; once built it stays. The login (bms.auth) is built on its own at its
# first use (the host's build or the UDS server's: app.compose) and ticked
# here until the host ticks it.
from defs.const import const
from defs.ticks import ticks_add, ticks_diff
from app.service import Service, built
from proto.link import MASTER, valid_address

_PGN = const(0x18EF)  # app.hostcan.BASE >> 16: priority 6, data page 0, PF 0xEF
_SLAVE = const(3)  # bms.parallel.SLAVE
_ACTIVE_MS = const(10)  # app.hostcan.ACTIVE_MS, IDLE_MS and _IDLE_MS (the traffic's)
_IDLE_MS = const(100)
_TRAFFIC_MS = const(2000)
# the CAN port's selection (id, mask, flags) of the host protocol (and the
# UDS server's, app.udsport): 29-bit ids whose top five bits are priority 6,
# data page 0 (0x18). Its mask is proto.link.CAN_FILTER's: an MCP2515 has
# only two masks and the inverter's 11-bit filter needs the other. The PGN
# and the destination are checked by the subscribers (the pack's address
# changes at run time).
SELECTION = (6 << 26, 0x1F << 24, 2)  # FLAG_EXT_ID


class HostPort(Service):
    name = "host"
    period_ms = _IDLE_MS

    def __init__(self, make, make_auth, roles, chain=False, can_rx=None):
        """make() -> [app.host.Host, app.hostcan.HostCan (a board with CAN),
        app.relay.Relay (with Link IN)], not subscribed to the ports (this
        hands them what they get); make_auth() -> bms.auth.Auth; roles:
        app.link's (address, role); chain: the relay's path is Link OUT (no
        CAN); can_rx: the CAN port's reader (app.canport)."""
        self.make = make
        self.make_auth = make_auth
        self.roles = roles
        self.chain = chain
        self.can_rx = can_rx
        self.services = None
        self._due = None  # when each built service ticks next
        self._auth = None
        self._traffic_ms = 0
        self.now_ms = 0
        self.failed = 0  # builds that ran out of memory (their request dropped)

    def auth(self):
        """The login (bms.auth.Auth), built at its first use."""
        a = self._auth
        if a is None:
            a = self._auth = self.make_auth()
        return a

    def build(self):
        """The host protocol's services, built at the first call and kept;
        None (counted in failed) when they cannot be."""
        s = self.services
        if s is None:
            s = self.services = built(self, self._make)
        return s

    def _make(self):
        s = self.make()
        now = self.now_ms
        for x in s:
            x.now_ms = now
        self._due = [now] * len(s)
        return s

    def on_frame(self, bus, fr):
        s = self.services
        if s is None:
            id_ = fr[0]
            if id_ >> 16 != _PGN:
                return
            self._traffic_ms = self.now_ms
            self.period_ms = _ACTIVE_MS
            if (id_ >> 8) & 0xFF != self.roles.address:
                return
            s = self.build()
            if s is None:
                return
        s[1].on_frame(bus, fr)

    def on_rs485(self, buf, n):
        s = self.services
        if s is None:
            u = buf[0]
            r = self.roles
            if r.role == _SLAVE and not (self.chain and (u == r.address or valid_address(u) and u != MASTER)):
                return
            s = self.build()
            if s is None:
                return
        s[0].on_rs485(buf, n)

    def in_frame(self):
        """For the router, as an RTU framer's: the host's framer is inside a request."""
        s = self.services
        return s is not None and s[0].framer.in_frame()

    def tick(self, now_ms):
        self.now_ms = now_ms
        s = self.services
        if s is None:
            if self._auth is not None:
                self._auth.tick(now_ms)
            if self.period_ms == _ACTIVE_MS:
                if ticks_diff(now_ms, self._traffic_ms) < _TRAFFIC_MS:
                    self.can_rx.poll()
                else:
                    self.period_ms = _IDLE_MS
            return
        due = self._due
        nxt = -1
        for i in range(len(s)):
            if ticks_diff(now_ms, due[i]) >= 0:
                s[i].tick(now_ms)
                due[i] = ticks_add(now_ms, s[i].period_ms)
            d = ticks_diff(due[i], now_ms)
            if nxt < 0 or d < nxt:
                nxt = d
        self.period_ms = nxt
