# Owns the host protocol's login (issue 13; ETSI EN 303 645 5.1, IEC 62443-4-2
# CR 1.5): the secrets of the two levels (from store.cred), challenge-response
# with HMAC-SHA-256, the sessions bound to their port, the idle timeout, the
# lock-out and the count of refusals. The host handler (app.host) calls it;
# a port is any small int the handler names (an RS485 port, a CAN source).
#   challenge(port, now_ms) -> 16-byte nonce (None while locked out)
#   login(port, level, mac, now_ms), mac = HMAC-SHA-256(secret of level,
#       nonce + bytes([level])); each nonce answers at most one login
#   level(port, now_ms), touch(port, now_ms), logout(port), refuse(port, reason)
#   set_secret(port, level, blob, now_ms): an installer session changes a
#       secret without sending it in clear (blob below); never readable back
#   provision(level, secret, present): commissioning and reset, physical
#       presence only (see provision)
#   tick(now_ms): expiry on the wrapping clock (allocation-free)
# No default secret exists: a level without one refuses every login.
# MicroPython has no hmac module: RFC 2104 over hashlib.sha256 below.
from defs.const import const
import hashlib
from array import array
from defs.ticks import ticks_diff
from bms import params as P

USER = const(1)  # read, buzzer
INSTALLER = const(2)  # parameters, calibration, control, clock, history clear
# not a login level: the owner's Ed25519 public key update bundles must be
# signed with (update.updater.for_board), kept beside the secrets and set
# only by provision() (physical presence), so no session can swap it
UPDATE_KEY = const(3)
NONCE_LEN = 16
MAC_LEN = const(32)
SECRET_LEN = const(32)
BLOB_LEN = 2 * SECRET_LEN
SLOTS = const(4)  # ports with a challenge or a session at the same time
CHALLENGE_MS = const(60000)  # a nonce not answered within this is void
# Brute force (ETSI EN 303 645 provision 5.1-5, IEC 62443-4-2 CR 1.11): after
# FAIL_MAX wrong answers in a row the pack answers no challenge for LOCK_MS;
# after a lock-out each further wrong answer locks again for twice as long,
# up to LOCK_MAX_MS, until a login succeeds. Counted for the whole pack, not
# per port: a CAN source address is a port, and an attacker has many.
FAIL_MAX = const(5)
LOCK_MS = const(30000)
LOCK_MAX_MS = const(960000)

# refusal reasons (auth.by_reason[reason] counts them; the host handler passes
# R_NO_SESSION or R_LEVEL for its own refusals)
R_NO_CREDENTIAL = const(1)  # the level has no secret (not commissioned)
R_BAD_MAC = const(2)  # wrong response
R_NO_CHALLENGE = const(3)  # no nonce outstanding on this port: replayed, expired or never asked
R_LOCKED = const(4)  # locked out after failures
R_BAD_LEVEL = const(5)  # no such level
R_NO_SESSION = const(6)  # a request needing a session on a port without one (or expired)
R_LEVEL = const(7)  # a session of too low a level
R_BUSY = const(8)  # every slot holds a live session
R_NO_RNG = const(9)  # the port has no random source: no nonce, no login
R_NOT_PRESENT = const(10)  # provisioning without physical presence
R_BAD_BLOB = const(11)  # a set_secret blob of the wrong size or with a wrong tag
R_STORE = const(12)  # the credential file could not be written: nothing changed
N_REASONS = const(13)

_BLOCK = const(64)  # SHA-256 block size (RFC 2104 "B")


def hmac_sha256(key, msg):
    """RFC 2104: H((K ^ opad) + H((K ^ ipad) + msg)), K padded to the block,
    a key longer than the block hashed first."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        k = key[i] if i < len(key) else 0
        ipad[i] = k ^ 0x36
        opad[i] = k ^ 0x5C
    h = hashlib.sha256(ipad)
    h.update(msg)
    inner = h.digest()
    h = hashlib.sha256(opad)
    h.update(inner)
    return h.digest()


def equal(a, b):
    """Compare without an early exit (the time does not tell how many bytes
    of a guess were right)."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


def _blob_keys(installer_secret, nonce, level, ct):
    """(pad, tag) of set_secret: pad = HMAC(K, 1 + nonce + level) masks the new
    secret, tag = HMAC(K, 2 + nonce + level + masked) authenticates it (encrypt
    then MAC); nonce is the one the installer's login answered, so a blob is
    good for that session only."""
    lv = bytes((level,))
    pad = hmac_sha256(installer_secret, b"\x01" + nonce + lv)
    tag = hmac_sha256(installer_secret, b"\x02" + nonce + lv + ct)
    return pad, tag


class Auth:
    def __init__(self, store, params, rng):
        """store: a store.cred.CredStore (None: secrets in RAM only); rng(n)
        -> n random bytes: the board passes os.urandom (its hardware random
        source; this module stays pure), None where the port has none: then
        every challenge is refused, never a guessable nonce."""
        self.store = store
        self.params = params
        self.rng = rng
        self.port = array("i", [-1] * SLOTS)
        self.lvl = bytearray(SLOTS)  # session level, 0 = none
        self.seen_ms = array("i", [0] * SLOTS)  # last request that used the session
        self.pending = bytearray(SLOTS)  # 1: a nonce is outstanding
        self.chal_ms = array("i", [0] * SLOTS)
        # slot i's nonce at [i * NONCE_LEN:], one buffer for all (fewer objects)
        self.nonce = bytearray(SLOTS * NONCE_LEN)
        self.snonce = bytearray(SLOTS * NONCE_LEN)  # the session's login nonce
        self.refused = 0
        self.by_reason = array("i", [0] * N_REASONS)
        self.last_reason = 0
        self.last_port = -1
        self.fails = 0  # wrong answers since the last success or lock-out
        self.lock_len_ms = LOCK_MS  # length of the next lock-out
        self.locked = False
        self.locked_ms = 0
        self._secret = {}
        self.notes = []
        self.load()

    def load(self):
        """Secrets from the store; notes (code, value) for the event log
        (store.cred.N_CRED_*: a missing or damaged file leaves the pack not
        commissioned)."""
        if self.store is not None:
            self._secret, self.notes = self.store.load()

    def has_secret(self, level):
        return level in self._secret

    def update_key(self):
        """The owner's update key provisioned at commissioning, None without one."""
        return self._secret.get(UPDATE_KEY)

    # ---- refusals and lock-out -------------------------------------------------
    def refuse(self, port, reason):
        self.refused += 1
        if 0 < reason < N_REASONS:
            self.by_reason[reason] += 1
        self.last_reason = reason
        self.last_port = port
        return False

    def _fail(self, port, reason, now_ms):
        self.fails += 1
        if self.fails >= FAIL_MAX:
            self.locked = True
            self.locked_ms = now_ms
            self.fails = FAIL_MAX - 1  # after this lock-out one more wrong answer locks again
        return self.refuse(port, reason)

    def _is_locked(self, now_ms):
        if self.locked:
            if ticks_diff(now_ms, self.locked_ms) < self.lock_len_ms:
                return True  # also a time before the lock-out (a stale now_ms): the safe side
            self._unlock()
        return False

    def _unlock(self):
        self.locked = False
        self.lock_len_ms = min(2 * self.lock_len_ms, LOCK_MAX_MS)

    def lock_remaining_ms(self, now_ms):
        return self.lock_len_ms - ticks_diff(now_ms, self.locked_ms) if self._is_locked(now_ms) else 0

    # ---- sessions ----------------------------------------------------------------
    def _slot(self, port):
        for i in range(SLOTS):
            if self.port[i] == port:
                return i
        return -1

    def _alive(self, i, now_ms):
        d = ticks_diff(now_ms, self.seen_ms[i])
        return self.lvl[i] and 0 <= d < self.params.v[P.AUTH_IDLE_MS]

    def _free(self, i):
        self.port[i] = -1
        self.lvl[i] = 0
        self.pending[i] = 0

    def challenge(self, port, now_ms):
        if self.rng is None:
            self.refuse(port, R_NO_RNG)
            return None
        if self._is_locked(now_ms):
            self.refuse(port, R_LOCKED)
            return None
        i = self._slot(port)
        if i < 0:
            best = -1
            for k in range(SLOTS):  # a free slot, else the oldest without a live session
                if self.port[k] == -1:
                    best = k
                    break
                if not self._alive(k, now_ms) and (
                        best < 0 or ticks_diff(self.chal_ms[best], self.chal_ms[k]) > 0):
                    best = k
            if best < 0:
                self.refuse(port, R_BUSY)
                return None
            i = best
            self._free(i)
            self.port[i] = port
        n = self.rng(NONCE_LEN)
        o = i * NONCE_LEN
        self.nonce[o:o + NONCE_LEN] = n
        self.pending[i] = 1
        self.chal_ms[i] = now_ms
        return bytes(n)

    def login(self, port, level, mac, now_ms):
        if self._is_locked(now_ms):
            return self.refuse(port, R_LOCKED)
        i = self._slot(port)
        if i < 0 or not self.pending[i]:
            return self.refuse(port, R_NO_CHALLENGE)
        self.pending[i] = 0  # the nonce is spent whatever follows
        self.lvl[i] = 0  # a new login replaces the port's session
        d = ticks_diff(now_ms, self.chal_ms[i])
        if not 0 <= d < CHALLENGE_MS:
            return self.refuse(port, R_NO_CHALLENGE)
        if level != USER and level != INSTALLER:
            return self.refuse(port, R_BAD_LEVEL)
        secret = self._secret.get(level)
        if secret is None:
            return self.refuse(port, R_NO_CREDENTIAL)
        o = i * NONCE_LEN
        want = hmac_sha256(secret, bytes(self.nonce[o:o + NONCE_LEN]) + bytes((level,)))
        if not equal(want, mac):
            return self._fail(port, R_BAD_MAC, now_ms)
        self.lvl[i] = level
        self.seen_ms[i] = now_ms
        self.snonce[o:o + NONCE_LEN] = self.nonce[o:o + NONCE_LEN]
        self.fails = 0
        self.lock_len_ms = LOCK_MS
        return True

    def level(self, port, now_ms):
        """The port's session level; 0 without one (an expired one ends here).
        Does not refresh the session: touch() does."""
        i = self._slot(port)
        if i < 0 or not self.lvl[i]:
            return 0
        if not self._alive(i, now_ms):
            self.lvl[i] = 0
            return 0
        return self.lvl[i]

    def touch(self, port, now_ms):
        i = self._slot(port)
        if i >= 0 and self._alive(i, now_ms):
            self.seen_ms[i] = now_ms

    def logout(self, port):
        i = self._slot(port)
        if i >= 0:
            self._free(i)

    def tick(self, now_ms):
        """Ends idle sessions, void nonces and a finished lock-out. The host
        handler calls it from its tick: level() alone could take a session idle
        for more than half the tick period (6.2 days) for a fresh one."""
        if any(self.lvl) or any(self.pending):
            for i in range(SLOTS):
                if self.lvl[i] and not self._alive(i, now_ms):
                    self.lvl[i] = 0
                if self.pending[i] and not 0 <= ticks_diff(now_ms, self.chal_ms[i]) < CHALLENGE_MS:
                    self.pending[i] = 0
        self._is_locked(now_ms)

    # ---- changing the secrets ------------------------------------------------------
    def _store(self, level, secret):
        """Save the secrets with level's replaced (None: removed); False when
        the file could not be written (the running secrets stay)."""
        new = {}
        for lv in self._secret:
            new[lv] = self._secret[lv]
        if secret is None:
            new.pop(level, None)
        else:
            new[level] = bytes(secret)
        if self.store is not None:
            try:
                self.store.save(new)
            except OSError:
                return False
        self._secret = new
        for i in range(SLOTS):  # sessions opened with the old secret end
            if self.lvl[i] == level:
                self.lvl[i] = 0
        return True

    def set_secret(self, port, level, blob, now_ms):
        """An installer session sets level's secret: blob = (new secret XOR
        pad) + tag, 64 bytes (_blob_keys; tools/authkit.py builds it). Ends the
        sessions of that level (the installer logs in again after changing
        the installer secret)."""
        lv = self.level(port, now_ms)
        if lv == 0:
            return self.refuse(port, R_NO_SESSION)
        if lv != INSTALLER:
            return self.refuse(port, R_LEVEL)
        if level != USER and level != INSTALLER:
            return self.refuse(port, R_BAD_LEVEL)
        if len(blob) != BLOB_LEN:
            return self.refuse(port, R_BAD_BLOB)
        i = self._slot(port)
        ct = bytes(blob[:SECRET_LEN])
        o = i * NONCE_LEN
        pad, tag = _blob_keys(self._secret[INSTALLER], bytes(self.snonce[o:o + NONCE_LEN]), level, ct)
        if not equal(tag, blob[SECRET_LEN:]):
            return self._fail(port, R_BAD_BLOB, now_ms)
        self.touch(port, now_ms)
        new = bytearray(SECRET_LEN)
        for k in range(SECRET_LEN):
            new[k] = ct[k] ^ pad[k]
        if not self._store(level, new):
            return self.refuse(port, R_STORE)
        return True

    def provision(self, level, secret, present):
        """Commissioning and reset of a level's secret (None removes it; level
        UPDATE_KEY: the owner's update key), in clear, so only with physical presence: present is true only while the
        forced-update jumper was fitted at boot and the button is held now
        (board.jumper.fitted and board.button.pressed()). Both sit inside the
        enclosure, so nobody on a bus can do it, and a jumper left fitted stops
        the pack working (main.py does not start the firmware), so it is
        noticed. Clears the lock-out."""
        if not present:
            return self.refuse(-1, R_NOT_PRESENT)
        if level != USER and level != INSTALLER and level != UPDATE_KEY:
            return self.refuse(-1, R_BAD_LEVEL)
        if secret is not None and len(secret) != SECRET_LEN:
            return self.refuse(-1, R_BAD_BLOB)
        if not self._store(level, secret):
            return self.refuse(-1, R_STORE)
        self.fails = 0
        self.locked = False
        self.lock_len_ms = LOCK_MS
        return True
