# Owns the TI BQ76952 16-series AFE on I2C: the transfer layer (CRC-8 on or
# off), direct commands, the subcommand / data-memory protocol, configuration
# for 16 cells, the hardware protections (second channel) from HwLimits, FET
# control, balancing, alerts and the low-power commands. Implements the
# defs.afe contract. read() and every call of the control step (set_fets,
# set_balance, read_alerts, clear_alerts) allocate nothing: they run under
# micropython.heap_lock().
#
# Sources (TI): BQ76952 Technical Reference Manual SLUUBY2B ("TRM"), datasheet
# SLUSE13; I2C CRC rule: application note SLUAA11B section 4; PROTOCOLS.md 4.
#
# Bus: a machine.I2C (or SoftI2C) object; the driver uses only
# readfrom_mem_into(addr, reg, buf) (register write, repeated start, read) and
# writeto_mem(addr, reg, buf), both present on every MicroPython port. They
# raise OSError on a NACK or timeout.
#
# Error policy: every transfer error (OSError from the bus, CRC mismatch,
# subcommand checksum/length mismatch, subcommand timeout, data-memory value not
# taken) is counted in comm_errors. read() then returns False with the snapshot
# untouched. set_fets / set_balance / clear_alerts return False and keep the
# command pending: read() sends it again first, so a lost FET command is
# retried every cycle until it goes through (a read with a pending command that
# still fails returns False). configure(), program_protections() and the other
# set-up calls raise Bq76952Error (an OSError) with the reason.
#
# The set-up (building the driver, the subcommand / data-memory protocol,
# configure, the protections, the identity and low-power commands) is in
# drivers.bq76952cfg, imported for each such call and dropped after it
# (drivers.once); the constants stay here.
from defs.const import const
from drivers import once

_WRAP = const(0x3FFFFFFF)  # event counters wrap below 2**30: small ints on the board

from defs.afe import Afe, ALERT_CUV, ALERT_COV, ALERT_OCC, ALERT_OCD, ALERT_SCD
from defs.snapshot import N_CELLS, N_TEMPS

ADDR = const(0x08)  # 7-bit I2C address (TRM 11.1: 0x10 write / 0x11 read, 8-bit)

# --- direct commands (TRM 12.1) ---
_SAFETY_ALERT_A = const(0x02)  # 0x02..0x07: alert/status A, B, C
_BATTERY_STATUS = const(0x12)  # 0x12, then cells 0x14 + 2(n-1), stack 0x34,
_CELL1 = const(0x14)  # pack 0x36, LD 0x38, CC2 0x3A: one 42-byte block
_ALARM_STATUS = const(0x62)  # latched, write 1 to clear
_INT_TEMP = const(0x68)  # 0x68..0x7A: internal, CFETOFF, DFETOFF, ALERT,
_FET_STATUS = const(0x7F)  # TS1, TS2, TS3, HDQ, DCHG, DDSG (0.1 K, I2)
SUBCMD = const(0x3E)
CHECKSUM = const(0x60)  # and 0x61: a subcommand's checksum and length

# temperature sources: the direct command of each pin (TRM 12.1)
INT = const(0x68)
CFETOFF = const(0x6A)
DFETOFF = const(0x6C)
ALERT = const(0x6E)
TS1 = const(0x70)
TS2 = const(0x72)
TS3 = const(0x74)
HDQ = const(0x76)
DCHG = const(0x78)
DDSG = const(0x7A)
# snapshot channels (defs.snapshot): 4 cell NTCs, 2 MOSFET NTCs, ambient. Default
# wiring: cells on TS1, TS3, HDQ, DCHG; MOSFETs on DDSG and CFETOFF; ambient =
# the die temperature. TS2 stays free (a thermistor on TS2 blocks SHUTDOWN,
# Power Config[SHUT_TS2]); DFETOFF and ALERT stay pins.
TEMPS_DEFAULT = (TS1, TS3, HDQ, DCHG, DDSG, CFETOFF, INT)

# --- subcommands (TRM 12.2; PROTOCOLS 4) ---
DEVICE_NUMBER = const(0x0001)
FW_VERSION = const(0x0002)
EXIT_DEEPSLEEP = const(0x000E)
DEEPSLEEP = const(0x000F)
SHUTDOWN = const(0x0010)
RESET = const(0x0012)
FET_ENABLE = const(0x0022)
MFG_STATUS = const(0x0057)
CB_ACTIVE_CELLS = const(0x0083)
SET_CFGUPDATE = const(0x0090)
EXIT_CFGUPDATE = const(0x0092)
ALL_FETS_OFF = const(0x0095)
ALL_FETS_ON = const(0x0096)
FET_CONTROL = const(0x0097)
SLEEP_ENABLE = const(0x0099)
SLEEP_DISABLE = const(0x009A)
# FET_CONTROL data byte (TRM 12.2, same layout as BQ76972 SLUUCW9): force off
PCHG_OFF = const(0x08)
CHG_OFF = const(0x04)
PDSG_OFF = const(0x02)
DSG_OFF = const(0x01)

# --- data memory (TRM 13, data memory summary) ---
DM_CC_GAIN = const(0x91A8)  # F4: 7.4768 / Rsense(mOhm) (TRM 4.12, 13.2.1)
DM_CAP_GAIN = const(0x91AC)  # F4: CC Gain * 298261.6178
DM_POWER_CONFIG = const(0x9234)  # H2, bit 12 SHUT_TS2
DM_CFETOFF_CONFIG = const(0x92FA)  # pin configs 0x92FA..0x9302 in the order of the
DM_TS1_CONFIG = const(0x92FD)  # temperature commands 0x6A..0x7A
DM_DA_CONFIG = const(0x9303)  # H1: USER_AMPS[1:0], USER_VOLTS_CV bit 2
DM_VCELL_MODE = const(0x9304)  # H2: one bit per cell input in use
DM_FET_OPTIONS = const(0x9308)  # H1
DM_ENABLED_PROT_A = const(0x9261)  # H1: b7 SCD, b6 OCD2, b5 OCD1, b4 OCC, b3 COV, b2 CUV
DM_CHG_FET_PROT_A = const(0x9265)  # H1: protections that open CHG (SCD, OCC, COV)
DM_DSG_FET_PROT_A = const(0x9269)  # H1: protections that open DSG (SCD, OCD2, OCD1, CUV)
DM_CUV_THRESHOLD = const(0x9275)  # U1, 50.6 mV, 20..90
DM_CUV_DELAY = const(0x9276)  # U2, 3.3 ms, 1..2047
DM_COV_THRESHOLD = const(0x9278)  # U1, 50.6 mV, 20..110
DM_COV_DELAY = const(0x9279)  # U2, 3.3 ms, 1..2047
DM_OCC_THRESHOLD = const(0x9280)  # U1, 2 mV across the shunt, 2..62
DM_OCC_DELAY = const(0x9281)  # U1, 3.3 ms, 1..127
DM_OCD1_THRESHOLD = const(0x9282)  # U1, 2 mV, 2..100
DM_OCD1_DELAY = const(0x9283)  # U1, 3.3 ms, 1..127
DM_SCD_THRESHOLD = const(0x9286)  # U1, enumerated (_SCD_5MV)
DM_SCD_DELAY = const(0x9287)  # U1, 15 us, 1..31

DA_CONFIG = const(0x06)  # 10 mA user-amps, 10 mV user-volts (PROTOCOLS 4; TRM 13.3.2)
USER_MA = const(10)
USER_MV = const(10)
FET_OPTIONS = const(0x2D)  # FET_INIT_OFF | FET_CTRL_EN | HOST_FET_EN | SFET (TRM 13.3.6.1)
PROT_A = const(0xBC)  # SCD | OCD1 | OCC | COV | CUV
CHG_FET_PROT_A = const(0x98)  # SCD | OCC | COV (TRM default, immediate turn-off)
DSG_FET_PROT_A = const(0xE4)  # SCD | OCD2 | OCD1 | CUV (TRM default)
# TS pin config (TRM 13.3.2, TSx Config): PIN_FXN = 3 (thermistor), OPT[5:4] = 00
# 18 kOhm pull-up, OPT[3:2] = 00 18K temperature model, OPT[1:0] measurement type
PIN_CELL_NTC = const(0x07)  # 01: used for cell temperature protections
PIN_REPORT_NTC = const(0x0B)  # 10: reported, not used for protections
PIN_FET_NTC = const(0x0F)  # 11: used for FET temperature protection

_POLL_US = const(200)  # between polls of a subcommand's completion

# CRC-8, polynomial x^8 + x^2 + x + 1 (0x07), initial value 0 (TRM 11.1): the
# table as a bytes constant (from ROMFS it stays in flash; test_bq76952 checks
# it against the polynomial)
_CRC_TABLE = const(
    b"\x00\x07\x0e\x09\x1c\x1b\x12\x15\x38\x3f\x36\x31\x24\x23\x2a\x2d"
    b"\x70\x77\x7e\x79\x6c\x6b\x62\x65\x48\x4f\x46\x41\x54\x53\x5a\x5d"
    b"\xe0\xe7\xee\xe9\xfc\xfb\xf2\xf5\xd8\xdf\xd6\xd1\xc4\xc3\xca\xcd"
    b"\x90\x97\x9e\x99\x8c\x8b\x82\x85\xa8\xaf\xa6\xa1\xb4\xb3\xba\xbd"
    b"\xc7\xc0\xc9\xce\xdb\xdc\xd5\xd2\xff\xf8\xf1\xf6\xe3\xe4\xed\xea"
    b"\xb7\xb0\xb9\xbe\xab\xac\xa5\xa2\x8f\x88\x81\x86\x93\x94\x9d\x9a"
    b"\x27\x20\x29\x2e\x3b\x3c\x35\x32\x1f\x18\x11\x16\x03\x04\x0d\x0a"
    b"\x57\x50\x59\x5e\x4b\x4c\x45\x42\x6f\x68\x61\x66\x73\x74\x7d\x7a"
    b"\x89\x8e\x87\x80\x95\x92\x9b\x9c\xb1\xb6\xbf\xb8\xad\xaa\xa3\xa4"
    b"\xf9\xfe\xf7\xf0\xe5\xe2\xeb\xec\xc1\xc6\xcf\xc8\xdd\xda\xd3\xd4"
    b"\x69\x6e\x67\x60\x75\x72\x7b\x7c\x51\x56\x5f\x58\x4d\x4a\x43\x44"
    b"\x19\x1e\x17\x10\x05\x02\x0b\x0c\x21\x26\x2f\x28\x3d\x3a\x33\x34"
    b"\x4e\x49\x40\x47\x52\x55\x5c\x5b\x76\x71\x78\x7f\x6a\x6d\x64\x63"
    b"\x3e\x39\x30\x37\x22\x25\x2c\x2b\x06\x01\x08\x0f\x1a\x1d\x14\x13"
    b"\xae\xa9\xa0\xa7\xb2\xb5\xbc\xbb\x96\x91\x98\x9f\x8a\x8d\x84\x83"
    b"\xde\xd9\xd0\xd7\xc2\xc5\xcc\xcb\xe6\xe1\xe8\xef\xfa\xfd\xf4\xf3")


def crc8(data, crc=0):
    t = _CRC_TABLE
    for b in data:
        crc = t[crc ^ b]
    return crc


TYPE_CHECKING = False
if TYPE_CHECKING:  # the type checker's names only; never runs on a board
    from typing import Any


class Bq76952Error(OSError):
    pass


# raised in the heap-locked read path: allocated once here
_CRC_ERR = Bq76952Error("CRC mismatch")


class BQ76952(Afe):
    # set by drivers.bq76952cfg.new (declared for the type checker, host_tests/test_typecheck.py;
    # MicroPython ignores annotations)
    _alerts: "Any"
    _aw: "Any"
    _bal_mask: "Any"
    _data: "Any"
    _fet_byte: "Any"
    _in: "Any"
    _pending: "Any"
    _raw: "Any"
    _rv: "Any"
    _sub: "Any"
    addr: "Any"
    comm_errors: "Any"
    crc: "Any"
    data_len: "Any"
    fet_status: "Any"
    i2c: "Any"
    ld_mv: "Any"
    n_cells: "Any"
    pchg_pin: "Any"
    poll_us: "Any"
    safety_status_a: "Any"
    shunt_uohm: "Any"
    temps: "Any"
    def __init__(self, i2c, addr=ADDR, crc=False, n_cells=N_CELLS, temps=TEMPS_DEFAULT,
                 shunt_uohm=250, poll_us=_POLL_US, pchg_pin=None):
        """i2c: a machine.I2C. crc: the chip's Comm Type uses CRC. n_cells: cell
        inputs in use (cells 1..n, Vcell mode). temps: for each snapshot
        temperature channel (4 cells, 2 MOSFET, ambient) the source (INT,
        TS1, ...). shunt_uohm: sense resistor in micro-ohm. pchg_pin: an MCU
        output (machine.Pin) driving the board's own pre-charge MOSFET; the
        host cannot command the chip's PDSG (it runs by itself before DSG)."""
        once("bq76952cfg", "new", self, i2c, addr, crc, n_cells, temps, shunt_uohm, poll_us, pchg_pin)

    # ---------------- transfer layer ----------------

    def _view(self, n):
        """self._raw[:n] (made once for the heap-locked lengths)."""
        v = self._rv.get(n)
        return v if v is not None else memoryview(self._raw)[:n]

    def _rd(self, reg, dst, n, off=0):
        """Read n bytes from reg into dst[off:off + n]; CRC checked. Raises OSError."""
        if not self.crc:
            self.i2c.readfrom_mem_into(self.addr, reg, self._view(n))
            raw = self._raw
            for i in range(n):
                dst[off + i] = raw[i]
            return
        self.i2c.readfrom_mem_into(self.addr, reg, self._view(2 * n))
        raw = self._raw
        t = _CRC_TABLE
        aw = self._aw
        # first byte: CRC over address+W, register, address+R, data (SLUAA11B 4)
        c = t[t[t[t[aw] ^ reg] ^ (aw | 1)] ^ raw[0]]
        if c != raw[1]:
            raise _CRC_ERR
        dst[off] = raw[0]
        for i in range(1, n):
            d = raw[2 * i]
            if t[d] != raw[2 * i + 1]:
                raise _CRC_ERR
            dst[off + i] = d

    def _wr(self, reg, src, n, off=0):
        """Write src[off:off + n] to reg (block write, auto-increment)."""
        raw = self._raw
        if not self.crc:
            for i in range(n):
                raw[i] = src[off + i]
            self.i2c.writeto_mem(self.addr, reg, self._view(n))
            return
        t = _CRC_TABLE
        d = src[off]
        raw[0] = d
        raw[1] = t[t[t[self._aw] ^ reg] ^ d]  # address+W, register, first byte
        for i in range(1, n):
            d = src[off + i]
            raw[2 * i] = d
            raw[2 * i + 1] = t[d]
        self.i2c.writeto_mem(self.addr, reg, self._view(2 * n))

    def _sub_write(self, code, n):
        """Send subcommand code with n data bytes already in self._sub[2:]:
        code and data to 0x3E.., then checksum and length to 0x60/0x61 (the
        chip executes when the length is written; TRM 3.1)."""
        s = self._sub
        s[0] = code & 0xFF
        s[1] = code >> 8
        self._wr(SUBCMD, s, n + 2)
        if n:
            tot = 0
            for i in range(n + 2):
                tot += s[i]
            s[34] = ~tot & 0xFF
            s[35] = n + 4
            self._wr(CHECKSUM, s, 2, 34)

    # ---------------- the read path (heap-locked) ----------------

    def read(self, snap):
        try:
            if self._pending:
                self._flush()
            b = self._in
            self._rd(_SAFETY_ALERT_A, b, 6)
            self._rd(_BATTERY_STATUS, b, 42, 6)
            self._rd(_INT_TEMP, b, 20, 48)
            self._rd(_FET_STATUS, b, 1, 68)
        except OSError:
            self.comm_errors = (self.comm_errors + 1) & _WRAP
            return False
        # all transfers good: decode into the snapshot (b[6:8]: Battery Status)
        for c in range(self.n_cells):
            i = 8 + 2 * c
            snap.cell_mv[c] = b[i] | b[i + 1] << 8
        snap.stack_mv = _s16(b, 40) * USER_MV
        snap.pack_mv = _s16(b, 42) * USER_MV
        self.ld_mv = _s16(b, 44) * USER_MV
        snap.current_ma = _s16(b, 46) * USER_MA  # + = charge (TRM 4.3)
        src = self.temps
        for ch in range(N_TEMPS):
            k = _s16(b, 48 + src[ch] - _INT_TEMP) - 2731  # 0.1 K -> deci-degC
            snap.temp_dc[ch] = k
        self.fet_status = b[68]
        sa = b[1]  # Safety Status A: protections that tripped
        self.safety_status_a = sa
        self._alerts |= sa & (ALERT_CUV | ALERT_COV | ALERT_OCC | ALERT_OCD | ALERT_SCD)
        return True

    def _flush(self):
        p = self._pending
        if p & 1:
            self._sub[2] = self._fet_byte
            self._sub_write(FET_CONTROL, 1)
            self._pending &= ~1
        if p & 2:
            m = self._bal_mask
            self._sub[2] = m & 0xFF
            self._sub[3] = m >> 8
            self._sub_write(CB_ACTIVE_CELLS, 2)
            self._pending &= ~2
        if p & 4:
            s = self._sub
            s[34] = 0
            s[35] = 0x40  # Alarm Status bit 14 SSA: Safety Status A changed
            self._wr(_ALARM_STATUS, s, 2, 34)
            self._pending &= ~4

    def _try_flush(self):
        try:
            self._flush()
            return True
        except OSError:
            self.comm_errors = (self.comm_errors + 1) & _WRAP
            return False

    def set_fets(self, chg, dsg, pchg):
        """FET_CONTROL: forces off the FETs not asked for; the chip still
        holds off any FET a protection blocks (autonomous FET control with
        FET_INIT_OFF: nothing conducts until the host allows it). pchg is the
        chip's PDSG (pre-discharge into the load) unless the board has its
        own pre-charge FET (pchg_pin): then pchg drives that pin, at once and
        before the I2C transfer (so it opens even when the bus fails), and the
        chip's PDSG stays forced off. False when the transfer failed (counted;
        sent again by the next read())."""
        v = 0
        p = self.pchg_pin
        if p is not None:
            p.value(1 if pchg else 0)
            pchg = False
        if not chg:
            v |= CHG_OFF | PCHG_OFF
        if not dsg:
            v |= DSG_OFF
        if not pchg:
            v |= PDSG_OFF
        self._fet_byte = v
        self._pending |= 1
        return self._try_flush()

    def set_balance(self, mask):
        """CB_ACTIVE_CELLS with a 16-bit mask (bit 0 = cell 1); 0 stops."""
        self._bal_mask = mask & ((1 << self.n_cells) - 1)
        self._pending |= 2
        return self._try_flush()

    def read_alerts(self):
        """Latched ALERT_* bits seen in Safety Status A by read()."""
        return self._alerts

    def clear_alerts(self, mask):
        """Forget the latched bits and clear the chip's SSA alarm flag. The
        chip recovers its own protections (TRM 5.2); a protection still
        active is latched again by the next read()."""
        self._alerts &= ~mask
        self._pending |= 4
        return self._try_flush()

    # ---------------- set-up (drivers.bq76952cfg, imported for the call) ----------------

    def configure(self, limits=None):
        """Set up the chip for this pack (in CONFIG_UPDATE mode): cell inputs,
        units, thermistor pins, sense resistor gain, host FET control, then the
        hardware protections from limits (a HwLimits) if given. Raises
        Bq76952Error, or ValueError before any write (see program_protections);
        the chip is left out of CONFIG_UPDATE either way."""
        once("bq76952cfg", "configure", self, limits)

    def program_protections(self, limits):
        """COV/CUV/OCC/OCD1/SCD thresholds and delays from a HwLimits, and
        enable them (Enabled Protections A). Raises Bq76952Error on a transfer
        error, ValueError (before any write) for a limit the chip cannot hold
        on the safe side (e.g. OCC under 4 mV across the shunt)."""
        once("bq76952cfg", "program_protections", self, limits)

    def all_fets_off(self):
        """ALL_FETS_OFF (recovery.mode.all_fets_off); Bq76952Error on a transfer error."""
        once("bq76952cfg", "all_fets_off", self)


def _s16(b, i):
    v = b[i] | b[i + 1] << 8
    return v - 0x10000 if v & 0x8000 else v
