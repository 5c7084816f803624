# Owns the CRC32 (IEEE 802.3, zlib's) every stored record carries: binascii's
# where the port has it (MicroPython on ESP32/RP2040 and CPython do), else a
# 256-entry table built once.
try:
    from binascii import crc32 as _bcrc
except ImportError:  # pragma: no cover - ports without binascii.crc32
    _bcrc = None

_TABLE = None


def _table():
    global _TABLE
    if _TABLE is None:
        t = []
        for n in range(256):
            c = n
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            t.append(c)
        _TABLE = t
    return _TABLE


def crc32_table(data, crc=0):
    t = _table()
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc32(data, crc=0):
    if _bcrc is not None:
        return _bcrc(data, crc) & 0xFFFFFFFF
    return crc32_table(data, crc)
