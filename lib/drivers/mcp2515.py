# Owns the MCP2515 SPI CAN controller (Microchip DS20001801): reset, bit timing,
# modes, identifiers, both receive buffers with rollover, the three transmit
# buffers, acceptance filters, the INT pin, error counters, error-passive and
# bus-off with recovery and back-off, receive overflow. Its face is the shape
# of MicroPython's machine.CAN (1.28): init / set_filters / send / recv / state
# / get_counters / get_timings / restart / cancel_send / deinit and the same
# constant names, so a native controller can take its place. The SPI bus, the
# chip-select pin and the optional INT pin are passed in (machine.SPI /
# machine.Pin or fakes); buffers are allocated once; recv(list) allocates
# nothing after its first call with a given list.
#
# Every SPI fault, garbage read (a chip that stopped answering reads 0xFF) and
# timeout is counted (spi_errors, timeouts) and reported: send and init raise
# OSError, recv returns None and poll() returns False, state() says STOPPED.
# What runs only to build and set up the driver (__init__, set_filters,
# get_timings, init's check of a timing asked in detail) and the machine.CAN
# calls the firmware does not make (get_counters, cancel_send, restart,
# deinit) are in drivers.mcp2515cfg, imported for each such call and dropped
# after it (drivers.once): not for a heap-locked path. init() runs at each
# rate change of app.canrate and stays.
import time

from defs.const import const
from drivers import once

_WRAP = const(0x3FFFFFFF)  # event counters wrap below 2**30: small ints on the board

from defs.ticks import ticks_add, ticks_diff

# instructions (DS20001801 table 12-1)
_RESET = const(0xC0)
_READ = const(0x03)
_WRITE = const(0x02)
_BITMOD = const(0x05)
_READ_RXB0 = const(0x90)   # from RXB0SIDH; raising CS clears RX0IF
_READ_RXB1 = const(0x94)
_LOAD_TXB = const(0x40)    # + 2 * buffer: from TXBnSIDH
_RTS = const(0x80)         # | 1 << buffer
_READ_STATUS = const(0xA0)
_RX_STATUS = const(0xB0)

# registers
_CANSTAT = const(0x0E)
_CANCTRL = const(0x0F)
_RXF0 = const(0x00)
_RXF3 = const(0x10)
_TEC = const(0x1C)
_RXM0 = const(0x20)
_CNF3 = const(0x28)
_CANINTF = const(0x2C)
_EFLG = const(0x2D)
_TXB0CTRL = const(0x30)
_RXB0CTRL = const(0x60)
_RXB1CTRL = const(0x70)

# CANINTF bits
_RX0IF = const(0x01)
_RX1IF = const(0x02)
_TXIF = const(0x1C)
_ERRIF = const(0x20)
_MERRF = const(0x80)
_INTE = const(0xA3)        # RX0IE | RX1IE | ERRIE | MERRE on the INT pin
# EFLG bits
_RX1OVR = const(0x80)
_RX0OVR = const(0x40)
_TXBO = const(0x20)
_TXEP = const(0x10)
_RXEP = const(0x08)
_EWARN = const(0x01)

OP_NORMAL = const(0)  # CANCTRL REQOP
_OP_SLEEP = const(1)
_OP_LOOPBACK = const(2)
_OP_LISTEN = const(3)
OP_CONFIG = const(4)

_MODE_TRIES = const(20)      # CANSTAT polls, 1 ms apart, before a mode change times out
BACKOFF_MIN_MS = const(100)
_BACKOFF_MAX_MS = const(10000)
_STABLE_MS = const(30000)    # this long without bus-off resets the back-off
_ETIMEDOUT = const(110)
_ENODEV = const(19)
_EIO = const(5)

# CNF1, CNF2, CNF3 per (crystal, bit rate): PROTOCOLS 3, checked against the
# bit-timing rules of DS20001801 5.5 (see README "CAN, RS485 and panel inputs").
# Rows of 5 bytes: crystal in MHz, bit rate in 250 kbit/s, CNF1, CNF2, CNF3 (a
# bytes constant: from ROMFS it stays in flash).
_TIMING = const(b"\x08\x02\x00\x90\x82" b"\x08\x01\x00\xb1\x85"
                b"\x10\x02\x00\xf0\x86" b"\x10\x01\x41\xf1\x85")


def _id_regs(buf, off, ident, ext):
    """SIDH, SIDL, EID8, EID0 of an identifier (PROTOCOLS 3)."""
    if ext:
        sid = ident >> 18
        buf[off] = sid >> 3
        buf[off + 1] = ((sid & 7) << 5) | 0x08 | ((ident >> 16) & 3)
        buf[off + 2] = (ident >> 8) & 0xFF
        buf[off + 3] = ident & 0xFF
    else:
        buf[off] = ident >> 3
        buf[off + 1] = (ident & 7) << 5
        buf[off + 2] = 0
        buf[off + 3] = 0


# Views of every length 0..8 over each caller buffer recv() has seen, shared by
# all instances (one slot list may serve several buses): recv hands back a view
# of exactly the frame's length without allocating (machine.CAN resizes its
# memoryview in C; pure Python picks a prebuilt one).
_VIEWS: list = []
_VIEWS_MAX = const(8)


def _views(mv):
    j = 0
    while j < len(_VIEWS):
        vs = _VIEWS[j]
        k = 0
        while k < 9:
            if vs[k] is mv:
                return vs
            k += 1
        j += 1
    if len(mv) < 8:
        raise ValueError("recv buffer < 8 bytes")
    # first use of this buffer: allocate once (a loop, not a comprehension:
    # a comprehension would make mv a closure cell, allocated on every call)
    vs = []
    for k in range(9):
        vs.append(mv[:k])
    if len(_VIEWS) >= _VIEWS_MAX:
        _VIEWS.pop(0)
    _VIEWS.append(vs)
    return vs


# the default clock: here, not in drivers.mcp2515cfg, since the driver keeps it
def _ticks_ms():
    return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.time() * 1000) & 0x3FFFFFFF


def _sleep_ms(ms):
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)


TYPE_CHECKING = False
if TYPE_CHECKING:  # the type checker's names only; never runs on a board
    from typing import Any


class MCP2515:
    # set by drivers.mcp2515cfg.new (declared for the type checker, host_tests/test_typecheck.py;
    # MicroPython ignores annotations)
    _b1_first: "Any"
    _backoff_ms: "Any"
    _backoff_until: "Any"
    _bitrate: "Any"
    _bus_off: "Any"
    _c1: "Any"
    _c2: "Any"
    _c3: "Any"
    _c4: "Any"
    _cnf: "Any"
    _cs: "Any"
    _depth_ext: "Any"
    _depth_std: "Any"
    _eflg: "Any"
    _filt: "Any"
    _h: "Any"
    _int: "Any"
    _irq: "Any"
    _last_bus_off: "Any"
    _mode: "Any"
    _opmode: "Any"
    _ovr: "Any"
    _retry_at: "Any"
    _run_op: "Any"
    _rx: "Any"
    _rx_off: "Any"
    _sleep: "Any"
    _spi: "Any"
    _started: "Any"
    _ticks: "Any"
    _tx: "Any"
    _tx_busy: "Any"
    _tx_key: "Any"
    bus_offs: "Any"
    chip_resets: "Any"
    msg_errors: "Any"
    osc_hz: "Any"
    overruns: "Any"
    passives: "Any"
    rx_dropped: "Any"
    rx_frames: "Any"
    spi_errors: "Any"
    timeouts: "Any"
    tx_frames: "Any"
    warnings: "Any"
    # machine.CAN names
    MODE_NORMAL = 0
    MODE_SLEEP = 1
    MODE_LOOPBACK = 2
    MODE_SILENT = 3
    MODE_SILENT_LOOPBACK = 4
    STATE_STOPPED = 0
    STATE_ACTIVE = 1
    STATE_WARNING = 2
    STATE_PASSIVE = 3
    STATE_BUS_OFF = 4
    FLAG_RTR = 1
    FLAG_EXT_ID = 2
    FLAG_UNORDERED = 4
    RECV_ERR_FULL = 1
    RECV_ERR_OVERRUN = 2
    IRQ_RX = 1
    IRQ_TX = 2
    IRQ_STATE = 4
    TX_QUEUE_LEN = 3
    FILTERS_MAX = 6

    def __init__(self, spi, cs, bitrate=None, mode=0, osc_hz=8000000, int_pin=None,
                 ticks_ms=None, sleep_ms=None):
        once("mcp2515cfg", "new", self, spi, cs, bitrate, mode, osc_hz, int_pin, ticks_ms, sleep_ms)

    # ---- SPI primitives (CS always raised again) --------------------------------
    def _read(self, addr, buf):
        c = self._c2
        c[0] = _READ
        c[1] = addr
        self._cs.value(0)
        try:
            self._spi.write(c)
            self._spi.readinto(buf)
        finally:
            self._cs.value(1)

    def _write(self, buf):
        self._cs.value(0)
        try:
            self._spi.write(buf)
        finally:
            self._cs.value(1)

    def _bitmod(self, addr, mask, value):
        c = self._c4
        c[0] = _BITMOD
        c[1] = addr
        c[2] = mask
        c[3] = value
        self._write(c)

    def _cmd(self, ins):
        self._c1[0] = ins
        self._write(self._c1)

    def _status(self, ins):
        self._c1[0] = ins
        self._cs.value(0)
        try:
            self._spi.write(self._c1)
            self._spi.readinto(self._c1)
        finally:
            self._cs.value(1)
        return self._c1[0]

    def _isr(self, pin):
        self._irq = True

    # ---- configuration -------------------------------------------------------
    def _set_opmode(self, op):
        self._bitmod(_CANCTRL, 0xE0, op << 5)
        for _ in range(_MODE_TRIES):
            self._read(_CANSTAT, self._c1)
            if self._c1[0] >> 5 == op:
                self._opmode = op
                return
            self._sleep(1)
        self.timeouts = (self.timeouts + 1) & _WRAP
        raise OSError(_ETIMEDOUT)

    def init(self, bitrate, mode=0, sample_point=None, sjw=None, tseg1=None, tseg2=None):
        """Reset the chip and start it. Bit timing comes from the table of
        tested CNF values: bitrate 250000 or 500000 with an 8 or 16 MHz crystal
        (ValueError otherwise; sample_point/sjw/tseg1/tseg2 must be None or
        match the table). mode: MODE_NORMAL, MODE_SILENT (listen-only),
        MODE_LOOPBACK / MODE_SILENT_LOOPBACK (the chip's loopback is internal),
        MODE_SLEEP. OSError when the chip does not answer or a mode change is
        not confirmed."""
        t = _TIMING
        i = 0
        while t[i] * 1000000 != self.osc_hz or t[i + 1] * 250000 != bitrate:
            i += 5
            if i == len(t):
                raise ValueError("bitrate")
        cnf = (t[i + 2], t[i + 3], t[i + 4])
        if sample_point is not None or sjw is not None or tseg1 is not None or tseg2 is not None:
            once("mcp2515cfg", "check_timing", cnf, self.osc_hz, sample_point, sjw, tseg1, tseg2)
        op = (OP_NORMAL, _OP_SLEEP, _OP_LOOPBACK, _OP_LISTEN, _OP_LOOPBACK)[mode]
        self._bitrate = bitrate
        self._cnf = cnf
        self._mode = mode
        self._started = False
        try:
            self._start(op)
        except OSError:
            self.spi_errors = (self.spi_errors + 1) & _WRAP
            raise
        self._started = True
        self._retry_at = None

    def _start(self, op):
        self._cmd(_RESET)
        self._sleep(2)  # oscillator start-up after reset (DS20001801 8.1: 128 Tosc)
        h = self._h
        self._read(_CANSTAT, self._c1)
        st = self._c1[0]
        self._read(_CANCTRL, self._c1)
        if st & 0xE0 != OP_CONFIG << 5 or st & 0x11 or self._c1[0] != 0x87:
            raise OSError(_ENODEV)  # no chip (reads 0xFF or 0x00), or not reset
        self._opmode = OP_CONFIG
        cnf = self._cnf
        self._write(bytes((_WRITE, _CNF3, cnf[2], cnf[1], cnf[0], _INTE)))
        self._read(_CNF3, memoryview(h)[:3])
        if h[0] != cnf[2] or h[1] != cnf[1] or h[2] != cnf[0]:
            raise OSError(_EIO)
        self._write_filters()
        self._tx_busy = 0
        self._eflg = 0
        self._bus_off = False
        if self._int is not None and hasattr(self._int, "irq"):
            self._int.irq(handler=self._isr, trigger=self._int.IRQ_FALLING)
        self._set_opmode(op)
        self._run_op = op

    def _write_filters(self):
        """Masks, filters and RXBnCTRL from self._filt (config mode only)."""
        f = self._filt
        if f is None:  # receive nothing yet: RXM = 00 with exact-match filters
            f = (bytes(4 * 6), b"\xff\xff\xe3\xff" * 2, 0)
        filt, masks, rxm = f
        self._write(bytes((_WRITE, _RXF0)) + filt[0:12])
        self._write(bytes((_WRITE, _RXF3)) + filt[12:24])
        self._write(bytes((_WRITE, _RXM0)) + masks)
        self._write(bytes((_WRITE, _RXB0CTRL, rxm | 0x04)))  # BUKT: roll over into RXB1
        self._write(bytes((_WRITE, _RXB1CTRL, rxm)))

    def rx_depth(self, ext):
        """How many received frames of a kind (ext: 29-bit) the chip holds
        before one is lost: 2 in RXB0's group (rollover into RXB1), 1 in
        RXB1's alone, 0 not received (set_filters)."""
        return self._depth_ext if ext else self._depth_std

    def set_filters(self, filters):
        """None: receive everything; [] or (): nothing; else up to 6 items
        (identifier, bit_mask, flags) with FLAG_EXT_ID for 29-bit ids. The
        chip has two masks (RXB0: filters 0-1, RXB1: filters 2-5), so the
        items may use at most two distinct masks, at most two items the mask
        of the smaller group (ValueError otherwise). RXB0 rolls over into RXB1,
        so RXB0's group has both buffers (rx_depth): the group of the first
        item where it fits RXB0's two filters (list the busy frames first),
        else the smaller one."""
        once("mcp2515cfg", "set_filters", self, filters)

    # ---- transmit ------------------------------------------------------------
    def send(self, id, data, flags=0):
        """Queue a frame in a free transmit buffer; its index (0-2), or None
        when all three are busy or (without FLAG_UNORDERED) a frame with the
        same identifier is still queued (the chip does not keep FIFO order).
        TXP and the buffer are chosen so the queued frames leave the chip in
        identifier priority order, like machine.CAN's priority queue. OSError in bus-off / back-off, in
        listen-only mode (MODE_SILENT: the chip would ignore TXREQ and send the frame
        later, once in normal mode), when stopped, or on an SPI fault (counted)."""
        ext = flags & self.FLAG_EXT_ID
        if ext:
            if not 0 <= id <= 0x1FFFFFFF:
                raise ValueError("invalid id")
        elif not 0 <= id <= 0x7FF:
            raise ValueError("invalid id")
        n = len(data)
        if n > 8:
            raise ValueError("data")
        if not self._started:
            raise OSError(_ENODEV)
        if self._bus_off or self._backoff_until is not None or self._mode == self.MODE_SILENT:
            raise OSError(_EIO)
        try:
            st = self._status(_READ_STATUS)
            busy = (1 if st & 0x04 else 0) | (2 if st & 0x10 else 0) | (4 if st & 0x40 else 0)
            self._tx_busy &= busy
            # arbitration order: 11-bit base, then IDE (standard first), then
            # the 18 low bits of an extended id (fits a 30-bit small int)
            if ext:
                key = ((id >> 18) << 19) | 0x40000 | (id & 0x3FFFF)
            else:
                key = id << 19
            # the chip sends the pending buffer with the highest TXP first,
            # then the highest buffer number: order value TXP * 4 + buffer.
            # Put the new frame between what must go before and after it.
            lo = -1
            hi = 16
            tk = self._tx_key
            for i in (0, 1, 2):
                if busy & (1 << i):
                    if tk[i] == key and not flags & self.FLAG_UNORDERED:
                        return None
                    if tk[i] > key:
                        lo = max(lo, tk[3 + i])
                    else:
                        hi = min(hi, tk[3 + i])
            free = -1
            best = 0
            for i in (0, 1, 2):
                if busy & (1 << i):
                    continue
                for txp in (0, 1, 2, 3):
                    v = txp * 4 + i
                    score = abs(2 * v - lo - hi) + (0 if lo < v < hi else 100)
                    if free < 0 or score < best:
                        free, best, ordv = i, score, v
            if free < 0:
                return None
            c = self._c3
            c[0] = _WRITE
            c[1] = _TXB0CTRL + 0x10 * free
            c[2] = ordv >> 2   # TXP, TXREQ clear
            self._write(c)
            t = self._tx
            t[0] = _LOAD_TXB + 2 * free
            _id_regs(t, 1, id, ext)
            t[5] = n | (0x40 if flags & self.FLAG_RTR else 0)
            self._cs.value(0)
            try:
                self._spi.write(t)
                if n and not flags & self.FLAG_RTR:
                    self._spi.write(data)  # len(data) == n: the whole buffer, no copy
            finally:
                self._cs.value(1)
            self._cmd(_RTS | (1 << free))
        except OSError:
            self.spi_errors = (self.spi_errors + 1) & _WRAP
            raise
        tk[free] = key
        tk[3 + free] = ordv
        self._tx_busy |= 1 << free
        self.tx_frames = (self.tx_frames + 1) & _WRAP
        return free

    # ---- receive -------------------------------------------------------------
    def any(self):
        """True when the INT pin (or its interrupt flag) says the chip wants
        attention; without an INT pin always True (poll)."""
        i = self._int
        return i is None or self._irq or i.value() == 0

    def recv(self, arg=None):
        """The oldest received frame as [id, memoryview data, flags, errors]
        (machine.CAN.recv), or None. With arg (a list of 4 whose [1] is a
        memoryview of >= 8 bytes) the frame goes into arg and nothing is
        allocated (after the first call with that buffer). errors: RECV_ERR_FULL
        both buffers were full, RECV_ERR_OVERRUN frames were lost since the last
        recv. With an INT pin, returns at once without SPI while INT is high."""
        if not self._started:
            return None
        i = self._int
        if i is not None and not self._irq and i.value():
            return None
        self._irq = False
        try:
            st = self._status(_RX_STATUS)
            full = st >> 6
            if full == 0:
                if i is not None and i.value() == 0:
                    self.poll()  # INT low for an error, not a frame
                return None
            if full == 3:
                b1 = self._b1_first
                self._b1_first = not b1  # RXB1 (rollover) is older after reading RXB0
            else:
                b1 = full == 2
                self._b1_first = False
            c = self._c1
            c[0] = _READ_RXB1 if b1 else _READ_RXB0
            self._cs.value(0)
            try:
                self._spi.write(c)
                self._spi.readinto(self._rx)
            finally:
                self._cs.value(1)
        except OSError:
            self.spi_errors = (self.spi_errors + 1) & _WRAP
            return None
        r = self._rx
        if r[1] & 0x04 or r[4] & 0xB0:
            self.spi_errors = (self.spi_errors + 1) & _WRAP  # unimplemented bits set: not a live chip
            return None
        if self._rx_off:
            self.rx_dropped = (self.rx_dropped + 1) & _WRAP
            return None
        if r[1] & 0x08:
            fid = (r[0] << 21) | ((r[1] & 0xE0) << 13) | ((r[1] & 3) << 16) | (r[2] << 8) | r[3]
            fl = self.FLAG_EXT_ID
            if r[4] & 0x40:
                fl |= self.FLAG_RTR
        else:
            fid = (r[0] << 3) | (r[1] >> 5)
            fl = self.FLAG_RTR if r[1] & 0x10 else 0
        n = r[4] & 0x0F
        if n > 8:
            n = 8
        errs = self.RECV_ERR_FULL if full == 3 else 0
        if self._ovr:
            errs |= self.RECV_ERR_OVERRUN
            self._ovr = False
        self.rx_frames = (self.rx_frames + 1) & _WRAP
        if arg is None:
            buf = bytearray(8)
            for k in range(n):
                buf[k] = 0 if fl & self.FLAG_RTR else r[5 + k]
            return [fid, memoryview(buf)[:n], fl, errs]
        vs = _views(arg[1])
        full_v = vs[8]
        rtr = fl & self.FLAG_RTR
        for k in range(n):
            full_v[k] = 0 if rtr else r[5 + k]
        arg[0] = fid
        arg[1] = vs[n]
        arg[2] = fl
        arg[3] = errs
        return arg

    # ---- errors, state -------------------------------------------------------
    def poll(self):
        """Service the chip (call every few ms from the CAN task): check it is
        alive and still configured, count and clear receive overflow and
        message errors, follow TEC/REC into warning / error-passive / bus-off,
        abort and back off on bus-off, resume when the chip has recovered and
        the back-off has passed, re-initialise a chip that lost its setup or
        stopped answering (retried with back-off). False when the chip could
        not be serviced."""
        now = self._ticks()
        if not self._started:
            if self._bitrate and (self._retry_at is None or ticks_diff(now, self._retry_at) >= 0):
                self._reinit(now)
            return self._started
        h = self._h
        try:
            self._read(_TEC, h)
        except OSError:
            self.spi_errors = (self.spi_errors + 1) & _WRAP
            self._lost(now)
            return False
        stat = h[2]
        if stat & 0x11 or h[3] & 0x10:
            self.spi_errors = (self.spi_errors + 1) & _WRAP  # unimplemented CANSTAT bits / ABAT: garbage
            self._lost(now)
            return False
        cnf = self._cnf
        if stat >> 5 != self._opmode or h[14] != cnf[0] or h[13] != cnf[1] or h[12] != cnf[2]:
            self._reinit(now)   # the chip reset itself (brown-out) or lost its setup
            return self._started
        intf = h[16]
        eflg = h[17]
        try:
            if intf & _MERRF:
                self.msg_errors = (self.msg_errors + 1) & _WRAP
            if eflg & (_RX0OVR | _RX1OVR):
                self.overruns += (1 if eflg & _RX0OVR else 0) + (1 if eflg & _RX1OVR else 0)
                self._ovr = True
                self._bitmod(_EFLG, _RX0OVR | _RX1OVR, 0)
            if intf & (_MERRF | _ERRIF | _TXIF):
                self._bitmod(_CANINTF, _MERRF | _ERRIF | _TXIF, 0)
            e = eflg & 0x3F
            new = e & ~self._eflg
            if new & _EWARN:
                self.warnings = (self.warnings + 1) & _WRAP
            if new & (_TXEP | _RXEP) and not self._eflg & (_TXEP | _RXEP):
                self.passives = (self.passives + 1) & _WRAP
            self._eflg = e
            if e & _TXBO:
                if not self._bus_off:
                    self._bus_off = True
                    self.bus_offs = (self.bus_offs + 1) & _WRAP
                    if self._last_bus_off is None or ticks_diff(now, self._last_bus_off) > _STABLE_MS:
                        self._backoff_ms = BACKOFF_MIN_MS
                    else:
                        self._backoff_ms = min(self._backoff_ms * 2, _BACKOFF_MAX_MS)
                    self._last_bus_off = now
                    self._backoff_until = None
                    # drop what was queued: stale after the recovery
                    self._bitmod(_CANCTRL, 0x10, 0x10)
                    self._bitmod(_CANCTRL, 0x10, 0)
                    self._tx_busy = 0
            elif self._bus_off:
                # the chip recovered by itself (128 x 11 recessive bits); hold
                # our transmissions for the back-off
                self._bus_off = False
                self._backoff_until = ticks_add(now, self._backoff_ms)
            if self._backoff_until is not None and not self._bus_off:
                if ticks_diff(now, self._backoff_until) >= 0:
                    self._backoff_until = None
        except OSError:
            self.spi_errors = (self.spi_errors + 1) & _WRAP
            self._lost(now)
            return False
        return True

    def _lost(self, now):
        """The chip stopped answering (or its init failed): stop, retry init
        with back-off."""
        self._started = False
        self._retry_at = ticks_add(now, self._backoff_ms)
        self._backoff_ms = min(self._backoff_ms * 2, _BACKOFF_MAX_MS)

    def _reinit(self, now):
        try:
            self._start(self._run_op)
        except OSError:
            self.spi_errors = (self.spi_errors + 1) & _WRAP
            self._lost(now)
            return
        self.chip_resets = (self.chip_resets + 1) & _WRAP
        self._started = True
        self._retry_at = None
        self._backoff_until = None

    def state(self):
        """machine.CAN state: STOPPED when not started or the chip stopped
        answering; BUS_OFF in bus-off and during the back-off after it."""
        if not self._started:
            return self.STATE_STOPPED
        if self._bus_off or self._backoff_until is not None:
            return self.STATE_BUS_OFF
        e = self._eflg
        if e & (_TXEP | _RXEP):
            return self.STATE_PASSIVE
        if e & _EWARN:
            return self.STATE_WARNING
        return self.STATE_ACTIVE

    def get_timings(self, lst=None):
        """[bitrate, sjw, tseg1, tseg2, None (no CAN FD), [CNF1, CNF2, CNF3]]."""
        return once("mcp2515cfg", "get_timings", self, lst)

    # machine.CAN calls the firmware does not make: drivers.mcp2515cfg, imported for the call
    def get_counters(self, lst=None):
        """[TEC, REC, warnings, error-passives, bus-offs, TX pending, RX pending,
        overruns] (machine.CAN.get_counters); TEC/REC None when unreadable."""
        return once("mcp2515cfg", "get_counters", self, lst)

    def cancel_send(self, index):
        """Abort buffer `index`: True when a frame was still pending there."""
        return once("mcp2515cfg", "cancel_send", self, index)

    def restart(self):
        """Leave bus-off now: reset and re-initialise the chip (TEC/REC to 0,
        queued frames dropped), keeping bit rate, mode and filters."""
        once("mcp2515cfg", "restart", self)

    def deinit(self):
        """Configuration mode: off the bus; pending frames dropped."""
        once("mcp2515cfg", "deinit", self)

