# The host protocol's login (bms.auth, store.cred, tools.authkit; issue 13,
# ETSI EN 303 645 5.1, IEC 62443-4-2 CR 1.5): HMAC-SHA-256 against RFC 4231
# and CPython's hmac; the negative set (each refused and counted); the
# credential file across power cuts and corruption; the same on the 32-bit
# MicroPython with a heap cap.
import hashlib
import hmac
import os
import random
import textwrap

import pytest
from hypothesis import given, strategies as st

import simflash
from simflash import PowerCut, SimFlash
from bms import auth as A
from bms import params as P
from bms.params import Params
from store import cred as C
from store.memfs import MemFs
from tools import authkit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# RFC 4231 section 4 (HMAC-SHA-256 rows): key, data, expected (case 5 is
# truncated to 128 bits)
RFC4231 = [
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\x0c" * 20, b"Test With Truncation", "a3b6167473100ee06e0c796c2955552b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than "
     b"block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]

USER_S = bytes(range(32))
INST_S = bytes(range(100, 132))
PORT = 3  # e.g. the master's Link IN
OTHER = 0x47  # e.g. a CAN source address


@pytest.mark.parametrize("case", range(len(RFC4231)), ids=["case%d" % (i + 1) for i in range(len(RFC4231))])
def test_hmac_matches_rfc4231(case):
    key, data, want = RFC4231[case]
    assert A.hmac_sha256(key, data).hex()[:len(want)] == want


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_matches_cpython_hmac(key, msg):
    assert A.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_equal_compares_every_byte():
    assert A.equal(b"abc", b"abc") and A.equal(bytearray(b"ab"), b"ab")
    assert not A.equal(b"abc", b"abd") and not A.equal(b"abc", b"ab") and not A.equal(b"\x01" + b"a" * 31, b"a" * 32)


class Rng:
    """Deterministic bytes (the board passes os.urandom)."""

    def __init__(self, seed=1):
        self.r = random.Random(seed)
        self.calls = 0

    def __call__(self, n):
        self.calls += 1
        return self.r.randbytes(n)


def make(fs=None, secrets=None, params=None):
    fs = fs if fs is not None else MemFs()
    if secrets:
        C.CredStore(fs).save(secrets)
    a = A.Auth(C.CredStore(fs), params or Params(), Rng())
    return a, fs


def login(a, port, level, secret, now):
    n = a.challenge(port, now)
    assert n is not None
    return a.login(port, level, authkit.response(secret, n, level), now), n


def refused(a, reason):
    return a.by_reason[reason]


def test_login_grants_the_level_on_its_port_only():
    a, _ = make(secrets={1: USER_S, 2: INST_S})
    ok, _ = login(a, PORT, A.INSTALLER, INST_S, 1000)
    assert ok and a.level(PORT, 1000) == A.INSTALLER
    assert a.level(OTHER, 1000) == 0
    ok, _ = login(a, OTHER, A.USER, USER_S, 2000)
    assert ok and a.level(OTHER, 2000) == A.USER and a.level(PORT, 2000) == A.INSTALLER
    assert a.refused == 0
    a.logout(PORT)
    assert a.level(PORT, 2000) == 0 and a.level(OTHER, 2000) == A.USER


def test_nonces_are_fresh_16_bytes_from_the_rng():
    a, _ = make(secrets={2: INST_S})
    seen = {a.challenge(PORT, 0) for _ in range(50)}
    assert len(seen) == 50 and all(len(n) == 16 for n in seen)
    assert a.rng.calls == 50


def test_without_a_credential_every_login_is_refused_and_counted():
    a, _ = make()
    assert not a.has_secret(A.USER) and not a.has_secret(A.INSTALLER)
    for lv in (A.USER, A.INSTALLER):
        for guess in (b"", bytes(32), hashlib.sha256(b"admin").digest()):
            n = a.challenge(PORT, 0)
            assert not a.login(PORT, lv, A.hmac_sha256(guess, n + bytes([lv])), 0)
            assert a.level(PORT, 0) == 0
    assert a.refused == 6 and refused(a, A.R_NO_CREDENTIAL) == 6


def test_one_level_commissioned_leaves_the_other_refusing():
    a, _ = make(secrets={2: INST_S})
    ok, _ = login(a, PORT, A.USER, INST_S, 0)  # the installer secret does not answer for USER
    assert not ok and refused(a, A.R_NO_CREDENTIAL) == 1


def test_wrong_response_is_refused_and_counted():
    a, _ = make(secrets={1: USER_S, 2: INST_S})
    n = a.challenge(PORT, 0)
    assert not a.login(PORT, A.INSTALLER, authkit.response(USER_S, n, A.INSTALLER), 0)
    n = a.challenge(PORT, 0)
    assert not a.login(PORT, A.INSTALLER, authkit.response(INST_S, n, A.USER), 0)  # level not in the MAC
    n = a.challenge(PORT, 0)
    assert not a.login(PORT, A.INSTALLER, authkit.response(INST_S, n, A.INSTALLER)[:16], 0)
    assert a.level(PORT, 0) == 0 and a.refused == 3 and refused(a, A.R_BAD_MAC) == 3


def test_replayed_response_is_refused():
    a, _ = make(secrets={2: INST_S})
    ok, n = login(a, PORT, A.INSTALLER, INST_S, 0)
    mac = authkit.response(INST_S, n, A.INSTALLER)
    assert ok
    a.logout(PORT)
    assert not a.login(PORT, A.INSTALLER, mac, 10)  # no nonce outstanding
    a.challenge(PORT, 20)
    assert not a.login(PORT, A.INSTALLER, mac, 20)  # a new nonce: the old answer is wrong
    assert a.level(PORT, 20) == 0
    assert refused(a, A.R_NO_CHALLENGE) == 1 and refused(a, A.R_BAD_MAC) == 1 and a.refused == 2


def test_a_nonce_answers_one_login_even_a_failed_one():
    a, _ = make(secrets={2: INST_S})
    n = a.challenge(PORT, 0)
    assert not a.login(PORT, A.INSTALLER, bytes(32), 0)
    assert not a.login(PORT, A.INSTALLER, authkit.response(INST_S, n, A.INSTALLER), 0)
    assert refused(a, A.R_NO_CHALLENGE) == 1


def test_a_nonce_from_another_port_grants_nothing():
    a, _ = make(secrets={2: INST_S})
    n = a.challenge(PORT, 0)
    assert not a.login(OTHER, A.INSTALLER, authkit.response(INST_S, n, A.INSTALLER), 0)
    assert a.level(OTHER, 0) == 0 and a.level(PORT, 0) == 0 and refused(a, A.R_NO_CHALLENGE) == 1


def test_a_challenge_not_answered_in_time_is_void():
    a, _ = make(secrets={2: INST_S})
    n = a.challenge(PORT, 0)
    assert not a.login(PORT, A.INSTALLER, authkit.response(INST_S, n, A.INSTALLER), A.CHALLENGE_MS)
    assert refused(a, A.R_NO_CHALLENGE) == 1
    n = a.challenge(PORT, 0)
    a.tick(A.CHALLENGE_MS)
    assert not a.login(PORT, A.INSTALLER, authkit.response(INST_S, n, A.INSTALLER), A.CHALLENGE_MS - 1)


def test_session_expires_after_the_idle_time_and_requests_refresh_it():
    p = Params()
    p.set(P.AUTH_IDLE_MS, 60000)
    a, _ = make(secrets={2: INST_S}, params=p)
    assert login(a, PORT, A.INSTALLER, INST_S, 1000)[0]
    assert a.level(PORT, 60999) == A.INSTALLER
    a.touch(PORT, 60999)
    assert a.level(PORT, 120998) == A.INSTALLER
    assert a.level(PORT, 120999) == 0  # idle 60 s since the last request that used it
    a.touch(PORT, 121000)  # an expired session is not revived
    assert a.level(PORT, 121000) == 0
    # the handler refuses the write it came with and counts it here
    a.refuse(PORT, A.R_NO_SESSION)
    assert a.refused == 1 and refused(a, A.R_NO_SESSION) == 1 and a.last_port == PORT
    assert not a.set_secret(PORT, A.USER, bytes(64), 121000)
    assert refused(a, A.R_NO_SESSION) == 2


def test_tick_ends_idle_sessions_across_the_tick_wrap():
    a, _ = make(secrets={2: INST_S})
    t0 = (1 << 30) - 5000  # ticks_ms wraps at 2**30
    assert login(a, PORT, A.INSTALLER, INST_S, t0)[0]
    assert a.level(PORT, 100) == A.INSTALLER  # 5.1 s later, after the wrap
    idle = a.params.v[P.AUTH_IDLE_MS]
    a.tick(idle - 5000)
    assert a.level(PORT, idle - 5001) == 0  # ended by tick even if asked with an older time


def _brute(a, n, now):
    for _ in range(n):
        c = a.challenge(PORT, now)
        if c is None:
            return False
        a.login(PORT, A.INSTALLER, bytes(32), now)
    return True


def test_brute_force_locks_out_with_a_growing_back_off():
    a, _ = make(secrets={2: INST_S})
    assert _brute(a, A.FAIL_MAX, 0)
    assert a.challenge(PORT, 0) is None and a.challenge(OTHER, 0) is None  # the whole pack
    assert a.lock_remaining_ms(0) == 30000
    assert a.challenge(PORT, 29999) is None and a.challenge(PORT, -5) is None  # a stale time keeps it locked
    assert refused(a, A.R_LOCKED) == 4 and refused(a, A.R_BAD_MAC) == A.FAIL_MAX
    t = 30000
    want = 60000
    while want <= A.LOCK_MAX_MS * 2:
        assert a.challenge(PORT, t) is not None  # open again: one more wrong answer locks again
        a.login(PORT, A.INSTALLER, bytes(32), t)
        assert a.lock_remaining_ms(t) == min(want, A.LOCK_MAX_MS), t
        assert a.challenge(PORT, t + min(want, A.LOCK_MAX_MS) - 1) is None
        t += min(want, A.LOCK_MAX_MS)
        want *= 2
    # the right answer while locked is refused too; after the lock a success resets the back-off
    assert a.login(PORT, A.INSTALLER, authkit.response(INST_S, bytes(16), A.INSTALLER), t - 1) is False
    assert login(a, PORT, A.INSTALLER, INST_S, t)[0]
    assert _brute(a, A.FAIL_MAX, t) and a.lock_remaining_ms(t) == 30000


def test_failures_from_many_ports_add_up():
    a, _ = make(secrets={2: INST_S})
    for src in range(A.FAIL_MAX):  # a new CAN source address per guess
        assert a.challenge(0x40 + src, 0) is not None
        a.login(0x40 + src, A.INSTALLER, bytes(32), 0)
    assert a.challenge(0x60, 1) is None


def test_sessions_are_not_evicted_by_challenges_from_new_ports():
    a, _ = make(secrets={2: INST_S})
    assert login(a, PORT, A.INSTALLER, INST_S, 0)[0]
    for src in range(20):
        a.challenge(0x40 + src, 1)
    assert a.level(PORT, 2) == A.INSTALLER
    for k in range(A.SLOTS - 1):
        assert login(a, 0x70 + k, A.INSTALLER, INST_S, 3)[0]
    assert a.challenge(0x7F, 4) is None and refused(a, A.R_BUSY) == 1


def test_installer_changes_the_user_secret_without_sending_it():
    a, fs = make(secrets={1: USER_S, 2: INST_S})
    ok, n = login(a, PORT, A.INSTALLER, INST_S, 0)
    new = bytes(range(200, 232))
    blob = authkit.set_secret_blob(INST_S, n, A.USER, new)
    assert new not in blob and len(blob) == 64
    assert a.set_secret(PORT, A.USER, blob, 10)
    assert a.level(PORT, 10) == A.INSTALLER  # the installer session goes on
    assert not login(a, OTHER, A.USER, USER_S, 20)[0]
    assert login(a, OTHER, A.USER, new, 30)[0]
    # survives a restart
    b = A.Auth(C.CredStore(fs), Params(), Rng(2))
    assert login(b, PORT, A.USER, new, 0)[0]
    # a user session cannot change secrets; a blob from another session is refused
    assert not b.set_secret(PORT, A.USER, blob, 10) and b.by_reason[A.R_LEVEL] == 1
    assert login(b, PORT, A.INSTALLER, INST_S, 20)[0]
    assert not b.set_secret(PORT, A.USER, blob, 30) and b.by_reason[A.R_BAD_BLOB] == 1
    assert login(b, OTHER, A.USER, new, 40)[0]  # nothing changed


def test_changing_the_installer_secret_ends_its_sessions():
    a, _ = make(secrets={2: INST_S})
    _, n = login(a, PORT, A.INSTALLER, INST_S, 0)
    new = hashlib.sha256(b"new").digest()
    tampered = bytearray(authkit.set_secret_blob(INST_S, n, A.INSTALLER, new))
    tampered[0] ^= 1
    assert not a.set_secret(PORT, A.INSTALLER, bytes(tampered), 1) and refused(a, A.R_BAD_BLOB) == 1
    assert not a.set_secret(PORT, A.INSTALLER, b"short", 1) and refused(a, A.R_BAD_BLOB) == 2
    assert a.set_secret(PORT, A.INSTALLER, authkit.set_secret_blob(INST_S, n, A.INSTALLER, new), 2)
    assert a.level(PORT, 2) == 0
    assert not login(a, PORT, A.INSTALLER, INST_S, 3)[0]
    assert login(a, PORT, A.INSTALLER, new, 4)[0]


def test_provisioning_needs_physical_presence():
    a, fs = make()
    assert not a.provision(A.INSTALLER, INST_S, False)
    assert refused(a, A.R_NOT_PRESENT) == 1 and not a.has_secret(A.INSTALLER) and "cred.bin" not in fs.files
    assert not a.provision(A.INSTALLER, b"x" * 31, True) and refused(a, A.R_BAD_BLOB) == 1
    assert not a.provision(4, INST_S, True) and refused(a, A.R_BAD_LEVEL) == 1
    assert a.provision(A.INSTALLER, INST_S, True)
    assert login(a, PORT, A.INSTALLER, INST_S, 0)[0]
    # a reset with presence removes the secret and ends its sessions
    assert a.provision(A.INSTALLER, None, True) and a.level(PORT, 0) == 0
    assert not A.Auth(C.CredStore(fs), Params(), Rng()).has_secret(A.INSTALLER)


def test_the_owners_update_key_is_provisioned_with_presence_only_and_opens_no_session():
    a, fs = make(secrets={2: INST_S})
    pub = bytes(range(100, 132))
    assert not a.provision(A.UPDATE_KEY, pub, False) and a.update_key() is None
    assert a.provision(A.UPDATE_KEY, pub, True) and a.update_key() == pub
    b = A.Auth(C.CredStore(fs), Params(), Rng())  # after a restart: from the credential file
    assert b.update_key() == pub and b.has_secret(A.INSTALLER)
    ok, n = login(b, PORT, A.INSTALLER, INST_S, 0)
    assert ok
    # not a login level, and no session can swap it (set_secret is for the login levels only)
    assert not login(b, OTHER, A.UPDATE_KEY, pub, 1)[0] and refused(b, A.R_BAD_LEVEL) == 1
    blob = authkit.set_secret_blob(INST_S, n, A.UPDATE_KEY, bytes(32))  # a well-formed blob of this session
    assert not b.set_secret(PORT, A.UPDATE_KEY, blob, 2) and b.update_key() == pub
    assert refused(b, A.R_BAD_LEVEL) == 2
    assert b.provision(A.UPDATE_KEY, None, True) and b.update_key() is None  # removed, with presence


def test_provisioning_clears_a_lock_out():
    a, _ = make(secrets={2: INST_S})
    _brute(a, A.FAIL_MAX, 0)
    assert a.challenge(PORT, 0) is None
    assert a.provision(A.INSTALLER, INST_S, True)
    assert login(a, PORT, A.INSTALLER, INST_S, 1)[0]


def test_no_random_source_means_no_login():
    a = A.Auth(None, Params(), None)
    assert a.provision(A.INSTALLER, INST_S, True)  # RAM only (store None)
    assert a.challenge(PORT, 0) is None and refused(a, A.R_NO_RNG) == 1


def test_a_failing_flash_changes_nothing():
    fs = SimFlash()
    C.CredStore(fs).save({2: INST_S})
    a = A.Auth(C.CredStore(fs), Params(), Rng())
    fs.dead = True
    assert not a.provision(A.INSTALLER, USER_S, True) and refused(a, A.R_STORE) == 1
    assert a.has_secret(A.INSTALLER)
    fs.dead = False
    assert login(a, PORT, A.INSTALLER, INST_S, 0)[0]


def _which(fs):
    """The installer secret a boot on fs accepts: 'old', 'new' or None."""
    a = A.Auth(C.CredStore(fs), Params(), Rng())
    if fs.dead:
        raise PowerCut("cut during the load")
    for name, s in (("old", INST_S), ("new", USER_S)):
        n = a.challenge(PORT, 0)
        if a.login(PORT, A.INSTALLER, authkit.response(s, n, A.INSTALLER), 0):
            return name
    return None


def test_credential_survives_a_power_cut_at_every_write_point():
    base = SimFlash()
    C.CredStore(base).save({2: INST_S})
    C.CredStore(base).save({2: INST_S})  # a .bak-less current copy with a history
    ref = simflash.copy(base)
    A.Auth(C.CredStore(ref), Params(), Rng()).provision(A.INSTALLER, USER_S, True)
    marks = simflash.commits(ref, C.FILE)
    assert len(marks) == 1 and "cred.bin.bak" not in ref.files
    for cut in range(ref.used + 1):
        fs = simflash.copy(base, budget=cut)
        a = A.Auth(C.CredStore(fs), Params(), Rng())
        try:
            a.provision(A.INSTALLER, USER_S, True)
        except PowerCut:
            raise AssertionError("provision let the cut through")
        want = ("old", "new")[simflash.expected_index(marks, cut)]
        simflash.check_recovery(fs.remount(), _which, want)


def test_a_corrupt_credential_file_loads_as_not_commissioned():
    for damage in ("flip", "truncate", "garbage", "bak_only"):
        fs = MemFs()
        C.CredStore(fs).save({1: USER_S, 2: INST_S})
        C.CredStore(fs).save({1: USER_S, 2: INST_S})
        if damage == "flip":
            fs.files["cred.bin"][40] ^= 0x04
        elif damage == "truncate":
            del fs.files["cred.bin"][-3:]
        elif damage == "garbage":
            fs.files["cred.bin"] = bytearray(b"\xff" * 200)
        else:  # an old copy left behind: revoked, never used
            fs.files["cred.bin.bak"] = bytearray(fs.files.pop("cred.bin"))
        a = A.Auth(C.CredStore(fs), Params(), Rng())
        assert a.notes == [(C.N_CRED_CORRUPT, 4 if damage != "bak_only" else 3)], damage
        assert not a.has_secret(A.USER) and not a.has_secret(A.INSTALLER)
        assert not login(a, PORT, A.INSTALLER, INST_S, 0)[0] and not login(a, PORT, A.USER, USER_S, 0)[0]
        assert refused(a, A.R_NO_CREDENTIAL) == 2
        # recommissioning with presence works again
        assert a.provision(A.INSTALLER, INST_S, True) and login(a, PORT, A.INSTALLER, INST_S, 1)[0]


def test_credential_file_notes_and_partial_levels():
    fs = MemFs()
    a = A.Auth(C.CredStore(fs), Params(), Rng())
    assert a.notes == [(C.N_CRED_NONE, 0)]
    C.CredStore(fs).save({1: USER_S})
    a = A.Auth(C.CredStore(fs), Params(), Rng())
    assert a.notes == [] and a.has_secret(A.USER) and not a.has_secret(A.INSTALLER)
    # a file with the installer's words missing one (written by hand through the atomic layer)
    st_ = C.CredStore(fs)
    st_.file.read()
    recs = [(32 + w, C._tag(2, w), w) for w in range(7)]
    st_.file.write(C.SCHEMA, recs)
    a = A.Auth(C.CredStore(fs), Params(), Rng())
    assert a.notes == [(C.N_CRED_PARTIAL, 2)] and not a.has_secret(A.INSTALLER)


def test_credential_file_layout_decoded_independently():
    """The file as README describes it: header <4sHHII, then id u16, tag u16,
    value i32 per record; level L's secret = words L*16..L*16+7."""
    import struct
    import zlib
    fs = MemFs()
    C.CredStore(fs).save({2: INST_S})
    data = bytes(fs.files["cred.bin"])
    magic, schema, n, seq, crc = struct.unpack_from("<4sHHII", data)
    assert magic == b"BMSK" and schema == 1 and n == 8 and len(data) == 16 + 8 * n
    assert zlib.crc32(data[16:], zlib.crc32(data[:12])) == crc
    words = [struct.unpack_from("<HHi", data, 16 + 8 * k) for k in range(n)]
    assert [w[0] for w in words] == list(range(32, 40))
    assert b"".join(struct.pack("<i", w[2]) for w in words) == INST_S


def _hkdf(ikm, salt, info, n):
    """RFC 5869 2.2/2.3, written out with hmac."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    t, okm, i = b"", b"", 1
    while len(okm) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm += t
        i += 1
    return okm[:n]


def test_rfc5869_helper_matches_its_test_case_1():
    ikm = b"\x0b" * 22
    okm = _hkdf(ikm, bytes(range(13)), bytes(range(0xf0, 0xfa)), 42)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                         "34007208d5b887185865")


def test_per_device_secrets_from_factory_key_and_serial():
    key = bytes(range(32))
    s = authkit.derive_secret(key, "BMS-000123", A.INSTALLER)
    assert s == _hkdf(key, b"bms-auth-v1", b"level 2 serial BMS-000123", 32)
    others = {authkit.derive_secret(key, sn, lv) for sn in ("BMS-000123", "BMS-000124") for lv in (1, 2)}
    assert len(others) == 4 and s in others
    assert authkit.derive_secret(bytes(32), "BMS-000123", 2) != s
    # the derived secret commissions a pack and answers its challenge
    a, _ = make()
    assert a.provision(A.INSTALLER, s, True) and login(a, PORT, A.INSTALLER, s, 0)[0]
    p = authkit.secret_from_passphrase("correct horse", "BMS-000123")
    assert len(p) == 32 and p == hashlib.pbkdf2_hmac("sha256", b"correct horse", b"bms-auth-v1 BMS-000123",
                                                     authkit.PBKDF2_ROUNDS, 32)


def test_authkit_cli(tmp_path, capsys):
    kf = tmp_path / "key"
    kf.write_bytes(bytes(range(32)))
    assert authkit.main(["derive", "--factory-key-file", str(kf), "--serial", "SN1", "--level", "1"]) == 0
    assert capsys.readouterr().out.strip() == authkit.derive_secret(bytes(range(32)), "SN1", 1).hex()
    nonce = bytes(range(16))
    assert authkit.main(["response", "--secret", INST_S.hex(), "--nonce", nonce.hex(), "--level", "2"]) == 0
    assert capsys.readouterr().out.strip() == A.hmac_sha256(INST_S, nonce + b"\x02").hex()
    kf.write_bytes(b"short")
    assert authkit.main(["derive", "--factory-key-file", str(kf), "--serial", "SN1"]) == 2
    assert "at least 32" in capsys.readouterr().err


MPY_SCRIPT = textwrap.dedent("""
    import os, micropython
    from bms import auth as A
    from bms.params import Params
    from store.cred import CredStore
    from store.memfs import MemFs
    KEYS = %r
    out = [A.hmac_sha256(k, m).hex() for k, m in KEYS]
    fs = MemFs()
    a = A.Auth(CredStore(fs), Params(), os.urandom)
    a.provision(2, %r, True)
    n = a.challenge(5, 1000)
    mac = A.hmac_sha256(%r, n + bytes([2]))
    out.append(a.login(5, 2, mac, 1000))
    out.append(a.login(5, 2, mac, 1001))  # replay
    b = A.Auth(CredStore(fs), Params(), os.urandom)  # reboot on the same files
    n2 = b.challenge(5, 0)
    out.append(b.login(5, 2, A.hmac_sha256(%r, n2 + bytes([2])), 0))
    def periodic(a, res):  # locals only: a new global would allocate
        lv = 0
        for t in range(1000, 700000, 7000):
            lv = a.level(5, t)
            a.touch(5, t)
            a.tick(t)
            a.refuse(6, A.R_NO_SESSION)
        res[0] = lv
        res[1] = a.level(5, 700000 + 600000)
        a.tick(1400000)
    res = [None, None]
    micropython.heap_lock()
    try:
        periodic(a, res)
    finally:
        micropython.heap_unlock()
    out += res + [a.refused, n != n2, len(n)]
    print(out)
""")


def test_auth_on_32_bit_micropython_with_heap_lock(mpy32):
    keys = [(k, d) for k, d, _ in RFC4231]
    code = MPY_SCRIPT % (keys, INST_S, INST_S, INST_S)
    r = mpy32(code, heap="96K")
    assert r.returncode == 0, r.stderr
    got = eval(r.stdout.strip().splitlines()[-1])
    assert [h[:len(w)] for h, (_, _, w) in zip(got[:7], RFC4231)] == [w for _, _, w in RFC4231]
    # login, replay refused, login after the reboot; the session alive until idle, then 0
    assert got[7:] == [True, False, True, 2, 0, 1 + 100, True, 16]
