# Owns the counters file: estimator state, lifetime counters and the lock-out
# states that must survive a reset, one i32 per field under a stable id and
# a tag of its name (same file format and migration rule as the parameter
# file, store.atomic). FIELDS is the fixed list; ids are never reused.
# Each field's owner fills it into the counters array (save(values)) and
# takes it back at start (restore(values)); app.persist calls them:
#   soc_ppm .. i_offset_ma   estimate (issue 4): soc_ppm is stored as -1 while
#                            the SOC is not valid and restored into
#                            PackState.soc_restore_ppm, which it starts from
#   lockout, latched_faults  protect: over-current lock-out bits (bms.protect.LOCK_*)
#                            and latched fault bits (defs.codes.FAULTS)
#   deep_discharge           persist: PackState.deep_discharge
#   uv_tries, sleep_reason   control: under-voltage wake-up tries, why it slept
#   boots                    persist: firmware starts
#   failed_starts            persist: starts in a row that did not run cleanly
#                            for START_OK_MS (the boot-loop guard, app.app)
from defs.const import const
from store import atomic

MAGIC = b"BMSC"
SCHEMA = const(1)
FILE = "counters.bin"

# (id, name, saved at once when it changes; else with the periodic save)
FIELDS = (
    (1, "soc_ppm", False),
    (2, "soc_full", True),
    (3, "fcc_mah", True),
    (4, "cycles", True),
    (5, "chg_ah", False),
    (6, "dsg_ah", False),
    (7, "chg_wh", False),
    (8, "dsg_wh", False),
    (9, "i_offset_ma", False),
    (10, "lockout", True),
    (11, "latched_faults", True),
    (12, "deep_discharge", True),
    (13, "uv_tries", True),
    (14, "sleep_reason", True),
    (15, "boots", True),
    (16, "failed_starts", True),
)
N = len(FIELDS)
SOC_PPM = const(0)
SOC_FULL = const(1)
FCC_MAH = const(2)
CYCLES = const(3)
CHG_AH = const(4)
DSG_AH = const(5)
CHG_WH = const(6)
DSG_WH = const(7)
I_OFFSET_MA = const(8)
LOCKOUT = const(9)
LATCHED_FAULTS = const(10)
DEEP_DISCHARGE = const(11)
UV_TRIES = const(12)
SLEEP_REASON = const(13)
BOOTS = const(14)
FAILED_STARTS = const(15)
CRITICAL = tuple(i for i in range(N) if FIELDS[i][2])


class CounterStore:
    def __init__(self, fs, name=FILE):
        self.file = atomic.AtomicFile(fs, name, MAGIC)
        self._hash = [atomic.name_hash(f[1]) for f in FIELDS]

    def save(self, values):
        return self.file.write(SCHEMA, [(FIELDS[i][0], self._hash[i], values[i]) for i in range(N)])

    def load(self, values):
        """Fill values (length N) from the file; fields not stored (or stored
        with another meaning) stay as they are. Returns the source
        (store.atomic.NONE/CUR/TMP/BAK/CORRUPT)."""
        src, schema, recs = self.file.read()
        if recs is None:
            return src
        for rid, h, v in recs:  # once at start: a search, not an id -> index dict kept for it
            for i in range(N):
                if FIELDS[i][0] == rid:
                    if h == self._hash[i]:
                        values[i] = v
                    break
        return src
