# Owns the CRC32 (IEEE 802.3, zlib's) every stored record carries: binascii's
# where the port has it (MicroPython on ESP32/RP2040 and CPython do), else
# store.crctable's, imported only on a port without it.
try:
    from binascii import crc32 as _bcrc

    def crc32(data, crc=0):
        return _bcrc(data, crc) & 0xFFFFFFFF
except ImportError:  # pragma: no cover - ports without binascii.crc32
    from store.crctable import crc32
