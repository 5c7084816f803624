# Owns the inverter services (SPEC 8, issue 7): on the master, tells the
# inverter about the system (bms.system.SystemView) over CAN (lib/proto/pylon_can,
# protocol ID 0 or 1) or as a Pylontech RS485 server on Link IN
# (lib/proto/pylon_rs485), whichever bus the inverter is heard on (0x305/0x306/
# 0x307 frames, or a request with a good checksum); watches the inverter's
# presence: silent for inv_lost_ms -> inverter_lost (alarm) and safe limits
# (CCL = DCL = 0, CVL at the present voltage); silent for inv_sleep_ms ->
# inverter_sleep_req (control puts the pack to sleep, bms.sleep.BY_INVERTER).
# Protocol ID and RS485 baud are read once at start (board DIP, else params).
# It reads no port itself: the CAN port's reader (app.canport) hands it the
# 11-bit frames (on_frame), the Link IN router (app.router) the ASCII requests
# (on_rs485); replies go out on the port it is given (link). The RS485 server
# (app.invrs485) is built at the first ASCII bytes, the CAN frame set only
# where the bus is not forced to RS485 (inv_bus_count): a pack holds only
# what its inverter can ask for (issue 12).
from defs.const import const
from app.service import Service, built
from bms import params as P
from defs.ticks import ticks_diff
from proto import pylon_can as pc

BUS_NONE = const(0)
BUS_CAN = const(1)
BUS_RS485 = const(2)
_SEND_PER_TICK = const(3)  # the MCP2515 has three transmit buffers
_SAT_MS = const(0x3FFFFFFF)  # silent time saturates here
_EXT = const(2)  # FLAG_EXT_ID of the CAN ports (drivers.mcp2515, sim.bus): inverter ids are 11-bit (PROTOCOLS 1)

SERIAL = b"BMS-MPY-00000001"  # a board without a unique id (serial())
SW_VERSION_MAJOR = const(1)
SW_VERSION_MINOR = const(0)


def serial(board):
    """The pack's serial number (16 ASCII bytes): the board's (boards/bq_build.py
    makes it from the MCU's unique id, the bench numbers its packs), else
    SERIAL for a board without an id (the inverter's and the host protocol's:
    app.compose, app.hostbuild)."""
    return getattr(board, "serial", None) or SERIAL


def master_test(state):
    """The test whether this pack speaks to the inverter: a lone pack or the
    master (bms.parallel roles in PackState.link_role)."""
    from bms import parallel

    def is_master():
        r = getattr(state, "link_role", parallel.SINGLE)
        return r == parallel.SINGLE or r == parallel.MASTER
    return is_master


class Inverter(Service):
    name = "inverter"
    period_ms = 50

    def __init__(self, state, params, view, can=None, link=None, dip=None, is_master=None, packs=None,
                 serial=SERIAL):
        """can: the CAN port it sends on; link: the RS485 port it answers on;
        packs: the master's table of the other packs (app.link.Link) for 0x42;
        serial: the pack's serial number (16 bytes, serial())."""
        self.st = state
        self.params = params
        self.view = view
        self.can = can
        self.link = link
        self.is_master = is_master  # callable; None = always (a single pack)
        v = params.v
        if dip is not None:
            self.protocol_id = dip.protocol_id
            self.baud = dip.baud
        else:
            self.protocol_id = v[P.INV_PROTOCOL_COUNT]
            self.baud = 115200 if v[P.INV_BAUD_HIGH_COUNT] else 9600
        self.forced_bus = v[P.INV_BUS_COUNT]
        self.can_period_ms = v[P.INV_CAN_PERIOD_MS]
        self.lost_ms = v[P.INV_LOST_MS]
        self.sleep_ms = v[P.INV_SLEEP_MS]
        self.enc = None  # a bus forced to RS485 never becomes CAN: no frame set
        self._next_frame = 0
        if self.forced_bus != BUS_RS485:
            # protocol 2 (Schneider) and 3 are reserved: served as protocol 0
            self.enc = pc.CanEncoder(pc.PROTO_PYLON if self.protocol_id == 1 else pc.PROTO_VICTRON_SMA)
            self._next_frame = len(self.enc.frames)  # nothing queued
        self._last_send = None
        self._heard = None  # tick of the last inverter frame/request
        self._now = 0
        self.packs = packs
        self.serial = serial
        self.server = None  # app.invrs485.Rs485Server, at the first RS485 request
        self.failed = 0  # server builds that ran out of memory
        self.can_errors = 0
        st = state
        st.inverter_protocol = self.protocol_id
        st.inverter_baud = self.baud
        self.bus = BUS_NONE
        if self.forced_bus == BUS_CAN:
            self.bus = BUS_CAN
        st.inverter_bus = self.bus

    # -- receiving -------------------------------------------------------------
    def on_frame(self, bus, frame):
        if pc.ID_INV_HEARTBEAT <= frame[0] <= pc.ID_INV_VICTRON and not frame[2] & _EXT:
            self._hear(BUS_CAN)

    def _hear(self, bus):
        if self.forced_bus and bus != self.forced_bus:
            return
        st = self.st
        st.inverter_frames += 1
        self._heard = self._now
        st.inverter_silent_ms = 0
        st.inverter_lost = False
        st.inverter_sleep_req = False
        if self.bus != bus:
            self.bus = bus
            self.st.inverter_bus = bus

    def on_rs485(self, buf, n):
        """ASCII bytes from Link IN (buf[:n]), handed over by the port's
        reader (app.router), for the RS485 server (app.invrs485), built at
        the first of them (a MemoryError is counted in failed)."""
        if self.is_master is not None and not self.is_master():
            return
        srv = self.server
        if srv is None:
            srv = self.server = built(self, self._server)
            if srv is None:
                return  # no memory: these bytes are dropped, the next ones try again
        bad = srv.on_rs485(buf, n)
        if bad:
            self.st.inverter_errors += bad

    def _server(self):
        from app.invrs485 import Rs485Server
        return Rs485Server(self, self.packs, self.serial)

    # -- the period --------------------------------------------------------------
    def tick(self, now_ms):
        self._now = now_ms
        if self.is_master is not None and not self.is_master():
            return
        st = self.st
        if self._heard is None:
            st.inverter_silent_ms = 0
        else:
            d = ticks_diff(now_ms, self._heard)
            if d > _SAT_MS or d < 0:
                d = _SAT_MS
            st.inverter_silent_ms = d
            lost = d >= self.lost_ms
            if lost and not st.inverter_lost:
                st.inverter_lost = True
            elif not lost and st.inverter_lost:
                st.inverter_lost = False
            st.inverter_sleep_req = d >= self.sleep_ms
        if self.bus == BUS_CAN and self.can is not None:
            self._send_can(now_ms)

    def _send_can(self, now_ms):
        enc = self.enc
        frames = enc.frames
        spec = enc.spec
        if self._next_frame >= len(frames):
            if self._last_send is not None and ticks_diff(now_ms, self._last_send) < self.can_period_ms:
                return
            if not self.view.valid:
                return
            self._last_send = now_ms
            enc.encode(self.view, self.st.inverter_lost)
            self._next_frame = 0
        k = 0
        while k < _SEND_PER_TICK and self._next_frame < len(frames):
            i = self._next_frame
            try:
                if self.can.send(pc.ID_BASE | spec[2 * i], frames[i], 0) is None:
                    return  # transmit buffers full: next tick
            except OSError:
                self.can_errors += 1
                self._next_frame = len(frames)
                return
            self._next_frame += 1
            k += 1
