# Owns the BQ76952 driver's set-up (drivers.bq76952 is the driver): building
# it, the subcommand / data-memory protocol, configuration for 16 cells, the
# hardware protections from HwLimits and their conversion into the chip's
# codes, FET test mode, the identity and low-power commands. Imported only for
# those calls and dropped after each (drivers.once: BQ76952.configure,
# program_protections, all_fets_off; tests and bring-up call these functions
# with the driver): its bytecode is not on the heap while the pack runs.
# Errors as in drivers.bq76952: Bq76952Error (an OSError) with the reason,
# ValueError for a limit the chip cannot hold.
import struct
import time

from defs.const import const
from defs.snapshot import N_TEMPS
from drivers.bq76952 import (
    Bq76952Error, SUBCMD, CHECKSUM, PCHG_OFF, CHG_OFF, PDSG_OFF, DSG_OFF,
    INT, CFETOFF, TS2, DEVICE_NUMBER, EXIT_DEEPSLEEP, DEEPSLEEP, SHUTDOWN, FET_ENABLE, MFG_STATUS,
    SET_CFGUPDATE, EXIT_CFGUPDATE, ALL_FETS_OFF, SLEEP_ENABLE, SLEEP_DISABLE,
    DM_CC_GAIN, DM_CAP_GAIN, DM_POWER_CONFIG, DM_CFETOFF_CONFIG, DM_DA_CONFIG, DM_VCELL_MODE,
    DM_FET_OPTIONS, DM_ENABLED_PROT_A, DM_CHG_FET_PROT_A, DM_DSG_FET_PROT_A, DM_CUV_THRESHOLD,
    DM_CUV_DELAY, DM_COV_THRESHOLD, DM_COV_DELAY, DM_OCC_THRESHOLD, DM_OCC_DELAY, DM_OCD1_THRESHOLD,
    DM_OCD1_DELAY, DM_SCD_THRESHOLD, DM_SCD_DELAY, DA_CONFIG, FET_OPTIONS, PROT_A, CHG_FET_PROT_A,
    DSG_FET_PROT_A, PIN_CELL_NTC, PIN_REPORT_NTC, PIN_FET_NTC)

_WRAP = const(0x3FFFFFFF)  # event counters wrap below 2**30: small ints on the board
_sleep_us = getattr(time, "sleep_us", None)  # MicroPython; CPython: time.sleep

_XFER = const(0x40)
_MFG_FET_EN = const(0x10)  # Manufacturing Status bit 4: 0 = FET test mode
_TIMEOUT_POLLS = const(50)  # subcommand completion: polls of 0x3E/0x3F

# COV/CUV threshold unit: 50.6 mV (TRM 13.6.1/13.6.2); SCD thresholds by
# setting 0..15 (TRM 13.6.7: 10, 20, 40, 60, 80, 100, 125, 150, 175, 200, 250,
# 300, 350, 400, 450, 500 mV), in 5 mV
_SCD_5MV = const(b"\x02\x04\x08\x0c\x10\x14\x19\x1e\x23\x28\x32\x3c\x46\x50\x5a\x64")


def new(self, i2c, addr, crc, n_cells, temps, shunt_uohm, poll_us, pchg_pin):
    """BQ76952.__init__."""
    if len(temps) != N_TEMPS:
        raise ValueError("temps: %d sources needed" % N_TEMPS)
    self.i2c = i2c
    self.addr = addr
    self.crc = bool(crc)
    self.n_cells = n_cells
    self.temps = tuple(temps)
    self.shunt_uohm = shunt_uohm
    self.poll_us = poll_us
    self.pchg_pin = pchg_pin
    if pchg_pin is not None:
        pchg_pin.value(0)
    self.comm_errors = 0
    self.fet_status = 0  # last FET Status (0x7F): b0 CHG, b1 PCHG, b2 DSG, b3 PDSG
    self.safety_status_a = 0
    self.ld_mv = 0
    self._alerts = 0  # latched ALERT_* bits
    self._pending = 0  # 1 FET_CONTROL, 2 CB_ACTIVE_CELLS, 4 alarm clear
    self._fet_byte = PCHG_OFF | CHG_OFF | PDSG_OFF | DSG_OFF
    self._bal_mask = 0
    # CRC seed of a transfer's first byte: address+W (a read's: then
    # register, address+R)
    self._aw = (addr << 1) & 0xFF
    # scratch buffers, allocated once; views of _raw: _view()
    self._raw = bytearray(96)  # bytes on the wire (data, with CRCs if on)
    w = 2 if self.crc else 1  # with CRC on, each data byte is followed by its CRC
    mv = memoryview(self._raw)
    # the data bytes of the heap-locked transfers (read(), _flush()): their
    # views are made once; the set-up's other lengths slice (allocate) each time
    self._rv = {w * n: mv[:w * n] for n in (1, 2, 3, 4, 6, 20, 42)}
    # read(): Safety Alert/Status A..C [0:6], 0x12..0x3B [6:48], temperatures
    # 0x68..0x7B [48:68], FET Status [68]
    self._in = bytearray(69)
    # subcommand: code lo, hi, data <= 32 [0:34]; checksum and length [34:36]
    self._sub = bytearray(36)
    self._data = bytearray(32)  # last subcommand response
    self.data_len = 0


# --- conversions from our units to the chip's, rounded to the safe side ---
# (thresholds that trip on "above": down; on "below": up; delays: down)

def cov_code(mv):
    """COV threshold: trips above code*50.6 mV; rounded down (earlier trip)."""
    return _over(mv * 10 // 506, 20, 110, "COV")


def cuv_code(mv):
    """CUV threshold: trips below code*50.6 mV; rounded up (earlier trip)."""
    v = -(-mv * 10 // 506)
    if v > 90:
        raise ValueError("CUV %d mV above the chip's range" % mv)
    return _clamp(v, 20, 90)


def ms_delay_code(ms, hi):
    """COV/CUV/OCC/OCD1 delay: (code + 2) * 3.3 ms (a 6.6 ms offset; TRM
    13.6: 'setting of 1 gives 10 ms'); rounded down, 1..hi."""
    return _clamp(ms * 10 // 33 - 2, 1, hi)


def shunt_code(ma, shunt_uohm, hi):
    """OCC/OCD1 threshold in 2 mV across the shunt; rounded down."""
    # ma * uohm = nV; / 2_000_000 -> 2 mV steps
    return _over((ma * shunt_uohm) // 2000000, 2, hi, "OCC/OCD")


def scd_code(ma, shunt_uohm):
    """SCD threshold: the largest setting at or below the target (lower trip
    current)."""
    uv = ma * shunt_uohm // 1000  # uV across the shunt
    t = _SCD_5MV
    if uv < t[0] * 5000:
        raise ValueError("SCD %d mA below the chip's lowest level" % ma)
    code = 0
    for k in range(len(t)):
        if t[k] * 5000 <= uv:
            code = k
    return code


def scd_delay_code(us):
    """SCD delay: (code - 1) * 15 us, 1 = no delay; rounded down, 1..31."""
    return _clamp(us // 15 + 1, 1, 31)


def _over(v, lo, hi, name):
    """An over-limit code: above the chip's range -> its highest (trips
    earlier); below it the chip cannot protect as asked: ValueError."""
    if v < lo:
        raise ValueError("%s threshold below the chip's range" % name)
    return hi if v > hi else v


def _clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def _wait(self, code):
    """Poll 0x3E/0x3F until the chip reads back code (0xFF 0xFF while
    busy); then length and checksum are checked and the data copied to
    self._data[:self.data_len]."""
    two = self._sub  # [34:36]
    for _ in range(_TIMEOUT_POLLS):
        self._rd(SUBCMD, two, 2, 34)
        if two[34] == code & 0xFF and two[35] == code >> 8:
            break
        if _sleep_us is not None:
            _sleep_us(self.poll_us)
        else:
            time.sleep(self.poll_us / 1000000)
    else:
        raise Bq76952Error("subcommand 0x%04x timed out" % code)
    self._rd(CHECKSUM, two, 2, 34)
    n = two[35] - 4
    if n < 0 or n > 32:
        raise Bq76952Error("subcommand 0x%04x: length %d" % (code, two[35]))
    if n:
        self._rd(_XFER, self._data, n)
    tot = (code & 0xFF) + (code >> 8)
    for i in range(n):
        tot += self._data[i]
    if ~tot & 0xFF != two[34]:
        raise Bq76952Error("subcommand 0x%04x: checksum" % code)
    self.data_len = n


def _guard(self, fn, *args):
    try:
        return fn(*args)
    except OSError as e:
        self.comm_errors = (self.comm_errors + 1) & _WRAP
        if isinstance(e, Bq76952Error):
            raise
        raise Bq76952Error("I2C: %s" % e)


def command(self, code):
    """A command-only subcommand (e.g. SLEEP_ENABLE), completion awaited."""
    def run():
        self._sub_write(code, 0)
        _wait(self, code)
    _guard(self, run)


def subcommand_read(self, code):
    """Bytes returned by a read subcommand (DEVICE_NUMBER, MFG_STATUS...)."""
    def run():
        self._sub_write(code, 0)
        _wait(self, code)
        return bytes(self._data[:self.data_len])
    return _guard(self, run)


def dm_read(self, addr, fmt):
    """Data-memory value at addr, struct format fmt ('<B', '<H', '<f')."""
    raw = subcommand_read(self, addr)
    return struct.unpack_from(fmt, raw)[0]


def dm_write(self, addr, fmt, value):
    """Write a data-memory value (CONFIG_UPDATE mode must be on) and read it
    back: the chip silently drops a write with a bad checksum or length,
    or outside CONFIG_UPDATE, so only the read-back proves it."""
    data = struct.pack(fmt, value)
    def run():
        n = len(data)
        self._sub[2:2 + n] = data
        self._sub_write(addr, n)
        self._sub_write(addr, 0)
        _wait(self, addr)
        if self.data_len < n or bytes(self._data[:n]) != data:
            raise Bq76952Error("data memory 0x%04x not written" % addr)
    _guard(self, run)


def device_number(self):
    """0x7695 on a BQ76952 (the bring-up check)."""
    return struct.unpack_from("<H", subcommand_read(self, DEVICE_NUMBER))[0]


def mfg_status(self):
    return struct.unpack_from("<H", subcommand_read(self, MFG_STATUS))[0]


def configure(self, limits=None):
    """BQ76952.configure."""
    if limits is not None:
        protection_codes(self, limits)
    command(self, SET_CFGUPDATE)
    try:
        dm_write(self, DM_VCELL_MODE, "<H", (1 << self.n_cells) - 1)
        dm_write(self, DM_DA_CONFIG, "<B", DA_CONFIG)
        cells = self.temps[:4]
        fets = self.temps[4:6]
        for ch, src in enumerate(self.temps):
            if src == INT:
                continue
            kind = PIN_CELL_NTC if src in cells else PIN_FET_NTC if src in fets else PIN_REPORT_NTC
            dm_write(self, DM_CFETOFF_CONFIG + (src - CFETOFF) // 2, "<B", kind)
        if TS2 in self.temps:
            pc = dm_read(self, DM_POWER_CONFIG, "<H")
            dm_write(self, DM_POWER_CONFIG, "<H", pc | 0x1000)  # SHUT_TS2
        # CC Gain = 7.4768 / Rsense[mOhm], Capacity Gain = CC Gain * 298261.6178 (TRM 4.12)
        g = 7.4768 * 1000 / self.shunt_uohm
        dm_write(self, DM_CC_GAIN, "<f", g)
        dm_write(self, DM_CAP_GAIN, "<f", g * 298261.6178)
        dm_write(self, DM_FET_OPTIONS, "<B", FET_OPTIONS)
        if limits is not None:
            _write_protections(self, limits)
    finally:
        command(self, EXIT_CFGUPDATE)
    enable_fet_control(self)


def program_protections(self, limits):
    """BQ76952.program_protections."""
    protection_codes(self, limits)
    command(self, SET_CFGUPDATE)
    try:
        _write_protections(self, limits)
    finally:
        command(self, EXIT_CFGUPDATE)


def protection_codes(self, lim):
    """The data-memory values for a HwLimits: {address: (fmt, value)}."""
    u = self.shunt_uohm
    return {
        DM_COV_THRESHOLD: ("<B", cov_code(lim.cov_mv)),
        DM_COV_DELAY: ("<H", ms_delay_code(lim.cov_delay_ms, 2047)),
        DM_CUV_THRESHOLD: ("<B", cuv_code(lim.cuv_mv)),
        DM_CUV_DELAY: ("<H", ms_delay_code(lim.cuv_delay_ms, 2047)),
        DM_OCC_THRESHOLD: ("<B", shunt_code(lim.occ_ma, u, 62)),
        DM_OCC_DELAY: ("<B", ms_delay_code(lim.occ_delay_ms, 127)),
        DM_OCD1_THRESHOLD: ("<B", shunt_code(lim.ocd_ma, u, 100)),
        DM_OCD1_DELAY: ("<B", ms_delay_code(lim.ocd_delay_ms, 127)),
        DM_SCD_THRESHOLD: ("<B", scd_code(lim.scd_ma, u)),
        DM_SCD_DELAY: ("<B", scd_delay_code(lim.scd_delay_us)),
        DM_CHG_FET_PROT_A: ("<B", CHG_FET_PROT_A),
        DM_DSG_FET_PROT_A: ("<B", DSG_FET_PROT_A),
        DM_ENABLED_PROT_A: ("<B", PROT_A),
    }


def _write_protections(self, lim):
    codes = protection_codes(self, lim)
    for addr in sorted(codes):
        fmt, v = codes[addr]
        dm_write(self, addr, fmt, v)


def enable_fet_control(self):
    """Leave FET test mode: FET_ENABLE toggles Manufacturing Status[FET_EN],
    so it is sent only when FET_EN reads 0, then checked (TRM 12.2)."""
    if not mfg_status(self) & _MFG_FET_EN:
        command(self, FET_ENABLE)
        if not mfg_status(self) & _MFG_FET_EN:
            raise Bq76952Error("FET_EN still off")


def all_fets_off(self):
    command(self, ALL_FETS_OFF)


def sleep_enable(self, on=True):
    command(self, SLEEP_ENABLE if on else SLEEP_DISABLE)


def deep_sleep(self):
    """DEEPSLEEP must be sent twice within 4 s (TRM 12.2)."""
    command(self, DEEPSLEEP)
    command(self, DEEPSLEEP)


def exit_deep_sleep(self):
    command(self, EXIT_DEEPSLEEP)


def shutdown(self):
    """SHUTDOWN twice: sealed it needs both, unsealed the delays are skipped."""
    command(self, SHUTDOWN)
    command(self, SHUTDOWN)
