"""An independent decoder of Pylontech RS485 replies (host tests and tools),
written from the protocol facts (PROTOCOLS 2 and 7: the V3.3 frame, LENGTH
and CHKSUM rules; 0x42 as real packs send it, read the way python-pylontech
and FHEM 70_PylonLowVoltage read it), not from our encoder. Raises
ValueError on anything malformed."""


def _sum16(chars):
    return (-sum(chars)) % 65536


def request(cid2, info=b"", ver=0x20, adr=2, cid1=0x46):
    """A client's request frame."""
    h = info.hex().upper().encode()
    n = len(h)
    lsum = (-((n & 15) + ((n >> 4) & 15) + ((n >> 8) & 15))) % 16
    body = b"%02X%02X%02X%02X%04X" % (ver, adr, cid1, cid2, (lsum << 12) | n) + h
    return b"~" + body + b"%04X" % _sum16(body) + b"\r"


def frame(data):
    """{ver, adr, cid1, rtn, info} of one whole reply frame."""
    if len(data) < 18 or data[:1] != b"~" or data[-1:] != b"\r":
        raise ValueError("not a frame")
    body = data[1:-5]
    if int(data[-5:-1], 16) != _sum16(body):
        raise ValueError("CHKSUM")
    length = int(body[8:12], 16)
    lenid = length & 0xFFF
    if (length >> 12) != (-((lenid & 15) + ((lenid >> 4) & 15) + ((lenid >> 8) & 15))) % 16:
        raise ValueError("LCHKSUM")
    if lenid != len(body) - 12:
        raise ValueError("LENID")
    return {"ver": int(body[0:2], 16), "adr": int(body[2:4], 16), "cid1": int(body[4:6], 16),
            "rtn": int(body[6:8], 16), "info": bytes.fromhex(body[12:].decode())}


class _Reader:
    def __init__(self, b):
        self.b = b
        self.i = 0

    def u(self, n):
        if self.i + n > len(self.b):
            raise ValueError("short INFO")
        v = int.from_bytes(self.b[self.i:self.i + n], "big")
        self.i += n
        return v

    def s16(self):
        v = self.u(2)
        return v - 65536 if v >= 32768 else v


def _module(r):
    m = {"cells_mv": [r.u(2) for _ in range(r.u(1))]}
    nt = r.u(1)
    temps = [(r.u(2) - 2731) for _ in range(nt)]  # 0.1 K - 2731 = 0.1 degC
    m["board_dc"] = temps[0] if temps else None
    m["temps_dc"] = temps[1:]
    m["current_a"] = r.s16() / 10  # 0.1 A, charge positive
    m["voltage_v"] = r.u(2) / 1000
    rem = r.u(2)
    m["udi"] = r.u(1)
    total = r.u(2)
    m["cycles"] = r.u(2)
    if m["udi"] == 4:  # 3-byte mAh fields for packs over 65 Ah
        rem = r.u(3)
        total = r.u(3)
    elif m["udi"] != 2:
        raise ValueError("user-defined count %d" % m["udi"])
    m["remaining_ah"] = rem / 1000
    m["total_ah"] = total / 1000
    return m


def analog(info, all_packs=False):
    """0x42 INFO -> list of modules. One pack: INFOFLAG, command value, data;
    INFO 0xFF: INFOFLAG, module count, then every module."""
    r = _Reader(info)
    r.u(1)  # INFOFLAG
    count = r.u(1)  # the module count (INFO 0xFF) or the command value
    n = count if all_packs else 1
    mods = [_module(r) for _ in range(n)]
    if r.i != len(info):
        raise ValueError("%d bytes after the modules" % (len(info) - r.i))
    return mods


SYSPARAM = ("cell_high_v", "cell_low_v", "cell_under_v", "charge_high_c", "charge_low_c", "charge_limit_a",
            "module_high_v", "module_low_v", "module_under_v", "discharge_high_c", "discharge_low_c",
            "discharge_limit_a")


def sysparam(info):
    """0x47 INFO: INFOFLAG then twelve 16-bit fields."""
    if len(info) != 25:
        raise ValueError("0x47 INFO of %d bytes" % len(info))
    r = _Reader(info)
    r.u(1)
    out = {}
    for name in SYSPARAM:
        v = r.s16()
        if name.endswith("_v"):
            out[name] = v / 1000
        elif name.endswith("_c"):
            out[name] = (v - 2731) / 10
        else:
            out[name] = v / 10
    return out


def management(info):
    """0x92 INFO: command value, CVL, DVL mV, CCL, DCL 0.1 A, flags."""
    if len(info) != 10:
        raise ValueError("0x92 INFO of %d bytes" % len(info))
    r = _Reader(info)
    adr = r.u(1)
    return {"adr": adr, "cvl_v": r.u(2) / 1000, "dvl_v": r.u(2) / 1000, "ccl_a": r.s16() / 10,
            "dcl_a": r.s16() / 10, "flags": r.u(1)}
