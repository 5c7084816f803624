# A register-level model of the TI BQ76952 as an I2C target, written from the
# technical reference manual (SLUUBY2B) and the CRC application note
# (SLUAA11B). It answers the calls of a machine.I2C (readfrom_mem_into,
# writeto_mem), so the driver gets it as its bus. It runs on CPython and in
# MicroPython (the heap-lock gate copies this source into the run), and its
# direct-command read path and its FET/balancing writes allocate nothing.
#
# Modelled: 7-bit address; CRC-8 (poly 0x07, init 0) on reads (first byte over
# address+W, register, address+R, data; then each byte alone) and writes
# (first byte over address+W, register, data; then each byte alone), a bad
# write CRC is NACKed (OSError EIO) and the write dropped; the direct commands
# from a pack state (cells mV; stack/pack/LD in user-volts and CC2 in user-amps
# per DA Configuration; temperatures in 0.1 K); subcommands through
# 0x3E/0x3F, 0x40 buffer, 0x60 checksum, 0x61 length: a write with a wrong
# checksum or length is ignored, as the chip does; reads answer 0xFF 0xFF at
# 0x3E/0x3F while busy; data memory 0x9180..0x93FF, writable only in
# CONFIG_UPDATE mode (otherwise ignored); Manufacturing Status FET_EN (FET
# test mode) and FET_ENABLE; host FET control (FET_CONTROL, ALL_FETS_ON/OFF,
# FET Options); CB_ACTIVE_CELLS; Safety Alert/Status A and Alarm Status
# (write 1 to clear); sleep, deep sleep (twice), shutdown (twice).
# Faults: crc_errors (next N reads get a wrong CRC), silent (every transfer
# raises OSError ETIMEDOUT), busy_polls (reads of 0x3E before completion).
import errno
import struct

# CRC-8 of one byte i: the remainder of i * x^8 divided by x^8 + x^2 + x + 1
# (0x107; SLUAA11B), by long division: not the driver's bitwise table, so the
# model checks the driver's CRC rather than repeating it
_CRC = bytearray(256)
for _i in range(256):
    _r = _i << 8
    for _bit in range(15, 7, -1):
        if _r >> _bit & 1:
            _r ^= 0x107 << (_bit - 8)
    _CRC[_i] = _r

DM_BASE = 0x9180
DM_END = 0x9400
DEVICE_NUMBER_VALUE = 0x7695

# data-memory defaults (TRM 13, data memory summary) that the model uses
_DM_DEFAULTS = (
    (0x9234, "<H", 0x2982),  # Power Config
    (0x9261, "<B", 0x88),  # Enabled Protections A: SCD, COV
    (0x9265, "<B", 0x98),  # CHG FET Protections A
    (0x9269, "<B", 0xE4),  # DSG FET Protections A
    (0x9275, "<B", 50),  # CUV threshold
    (0x9276, "<H", 74),  # CUV delay
    (0x9278, "<B", 86),  # COV threshold
    (0x9279, "<H", 74),  # COV delay
    (0x9280, "<B", 2),  # OCC threshold
    (0x9281, "<B", 4),  # OCC delay
    (0x9282, "<B", 4),  # OCD1 threshold
    (0x9283, "<B", 1),  # OCD1 delay
    (0x9286, "<B", 0),  # SCD threshold
    (0x9287, "<B", 2),  # SCD delay
    (0x92FD, "<B", 0x07),  # TS1 Config
    (0x92FF, "<B", 0x07),  # TS3 Config
    (0x9303, "<B", 0x05),  # DA Configuration: 1 mA, 10 mV
    (0x9304, "<H", 0x0000),  # Vcell Mode
    (0x9308, "<B", 0x0D),  # FET Options
    (0x9343, "<H", 0x0040),  # Mfg Status Init
)
_USER_AMPS_UA = (100, 1000, 10000, 100000)  # DA Config USER_AMPS: 0.1/1/10/100 mA
# subcommands that only set one flag (SLUUBY2B): EXIT_CFGUPDATE, ALL_FETS_OFF,
# SLEEP_ENABLE, SLEEP_DISABLE
_FLAG_SUBCOMMANDS = {0x0092: ("cfg_update", False), 0x0095: ("fet_off_all", True),
                     0x0099: ("sleep_allowed", True), 0x009A: ("sleep_allowed", False)}


class SimBQ76952:
    def __init__(self, addr=0x08, crc=False, busy_polls=1):
        self.addr = addr
        self.crc = crc
        self.busy_polls = busy_polls
        self.regs = bytearray(0x80)  # direct-command image
        self.dm = bytearray(DM_END - DM_BASE)
        for a, fmt, v in _DM_DEFAULTS:
            struct.pack_into(fmt, self.dm, a - DM_BASE, v)
        self.cfg_update = False
        self.mfg_status = 0x0040  # PF_EN; FET_EN = 0: FET test mode after reset
        self.sealed = False
        self.host_off = 0x0F  # FET_CONTROL bits; FET Options default allows FETs
        self.balance_mask = 0
        self.safety_status_a = self.safety_alert_a = self.alarm_status = 0
        self.sleep_allowed = True
        self.deep_sleep = False
        self.shutdown = False
        self._deep_count = self._shut_count = 0  # each takes its subcommand twice
        # subcommand interface
        self._code = 0
        self._busy = 0
        self._xfer = bytearray(32)
        self._xfer_written = 0
        self._chk = 0
        self._len = 0
        self._wdata = bytearray(80)
        # pack state
        self.cell_mv = [3300] * 16
        self.stack_mv = 52800
        self.pack_mv = 52800
        self.ld_mv = 52800
        self.current_ma = 0
        self.temp_dk = [2982] * 10  # 0x68 int, 0x6A CFETOFF ... 0x7A DDSG (0.1 K)
        # faults and counters
        self.silent = False
        self.crc_errors = 0
        self.nacks = 0  # writes NACKed for a bad CRC
        self.rejected = 0  # subcommand writes ignored (checksum/length)
        self.dm_rejected = 0  # data-memory writes outside CONFIG_UPDATE
        self.reads = 0
        self.writes = 0
        self._etimedout = OSError(errno.ETIMEDOUT)
        self._eio = OSError(errno.EIO)
        self._enodev = OSError(errno.ENODEV)
        self.fet_off_all = False
        self.render()

    # ---------------- model state ----------------

    def dm_get(self, addr, fmt):
        return struct.unpack_from(fmt, self.dm, addr - DM_BASE)[0]

    def fet_en(self):
        return bool(self.mfg_status & 0x10)

    def fets(self):
        """FET Status bits: b0 CHG, b1 PCHG, b2 DSG, b3 PDSG."""
        dm = self.dm
        opts = dm[0x9308 - DM_BASE]
        if not self.fet_en() or not opts & 0x08 or self.cfg_update or self.deep_sleep or self.shutdown \
                or self.fet_off_all:
            return 0
        host = self.host_off if opts & 0x04 else 0
        sa = self.safety_status_a
        chg_ok = not sa & dm[0x9265 - DM_BASE]
        dsg_ok = not sa & dm[0x9269 - DM_BASE]
        v = 0
        if chg_ok and not host & 0x04:
            v |= 0x01
        if chg_ok and not host & 0x08:
            v |= 0x02
        if dsg_ok and not host & 0x01:
            v |= 0x04
        if dsg_ok and not host & 0x02:
            v |= 0x08
        return v

    def trip(self, bits):
        """Protections of Safety Status A trip (b2 CUV ... b7 SCD), if enabled."""
        bits &= self.dm[0x9261 - DM_BASE]
        if bits:
            self.safety_status_a |= bits
            self.alarm_status |= 0x4000  # SSA
        self.render()

    def recover(self, bits):
        self.safety_status_a &= ~bits
        self.render()

    def render(self):
        """Direct-command image from the state."""
        r = self.regs
        r[0x02] = self.safety_alert_a
        r[0x03] = self.safety_status_a
        bs = 0x01 if self.cfg_update else 0
        if self.safety_status_a:
            bs |= 0x4000
        _put(r, 0x12, bs)
        mode = self.dm[0x9304 - DM_BASE] | self.dm[0x9305 - DM_BASE] << 8
        for c in range(16):
            _put(r, 0x14 + 2 * c, self.cell_mv[c] if mode & (1 << c) or mode == 0 else 0)
        da = self.dm[0x9303 - DM_BASE]
        uv = 10 if da & 0x04 else 1
        _put(r, 0x34, self.stack_mv // uv)
        _put(r, 0x36, self.pack_mv // uv)
        _put(r, 0x38, self.ld_mv // uv)
        ua = _USER_AMPS_UA[da & 3]
        i = self.current_ma * 1000  # uA, rounded to the nearest user-amp
        q = ((i if i >= 0 else -i) + ua // 2) // ua
        _put(r, 0x3A, q if i >= 0 else -q)
        _put(r, 0x62, self.alarm_status)
        for k in range(10):
            _put(r, 0x68 + 2 * k, self.temp_dk[k])
        r[0x7F] = self.fets()

    # ---------------- I2C target ----------------

    def readfrom_mem_into(self, addr, reg, buf):
        if self.silent:
            raise self._etimedout
        if addr != self.addr:
            raise self._enodev
        self.reads += 1
        n = len(buf)
        t = _CRC
        if not self.crc:
            for i in range(n):
                buf[i] = self._byte(reg + i)
            return
        aw = (addr << 1) & 0xFF
        for i in range(n // 2):
            d = self._byte(reg + i)
            buf[2 * i] = d
            if i == 0:
                c = t[t[t[t[aw] ^ reg] ^ (aw | 1)] ^ d]
                if self.crc_errors:
                    self.crc_errors -= 1
                    c ^= 0x5A
            else:
                c = t[d]
            buf[2 * i + 1] = c

    def _byte(self, a):
        if a == 0x3E or a == 0x3F:
            if self._busy:
                if a == 0x3F:
                    self._busy -= 1
                return 0xFF
            return self._code & 0xFF if a == 0x3E else self._code >> 8
        if 0x40 <= a < 0x60:
            return self._xfer[a - 0x40]
        if a == 0x60:
            return self._chk
        if a == 0x61:
            return self._len
        if a < 0x80:
            return self.regs[a]
        return 0

    def writeto_mem(self, addr, reg, buf):
        if self.silent:
            raise self._etimedout
        if addr != self.addr:
            raise self._enodev
        n = len(buf)
        w = self._wdata
        if self.crc:
            if n % 2:
                self.nacks += 1
                raise self._eio
            t = _CRC
            aw = (addr << 1) & 0xFF
            for i in range(n // 2):
                d = buf[2 * i]
                c = t[t[t[aw] ^ reg] ^ d] if i == 0 else t[d]
                if c != buf[2 * i + 1]:
                    self.nacks += 1  # the target NACKs the CRC and drops the write
                    raise self._eio
                w[i] = d
            n //= 2
        else:
            for i in range(n):
                w[i] = buf[i]
        self.writes += 1
        self._write(reg, n)
        self.render()

    def _write(self, reg, n):
        w = self._wdata
        end = reg + n
        if reg == 0x3E:
            # subcommand code (and data into the buffer from 0x40)
            if n < 2:
                return
            self._code = w[0] | w[1] << 8
            self._xfer_written = 0
            for i in range(2, n):
                if i - 2 < 32:
                    self._xfer[i - 2] = w[i]
                    self._xfer_written = i - 1
            if n == 2:
                self._execute(False)
            return
        if 0x40 <= reg < 0x60:
            for i in range(n):
                if reg - 0x40 + i < 32:
                    self._xfer[reg - 0x40 + i] = w[i]
                    if reg - 0x40 + i + 1 > self._xfer_written:
                        self._xfer_written = reg - 0x40 + i + 1
            return
        if reg == 0x60 and end >= 0x62:
            chk = w[0]
            ln = w[1]
            code = self._code
            nd = ln - 4
            tot = (code & 0xFF) + (code >> 8)
            ok = 0 <= nd <= 32 and nd == self._xfer_written
            if ok:
                for i in range(nd):
                    tot += self._xfer[i]
                ok = (~tot & 0xFF) == chk
            if not ok:
                self.rejected += 1
                return
            self._execute(True)
            return
        if reg == 0x62:
            clr = w[0] | (w[1] << 8 if n > 1 else 0)
            self.alarm_status &= ~clr

    def _respond(self, data_len):
        code = self._code
        tot = (code & 0xFF) + (code >> 8)
        for i in range(data_len):
            tot += self._xfer[i]
        self._chk = ~tot & 0xFF
        self._len = data_len + 4
        self._busy = self.busy_polls

    def _execute(self, with_data):
        code = self._code
        x = self._xfer
        nd = self._xfer_written if with_data else 0
        if DM_BASE <= code < DM_END:
            off = code - DM_BASE
            if with_data:
                if not self.cfg_update or self.sealed:
                    self.dm_rejected += 1
                else:
                    for i in range(nd):
                        if off + i < len(self.dm):
                            self.dm[off + i] = x[i]
                self._respond(0)
                return
            k = min(32, len(self.dm) - off)
            for i in range(k):
                x[i] = self.dm[off + i]
            self._respond(k)
            return
        if code == 0x0001:
            x[0] = DEVICE_NUMBER_VALUE & 0xFF
            x[1] = DEVICE_NUMBER_VALUE >> 8
            self._respond(2)
        elif code == 0x0057:
            x[0] = self.mfg_status & 0xFF
            x[1] = self.mfg_status >> 8
            self._respond(2)
        elif code == 0x0022:
            if not self.sealed:
                self.mfg_status ^= 0x10
            self._respond(0)
        elif code == 0x0090:
            if not self.sealed:
                self.cfg_update = True
            self._respond(0)
        elif code in _FLAG_SUBCOMMANDS:
            name, value = _FLAG_SUBCOMMANDS[code]
            setattr(self, name, value)
            self._respond(0)
        elif code == 0x0096:
            self.fet_off_all = False
            self.host_off = 0
            self._respond(0)
        elif code == 0x0097:
            if with_data and nd == 1:
                self.host_off = x[0] & 0x0F
            self._respond(nd)
        elif code == 0x0083:
            if with_data and nd == 2:
                self.balance_mask = x[0] | x[1] << 8
                self._respond(2)
            else:
                x[0] = self.balance_mask & 0xFF
                x[1] = self.balance_mask >> 8
                self._respond(2)
        elif code == 0x000F:
            self._deep_count += 1
            if self._deep_count >= 2:
                self.deep_sleep = True
            self._respond(0)
        elif code == 0x000E:
            self.deep_sleep = False
            self._deep_count = 0
            self._respond(0)
        elif code == 0x0010:
            self._shut_count += 1
            if self._shut_count >= 2:
                self.shutdown = True
            self._respond(0)
        else:
            self._respond(0)
        if code != 0x000F:
            self._deep_count = 0
        if code != 0x0010:
            self._shut_count = 0


def _put(r, a, v):
    v &= 0xFFFF
    r[a] = v & 0xFF
    r[a + 1] = v >> 8
