# Owns the simulated wiring between packs, inverters and tools: a CAN bus with
# ports in the shape of machine.CAN (send(id, data, flags), recv(list), any())
# that can be cut between chain positions (an unplugged Link cable splits it)
# and ports that lose power; and a point-to-point serial link (an RS485
# segment) with two ends in the shape of machine.UART (write, read, any).
# Every CAN frame sent is reported to a tap (the bench writes it into the
# trace) and counted for the bus load.
#
# Bit rate: each port has its own (init(bitrate, mode), 500 kbit/s by default)
# and a mode, normal or listen-only (MODE_SILENT: sends nothing, acknowledges
# nothing). A frame reaches only the ports at its sender's rate; a port at
# another rate sees a receive error (msg_errors, as the MCP2515 driver counts
# MERRF); one in normal mode that is still error-active (ISO 11898-1: receive
# error count below 128, +8 for each error flag it starts) answers with an
# error frame that destroys the frame for every node (error_frames). A frame
# no other normal-mode port at its rate acknowledges still reaches the
# listeners (an error-passive sender's passive error flag leaves it valid) and
# is counted in the sender's unacked.
FLAG_RTR = 1
FLAG_EXT_ID = 2
RECV_ERR_FULL = 1
RECV_ERR_OVERRUN = 2
MODE_NORMAL = 0
MODE_SILENT = 3  # listen-only (machine.CAN / drivers.mcp2515 numbering)
BITRATE = 500000  # every port's until init()
_QUEUE = 64  # receive queue per port; beyond it frames are lost and counted
_PASSIVE = 128  # receive error count of error-passive


def frame_bits(ext, dlc):
    """Bits on the wire of one data frame: 47 (11-bit) or 67 (29-bit)
    overhead + 8 per data byte, plus worst-case stuffing (PROTOCOLS 6: 8 bytes
    = 111/131 bits unstuffed, 135/160 stuffed)."""
    raw = (67 if ext else 47) + 8 * dlc
    return raw + (raw - 13) // 4  # stuff bits over the stuffed region (all but the last 13)


class CanPort:
    FLAG_RTR = FLAG_RTR
    FLAG_EXT_ID = FLAG_EXT_ID
    MODE_NORMAL = MODE_NORMAL
    MODE_SILENT = MODE_SILENT

    def __init__(self, bus, name, position):
        self.bus = bus
        self.name = name
        self.position = position  # place along the Link chain (inverter -1, packs 0..N-1)
        self.powered = True
        self.bitrate = BITRATE
        self.mode = MODE_NORMAL
        self._q = []
        self.lost = 0
        self.sent = 0
        self.filters = None  # set_filters
        self.filtered = 0  # frames the acceptance filters dropped
        self.msg_errors = 0  # frames seen at another bit rate (the MCP2515's MERRF)
        self.rec = 0  # receive error count (normal mode; frozen in listen-only)
        self.unacked = 0  # frames sent that no other normal-mode port at this rate acknowledged
        self.inits = []  # (bitrate, mode) of every init(), oldest first
        self.cpu = None  # what stalls this node's MCU (sim.romfs.Partition.stall_ms), or None

    def init(self, bitrate, mode=MODE_NORMAL):
        """As machine.CAN.init / drivers.mcp2515: a fresh start at bitrate in
        mode; the frames waiting are dropped, the error count cleared, the
        filters kept."""
        self.bitrate = bitrate
        self.mode = mode
        self._q = []
        self.rec = 0
        self.inits.append((bitrate, mode))

    def send(self, id, data, flags=0):
        if not self.powered or self.mode != MODE_NORMAL:
            raise OSError(5)
        cpu = self.cpu
        if cpu is not None and cpu.stall_ms:
            # sent in a tick the flash held: on a board it leaves once the erase is over
            self.bus.later(self, id, bytes(data), flags, cpu.stall_ms)
        else:
            self.bus._deliver(self, id, bytes(data), flags)
        self.sent += 1
        return 0

    def _active(self):
        """Answers errors with active error flags (dominant: they destroy the frame)."""
        return self.mode == MODE_NORMAL and self.rec < _PASSIVE

    def power_off(self):
        """The port loses power: the frames waiting in it are gone."""
        self.powered = False
        self._q = []

    def any(self):
        if self.bus._later:
            self.bus.flush()
        return len(self._q) > 0

    def recv(self, arg=None):
        """[id, data, flags, errors] of the oldest frame, or None."""
        if self.bus._later:
            self.bus.flush()
        if not self._q:
            return None
        id_, data, flags = self._q.pop(0)
        errors = RECV_ERR_OVERRUN if self.lost else 0
        self.lost = 0
        if arg is None:
            return [id_, memoryview(data), flags, errors]
        arg[0] = id_
        arg[1] = memoryview(data)
        arg[2] = flags
        arg[3] = errors
        return arg

    def rx_depth(self, ext):
        """Frames it holds before one is lost (drivers.mcp2515.rx_depth's API):
        its receive queue, as a FIFO controller's (the ESP32's TWAI: 64)."""
        return _QUEUE

    def set_filters(self, filters):
        """As machine.CAN / drivers.mcp2515: None receives everything (the
        default here), else only frames matching an (id, mask, flags) item."""
        self.filters = None if filters is None else tuple(filters)

    def _accepts(self, id_, flags):
        if self.filters is None:
            return True
        ext = flags & FLAG_EXT_ID
        for ident, mask, f in self.filters:
            if (f & FLAG_EXT_ID) == ext and (id_ & mask) == (ident & mask):
                return True
        return False

    def _push(self, id_, data, flags):
        if not self._accepts(id_, flags):
            self.filtered += 1
            return
        if len(self._q) >= _QUEUE:
            self.lost += 1
            return
        self._q.append((id_, data, flags))


class CanBus:
    def __init__(self, name, clock_ms, tap=None):
        self.name = name
        self._clock_ms = clock_ms
        self.tap = tap  # tap(t_ms, bus, id, ext, data) for every frame on the wire
        self.ports = []
        self.cuts = set()  # k: the cable between positions k and k+1 is unplugged
        self.bits = 0  # bits sent since start, for the bus load
        self.busy_us = 0  # time on the wire of those frames at their senders' rates
        self.error_frames = 0  # frames destroyed by a node at another bit rate
        self._foreign = CanPort(self, "inject", -1)  # a foreign node at the inverter end (not attached)
        self._later = []  # (due_ms, port, id, data, flags): frames whose sender's MCU was stalled

    def later(self, src, id_, data, flags, delay_ms):
        due = self._clock_ms() + delay_ms
        k = len(self._later)
        while k and self._later[k - 1][0] > due:  # in due order, equal ones as sent
            k -= 1
        self._later.insert(k, (due, src, id_, data, flags))

    def flush(self):
        """Put on the wire the stalled senders' frames that are due, in order."""
        now = self._clock_ms()
        while self._later and self._later[0][0] <= now:
            _, src, id_, data, flags = self._later.pop(0)
            if src.powered:
                self._deliver(src, id_, data, flags)

    def inject(self, id_, data, ext):
        """A foreign node puts a frame on the bus (the bench's inject events)."""
        self._foreign.send(id_, data, FLAG_EXT_ID if ext else 0)

    def attach(self, name, position):
        port = CanPort(self, name, position)
        self.ports.append(port)
        return port

    def reachable(self, a, b):
        lo, hi = (a, b) if a <= b else (b, a)
        for k in self.cuts:
            if lo <= k < hi:
                return False
        return True

    def _deliver(self, src, id_, data, flags):
        ext = (flags & FLAG_EXT_ID) != 0
        n = frame_bits(ext, len(data))
        self.bits += n
        self.busy_us += n * 1000000 // src.bitrate
        whole = not self.cuts
        rate = src.bitrate
        on = [p for p in self.ports if p is not src and p.powered
              and (whole or self.reachable(src.position, p.position))]
        destroyed = False
        for p in on:
            if p.bitrate != rate:
                p.msg_errors += 1
                if p._active():
                    p.rec += 8
                    destroyed = True
                elif p.mode == MODE_NORMAL:
                    p.rec += 1
        if destroyed:
            self.error_frames += 1
            return
        if self.tap is not None:
            self.tap(self._clock_ms(), self.name, id_, ext, data)
        acked = False
        for p in on:
            if p.bitrate == rate:
                acked = acked or p.mode == MODE_NORMAL
                if p.rec:
                    p.rec -= 1
                p._push(id_, data, flags)
        if not acked:
            src.unacked += 1


class SerialEnd:
    """One end of a serial segment (machine.UART shape: write, read, any)."""

    def __init__(self, link):
        self.link = link
        self.powered = True
        self._rx = bytearray()
        self.peer = None

    def write(self, data):
        peer = self.peer
        if self.powered and self.link.plugged and peer.powered:
            peer._rx.extend(data)
        return len(data)

    def power_off(self):
        """The end loses power: the bytes waiting in it are gone."""
        self.powered = False
        self._rx = bytearray()

    def any(self):
        return len(self._rx)

    def receive(self, data):
        """Bytes arriving from the wire (the bench's inject events)."""
        if self.powered:
            self._rx.extend(data)

    def readinto(self, buf, nbytes=-1):
        """machine.UART.readinto: up to len(buf) (or nbytes) bytes into buf;
        the count, or None when nothing is waiting."""
        n = len(buf) if nbytes is None or nbytes < 0 else nbytes
        if not self._rx:
            return None
        if n > len(self._rx):
            n = len(self._rx)
        buf[:n] = self._rx[:n]
        self._rx = self._rx[n:]
        return n

    def read(self, n=-1):
        if not self._rx:
            return None
        if n < 0 or n >= len(self._rx):
            n = len(self._rx)
        out = bytes(self._rx[:n])
        self._rx = self._rx[n:]  # (MicroPython: bytearray has no slice deletion)
        return out


class SerialLink:
    """A point-to-point segment (an RS485 pair in one Link cable); unplugged,
    nothing crosses it."""

    def __init__(self):
        self.plugged = True
        self.a = SerialEnd(self)
        self.b = SerialEnd(self)
        self.a.peer = self.b
        self.b.peer = self.a
