# The board's update signature check (lib/update/ed25519.py, sha512.py)
# against RFC 8032's test vectors, the `cryptography` package (OpenSSL) as
# the independent signer, and hashlib's SHA-512; every tampering and every
# malformed input is refused; it runs in the 32-bit MicroPython under a small
# heap.
import hashlib
import os

import pytest
from cryptography.hazmat.primitives import serialization as se
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings, strategies as hs

from tools import paths  # noqa: F401
from update.ed25519 import verify, _L
from update.sha512 import sha512

# RFC 8032 7.1, TEST 1 and TEST 2: (public key, message, signature)
RFC = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
]


def _key(seed=None):
    k = Ed25519PrivateKey.from_private_bytes(seed) if seed else Ed25519PrivateKey.generate()
    return k, k.public_key().public_bytes(se.Encoding.Raw, se.PublicFormat.Raw)


@pytest.mark.parametrize("pub,msg,sig", RFC)
def test_rfc8032_vectors(pub, msg, sig):
    assert verify(bytes.fromhex(pub), bytes.fromhex(msg), bytes.fromhex(sig))


@settings(max_examples=25, deadline=None)
@given(hs.binary(min_size=32, max_size=32), hs.binary(max_size=300))
def test_what_openssl_signs_verifies(seed, msg):
    k, pub = _key(seed)
    assert verify(pub, msg, k.sign(msg))


def test_every_tampering_is_refused():
    k, pub = _key()
    msg = hashlib.sha256(b"manifest").digest()
    sig = k.sign(msg)
    for i in (0, 17, 31, 32, 50, 63):
        assert not verify(pub, msg, sig[:i] + bytes([sig[i] ^ 0x01]) + sig[i + 1:])
    for i in (0, 31):
        assert not verify(pub, msg[:i] + bytes([msg[i] ^ 0x80]) + msg[i + 1:], sig)
        assert not verify(pub[:i] + bytes([pub[i] ^ 0x02]) + pub[i + 1:], msg, sig)
    _, other = _key()
    assert not verify(other, msg, sig)


def test_a_non_canonical_s_is_refused():
    k, pub = _key()
    msg = b"x"
    sig = k.sign(msg)
    s = int.from_bytes(sig[32:], "little") + _L  # the same point equation, S >= L
    assert s < 1 << 256
    assert not verify(pub, msg, sig[:32] + s.to_bytes(32, "little"))


@pytest.mark.parametrize("pub,sig", [
    (bytes(31), bytes(64)), (bytes(32), bytes(63)), (b"", b""),
    (b"\xff" * 32, bytes(64)),  # y >= p: not a point encoding
    (bytes(32), b"\xff" * 64),
])
def test_malformed_input_is_false_not_an_exception(pub, sig):
    assert verify(pub, b"m", sig) is False


def test_sha512_constants_are_their_fips_180_4_definition():
    from update import sha512 as mod
    primes = [p for p in range(2, 410) if all(p % q for q in range(2, int(p ** 0.5) + 1))][:80]

    def root(x, k):  # floor(x ** (1/k)) on ints
        r = int(round(x ** (1.0 / k))) if x < 1 << 1000 else 1 << (x.bit_length() // k + 1)
        r = max(r, 1)
        while r ** k > x:
            r -= 1
        while (r + 1) ** k <= x:
            r += 1
        return r
    mask = (1 << 64) - 1
    k = b"".join((root(p << 192, 3) & mask).to_bytes(8, "big") for p in primes)
    h = b"".join((root(p << 128, 2) & mask).to_bytes(8, "big") for p in primes[:8])
    assert mod._KB == k and mod._HB == h


@pytest.mark.parametrize("n", [0, 1, 111, 112, 127, 128, 129, 1000])
def test_sha512_matches_hashlib(n):
    m = os.urandom(n)
    assert sha512(m) == hashlib.sha512(m).digest()


def test_verify_in_32_bit_micropython_under_a_small_heap(mpy32):
    k, pub = _key()
    msg = hashlib.sha256(b"a manifest").digest()
    sig = k.sign(msg)
    bad = sig[:40] + bytes([sig[40] ^ 4]) + sig[41:]
    code = "from update.ed25519 import verify\nprint(verify(%r, %r, %r), verify(%r, %r, %r))\n" % (
        pub, msg, sig, pub, msg, bad)
    r = mpy32(code, heap="32K")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False"]
