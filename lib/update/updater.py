# Owns receiving one update bundle (issue 15; layout: update.bundle) into the
# inactive image slot, transport-independent (app.uds drives it over UDS,
# app.hostupd over Modbus file records, both through app.updsess; the
# recovery mode the same app.uds), and the updater of a board (for_board):
#   begin(total, offset)  a new transfer of `total` bundle bytes (offset 0), or
#                         the resume of the one under way (offset = received)
#   feed(data, i, j)      the next bytes, in order
#   end()                 all `total` bytes are in
#   check(file_digest)    the image's SHA-256 against the signed manifest, every
#                         file's against its entry, then stage
# Every call returns 0 or a refusal reason (R_*, update.bundle's first); a
# refusal ends the transfer (FAILED: only a new begin(total, 0) goes on).
#
# The header (magic, manifest, signature) is kept in RAM and checked (the
# signature with the pack's key, board, security counter, recovery version:
# update.bundle.check) the moment it is complete, before a byte of the image
# reaches the flash; the image is then hashed as it streams into the slot
# (hashlib.sha256, incremental) and written block by block (update.slotwrite).
# The slot record (the boot part's, store.slotstore) changes twice, each one
# atomic save: at begin the target slot is marked empty (slots.begin_write:
# the boot part no longer trusts what is there) and after check the verified
# image is marked pending (slots.stage). A power cut anywhere before the
# second save boots the old image; after it, the new one on trial (and the
# old one again if it does not confirm itself): never nothing.
# Runs only while an update session is open (app.uds imports it then).
import binascii
import hashlib

from update import bundle, slots
from update.slotwrite import SlotWriter

SLOT_BYTES = 256 * 1024  # update.boot's

R_LENGTH = 6  # the bundle's length is not header + the manifest's image length (truncated or padded)
R_HASH = 7  # the image's SHA-256 is not the signed one (a flipped byte)
R_FILE = 8  # a file in the image does not match its manifest entry
R_ORDER = 9  # bytes offered at an offset other than the next one (out of order, repeated, a bad resume)
R_FLASH = 10  # writing the slot or the record failed
R_STATE = 11  # a call the transfer's state does not allow (end before all bytes, check before end)
R_NO_SLOTS = 12  # no slot record / no ROMFS partition: this install does not update by slots
R_TOO_BIG = 13  # more bytes than a slot holds
R_NO_KEY = 14  # the pack was given no update key (update.trust, commissioning): it trusts no bundle
REASONS = ("ok", "format", "signature", "board", "downgrade", "recovery", "length", "hash", "file", "order",
           "flash", "state", "no slots", "too big", "no key")

IDLE = 0
HEADER = 1  # receiving the header
IMAGE = 2  # receiving the image
RECEIVED = 3  # all bytes in, the slot written
STAGED = 4  # verified, pending in the record: the next start runs it
FAILED = 5
STATES = ("idle", "header", "image", "received", "staged", "failed")


class Updater:
    def __init__(self, dev, store, public_key, board, recovery_version, slot_bytes=SLOT_BYTES):
        """dev: the ROMFS partition object (vfs.rom_ioctl(2, 0)) or None;
        store: the slot record (load() -> (rec, notes), save(rec))."""
        self.dev = dev
        self.store = store
        self.key = public_key
        self.board = board
        self.recovery = recovery_version
        self.slot_bytes = slot_bytes
        self.state = IDLE
        self.reason = 0  # the last refusal
        self.total = 0
        self.received = 0
        self.slot = slots.NONE
        self.rec = None
        self.manifest = None
        self.digest = None  # SHA-256 of the manifest under way (a resume names the same bundle)
        self._head = bytearray(bundle.HEAD)
        self._hlen = 0  # header length once known
        self._sha = None
        self.w = None

    def _fail(self, reason):
        self.state = FAILED
        self.reason = reason
        self._head = bytearray(bundle.HEAD)  # the header buffer (up to 16 KiB) goes
        self.manifest = None
        self._sha = None
        return reason

    def begin(self, total, offset):
        if offset:
            if self.state in (HEADER, IMAGE) and offset == self.received and total == self.total:
                return 0
            return self._fail(R_ORDER)
        if self.dev is None:
            return self._fail(R_NO_SLOTS)
        if self.key is None:
            return self._fail(R_NO_KEY)
        if total < bundle.HEAD + bundle.SIG_BYTES or total > bundle.HEAD + bundle.MAX_MANIFEST + bundle.SIG_BYTES \
                + self.slot_bytes:
            return self._fail(R_TOO_BIG)
        try:
            rec = self.store.load()[0]
        except OSError:
            rec = None
        if rec is None or not slots.valid(rec):
            return self._fail(R_NO_SLOTS)  # the boot part writes the record at every start with a slot image
        self.slot = slots.target(rec)
        self.rec = slots.begin_write(rec, self.slot)
        try:
            self.w = SlotWriter(self.dev, self.slot * self.slot_bytes, self.slot_bytes)
            self.store.save(self.rec)  # before the slot is touched
            self.w.start()
        except (OSError, ValueError):
            return self._fail(R_FLASH)
        self.state = HEADER
        self.total = total
        self.received = 0
        self.reason = 0
        self._hlen = 0
        self._head = bytearray(bundle.HEAD)
        self.manifest = None
        self.digest = None
        self._sha = hashlib.sha256()
        return 0

    def header_completes(self, n):
        """True when feeding n more bytes would complete the header (the
        signature check runs then: a transport may want to say it is busy)."""
        if self.state != HEADER:
            return False
        if self._hlen:
            return self.received + n >= self._hlen
        return self.received + n >= bundle.HEAD  # the length is learnt there: the rest may be in the same bytes

    def feed(self, data, i=0, j=-1):
        if j < 0:
            j = len(data)
        st = self.state
        if st != HEADER and st != IMAGE:
            return self._fail(R_STATE)
        if self.received + j - i > self.total:
            return self._fail(R_LENGTH)
        while i < j and self.state == HEADER:
            r = self._header(data, i, j)
            if r < 0:
                return self.reason
            i = r
        if i < j:
            try:
                self._sha.update(data[i:j])
                self.w.feed(data, i, j)
            except (OSError, ValueError):
                return self._fail(R_FLASH)
            self.received += j - i
        return 0

    def erase_ahead(self, n):
        """The slot writer's erase_ahead for the image's next bytes of the
        next n bundle bytes (none while in the header); False on a failure
        (a flash error fails the transfer, as a write would)."""
        if self.state != IMAGE:
            return False
        k = self.total - self.received
        try:
            return self.w.erase_ahead(n if n < k else k)
        except (OSError, ValueError):
            self._fail(R_FLASH)
            return False

    def _header(self, data, i, j):
        """Take header bytes from data[i:j]; the next index, -1 on a refusal."""
        h = self._head
        got = self.received
        if not self._hlen:
            k = min(bundle.HEAD - got, j - i)
            h[got:got + k] = data[i:i + k]
            i += k
            got += k
            self.received = got
            if got < bundle.HEAD:
                return i
            try:
                n = bundle.header_length(h)
            except bundle.BundleError as e:
                self._fail(e.code)
                return -1
            self._hlen = n
            self._head = bytearray(n)
            self._head[:bundle.HEAD] = h
            h = self._head
        n = self._hlen
        k = min(n - got, j - i)
        h[got:got + k] = data[i:i + k]
        i += k
        self.received = got + k
        if self.received < n:
            return i
        try:
            m = bundle.check(h, self.key, self.board, self.rec[slots.FLOOR], self.recovery)
        except bundle.BundleError as e:
            self._fail(e.code)
            return -1
        if self.total != n + m["image_bytes"]:
            self._fail(R_LENGTH)
            return -1
        if m["image_bytes"] > self.slot_bytes:
            self._fail(R_TOO_BIG)
            return -1
        self.digest = hashlib.sha256(h[bundle.HEAD:n - bundle.SIG_BYTES]).digest()
        self.manifest = m
        self._head = bytearray(bundle.HEAD)
        self.state = IMAGE
        return i

    def end(self):
        if self.state != IMAGE or self.received != self.total:
            return self._fail(R_LENGTH if self.state == IMAGE else R_STATE)
        try:
            self.w.flush()
        except (OSError, ValueError):
            return self._fail(R_FLASH)
        self.state = RECEIVED
        return 0

    def check(self, file_digest=None):
        """file_digest(slot, name): the SHA-256 (hex) of file name in the
        slot's image, None when it is missing (None: files not checked)."""
        if self.state == STAGED:
            return 0
        if self.state != RECEIVED:
            return self._fail(R_STATE)
        m = self.manifest
        if self._sha.digest() != _unhex(m["image_sha256"]):
            return self._fail(R_HASH)
        if file_digest is not None:
            for name in m["files"]:
                if file_digest(self.slot, name) != m["files"][name]:
                    return self._fail(R_FILE)
        rec = slots.stage(self.rec, self.slot, m["counter"])
        if rec is None:
            return self._fail(bundle.R_DOWNGRADE)
        try:
            self.store.save(rec)  # the one state change: pending from here on
        except OSError:
            return self._fail(R_FLASH)
        self.rec = rec
        self.state = STAGED
        return 0


def _unhex(s):
    try:
        return binascii.unhexlify(s)
    except ValueError:
        return b""


def partition(board):
    """The ROMFS partition object the slots live in: board.rom (the bench,
    tests), else the port's (vfs.rom_ioctl(2, 0)); None without one."""
    dev = getattr(board, "rom", None)
    if dev is not None:
        return dev
    try:
        import vfs
        seg = vfs.rom_ioctl(2, 0)
    except (ImportError, AttributeError, OSError):
        return None
    return None if isinstance(seg, int) else seg


def romfs_digest(vfs, board, slot, name, slot_bytes=SLOT_BYTES):
    """The SHA-256 (hex) of file name in slot's image (vfs.VfsRom over the
    partition's buffer), None when the image or the file is not there."""
    dev = partition(board)
    if dev is None:
        return None
    try:
        fs = vfs.VfsRom(memoryview(dev)[slot * slot_bytes:(slot + 1) * slot_bytes])
        f = fs.open(name, "rb")
    except OSError:
        return None
    h = hashlib.sha256()
    buf = bytearray(512)
    while True:
        n = f.readinto(buf)
        if not n:
            break
        h.update(memoryview(buf)[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()


def for_board(board, slot_store, provisioned=None):
    """The Updater of board (its partition, board.name) with the key the pack
    trusts: provisioned (the owner's key given at commissioning: bms.auth's
    update_key), else the one built into its firmware (update.trust, written
    by the owner's build), else none (every bundle refused: R_NO_KEY);
    board.trust_key where the board is given its own (the bench provisions its
    packs' key); None without a board name."""
    name = getattr(board, "name", None)
    if name is None:
        return None
    from update import trust
    key = getattr(board, "trust_key", None) or provisioned or trust.PUBLIC_KEY
    return Updater(partition(board), slot_store, key, name, trust.RECOVERY_VERSION)


def file_check(board):
    """file_digest(slot, name) for check(): the file in the slot's image
    through vfs.VfsRom; None on a port without it (files unchecked);
    board.file_digest where the board has its own reader (the bench)."""
    own = getattr(board, "file_digest", None)
    if own is not None:
        return own
    try:
        import vfs
        vfs.VfsRom
    except (ImportError, AttributeError):
        return None
    return lambda slot, name: romfs_digest(vfs, board, slot, name)
