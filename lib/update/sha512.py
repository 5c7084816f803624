# Owns SHA-512 (FIPS 180-4 6.4) for the board, whose MicroPython hashlib has
# only sha256: Ed25519 (RFC 8032) hashes with SHA-512. Used only while an
# update is checked, on messages of a few hundred bytes, so plain ints (big on
# the board) are fine here; nothing periodic imports this module. The round
# constants and the initial value are computed from their definition (the
# first 64 bits of the fractional parts of the cube roots of the first 80
# primes, of the square roots of the first 8; FIPS 180-4 4.2.3, 5.3.5) rather
# than typed in.
_M = (1 << 64) - 1


def _primes(n):
    out = []
    k = 2
    while len(out) < n:
        if all(k % p for p in out if p * p <= k):
            out.append(k)
        k += 1
    return out


def _iroot(x, k):
    """floor(x ** (1/k)) for an int x >= 0 (Newton's method on ints)."""
    if x < 2:
        return x
    bits = 0  # (MicroPython ints have no bit_length)
    y = x
    while y:
        y >>= 1
        bits += 1
    r = 1 << ((bits + k - 1) // k)
    while True:
        s = ((k - 1) * r + x // r ** (k - 1)) // k
        if s >= r:
            return r
        r = s


def _constants():
    ps = _primes(80)
    k = [_iroot(p << 192, 3) & _M for p in ps]
    h = [_iroot(p << 128, 2) & _M for p in ps[:8]]
    return k, h


_K, _H = _constants()


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
        t1 = (hh + (_rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41)) + ((e & f) ^ (~e & g)) + _K[t] + w[t]) & _M
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
    h = list(_H)
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
