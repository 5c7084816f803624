# Owns the bench's ROMFS side of a pack (issue 15): a simulated ROMFS
# partition in the shape MicroPython 1.27 hands it out on esp32/rp2
# (vfs.rom_ioctl(2, 0): the buffer protocol plus ioctl(4/5/6) and the
# 4-argument writeblocks, update.slotwrite's header) with NOR semantics
# (programming ANDs into erased bytes), and a reader and a writer of the
# ROMFS image format (mpremote's romfs.py: the header d2 cd 31, a length, then
# records kind/length/payload; file records hold a name and a data record),
# because CPython has no vfs.VfsRom: the bench's boot part finds an image in a
# slot, and the check routine hashes the files, through this reader.
# Written for CPython and MicroPython alike.
HEADER = b"\xd2\xcd\x31"
_PADDING = 1
_DATA = 2
_DIR = 4
_FILE = 5
BLOCK = 4096
# NOR flash times of the 4 MB SPI parts ESP32 modules carry (Winbond W25Q32JV
# datasheet, AC characteristics: 4 KiB sector erase tSE 45 ms typical, 400 ms
# max; page program tPP 0.4 ms typical, 3 ms max): typical, as a pack sees them
ERASE_MS = 45
PAGE_US = 400


class Partition(bytearray):
    """Partition(b"\xff" * size): erased flash (no __init__ of its own: a
    subclass of bytearray gets none on MicroPython); erases and programmed
    pages counted. stall_ms: the time the last calls held the CPU (the flash
    blocks the MCU while it erases or programs: the bench's runner holds
    the pack's services that long, sim.vtime), taken and cleared there."""
    erases = 0
    pages = 0
    stall_ms = 0
    _page_us = 0

    def ioctl(self, op, arg):
        if op == 4:
            return len(self) // BLOCK
        if op == 5:
            return BLOCK
        if op == 6:
            o = arg * BLOCK
            if not 0 <= o < len(self):
                raise OSError(22)
            self[o:o + BLOCK] = b"\xff" * BLOCK
            self.erases += 1
            self.stall_ms += ERASE_MS
            return 0
        return None

    def writeblocks(self, n, buf, off):
        o = n * BLOCK + off
        if o + len(buf) > len(self):
            raise OSError(22)
        n = len(buf)
        old = int.from_bytes(bytes(self[o:o + n]), "big")
        self[o:o + n] = (old & int.from_bytes(bytes(buf), "big")).to_bytes(n, "big")  # NOR: bits only clear
        pages = (len(buf) + 255) // 256
        self.pages += pages
        us = self._page_us + pages * PAGE_US
        self.stall_ms += us // 1000
        self._page_us = us % 1000


def _uint(buf, i):
    v = 0
    while True:
        b = buf[i]
        i += 1
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            return v, i


def _enc(v):
    out = bytearray([v & 0x7F])
    v >>= 7
    while v:
        out.insert(0, 0x80 | (v & 0x7F))
        v >>= 7
    return bytes(out)


def _rec(kind, payload):
    return _enc(kind) + _enc(len(payload)) + payload


def image(files):
    """A ROMFS image of {path: bytes} (directories from the paths)."""
    tree = {}
    for path in sorted(files):
        node = tree
        parts = path.split("/")
        for d in parts[:-1]:
            node = node.setdefault(d, {})
        node[parts[-1]] = files[path]

    def body(node):
        out = b""
        for name in sorted(node):
            v = node[name]
            nm = _enc(len(name)) + name.encode()
            if isinstance(v, dict):
                out += _rec(_DIR, nm + body(v))
            else:
                out += _rec(_FILE, nm + _rec(_DATA, bytes(v)))
        return out
    data = body(tree)
    ln = _enc(len(data))
    if (len(HEADER) + len(ln) + len(data)) % 2:
        ln = b"\x80" + ln
    return HEADER + ln + data


def size(buf, at=0):
    """Bytes of the ROMFS image starting at buf[at], 0 when there is none."""
    if bytes(buf[at:at + 3]) != HEADER:
        return 0
    try:
        n, i = _uint(buf, at + 3)
    except IndexError:
        return 0
    return i - at + n if i + n <= len(buf) else 0


def files(buf, at=0):
    """{path: bytes} of the image at buf[at] ({} when there is none)."""
    n = size(buf, at)
    out = {}
    if n:
        _, i = _uint(buf, at + 3)
        _walk(buf, i, at + n, "", out)
    return out


def _walk(buf, i, end, prefix, out):
    while i < end:
        kind, i = _uint(buf, i)
        ln, i = _uint(buf, i)
        j = i + ln
        if kind == _DIR or kind == _FILE:
            nl, k = _uint(buf, i)
            name = prefix + bytes(buf[k:k + nl]).decode()
            k += nl
            if kind == _DIR:
                _walk(buf, k, j, name + "/", out)
            else:
                while k < j:
                    dk, k = _uint(buf, k)
                    dl, k = _uint(buf, k)
                    if dk == _DATA:
                        out[name] = bytes(buf[k:k + dl])
                    k += dl
        i = j
