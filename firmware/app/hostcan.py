# Owns the host protocol on CAN (issue 13): Modbus PDUs over ISO-TP
# (proto.isotp) on 29-bit ids 0x18EF_TA_SA, the SAE J1939-21 "Proprietary A"
# PGN (61184; PDU1: destination-specific), TA = this pack's link address, SA
# the tester's; replies go to 0x18EF_SA_TA. Every pack on the bus answers for
# itself (physical addressing), so no relay through the master is needed on
# CAN. One tester at a time: a frame from another SA while a message is under
# way is dropped and counted (busy). The SA is the session's port for auth
# (PORT_BASE + SA: a session on one tester grants nothing to another). The
# CAN port (app.canport) hands frames to on_frame; tick() sends what the
# channel has due. On the master, frames to us from a pack's link address are
# replies to the relay (app.relay.takes), not a tester's requests: testers
# use a source address outside 1..32 (bmsctl: 0xF1). No allocation per frame.
# On a pack it is built by app.hostport at the first frame to this pack, which
# then hands it every frame of the host protocol's selection (hostport.SELECTION).
from defs.const import const
from app.service import Service
from defs.ticks import ticks_diff
from proto import isotp

PF = const(0xEF)
PRIORITY = const(6)
BASE = (PRIORITY << 26) | (PF << 16)
FLAG_EXT_ID = const(2)
PORT_BASE = const(0x100)
_IDLE_MS = 2000  # a tester silent this long no longer holds the channel


def send_due(ch, can, out_id, mv, now_ms):
    """Send the frames channel ch has due now as out_id (mv: a view of
    ch.frame); stops while the port's transmit buffers are full (the same
    frame goes next tick). The frames the port refused with OSError (lost)."""
    lost = 0
    while ch.pending(now_ms):
        try:
            if can.send(out_id, mv, FLAG_EXT_ID) is None:
                break
        except OSError:
            lost += 1
        ch.sent()
    return lost


ACTIVE_MS = const(10)  # the period while host traffic is on the bus
IDLE_MS = const(100)  # and without (the runners read a service's period each time)
UPDATE_MS = const(2)  # while a request to us is an update block (FC 0x41, 0x15: app.hostupd)
_FC_UPDATE_BLOCK = const(0x41)  # proto.modbus.FC_UPDATE_BLOCK
_FC_WRITE_FILE = const(0x15)


class HostCan(Service):
    name = "host-can"
    period_ms = IDLE_MS

    def __init__(self, host, can, address, can_rx=None):
        """host: app.host.Host (its pdu()); can: the CAN port to send on;
        address(): this pack's link address now (1 = master); can_rx: the
        port's reader (app.canport)."""
        self.host = host
        self.can = can
        self.can_rx = can_rx
        self.address = address
        # host traffic on the bus (any pack's): while there is, tick() runs every
        # ACTIVE_MS (IDLE_MS without: a day on the bench costs no 10 ms ticks)
        # and reads the port, not only at the link's 100 ms tick, on every pack: a
        # tester's ISO-TP turns then wait 10 ms, and a pack that is not being
        # asked still empties its receive queue of the others' replies (every
        # host frame passes every pack's filter; a full queue would lose the
        # request that comes next). Without host traffic nothing changes.
        self._traffic = False
        self._traffic_ms = 0
        self._update = False  # the request under way is an update block
        self.ch = isotp.Channel(256, 256)
        self._mv = memoryview(self.ch.frame)
        self._req = memoryview(self.ch.rx)
        self._out = memoryview(self.ch.tx)
        self.now_ms = 0
        self.tester = -1  # SA holding the channel
        self._tester_ms = 0
        self.busy = 0  # frames dropped: another tester held the channel
        self.errors = 0  # frames the port would not take
        self.requests = 0
        self.relay = None  # app.relay.Relay on a pack with a PC port (app.compose sets it)

    def on_frame(self, bus, fr):
        id_ = fr[0]
        if (id_ >> 16) & 0x1FFF != BASE >> 16:
            return
        self._traffic = True
        self._traffic_ms = self.now_ms
        self.period_ms = ACTIVE_MS
        if (id_ >> 8) & 0xFF != self.address():
            return
        sa = id_ & 0xFF
        r = self.relay
        if r is not None and r.takes(sa):
            r.on_frame(sa, fr[1])
            return
        now = self.now_ms
        if self.tester != sa:
            if self.tester >= 0 and ticks_diff(now, self._tester_ms) < _IDLE_MS:
                self.busy += 1
                return
            self.tester = sa
        self._tester_ms = now
        d = fr[1]
        pci = d[0] >> 4 if len(d) > 2 else 2
        if pci < 2:  # a single or first frame: the request's function code in d[1] / d[2]
            fc = d[1 + pci]
            self._update = fc == _FC_UPDATE_BLOCK or fc == _FC_WRITE_FILE
            # an update block's frames back to back: our flow control's block (BS 2) never holds
            # more than the chip's two receive buffers (drivers.mcp2515.rx_depth), and we poll
            # every UPDATE_MS meanwhile
            self.ch.stmin_ms = 0 if self._update else isotp.STMIN_MS
        if self._update:
            self.period_ms = UPDATE_MS
        n = self.ch.on_frame(d, now)
        if not n:
            return
        self.requests += 1
        host = self.host
        if self.ch.busy():
            self.ch.reset()  # a new request: the tester gave up on the reply under way (our tx holds the new one)
        k = host.pdu(host.unit, self._req, n, self._out, PORT_BASE + sa)
        if k:
            self.ch.send(k, now)

    def tick(self, now_ms):
        self.now_ms = now_ms
        if self._traffic and self.can_rx is not None:
            if ticks_diff(now_ms, self._traffic_ms) < _IDLE_MS:
                self.can_rx.poll()
            else:
                self._traffic = False
                self.period_ms = IDLE_MS
        ch = self.ch
        if self.tester < 0:
            return
        self.errors += send_due(ch, self.can, BASE | (self.tester << 8) | (self.address() & 0xFF), self._mv, now_ms)
