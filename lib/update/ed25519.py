# Owns Ed25519 signature verification (RFC 8032 5.1) for the board: the
# update check verifies one signature over the 32-byte SHA-256 digest of a
# manifest, so this runs once per update, never in a periodic service; plain
# (big) ints. Written from the RFC's definitions: the curve constants (5.1),
# point decoding (5.1.3), the extended-coordinate addition and doubling
# (5.1.4) and the verification equation (5.1.7, cofactorless: [S]B = R + [k]A,
# checked as [S]B + [k](-A) = R in one double-and-add over both scalars).
from update.sha512 import sha512

_P = (1 << 255) - 19
_L = (1 << 252) + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_D2 = 2 * _D % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _le(b):
    v = 0
    for i in range(len(b) - 1, -1, -1):
        v = (v << 8) | b[i]
    return v


def _add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * _D2 * t2 % _P
    d = 2 * z1 * z2 % _P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _double(p):
    x1, y1, z1, _t = p
    a = x1 * x1 % _P
    b = y1 * y1 % _P
    c = 2 * z1 * z1 % _P
    h = a + b
    s = x1 + y1
    e = h - s * s % _P
    g = a - b
    f = c + g
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _decode(s):
    """The point encoded in 32 bytes s, or None (RFC 8032 5.1.3)."""
    if len(s) != 32:
        return None
    y = _le(s) & ((1 << 255) - 1)
    sign = s[31] >> 7
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    vx2 = v * x * x % _P
    if vx2 == u:
        pass
    elif vx2 == (-u) % _P:
        x = x * _SQRT_M1 % _P
    else:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


_B = _decode(bytes([0x58] + [0x66] * 31))  # y = 4/5, x even (RFC 8032 5.1)


def verify(public_key, message, signature):
    """True when signature (64 bytes) is public_key's (32 bytes) Ed25519
    signature of message; False for anything else, malformed input included."""
    if len(signature) != 64 or len(public_key) != 32:
        return False
    a = _decode(public_key)
    r = _decode(signature[:32])
    if a is None or r is None:
        return False
    s = _le(signature[32:])
    if s >= _L:
        return False  # a non-canonical S (5.1.7 step 1) would make signatures malleable
    k = _le(sha512(bytes(signature[:32]) + bytes(public_key) + bytes(message))) % _L
    neg_a = ((_P - a[0]) % _P, a[1], 1, (_P - a[3]) % _P)
    both = _add(_B, neg_a)
    acc = (0, 1, 1, 0)  # the neutral element
    for i in range(255, -1, -1):
        acc = _double(acc)
        bs = (s >> i) & 1
        bk = (k >> i) & 1
        if bs and bk:
            acc = _add(acc, both)
        elif bs:
            acc = _add(acc, _B)
        elif bk:
            acc = _add(acc, neg_a)
    x, y, z, _t = acc
    return (x - r[0] * z) % _P == 0 and (y - r[1] * z) % _P == 0
