# Owns writing one image slot of the board's ROMFS partition (issue 15): the
# bytes of a new image go in order into [base, base + size) of the partition,
# each flash block erased when the write first reaches it (the erases are
# spread over the transfer: a 4 KiB erase is tens of ms on an ESP32, one
# 256 KiB erase up front would stall the session for seconds), whole PAGE-byte
# pages programmed (the last one padded with 0xFF, erased flash). The first
# block is erased at once, so a slot being written never holds a mountable
# image (vfs.VfsRom checks the header at the slot's start). Imports nothing.
#
# MicroPython 1.27's write path (checked in v1.27.0's sources):
#   - vfs.rom_ioctl(2, 0) on esp32 (ports/esp32/esp32_partition.c,
#     mp_vfs_rom_ioctl) and rp2 (ports/rp2/rp2_flash.c) returns an object with
#     the block-device protocol and the buffer protocol; rom_ioctl 3/4/5
#     (WRITE_PREPARE/WRITE/WRITE_COMPLETE, extmod/vfs.h) are -EINVAL there.
#     Only stm32/alif/esp8266 implement them, and their 3 erases from the
#     segment's start (slot A with it): not usable for slot B.
#   - so this writes as `mpremote romfs deploy` does with such an object
#     (tools/mpremote/mpremote/commands.py, _do_romfs_deploy):
#     dev.ioctl(5, 0) the block size (4096 on both), dev.ioctl(6, n) erases
#     block n (MP_BLOCKDEV_IOCTL_BLOCK_ERASE), dev.writeblocks(n, buf, off)
#     programs an erased range (the 4-argument "extended" write; the
#     3-argument one erases first).
#   - rp2's flash_range_program wants 256-byte pages (PAGE); esp32's
#     esp_partition_write takes any length.
PAGE = 256
_ENODEV = 19


class SlotWriter:
    def __init__(self, dev, base, size):
        """dev: the partition object (vfs.rom_ioctl(2, 0)); base, size: the
        slot's offset and length in it (multiples of the block size)."""
        if not hasattr(dev, "ioctl") or not hasattr(dev, "writeblocks"):
            raise OSError(_ENODEV)  # a port whose segment is a plain memoryview (see the header)
        self.dev = dev
        self.bs = dev.ioctl(5, 0)
        if not self.bs or base % self.bs or size % self.bs or size % PAGE:
            raise ValueError("slot not on block boundaries")
        self.base = base
        self.size = size
        self.page = bytearray(PAGE)
        self.fill = 0  # bytes in self.page
        self.written = 0  # bytes of the slot programmed (whole pages)
        self.erased = 0  # bytes of the slot erased

    def start(self):
        """Erase the slot's first block: no image there from now on."""
        self.fill = 0
        self.written = 0
        self.erased = 0
        self._erase_to(1)

    def _erase_to(self, end):
        bs = self.bs
        while self.erased < end:
            self.dev.ioctl(6, (self.base + self.erased) // bs)
            self.erased += bs

    def _program(self):
        off = self.base + self.written
        if self.written + PAGE > self.size:
            raise ValueError("image larger than the slot")
        self._erase_to(self.written + PAGE)
        self.dev.writeblocks(off // self.bs, self.page, off % self.bs)
        self.written += PAGE
        self.fill = 0

    def feed(self, data, start=0, end=-1):
        """Append data[start:end] (end -1: to the end) to the image."""
        if end < 0:
            end = len(data)
        page = self.page
        i = start
        while i < end:
            k = PAGE - self.fill
            if k > end - i:
                k = end - i
            page[self.fill:self.fill + k] = data[i:i + k]
            self.fill += k
            i += k
            if self.fill == PAGE:
                self._program()

    def flush(self):
        """Program the last partial page, padded with erased bytes."""
        if self.fill:
            for i in range(self.fill, PAGE):
                self.page[i] = 0xFF
            self._program()

    def erase_ahead(self, n):
        """Erase now the blocks the next n bytes will program (a transport
        calls it while it waits for them: the erase then overlaps the line
        instead of holding a reply); True when it erased one."""
        end = (self.written + self.fill + n) // PAGE * PAGE
        if end > self.size:
            end = self.size
        if end <= self.erased:
            return False
        self._erase_to(end)
        return True

    def length(self):
        """Bytes fed so far."""
        return self.written + self.fill
