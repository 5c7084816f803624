# Owns the simulated MCP2515 used by the host tests: a register-level model of
# the chip (Microchip DS20001801) answering SPI instructions byte by byte, and a
# Bus that carries frames between models with arbitration, ACK, error counters,
# bus-off and its recovery. It rejects what the real chip would not do (writes
# to configuration-only registers outside configuration mode, writes to a
# transmit buffer with TXREQ set, read-only registers, unknown instructions) and
# records each rejection in `rejected`, so a wrong driver fails its test.
#
# Runs on CPython and in MicroPython (no f-strings, no dataclasses) so the
# MicroPython heap_lock test can load it next to the driver.

# Instructions (DS20001801 table 12-1)
RESET = 0xC0
READ = 0x03
WRITE = 0x02
BIT_MODIFY = 0x05
READ_STATUS = 0xA0
RX_STATUS = 0xB0

# Registers
CANSTAT = 0x0E
CANCTRL = 0x0F
TEC = 0x1C
REC = 0x1D
CNF3 = 0x28
CNF2 = 0x29
CNF1 = 0x2A
CANINTE = 0x2B
CANINTF = 0x2C
EFLG = 0x2D
TXB = (0x30, 0x40, 0x50)
RXB = (0x60, 0x70)

MODE_NORMAL = 0
MODE_SLEEP = 1
MODE_LOOPBACK = 2
MODE_LISTEN = 3
MODE_CONFIG = 4

# Registers that BIT MODIFY acts on bit by bit; on any other register the
# chip uses a mask of 0xFF (DS20001801 12.10 and the shaded rows of table 11-2)
_BITMOD_OK = (0x0C, 0x0D, CANCTRL, CNF3, CNF2, CNF1, CANINTE, CANINTF, EFLG,
              0x30, 0x40, 0x50, 0x60, 0x70)


def _config_only(a):
    """CNF1-3, TXRTSCTRL, the acceptance filters and masks: writable only in
    configuration mode (DS20001801 10.1)."""
    return (a <= 0x0B or 0x10 <= a <= 0x1B or 0x20 <= a <= 0x27
            or a in (0x0D, 0x28, 0x29, 0x2A))


def _canon(a):
    a &= 0x7F
    if a & 0x0F == 0x0E:
        return CANSTAT
    if a & 0x0F == 0x0F:
        return CANCTRL
    return a


class _Rng:
    """Tiny LCG (same numbers on CPython and MicroPython)."""

    def __init__(self, seed):
        self.s = seed & 0x7FFFFFFF

    def byte(self):
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.s >> 16) & 0xFF


class Spi:
    """machine.SPI-like face of the model: write, readinto, write_readinto."""

    def __init__(self, chip):
        self.chip = chip
        self.fail = False  # raise OSError on every transfer (a broken bus)

    def _check(self):
        if self.fail:
            raise OSError(5)
        if not self.chip.selected:
            self.chip.reject("SPI transfer without CS low")

    def write(self, buf):
        self._check()
        for b in buf:
            self.chip.shift(b)

    def readinto(self, buf, write=0x00):
        self._check()
        for i in range(len(buf)):
            buf[i] = self.chip.shift(write)

    def write_readinto(self, wbuf, rbuf):
        self._check()
        for i in range(len(wbuf)):
            rbuf[i] = self.chip.shift(wbuf[i])


class CsPin:
    """Chip select (active low) with machine.Pin's value()."""

    def __init__(self, chip):
        self.chip = chip
        self.level = 1

    def value(self, v=None):
        if v is None:
            return self.level
        v = 1 if v else 0
        if v == self.level:
            return None
        self.level = v
        if v == 0:
            self.chip.select()
        else:
            self.chip.deselect()
        return None


class IntPin:
    """The open-drain INT output (low while CANINTF & CANINTE != 0) with
    machine.Pin's value() and irq(); the handler runs on a falling edge."""

    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, chip):
        self.chip = chip
        self.handler = None
        self.trigger = 0
        self.last = 1
        self.irq_calls = 0

    def value(self, v=None):
        return self.chip.int_level()

    def irq(self, handler=None, trigger=IRQ_FALLING, hard=False):
        self.handler = handler
        self.trigger = trigger

    def update(self):
        lvl = self.chip.int_level()
        if self.last == 1 and lvl == 0 and self.handler and self.trigger & self.IRQ_FALLING:
            self.irq_calls += 1
            self.handler(self)
        self.last = lvl


class Mcp2515:
    """One chip. osc_hz: its crystal. `dead = True` makes it stop answering
    (MISO pulled up: every byte reads 0xFF, nothing is executed)."""

    def __init__(self, osc_hz=8000000, seed=1, name="mcp"):
        self.osc_hz = osc_hz
        self.name = name
        self.rng = _Rng(seed)
        self.reg = bytearray(128)
        self.rejected = []
        self.dead = False
        self.stuck_mode = False   # mode requests never take effect (test the timeout)
        self.bus = None
        self.spi = Spi(self)
        self.cs = CsPin(self)
        self.int_pin = IntPin(self)
        self.selected = False
        self._ins = None
        self._n = 0
        self.resets = 0
        self.sent = 0
        self.transactions = 0
        self._power_on()

    # ---- state ---------------------------------------------------------------
    def _power_on(self):
        self.reset()
        self.resets = 0

    def reset(self):
        """RESET instruction / power on: registers to their reset values;
        filters and masks are unknown after reset (x in table 11-2)."""
        r = self.reg
        for i in range(128):
            r[i] = 0
        for a in list(range(0x00, 0x0C)) + list(range(0x10, 0x1C)) + list(range(0x20, 0x28)):
            r[a] = self.rng.byte()
        for a in (0x31, 0x32, 0x33, 0x34, 0x35, 0x41, 0x42, 0x43, 0x44, 0x45,
                  0x51, 0x52, 0x53, 0x54, 0x55):
            r[a] = self.rng.byte()
        r[CANSTAT] = MODE_CONFIG << 5
        r[CANCTRL] = 0x87
        self.tec = 0
        self.rec = 0
        self.bus_off = False
        self.recovery = 0       # occurrences of 11 recessive bits seen in bus-off
        self.idle_rem = 0
        self.resets += 1

    def mode(self):
        return self.reg[CANSTAT] >> 5

    def reject(self, why):
        self.rejected.append(why)

    def int_level(self):
        return 0 if self.reg[CANINTF] & self.reg[CANINTE] else 1

    def _pin(self):
        self.int_pin.update()

    # ---- SPI -----------------------------------------------------------------
    def select(self):
        self.selected = True
        self._ins = None
        self._n = 0

    def deselect(self):
        self.selected = False
        if self.dead:
            return
        ins = self._ins
        if ins is not None:
            self.transactions += 1
            if ins in (0x90, 0x92) and self._n > 1:
                self.reg[CANINTF] &= ~0x01
            elif ins in (0x94, 0x96) and self._n > 1:
                self.reg[CANINTF] &= ~0x02
        self._ins = None
        self._pin()

    def shift(self, b):
        """One byte in on MOSI, one byte out on MISO."""
        if self.dead:
            return 0xFF
        n = self._n
        self._n = n + 1
        if n == 0:
            self._ins = b
            if b == RESET:
                self.reset()
            elif b & 0xF8 == 0x80:  # RTS
                for i in range(3):
                    if b & (1 << i):
                        self._write(TXB[i], self.reg[TXB[i]] | 0x08, True)
            elif b in (0x03, 0x02, 0x05, 0xA0, 0xB0) or \
                    b in (0x90, 0x92, 0x94, 0x96) or 0x40 <= b <= 0x45:
                pass
            else:
                self.reject("unknown instruction 0x%02X" % b)
            return 0xFF
        ins = self._ins
        if ins == READ:
            if n == 1:
                self._addr = b & 0x7F
                return 0xFF
            v = self._read(self._addr)
            self._addr = (self._addr + 1) & 0x7F
            return v
        if ins == WRITE:
            if n == 1:
                self._addr = b & 0x7F
                return 0xFF
            self._write(self._addr, b)
            self._addr = (self._addr + 1) & 0x7F
            return 0xFF
        if ins == BIT_MODIFY:
            if n == 1:
                self._addr = _canon(b)
            elif n == 2:
                self._mask = b
            elif n == 3:
                a = self._addr
                m = self._mask if a in _BITMOD_OK else 0xFF
                self._write(a, (self._read(a, True) & ~m) | (b & m), True)
            return 0xFF
        if ins in (0x90, 0x92, 0x94, 0x96):
            if n == 1:
                self._addr = (0x61, 0x66, 0x71, 0x76)[(ins - 0x90) >> 1]
            v = self._read(self._addr)
            self._addr = (self._addr + 1) & 0x7F
            return v
        if 0x40 <= ins <= 0x45:
            if n == 1:
                self._addr = (0x31, 0x36, 0x41, 0x46, 0x51, 0x56)[ins - 0x40]
            self._write(self._addr, b)
            self._addr = (self._addr + 1) & 0x7F
            return 0xFF
        if ins == READ_STATUS:
            return self.read_status()
        if ins == RX_STATUS:
            return self.rx_status()
        return 0xFF

    def read_status(self):
        f = self.reg[CANINTF]
        t0, t1, t2 = (self.reg[a] & 0x08 for a in TXB)
        return ((f & 0x01) | (f & 0x02) | (0x04 if t0 else 0) | (0x08 if f & 0x04 else 0)
                | (0x10 if t1 else 0) | (0x20 if f & 0x08 else 0)
                | (0x40 if t2 else 0) | (0x80 if f & 0x10 else 0))

    def rx_status(self):
        f = self.reg[CANINTF] & 0x03
        if not f:
            return 0
        base = 0x60 if f & 0x01 else 0x70
        sidl = self.reg[base + 2]
        dlc = self.reg[base + 5]
        ext = 1 if sidl & 0x08 else 0
        rtr = (dlc & 0x40) if ext else (sidl & 0x10)
        typ = (ext << 1) | (1 if rtr else 0)
        if f & 0x01:
            hit = self.reg[0x60] & 0x01
        else:
            hit = self.reg[0x70] & 0x07
        return (f << 6) | (typ << 3) | hit

    # ---- registers -----------------------------------------------------------
    def _read(self, a, internal=False):
        a = _canon(a)
        if a == TEC:
            return min(self.tec, 255)
        if a == REC:
            return min(self.rec, 255)
        v = self.reg[a]
        if a == 0x60:
            v = (v & ~0x02) | (0x02 if v & 0x04 else 0)
        return v

    def _write(self, a, v, internal=False):
        a = _canon(a)
        r = self.reg
        v &= 0xFF
        if a == CANSTAT:
            self.reject("write to read-only CANSTAT")
            return
        if a == CANCTRL:
            r[a] = v
            if v & 0x10:  # ABAT: abort every pending transmission
                for t in TXB:
                    if r[t] & 0x08:
                        r[t] = (r[t] & ~0x08) | 0x40
            if not self.stuck_mode:
                want = v >> 5
                if want != self.mode():
                    r[CANSTAT] = (r[CANSTAT] & 0x1F) | (want << 5)
                    if want == MODE_LISTEN:  # "the error counters are reset and deactivated" (10.4)
                        self.tec = 0
                        self.rec = 0
            return
        if _config_only(a):
            if self.mode() != MODE_CONFIG:
                self.reject("write 0x%02X to config-only register 0x%02X outside configuration mode" % (v, a))
                return
            r[a] = v
            return
        if a in (0x1C, 0x1D):
            self.reject("write to read-only TEC/REC")
            return
        if a == EFLG:
            r[a] = (r[a] & 0x3F) | (v & 0xC0)
            return
        if a == CANINTE or a == CANINTF or a == 0x0C:
            r[a] = v
            return
        if a in TXB:
            r[a] = (r[a] & 0x70) | (v & 0x0B)
            return
        for t in TXB:
            if t < a < t + 0x0E:
                if r[t] & 0x08:
                    self.reject("write to TXB%d while TXREQ is set" % TXB.index(t))
                    return
                off = a - t
                if off == 2:
                    v &= 0xEB
                elif off == 5:
                    v &= 0x4F
                r[a] = v
                return
        if a == 0x60:
            r[a] = (r[a] & ~0x64) | (v & 0x64)
            return
        if a == 0x70:
            r[a] = (r[a] & ~0x60) | (v & 0x60)
            return
        if 0x61 <= a <= 0x6D or 0x71 <= a <= 0x7D:
            self.reject("write to receive buffer register 0x%02X" % a)
            return
        r[a] = v

    # ---- bit timing ----------------------------------------------------------
    def timing(self):
        """(bitrate or None when the CNF values break the rules, sample point
        per mille)."""
        c1, c2, c3 = self.reg[CNF1], self.reg[CNF2], self.reg[CNF3]
        brp = c1 & 0x3F
        sjw = (c1 >> 6) + 1
        prop = (c2 & 7) + 1
        ps1 = ((c2 >> 3) & 7) + 1
        ps2 = (c3 & 7) + 1 if c2 & 0x80 else max(ps1, 2)
        ntq = 1 + prop + ps1 + ps2
        if not (8 <= ntq <= 25) or ps2 < 2 or ps2 <= sjw or prop + ps1 < ps2:
            return None, 0
        den = 2 * (brp + 1) * ntq
        if self.osc_hz % den:
            return None, 0
        return self.osc_hz // den, 1000 * (1 + prop + ps1) // ntq

    def on_bus(self):
        """Takes part in bus traffic (receives; in normal mode also ACKs,
        transmits and flags errors)."""
        return self.bus is not None and not self.bus_off and self.mode() in (MODE_NORMAL, MODE_LISTEN)

    def rate(self):
        return self.timing()[0]

    def error_active(self):
        """Flags errors with an active (dominant) error flag: normal mode,
        both counters below 128 (ISO 11898-1). Listen-only sends no flags."""
        return self.mode() == MODE_NORMAL and self.tec <= 127 and self.rec <= 127

    def saw_error(self):
        """A frame seen with an error (a bit, stuff, form or CRC error: for a
        node at another bit rate, every frame): MERRF, and in normal mode REC
        + 1 (DS20001801 7.4, 6.0). In listen-only mode the counters stay 0."""
        self.reg[CANINTF] |= 0x80
        if self.mode() == MODE_NORMAL:
            self.rec += 1
        self.update_errors()

    # ---- frames --------------------------------------------------------------
    def pending_tx(self):
        """Buffer index the chip would send next: highest TXP, then highest
        buffer number (DS20001801 3.2)."""
        best = None
        for i in (2, 1, 0):
            c = self.reg[TXB[i]]
            if c & 0x08 and (best is None or (c & 3) > (self.reg[TXB[best]] & 3)):
                best = i
        return best

    def tx_frame(self, i):
        r = self.reg
        t = TXB[i]
        sidh, sidl, eid8, eid0, dlc = r[t + 1], r[t + 2], r[t + 3], r[t + 4], r[t + 5]
        sid = (sidh << 3) | (sidl >> 5)
        ext = bool(sidl & 0x08)
        if ext:
            fid = (sid << 18) | ((sidl & 3) << 16) | (eid8 << 8) | eid0
        else:
            fid = sid
        n = min(dlc & 0x0F, 8)
        rtr = bool(dlc & 0x40)
        data = bytes(r[t + 6:t + 6 + n]) if not rtr else b""
        return (fid, ext, rtr, dlc & 0x0F, data)

    def tx_done(self, i, ok):
        t = TXB[i]
        if ok:
            self.reg[t] &= ~0x18
            self.reg[CANINTF] |= (0x04, 0x08, 0x10)[i]
            self.sent += 1
        else:
            self.reg[t] |= 0x10
            if self.reg[CANCTRL] & 0x08:  # one-shot mode: no retry
                self.reg[t] &= ~0x08
        self._pin()

    def _match(self, frame, faddr, maddr):
        fid, ext, rtr, dlc, data = frame
        r = self.reg
        if bool(r[faddr + 1] & 0x08) != ext:
            return False
        fsid = (r[faddr] << 3) | (r[faddr + 1] >> 5)
        msid = (r[maddr] << 3) | (r[maddr + 1] >> 5)
        if ext:
            feid = ((r[faddr + 1] & 3) << 16) | (r[faddr + 2] << 8) | r[faddr + 3]
            meid = ((r[maddr + 1] & 3) << 16) | (r[maddr + 2] << 8) | r[maddr + 3]
            f = (fsid << 18) | feid
            m = (msid << 18) | meid
            return (fid ^ f) & m == 0
        if (fid ^ fsid) & msid:
            return False
        # standard frames: the EID8/EID0 bits of mask and filter apply to the
        # first two data bytes (DS20001801 4.5)
        d0 = data[0] if len(data) > 0 else 0
        d1 = data[1] if len(data) > 1 else 0
        return ((d0 ^ r[faddr + 2]) & r[maddr + 2]) == 0 and ((d1 ^ r[faddr + 3]) & r[maddr + 3]) == 0

    def _accept(self, frame, n):
        ctrl = self.reg[RXB[n]]
        rxm = (ctrl >> 5) & 3
        if rxm == 3:
            return 0 if n == 0 else 2
        if rxm in (1, 2):
            self.reject("RXM %d is reserved" % rxm)
        if n == 0:
            for k, fa in ((0, 0x00), (1, 0x04)):
                if self._match(frame, fa, 0x20):
                    return k
        else:
            for k, fa in ((2, 0x08), (3, 0x10), (4, 0x14), (5, 0x18)):
                if self._match(frame, fa, 0x24):
                    return k
        return None

    def _load(self, n, frame, hit):
        fid, ext, rtr, dlc, data = frame
        r = self.reg
        b = RXB[n]
        if ext:
            sid = fid >> 18
            r[b + 1] = sid >> 3
            r[b + 2] = ((sid & 7) << 5) | 0x08 | ((fid >> 16) & 3)
            r[b + 3] = (fid >> 8) & 0xFF
            r[b + 4] = fid & 0xFF
            r[b + 5] = (0x40 if rtr else 0) | dlc
        else:
            r[b + 1] = fid >> 3
            r[b + 2] = ((fid & 7) << 5) | (0x10 if rtr else 0)
            r[b + 3] = 0
            r[b + 4] = 0
            r[b + 5] = dlc
        for k in range(8):
            r[b + 6 + k] = data[k] if k < len(data) else 0
        if n == 0:
            r[b] = (r[b] & 0x64) | (0x08 if rtr else 0) | (hit & 1)
        else:
            r[b] = (r[b] & 0x60) | (0x08 if rtr else 0) | hit
        r[CANINTF] |= 1 << n

    def receive(self, frame):
        """A valid frame seen on the bus (or looped back)."""
        r = self.reg
        hit = self._accept(frame, 0)
        if hit is not None:
            if not r[CANINTF] & 0x01:
                self._load(0, frame, hit)
            elif r[0x60] & 0x04:  # BUKT: roll over into RXB1
                if not r[CANINTF] & 0x02:
                    self._load(1, frame, 6 + hit)
                else:
                    self._error_flag(0x80)
            else:
                self._error_flag(0x40)
        else:
            hit = self._accept(frame, 1)
            if hit is not None:
                if not r[CANINTF] & 0x02:
                    self._load(1, frame, hit)
                else:
                    self._error_flag(0x80)
        if self.rec > 127:
            self.rec = 127
        elif self.rec > 0:
            self.rec -= 1
        self.update_errors()
        self._pin()

    def _error_flag(self, bit):
        if not self.reg[EFLG] & bit:
            self.reg[EFLG] |= bit
        self.reg[CANINTF] |= 0x20

    def update_errors(self):
        """EFLG from TEC/REC; ERRIF on every newly set condition."""
        r = self.reg
        tec, rec = self.tec, self.rec
        if tec > 255 and not self.bus_off:
            self.bus_off = True
            self.recovery = 0
        flags = 0
        if tec >= 96:
            flags |= 0x04
        if rec >= 96:
            flags |= 0x02
        if flags:
            flags |= 0x01
        if tec > 127:
            flags |= 0x10
        if rec > 127:
            flags |= 0x08
        if self.bus_off:
            flags |= 0x20
        old = r[EFLG] & 0x3F
        if flags & ~old:
            r[CANINTF] |= 0x20
        r[EFLG] = (r[EFLG] & 0xC0) | flags
        self._pin()

    def recessive(self, occurrences):
        """Occurrences of 11 consecutive recessive bits seen while bus-off;
        128 of them end bus-off with both counters at 0."""
        if not self.bus_off:
            return
        self.recovery += occurrences
        if self.recovery >= 128:
            self.bus_off = False
            self.tec = 0
            self.rec = 0
            self.update_errors()

    def loopback_step(self):
        """In loopback mode the chip receives its own frames, no bus needed."""
        if self.mode() != MODE_LOOPBACK:
            return False
        i = self.pending_tx()
        if i is None:
            return False
        frame = self.tx_frame(i)
        self.tx_done(i, True)
        self.receive(frame)
        return True


def frame_bits(frame):
    fid, ext, rtr, dlc, data = frame
    return (67 if ext else 47) + 8 * len(data) + 3


def _arb_key(frame):
    fid, ext, rtr, dlc, data = frame
    if ext:
        return ((fid >> 18), 1, fid & 0x3FFFF, 1 if rtr else 0)
    return (fid, 0, 0, 1 if rtr else 0)


class Bus:
    """A CAN bus joining models, each at the bit rate its CNF registers give.
    step(bits) spends that many bit times: arbitration, transmission, ACK,
    error counting, bus-off recovery. A frame is sent at its sender's rate:
    the nodes at that rate receive it; a node at another rate sees an error
    (saw_error), and if it is error-active its error flag destroys the frame
    for everyone (error_frames; the sender's TEC + 8, retried). Nobody else in
    normal mode at the sender's rate: no ACK; an error-active sender's error
    flag then destroys the frame, an error-passive one's (recessive) leaves it
    valid for the listeners. foreign(frame) is a frame from a node outside
    the models at `bitrate`, acknowledged by it.
    `fault = "bit_error"` makes every transmission fail (a shorted bus or a
    broken transceiver), which is what drives a node to bus-off: a node alone
    on the bus only reaches error-passive (ACK errors of an error-passive
    transmitter do not count, ISO 11898-1)."""

    def __init__(self, bitrate=500000):
        self.bitrate = bitrate
        self.nodes = []
        self.fault = None
        self.log = []  # frames that went over the bus: (sender name, frame)
        self.error_frames = 0

    def foreign(self, frame):
        """(id, ext, rtr, dlc, data) sent by a node outside the models at
        self.bitrate; False when a model's error flag destroyed it."""
        return self._carry(None, self.bitrate, frame)

    def _carry(self, node, rate, fr):
        """The models other than node see frame fr at rate: True when it got
        through, False when an error flag destroyed it."""
        same = []
        destroyed = False
        for n in self.nodes:
            if n is node or not n.on_bus():
                continue
            if n.rate() == rate:
                same.append(n)
                continue
            flag = n.error_active()
            n.saw_error()
            destroyed = destroyed or flag
        if destroyed:
            self.error_frames += 1
            for n in same:
                n.saw_error()
            return False
        for n in same:
            n.receive(fr)
        return True

    def attach(self, chip):
        chip.bus = self
        self.nodes.append(chip)
        return chip

    def step(self, bits=20000, max_frames=1000):
        frames = 0
        while bits > 0 and frames < max_frames:
            for n in self.nodes:
                while n.loopback_step():
                    pass
            best = None
            for n in self.nodes:
                if n.mode() != MODE_NORMAL or n.bus_off or n.bus is None:
                    continue
                i = n.pending_tx()
                if i is None:
                    continue
                fr = n.tx_frame(i)
                k = _arb_key(fr)
                if best is None or k < best[0]:
                    best = (k, n, i, fr)
            if best is None:
                self.idle(bits)
                return frames
            _, node, i, fr = best
            cost = frame_bits(fr)
            frames += 1
            rate = node.rate()
            others = [n for n in self.nodes if n is not node and n.on_bus()]
            ackers = [n for n in others if n.mode() == MODE_NORMAL and n.rate() == rate]
            if rate is None or self.fault == "bit_error":
                node.tec += 8
                node.reg[CANINTF] |= 0x80
                for n in others:
                    n.saw_error()
                node.tx_done(i, False)
                cost += 20
            elif not ackers:
                # nobody acknowledges: an error-passive sender's flag is recessive
                passive = node.tec > 127
                if not passive:
                    node.tec += 8
                node.reg[CANINTF] |= 0x80
                if passive:
                    self._carry(node, rate, fr)
                else:
                    for n in others:
                        n.saw_error()
                node.tx_done(i, False)
                cost += 20
            elif not self._carry(node, rate, fr):
                node.tec += 8
                node.reg[CANINTF] |= 0x80
                node.tx_done(i, False)
                cost += 20
            else:
                if node.tec > 0:
                    node.tec -= 1
                node.tx_done(i, True)
                self.log.append((node.name, fr))
            node.update_errors()
            for n in self.nodes:
                if n.bus_off and n is not node:
                    n.recessive(1)
            bits -= cost
        return frames

    def idle(self, bits):
        """Bus idle for `bits` bit times (nothing pending anywhere). A faulty
        bus (fault set) shows no run of recessive bits: bus-off lasts."""
        if self.fault:
            return
        for n in self.nodes:
            n.recessive(bits // 11)
