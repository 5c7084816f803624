# Owns the boot part's start (issue 15): read the slot record, pick the slot
# (update.slots.boot), save the record BEFORE that slot runs, and mount the
# slot's image at /rom from the board's ROMFS partition (slot A at offset 0,
# B at SLOT_BYTES: boards/micropython/BMS_*_ROMFS, one 512 KiB "romfs"
# partition). Called once from firmware/boot.py; frozen into the custom
# firmware with the rest of update/ and store/, so an update never replaces it.
# Imports nothing (layer rule): the caller hands in the vfs module, the slot
# store (store.slotstore) and sys.path.
#
# The runtime has already mounted the partition's start (slot A) at /rom when
# it holds an image (py/vfs.c mp_vfs_mount_romfs_protected, which also puts
# /rom and /rom/lib on sys.path then); that mount is replaced by the chosen
# slot's. vfs.rom_ioctl(2, 0) is the partition, an object with the buffer
# protocol (esp32: the partition mmapped, esp32_partition.c; rp2: the flash
# region, rp2_flash.c); vfs.VfsRom raises ENODEV for anything that is not a
# whole ROMFS image inside the buffer (extmod/vfs_rom.c).
#
# Decisions beyond update.slots:
#   - no record file at all and an image in slot A: the image tools.deploy
#     wrote over USB (mpremote romfs deploy writes from offset 0) is the
#     factory install: confirmed, security counter 0;
#   - no record and no image in slot A: nothing to do (a .mpy deploy);
#   - a record that is damaged beyond its backup copy, or not valid: the image
#     in slot A runs as the factory install would (the store's note says why).
#     A pack that runs its protections is safer than one in recovery, where
#     nothing drives the FETs; the cost is the anti-downgrade floor, which
#     starts again at 0 (slot A's image was itself checked when it was written);
#   - a chosen slot without a mountable image is invalid: a pending one is
#     rolled back at once, a confirmed one leaves recovery.
from update import slots

SLOT_BYTES = 256 * 1024
MOUNT_POINT = "/rom"

# what start() did (also kept in RUNNING for the app's self-test confirm)
NO_ROMFS = "no-romfs"  # the port has no ROMFS partition: the runtime's own files run
NO_SLOTS = "no-slots"  # no record and no image in slot A: nothing is mounted
RUN = "run"  # a slot is mounted at /rom
RECOVERY = "recovery"  # no valid slot: nothing is mounted

RUNNING = slots.NONE  # the slot mounted at /rom by start(), slots.RECOVERY, or NONE
VERSION_FILE = MOUNT_POINT + "/version"  # tools.bmsctl.bundle writes it into every image
VERSION_MAX = 8  # bytes: UDS DID 0xF189 (proto.uds.VERSION_LEN)


def version():
    """The version of the image mounted at /rom (bytes, from its version
    file), None without one (a .mpy deploy, no slot, an older image)."""
    try:
        with open(VERSION_FILE, "rb") as f:
            v = f.read(VERSION_MAX + 1).strip()
    except OSError:
        return None
    return v if 0 < len(v) <= VERSION_MAX else None


def partition(vfs):
    """The board's ROMFS partition as a memoryview, or None when the port has
    none (no vfs.rom_ioctl: stock firmware, the unix port; or no segment)."""
    ioctl = getattr(vfs, "rom_ioctl", None)
    if ioctl is None:
        return None
    try:
        if ioctl(1) < 1:
            return None
        seg = ioctl(2, 0)
    except OSError:
        return None
    if isinstance(seg, int):  # -EINVAL: no partition
        return None
    return memoryview(seg)


def image(vfs, part, slot):
    """The VfsRom of slot's image, or None when the slot holds none."""
    off = slot * SLOT_BYTES
    if off + SLOT_BYTES > len(part):
        return None
    try:
        return vfs.VfsRom(part[off:off + SLOT_BYTES])
    except OSError:
        return None


def factory():
    """The record of an image deployed over USB into slot A."""
    r = slots.blank()
    r[slots.CONFIRMED] = 0
    r[slots.COUNTER0] = 0
    return r


def choose(rec, no_file, has_image):
    """(slot or slots.RECOVERY or slots.NONE (nothing to do), the record to
    save before it runs or None). rec: the stored record or None; no_file:
    there is no record file at all; has_image(slot): the slot holds an image."""
    if rec is None or not slots.valid(rec):
        if has_image(0):
            rec = factory()
        elif no_file:
            return slots.NONE, None
        else:
            rec = slots.blank()
    for _ in range(3):  # pending, then confirmed, then recovery
        slot, rec = slots.boot(rec)
        if slot == slots.RECOVERY or has_image(slot):
            return slot, rec
        rec[slots.COUNTER0 + slot] = slots.NONE  # written over or erased: not an image
    return slots.RECOVERY, rec


def _umount(vfs):
    try:
        vfs.umount(MOUNT_POINT)
    except OSError:
        pass  # the runtime found no image at the partition's start


def start(vfs, open_store, path, part=None, log=print):
    """Pick, save and mount the slot (see the header); returns (NO_ROMFS,
    NO_SLOTS, RUN or RECOVERY, the slot). part: the partition (default
    partition(vfs)); open_store() -> the slot store (only called when there
    is a partition): load() -> (rec or None, notes), then found (a record
    file exists, valid or not), save(rec); path:
    sys.path, given /rom and /rom/lib when a slot is mounted."""
    global RUNNING
    if part is None:
        part = partition(vfs)
    if part is None:
        log("boot: no ROMFS partition on this port: no A/B slots, the files on the filesystem run")
        return NO_ROMFS, slots.NONE
    store = open_store()
    rec, notes = store.load()
    for code, value in notes:
        log("boot: slot record note %d (%d)" % (code, value))
    slot, save = choose(rec, not store.found, lambda s: image(vfs, part, s) is not None)
    if save is not None:
        store.save(save)  # before the slot runs: a crash or a cut in its try counts as a failed try
    if slot == slots.NONE:
        log("boot: no slot record and no image in slot A: nothing mounted")
        return NO_SLOTS, slot
    _umount(vfs)
    RUNNING = slot
    if slot == slots.RECOVERY:
        log("boot: no valid image slot: recovery (nothing mounted)")
        return RECOVERY, slot
    vfs.mount(image(vfs, part, slot), MOUNT_POINT)
    for p in (MOUNT_POINT, MOUNT_POINT + "/lib"):
        if p not in path:
            path.append(p)
    log("boot: slot %s%s" % ("AB"[slot], " (try %d)" % save[slots.TRIES] if save[slots.PENDING] == slot else ""))
    return RUN, slot
