# Owns the credential file: the 32-byte HMAC secret of each login level
# (bms.auth: 1 USER, 2 INSTALLER) and the owner's 32-byte Ed25519 public key
# that update bundles must be signed with (3, bms.auth.UPDATE_KEY: not a login
# level, provisioned the same way), as 8 words per level in the store.atomic
# layout (magic BMSK; id = level * 16 + word, value = the word as i32, tag of
# "secret<level>_<word>"). Written to .tmp and renamed like the other files,
# but the previous copy (.bak) is deleted once the new one is in place, and a
# read that would have to fall back to .bak is refused: after a change the old
# secret is revoked and must not come back because the current copy got
# damaged. A missing, damaged or partial level loads as "no secret" (that level
# refuses every login until commissioned again), with a note, never an error.
# Nothing here hands a secret to the host side: bms.auth keeps them.
from defs.const import const
import struct
from store import atomic

MAGIC = b"BMSK"
SCHEMA = const(1)
FILE = "cred.bin"
SECRET_LEN = const(32)
LEVELS = (1, 2, 3)
_WORDS = SECRET_LEN // 4

# load notes (event codes of kind store.eventlog.KIND_STORE; 1..8 paramstore,
# 20.. eventlog)
N_CRED_NONE = const(40)  # no credential file: not commissioned
N_CRED_CORRUPT = const(41)  # no valid copy (or only the revoked .bak): not commissioned (source)
N_CRED_PARTIAL = const(42)  # a level's words missing or mistagged: that level has no secret (level)


def _tag(level, w):
    return atomic.name_hash("secret%d_%d" % (level, w))


class CredStore:
    def __init__(self, fs, name=FILE):
        self.fs = fs
        self.name = name
        self.file = atomic.AtomicFile(fs, name, MAGIC)

    def load(self):
        """({level: 32-byte secret} for the levels that have one, notes)."""
        try:
            src, schema, recs = self.file.read()
        except OSError as e:  # the flash failed: as good as corrupt
            return {}, [(N_CRED_CORRUPT, e.args[0] if e.args else 0)]
        if src == atomic.NONE:
            return {}, [(N_CRED_NONE, 0)]
        if src == atomic.CORRUPT or src == atomic.BAK:
            return {}, [(N_CRED_CORRUPT, src)]
        if src == atomic.TMP:
            self._drop_bak()  # the read finished an interrupted save
        words = {}
        for rid, h, v in recs:
            words[rid] = (h, v)
        out = {}
        notes = []
        for lv in LEVELS:
            buf = bytearray(SECRET_LEN)
            n = 0
            for w in range(_WORDS):
                hv = words.get(lv * 16 + w)
                if hv is not None and hv[0] == _tag(lv, w):
                    struct.pack_into("<i", buf, 4 * w, hv[1])
                    n += 1
            if n == _WORDS:
                out[lv] = bytes(buf)
            elif n:
                notes.append((N_CRED_PARTIAL, lv))
        return out, notes

    def save(self, secrets):
        """Write {level: 32-byte secret} (levels absent have none) and drop
        the previous copy. Returns the bytes written."""
        recs = []
        for lv in LEVELS:
            s = secrets.get(lv)
            if s is None:
                continue
            if len(s) != SECRET_LEN:
                raise ValueError("secret must be %d bytes" % SECRET_LEN)
            for w in range(_WORDS):
                recs.append((lv * 16 + w, _tag(lv, w), struct.unpack_from("<i", s, 4 * w)[0]))
        n = self.file.write(SCHEMA, recs)
        self._drop_bak()
        return n

    def _drop_bak(self):
        if self.fs.size(self.name + ".bak") >= 0:
            self.fs.remove(self.name + ".bak")
