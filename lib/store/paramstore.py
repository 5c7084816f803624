# Owns the parameter file: every value of bms.params stored under its stable
# id with a tag of its name (names carry their unit), so a firmware update
# loads only values whose meaning it knows:
#   - a parameter added since the file was written takes its default;
#   - one removed is dropped;
#   - one whose unit changed (its row renamed, e.g. _s -> _ms) is converted by
#     CONVERT[(id, old_name)] = (num, den), else it takes its default;
#   - a value out of range takes its default; a set that fails validate()
#     as a whole falls back to all defaults.
# Each such decision is reported as a (code, value) note the caller logs.
# restore_defaults() resets USER and ADMIN rows and keeps FACTORY rows
# (calibration, ratings, board options); counters and history are other files.
# load() and restore_defaults() (start, a command) are store.paramload's,
# loaded per call.
from defs.const import const
from defs import transient
from bms import params as P
from store import atomic

MAGIC = b"BMSP"
SCHEMA = const(1)  # file layout version; per-parameter meaning is carried by the name tags
FILE = "params.bin"

# (id, old name) -> (num, den): value_new = value_old * num // den. Add a row
# here whenever a parameter's unit changes (and rename the row in bms.params).
CONVERT = {}

# notes (event codes of kind store.eventlog.KIND_STORE, value in brackets)
N_PARAMS_DEFAULTS = const(1)  # no parameter file: defaults (0)
N_PARAMS_CORRUPT = const(2)  # every copy corrupt: defaults (0)
N_PARAMS_BACKUP = const(3)  # current copy bad, previous good copy used (seq)
N_PARAM_DROPPED = const(4)  # a stored id no longer exists (id)
N_PARAM_DEFAULT = const(5)  # a stored value with another meaning / out of range: default (id)
N_PARAM_CONVERTED = const(6)  # a stored value converted to the new unit (id)
N_PARAMS_INVALID = const(7)  # the loaded set fails validate(): defaults (0)
N_PARAMS_RESTORED = const(8)  # restore defaults by command (0)


class ParamStore:
    def __init__(self, fs, name=FILE, convert=None):
        self.file = atomic.AtomicFile(fs, name, MAGIC)
        self.convert = convert if convert is not None else CONVERT

    def records(self, values):
        r = P.rows()
        return atomic.Tagged(r.HASH, values, r.N)

    def save(self, params):
        """Write the running values (temp + rename). Returns bytes written."""
        return self.file.write(SCHEMA, self.records(params.v))

    def load(self, params):
        """Load the stored values into params (set_many: all or nothing).
        Returns (found, notes): found is False when there was no usable file
        (params keep their values); notes are (code, value) pairs. A file that
        needed any change is written back at once."""
        return transient("store.paramload").load(self, params)

    def restore_defaults(self, params):
        """USER and ADMIN rows back to their defaults, FACTORY rows and the
        installation's (bms.params.INSTALLATION) kept; saved. Raises
        ValueError (nothing changed) if the kept values do not validate
        against the defaults."""
        return transient("store.paramload").restore_defaults(self, params)
