# Owns the field helpers every wire layout is written with (proto.link,
# proto.pylon_can, proto.pylon_rs485): integers clamped to their field and
# written into a caller's buffer at an offset (big endian, or little endian
# for the inverter CAN frames), read back, and the two integer divisions the
# protocols scale by. No allocation.


def u16(v):
    """v clamped to 0..0xFFFF."""
    if v < 0:
        return 0
    return v if v < 0xFFFF else 0xFFFF


def _s16(v):
    if v < -32768:
        return -32768
    return v if v < 32767 else 32767


def put_u8(buf, i, v):
    buf[i] = 0 if v < 0 else (255 if v > 255 else v)


def put_u16(buf, i, v):
    v = u16(v)
    buf[i] = v >> 8
    buf[i + 1] = v & 0xFF


def put_i16(buf, i, v):
    v = _s16(v) & 0xFFFF
    buf[i] = v >> 8
    buf[i + 1] = v & 0xFF


def put_u24(buf, i, v):
    if v < 0:
        v = 0
    elif v > 0xFFFFFF:
        v = 0xFFFFFF
    buf[i] = v >> 16
    buf[i + 1] = (v >> 8) & 0xFF
    buf[i + 2] = v & 0xFF


def put_u16le(buf, i, v):
    v = u16(v)
    buf[i] = v & 0xFF
    buf[i + 1] = v >> 8


def put_i16le(buf, i, v):
    v = _s16(v) & 0xFFFF
    buf[i] = v & 0xFF
    buf[i + 1] = v >> 8


def get_u16(buf, i):
    return (buf[i] << 8) | buf[i + 1]


def get_i16(buf, i):
    v = (buf[i] << 8) | buf[i + 1]
    return v - 0x10000 if v & 0x8000 else v


def get_u24(buf, i):
    return (buf[i] << 16) | (buf[i + 1] << 8) | buf[i + 2]


def div(a, b):
    """a / b rounded half away from zero (b > 0): the inverter protocols' scaling."""
    if a >= 0:
        return (a + b // 2) // b
    return -((-a + b // 2) // b)


def trunc(a, b):
    """a / b truncated toward zero (b > 0): the link's 10 mA current field."""
    return a // b if a >= 0 else -((-a) // b)
