# Owns the MCP2515 driver's set-up (drivers.mcp2515 is the driver): building
# it, the check of a bit timing asked of init() in detail, the masks and
# filters of set_filters(), get_timings(); and the machine.CAN calls the
# firmware does not make (get_counters, cancel_send, restart, deinit).
# Imported only for those calls and dropped after each (drivers.once): its
# bytecode is not on the heap while the pack runs. init() itself (app.canrate
# changes the rate at run time) and the chip's re-initialisation after it
# lost its setup (poll) stay in the driver.
from defs.const import const
from drivers.mcp2515 import OP_NORMAL, OP_CONFIG, BACKOFF_MIN_MS, _id_regs, _ticks_ms, _sleep_ms

_WRAP = const(0x3FFFFFFF)  # event counters wrap below 2**30: small ints on the board

def timing_of(cnf1, cnf2, cnf3, osc_hz):
    """(bitrate, sjw, tseg1, tseg2, sample point per mille) of CNF values, or
    None when they break DS20001801 5.5: 8..25 TQ per bit, PS2 >= 2 TQ,
    PS2 > SJW, PropSeg + PS1 >= PS2."""
    brp = cnf1 & 0x3F
    sjw = (cnf1 >> 6) + 1
    prop = (cnf2 & 7) + 1
    ps1 = ((cnf2 >> 3) & 7) + 1
    ps2 = (cnf3 & 7) + 1 if cnf2 & 0x80 else max(ps1, 2)
    ntq = 1 + prop + ps1 + ps2
    if not 8 <= ntq <= 25 or ps2 < 2 or ps2 <= sjw or prop + ps1 < ps2:
        return None
    den = 2 * (brp + 1) * ntq
    if osc_hz % den:
        return None
    return (osc_hz // den, sjw, prop + ps1, ps2, 1000 * (1 + prop + ps1) // ntq)


def new(self, spi, cs, bitrate, mode, osc_hz, int_pin, ticks_ms, sleep_ms):
    """MCP2515.__init__."""
    self._spi = spi
    self._cs = cs
    self._int = int_pin
    self.osc_hz = osc_hz
    self._ticks = ticks_ms or _ticks_ms
    self._sleep = sleep_ms or _sleep_ms
    cs.value(1)
    # scratch buffers, allocated once
    self._c1 = bytearray(1)         # an instruction, then the byte read after it
    self._c2 = bytearray(2)
    self._c3 = bytearray(3)
    self._c4 = bytearray(4)
    self._rx = bytearray(13)        # SIDH SIDL EID8 EID0 DLC D0..D7
    self._h = bytearray(18)         # TEC .. EFLG (0x1C..0x2D)
    self._tx = bytearray(6)         # LOAD TX, SIDH SIDL EID8 EID0 DLC (data: the caller's buffer)
    self._tx_key = [0, 0, 0, 0, 0, 0]  # per buffer: arbitration key [0..2], order value [3..5]
    self._tx_busy = 0               # bit i: buffer i queued by send(), not yet seen free
    self._irq = False
    self._b1_first = False
    self._ovr = False
    self._rx_off = True             # nothing is delivered before set_filters()
    self._filt = None
    self._depth_std = 0  # receive buffers per kind of frame after set_filters (rx_depth)
    self._depth_ext = 0
    self._bitrate = 0
    self._cnf = (0, 0, 0)  # CNF1, CNF2, CNF3 once init() ran (bitrate != 0)
    self._mode = 0
    self._opmode = OP_CONFIG
    self._run_op = OP_NORMAL
    self._started = False
    self._eflg = 0
    self._bus_off = False
    self._backoff_until = None
    self._backoff_ms = BACKOFF_MIN_MS
    self._last_bus_off = None
    self._retry_at = None
    # counters (only grow)
    self.spi_errors = 0     # SPI exceptions and reads a live chip cannot give
    self.timeouts = 0       # mode changes not confirmed in CANSTAT
    self.overruns = 0       # RX0OVR/RX1OVR seen (and cleared)
    self.msg_errors = 0     # MERRF: a frame seen with an error; counts in listen-only mode too (TEC/REC frozen there)
    self.warnings = 0       # entries into warning (EWARN)
    self.passives = 0       # entries into error-passive (TXEP/RXEP)
    self.bus_offs = 0       # entries into bus-off
    self.chip_resets = 0    # re-initialisations after the chip lost its setup
    self.rx_frames = 0
    self.tx_frames = 0
    self.rx_dropped = 0     # received while set_filters([]) rejects all
    if bitrate is not None:
        self.init(bitrate, mode)


def check_timing(cnf, osc_hz, sample_point, sjw, tseg1, tseg2):
    """MCP2515.init's check of the timing asked for against the table's CNF
    values (ValueError when they differ)."""
    t = timing_of(cnf[0], cnf[1], cnf[2], osc_hz)
    for want, have in ((sjw, t[1]), (tseg1, t[2]), (tseg2, t[3])):
        if want is not None and want != have:
            raise ValueError("timing")
    if sample_point is not None and abs(sample_point * 10 - t[4]) > 50:
        raise ValueError("sample_point")


def set_filters(self, filters):
    """MCP2515.set_filters."""
    if filters is None:
        self._filt = (bytes(24), bytes(8), 0x60)  # RXM = 11: masks/filters off
        self._rx_off = False
        self._depth_std = self._depth_ext = 2
    elif len(filters) == 0:
        self._filt = None
        self._rx_off = True
        self._depth_std = self._depth_ext = 0
    else:
        if len(filters) > self.FILTERS_MAX:
            raise ValueError("too many filters")
        groups: list = []  # [mask bytes, [filter bytes...]]
        for item in filters:
            ident, mask, flags = item
            ext = bool(flags & self.FLAG_EXT_ID)
            if flags & self.FLAG_RTR:
                raise ValueError("RTR filter")
            lim = 0x1FFFFFFF if ext else 0x7FF
            if not 0 <= ident <= lim or not 0 <= mask <= lim:
                raise ValueError("invalid id")
            fb = bytearray(4)
            _id_regs(fb, 0, ident, ext)
            mba = bytearray(4)
            _id_regs(mba, 0, mask, ext)
            mba[1] &= 0xE3  # no EXIDE in a mask; std masks leave EID (= data bytes) open
            mb = bytes(mba)
            kind = 2 if ext else 1
            for g in groups:
                if g[0] == mb:
                    if bytes(fb) not in g[1]:  # two subscribers of one item: one filter
                        g[1].append(bytes(fb))
                    g[2] |= kind
                    break
            else:
                groups.append([mb, [bytes(fb)], kind])
        if len(groups) > 2:
            raise ValueError("more than 2 masks")
        if len(groups) == 1:
            fl = groups[0][1]
            g0 = [groups[0][0], fl[:2]]
            g1 = [groups[0][0], fl[2:] or fl[:1]]
            d = 2 if len(fl) <= 2 else 1  # more: some filters in RXB1 alone
            self._depth_std = d if groups[0][2] & 1 else 0
            self._depth_ext = d if groups[0][2] & 2 else 0
        else:
            a, b = groups  # a: the first item's group, in RXB0 where it fits
            if len(a[1]) > 2:
                a, b = b, a
            if len(a[1]) > 2 or len(b[1]) > 4:
                raise ValueError("filters do not fit the masks")
            g0, g1 = a, b
            # a kind in RXB1's group has that buffer alone
            self._depth_std = 1 if g1[2] & 1 else (2 if g0[2] & 1 else 0)
            self._depth_ext = 1 if g1[2] & 2 else (2 if g0[2] & 2 else 0)
        f0 = (g0[1] + [g0[1][0]] * 2)[:2]
        f1 = (g1[1] + [g1[1][0]] * 4)[:4]
        self._filt = (b"".join(f0 + f1[:1]) + b"".join(f1[1:]), g0[0] + g1[0], 0)
        self._rx_off = False
    if self._started:
        try:
            self._set_opmode(OP_CONFIG)
            self._write_filters()
            self._set_opmode(self._run_op)
        except OSError:
            self.spi_errors = (self.spi_errors + 1) & _WRAP
            raise


def get_timings(self, lst):
    """MCP2515.get_timings."""
    if lst is None:
        lst = [0] * 6
    c = self._cnf
    t = timing_of(c[0], c[1], c[2], self.osc_hz) or (0, 0, 0, 0, 0)
    lst[0], lst[1], lst[2], lst[3] = t[0], t[1], t[2], t[3]
    lst[4] = None
    lst[5] = [c[0], c[1], c[2]]
    return lst


# ---- the machine.CAN calls the firmware does not make ---------------------------
_READ_STATUS = const(0xA0)  # instructions and registers: drivers.mcp2515
_TEC = const(0x1C)
_CANCTRL = const(0x0F)
_TXB0CTRL = const(0x30)
_ENODEV = const(19)


def get_counters(self, lst):
    """MCP2515.get_counters."""
    if lst is None:
        lst = [0] * 8
    tec = rec = rxp = txp = None
    if self._started:
        try:
            self._read(_TEC, memoryview(self._h)[:2])
            tec, rec = self._h[0], self._h[1]
            st = self._status(_READ_STATUS)
            txp = (1 if st & 0x04 else 0) + (1 if st & 0x10 else 0) + (1 if st & 0x40 else 0)
            rxp = (st & 1) + ((st >> 1) & 1)
        except OSError:
            self.spi_errors = (self.spi_errors + 1) & _WRAP
    lst[0] = tec
    lst[1] = rec
    lst[2] = self.warnings
    lst[3] = self.passives
    lst[4] = self.bus_offs
    lst[5] = txp
    lst[6] = rxp
    lst[7] = self.overruns
    return lst


def cancel_send(self, index):
    """MCP2515.cancel_send."""
    try:
        st = self._status(_READ_STATUS)
        if not st & (0x04 << (2 * index)):
            return False
        self._bitmod(_TXB0CTRL + 0x10 * index, 0x08, 0)
    except OSError:
        self.spi_errors = (self.spi_errors + 1) & _WRAP
        raise
    self._tx_busy &= ~(1 << index)
    return True


def restart(self):
    """MCP2515.restart."""
    if not self._bitrate:
        raise OSError(_ENODEV)
    try:
        self._start(self._run_op)
    except OSError:
        self.spi_errors = (self.spi_errors + 1) & _WRAP
        self._started = False
        raise
    self._started = True
    self._backoff_until = None


def deinit(self):
    """MCP2515.deinit."""
    if self._int is not None and hasattr(self._int, "irq"):
        self._int.irq(handler=None)
    if self._started:
        self._started = False
        try:
            self._bitmod(_CANCTRL, 0x10, 0x10)
            self._set_opmode(OP_CONFIG)
        except OSError:
            self.spi_errors = (self.spi_errors + 1) & _WRAP
            raise
