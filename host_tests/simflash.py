# Owns the simulated flash for the store tests: store.memfs.MemFs with a power
# cut after a budget of "write units". Every written byte is one unit; a
# truncation (open "wb"), a rename and a remove are one unit each (atomic, as
# in littlefs). When the budget runs out in the middle of a write, the bytes
# before the cut land and the byte at the cut is torn (never the byte meant:
# a cut one byte short of the end leaves an invalid copy, so a test can say
# which state each cut must read), then PowerCut is raised and every later
# operation raises too, until remount() gives a fresh view of the same files
# (the board rebooting). `ops` logs every completed operation as
# (units used after it, "write"/"truncate"/"rename"/"remove", name): tests
# find the commit point of each save there.
import random

from store.memfs import MemFs


class PowerCut(OSError):
    pass


class SimFlash(MemFs):
    def __init__(self, files=None, budget=None, seed=0):
        MemFs.__init__(self, files)
        self.budget = budget  # units left before the cut; None = never
        self.used = 0  # units consumed since mount
        self.dead = False
        self.rng = random.Random(seed)
        self.bytes_written = 0
        self.ops = []

    def remount(self, budget=None):
        return SimFlash(self.files, budget, self.rng.randrange(1 << 30))

    def _spend(self, n):
        """How many of n units may happen (< n means the cut comes inside)."""
        if self.dead:
            raise PowerCut("flash is powered off")
        if self.budget is None:
            self.used += n
            return n
        left = self.budget - self.used
        if left >= n:
            self.used += n
            return n
        self.used = self.budget
        self.dead = True
        return max(left, 0)

    def _write(self, name, pos, b):
        ok = self._spend(len(b))
        if ok == len(b):
            self.bytes_written += ok
            n = MemFs._write(self, name, pos, b)
            self.ops.append((self.used, "write", name))
            return n
        torn = bytes(b[:ok]) + bytes([b[ok] ^ self.rng.randrange(1, 256)])
        MemFs._write(self, name, pos, torn)
        raise PowerCut("cut while writing %s at byte %d" % (name, pos + ok))

    def _op(self):
        if self._spend(1) < 1:
            raise PowerCut("cut before a metadata operation")

    def _truncate(self, name):
        self._op()
        MemFs._truncate(self, name)
        self.ops.append((self.used, "truncate", name))

    def open(self, name, mode):
        if self.dead:
            raise PowerCut("flash is powered off")
        return MemFs.open(self, name, mode)

    def rename(self, a, b):
        self._op()
        MemFs.rename(self, a, b)
        self.ops.append((self.used, "rename", a))

    def remove(self, name):
        self._op()
        MemFs.remove(self, name)
        self.ops.append((self.used, "remove", name))

    def size(self, name):
        if self.dead:
            raise PowerCut("flash is powered off")
        return MemFs.size(self, name)

    def flip(self, name, bit):
        """Flip one bit of a stored file (bit index from the file's start)."""
        self.files[name][bit // 8] ^= 1 << (bit % 8)


def commits(fs, name):
    """Units used when each complete new copy of atomic file `name` was
    written (store.atomic: the copy with the highest sequence wins, so a save
    counts from the last byte of its NAME.tmp; the renames after it tidy)."""
    return [u for u, op, n in fs.ops if op == "write" and n == name + ".tmp"]


def expected_index(marks, cut):
    """How many saves a cut after `cut` units must read back as done."""
    k = 0
    while k < len(marks) and marks[k] <= cut:
        k += 1
    return k


def copy(fs, budget=None):
    """An independent flash with the same files (for a dry run)."""
    return SimFlash({k: bytearray(v) for k, v in fs.files.items()}, budget)


def check_recovery(fs, read_back, want):
    """A boot after a cut reads `want`, also when that recovery boot is cut at
    each of its own write units (then a clean boot follows). read_back(fs)
    boots on a flash and returns what it read. Returns how many second cuts
    were tried (the units the recovery boot writes)."""
    dry = copy(fs)
    got = read_back(dry)
    assert got == want, (got, want)
    for cut2 in range(dry.used):
        f2 = copy(fs, budget=cut2)
        try:
            read_back(f2)
            raise AssertionError("the recovery boot needed only %d units" % cut2)
        except PowerCut:
            pass
        assert read_back(f2.remount()) == want, cut2
    return dry.used


def cut_everywhere(run, name, states, read_back):
    """Cuts the power at every write unit of run(fs) (saves of atomic file
    `name` on a fresh flash; returns how many completed) and checks that a
    boot after each cut, also a cut recovery boot (check_recovery), reads
    exactly states[k]: k the saves committed before the cut (commits), so
    states[0] is what a boot reads before the first. The states must all
    differ from their neighbours: each save is seen. Returns (saves the
    uncut reference run completed, units it used, second cuts tried)."""
    ref = SimFlash()
    done = run(ref)
    marks = commits(ref, name)
    assert len(marks) == len(states) - 1
    assert all(states[k] != states[k + 1] for k in range(len(marks)))
    second_cuts = 0
    for cut in range(ref.used + 1):  # every byte written and every truncate/rename
        fs = SimFlash(budget=cut, seed=cut)
        try:
            run(fs)
            assert cut == ref.used
        except PowerCut:
            assert cut < ref.used
        want = states[expected_index(marks, cut)]
        second_cuts += check_recovery(fs, read_back, want)
        assert read_back(fs.remount()) == want, "cut at %d" % cut
    return done, ref.used, second_cuts


class SimPartition:
    """The board's ROMFS partition as MicroPython 1.27 hands it out on esp32
    and rp2 (vfs.rom_ioctl(2, 0): update.slotwrite's header), on the power of
    a SimFlash: its units are one per block erase and one per PAGE bytes
    programmed, from the same budget, so one cut can fall in either. NOR
    semantics: programming ANDs into what is there (a write over unerased
    bytes corrupts them, as on the chip); a cut inside a program leaves the
    page's first bytes programmed and the rest as it was; a cut inside an
    erase leaves the block half erased."""
    PAGE = 256

    def __init__(self, power, size, block=4096, data=None):
        self.power = power  # the SimFlash whose budget this spends
        self.block = block
        self.buf = bytearray(data) if data is not None else bytearray(b"\xff" * size)
        self.erases = 0
        self.programs = 0

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.buf) // self.block
        if op == 5:
            return self.block
        if op == 6:
            o = arg * self.block
            if not 0 <= o < len(self.buf):
                raise OSError(22)
            if self.power._spend(1) < 1:
                self.buf[o:o + self.block // 2] = b"\xff" * (self.block // 2)
                raise PowerCut("cut while erasing block %d" % arg)
            self.buf[o:o + self.block] = b"\xff" * self.block
            self.erases += 1
            return 0
        return None

    def writeblocks(self, n, data, off=None):
        assert off is not None, "the 3-argument writeblocks erases first: update.slotwrite never uses it"
        o = n * self.block + off
        data = bytes(data)
        assert o + len(data) <= len(self.buf)
        pages = (len(data) + self.PAGE - 1) // self.PAGE
        ok = self.power._spend(pages)
        land = len(data) if ok == pages else ok * self.PAGE + self.power.rng.randrange(self.PAGE)
        for i in range(min(land, len(data))):
            self.buf[o + i] &= data[i]
        self.programs += 1
        if ok < pages:
            raise PowerCut("cut while programming at %d" % (o + land))
