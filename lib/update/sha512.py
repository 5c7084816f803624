# Owns SHA-512 (FIPS 180-4 6.4) for the board, whose MicroPython hashlib has
# only sha256: Ed25519 (RFC 8032) hashes with SHA-512. Used only while an
# update is checked, on messages of a few hundred bytes, so plain ints (big on
# the board) are fine here; nothing periodic imports this module.
_M = (1 << 64) - 1
# FIPS 180-4 4.2.3: the first 64 bits of the fractional parts of the cube roots
# of the first 80 primes; 5.3.5: of the square roots of the first 8 (checked
# against that definition by host_tests/test_ed25519.py). One bytes object,
# not 88 big ints computed at import: computing them scattered the survivors
# over the heap (a 96 KB heap then had no 2.3 KB block left).
_KB = bytes.fromhex(
    "428a2f98d728ae227137449123ef65cdb5c0fbcfec4d3b2fe9b5dba58189dbbc3956c25bf348b53859f111f1b605d019"
    "923f82a4af194f9bab1c5ed5da6d8118d807aa98a303024212835b0145706fbe243185be4ee4b28c550c7dc3d5ffb4e2"
    "72be5d74f27b896f80deb1fe3b1696b19bdc06a725c71235c19bf174cf692694e49b69c19ef14ad2efbe4786384f25e3"
    "0fc19dc68b8cd5b5240ca1cc77ac9c652de92c6f592b02754a7484aa6ea6e4835cb0a9dcbd41fbd476f988da831153b5"
    "983e5152ee66dfaba831c66d2db43210b00327c898fb213fbf597fc7beef0ee4c6e00bf33da88fc2d5a79147930aa725"
    "06ca6351e003826f142929670a0e6e7027b70a8546d22ffc2e1b21385c26c9264d2c6dfc5ac42aed53380d139d95b3df"
    "650a73548baf63de766a0abb3c77b2a881c2c92e47edaee692722c851482353ba2bfe8a14cf10364a81a664bbc423001"
    "c24b8b70d0f89791c76c51a30654be30d192e819d6ef5218d69906245565a910f40e35855771202a106aa07032bbd1b8"
    "19a4c116b8d2d0c81e376c085141ab532748774cdf8eeb9934b0bcb5e19b48a8391c0cb3c5c95a634ed8aa4ae3418acb"
    "5b9cca4f7763e373682e6ff3d6b2b8a3748f82ee5defb2fc78a5636f43172f6084c87814a1f0ab728cc702081a6439ec"
    "90befffa23631e28a4506cebde82bde9bef9a3f7b2c67915c67178f2e372532bca273eceea26619cd186b8c721c0c207"
    "eada7dd6cde0eb1ef57d4f7fee6ed17806f067aa72176fba0a637dc5a2c898a6113f9804bef90dae1b710b35131c471b"
    "28db77f523047d8432caab7b40c724933c9ebe0a15c9bebc431d67c49c100d4c4cc5d4becb3e42b6597f299cfc657e2a"
    "5fcb6fab3ad6faec6c44198c4a475817"
)
_HB = bytes.fromhex(
    "6a09e667f3bcc908bb67ae8584caa73b3c6ef372fe94f82ba54ff53a5f1d36f1510e527fade682d19b05688c2b3e6c1f"
    "1f83d9abfb41bd6b5be0cd19137e2179"
)


def _word(b, t):
    return int.from_bytes(b[8 * t:8 * t + 8], "big")


def _rotr(x, n):
    return ((x >> n) | (x << (64 - n))) & _M


def _block(h, blk):
    w = [0] * 80
    for t in range(16):
        v = 0
        for j in range(8):
            v = (v << 8) | blk[8 * t + j]
        w[t] = v
    for t in range(16, 80):
        a = w[t - 15]
        b = w[t - 2]
        s0 = _rotr(a, 1) ^ _rotr(a, 8) ^ (a >> 7)
        s1 = _rotr(b, 19) ^ _rotr(b, 61) ^ (b >> 6)
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) & _M
    a, b, c, d, e, f, g, hh = h
    for t in range(80):
        t1 = (hh + (_rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41)) + ((e & f) ^ (~e & g)) + _word(_KB, t)
              + w[t]) & _M
        t2 = ((_rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39)) + ((a & b) ^ (a & c) ^ (b & c))) & _M
        hh = g
        g = f
        f = e
        e = (d + t1) & _M
        d = c
        c = b
        b = a
        a = (t1 + t2) & _M
    for i, v in enumerate((a, b, c, d, e, f, g, hh)):
        h[i] = (h[i] + v) & _M


def sha512(data):
    """The 64-byte digest of data (bytes-like)."""
    h = [_word(_HB, i) for i in range(8)]
    n = len(data)
    pad = bytearray(data)
    pad.append(0x80)
    while len(pad) % 128 != 112:
        pad.append(0)
    bits = n * 8
    pad.extend(bytes(8))  # the upper 64 bits of the 128-bit length
    for i in range(7, -1, -1):
        pad.append((bits >> (8 * i)) & 0xFF)
    for off in range(0, len(pad), 128):
        _block(h, memoryview(pad)[off:off + 128])
    out = bytearray(64)
    for i in range(8):
        v = h[i]
        for j in range(8):
            out[8 * i + j] = (v >> (56 - 8 * j)) & 0xFF
    return bytes(out)
