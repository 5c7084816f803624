# Owns the counters file: estimator state, lifetime counters and the lock-out
# states that must survive a reset, one i32 per field under a stable id and
# a tag of its name (same file format and migration rule as the parameter
# file, store.atomic). NAMES is the fixed list; ids are never reused.
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

# the fields by index (NAMES.split()); a field's id in the file is its index
# + 1 (ids are never reused: a retired field keeps its place, renamed). Names
# carry their unit and give the record its tag: _TAGS holds each one's
# atomic.name_hash ('<H'; test_counters checks it against NAMES), so the
# board keeps no table of them.
NAMES = ("soc_ppm soc_full fcc_mah cycles chg_ah dsg_ah chg_wh dsg_wh i_offset_ma"
         " lockout latched_faults deep_discharge uv_tries sleep_reason boots failed_starts")
N = const(16)
_TAGS = const(b"\x6d\xb6\x44\x5b\xc3\x22\x24\x8b\x60\xf5\x4b\x63\xb7\x40\x9c\xd6"
              b"\x32\xc7\x74\x8d\xfe\xd5\x8f\x20\x7d\x7e\x2a\xbb\x0c\x24\x9d\x55")
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
# saved at once when they change (the others with the periodic save): bit i for field i
CRITICAL = const(1 << SOC_FULL | 1 << FCC_MAH | 1 << CYCLES | 1 << LOCKOUT | 1 << LATCHED_FAULTS
                 | 1 << DEEP_DISCHARGE | 1 << UV_TRIES | 1 << SLEEP_REASON | 1 << BOOTS | 1 << FAILED_STARTS)


class CounterStore:
    def __init__(self, fs, name=FILE):
        self.file = atomic.AtomicFile(fs, name, MAGIC)

    def save(self, values):
        return self.file.write(SCHEMA, atomic.Tagged(_TAGS, values, N))

    def load(self, values):
        """Fill values (length N) from the file; fields not stored (or stored
        with another meaning) stay as they are. Returns the source
        (store.atomic.NONE/CUR/TMP/BAK/CORRUPT)."""
        src, schema, recs = self.file.read()
        if recs is None:
            return src
        for rid, h, v in recs:
            i = rid - 1
            if 0 <= i < N and h == atomic.tag(_TAGS, i):
                values[i] = v
        return src
