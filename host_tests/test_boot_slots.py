# The boot part's slot choice and mount (lib/update/boot.py, called by
# firmware/boot.py), in the 32-bit unix MicroPython with its real vfs.VfsRom:
# two ROMFS images (mpremote romfs build), each with a bms_main.py at the root
# and a module in lib/ naming its slot, concatenated into a fake 512 KiB
# partition at offsets 0 and 256 KiB (boards/micropython/BMS_ESP32_ROMFS).
# Each "boot" is a fresh interpreter on the same /data directory; it mounts
# slot A at /rom first as the runtime does when the partition starts with an
# image (py/vfs.c), runs update.boot.start, then imports bms_main from the
# chosen image. The record is written and read back with store.slotstore on
# CPython between boots (the updater's and the self-test's saves).
import json
import os
import subprocess

import pytest

from store.fs import OsFs
from store import slotstore as SS
from store.slotstore import SlotStore
from tools import deploy, paths, ram
from update import boot as B
from update import slots as S

PART_BYTES = 2 * B.SLOT_BYTES

BOOT = r"""
import sys, vfs
part = None if PART is None else memoryview(open(PART, "rb").read())  # on the heap here; a board maps it
if part is not None:
    try:  # the runtime's own mount of the partition's start
        vfs.mount(vfs.VfsRom(part), "/rom")
    except OSError:
        pass
from store.fs import OsFs
from store.slotstore import SlotStore
from update import boot
lines = []
what, slot = boot.start(vfs, lambda: SlotStore(OsFs(DATA)), sys.path, part, lines.append)
try:
    import bms_main
    ran = bms_main.SLOT
except ImportError:
    ran = None
print("RESULT", json.dumps([what, slot, ran, boot.RUNNING, lines]))
"""


def _exe():
    exe = ram.interpreter()
    if exe is None:
        pytest.skip(ram.HOWTO)
    return exe


def _image(tmp, name, extra=None):
    """A ROMFS image whose bms_main.py says which slot it is; extra: more
    {path: bytes} in it."""
    d = tmp / ("src" + name)
    (d / "lib").mkdir(parents=True)
    (d / "bms_main.py").write_text("from slotlib import SLOT\n")
    (d / "lib" / "slotlib.py").write_text("SLOT = %r\n" % name)
    for rel, b in (extra or {}).items():
        (d / rel).write_bytes(b)
    out = tmp / (name + ".romfs")
    mpremote = deploy.find_mpremote()
    assert mpremote, "mpremote is in requirements.txt"
    subprocess.run([mpremote, "romfs", "--no-mpy", "-o", str(out), "build", str(d)], check=True,
                   capture_output=True)
    data = out.read_bytes()
    assert data[:3] == b"\xd2\xcd1" and len(data) < B.SLOT_BYTES  # extmod/vfs_rom.c ROMFS_HEADER
    return data


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("img")
    return _image(tmp, "A"), _image(tmp, "B")


def _partition(path, a, b):
    buf = bytearray(b"\xff" * PART_BYTES)  # erased flash
    if a is not None:
        buf[:len(a)] = a
    if b is not None:
        buf[B.SLOT_BYTES:B.SLOT_BYTES + len(b)] = b
    path.write_bytes(bytes(buf))
    return str(path)


def _run(exe, args):
    env = dict(os.environ, MICROPYPATH=os.path.join(paths.ROOT, "lib"))  # lib as the frozen part
    r = subprocess.run([exe, "-X", "heapsize=1M"] + args, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r


class Pack:
    def __init__(self, tmp, part):
        self.exe = _exe()
        self.data = tmp / "data"
        self.data.mkdir(exist_ok=True)
        self.part = part

    def boot(self):
        r = _run(self.exe, ["-c", "import json\nPART = %r\nDATA = %r\n" % (self.part, str(self.data)) + BOOT])
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
        return json.loads(line[0][7:])

    def store(self):
        st = SlotStore(OsFs(str(self.data)))
        return st, st.load()[0]

    def record(self):
        return self.store()[1]

    def write(self, rec):
        st, _ = self.store()
        st.save(rec)


def _installed(counter=3):
    r = B.factory()
    r[S.COUNTER0] = counter
    r[S.FLOOR] = counter
    return r


def test_a_usb_deployed_image_in_slot_a_is_the_factory_install(tmp_path, images):
    pack = Pack(tmp_path, _partition(tmp_path / "p", images[0], None))
    what, slot, ran, running, lines = pack.boot()
    assert (what, slot, ran, running) == (B.RUN, 0, "A", 0)
    assert pack.record() == B.factory()
    assert pack.boot()[:3] == [B.RUN, 0, "A"]


def test_a_staged_image_in_slot_b_runs_and_confirms_itself(tmp_path, images):
    pack = Pack(tmp_path, _partition(tmp_path / "p", *images))
    pack.write(S.stage(_installed(3), 1, 4))
    what, slot, ran, _, lines = pack.boot()
    assert (what, slot, ran) == (B.RUN, 1, "B")  # the runtime's slot A mount was replaced
    assert pack.record()[S.TRIES] == 1 and any("try 1" in ln for ln in lines)
    pack.write(S.confirm(pack.record(), 1))  # the self-test passed
    for _ in range(3):
        assert pack.boot()[:3] == [B.RUN, 1, "B"]
    assert pack.record()[S.CONFIRMED] == 1 and pack.record()[S.FLOOR] == 4


def test_two_tries_without_confirm_roll_back_to_slot_a(tmp_path, images):
    pack = Pack(tmp_path, _partition(tmp_path / "p", *images))
    pack.write(S.stage(_installed(3), 1, 4))
    assert pack.boot()[:3] == [B.RUN, 1, "B"]  # try 1: no confirm (crash, cut, failed self-test)
    assert pack.boot()[:3] == [B.RUN, 1, "B"]  # try 2
    assert pack.boot()[:3] == [B.RUN, 0, "A"]  # given up by itself
    rec = pack.record()
    assert rec[S.PENDING] == S.NONE and rec[S.ROLLBACKS] == 1 and rec[S.COUNTER1] == S.NONE
    assert pack.boot()[:3] == [B.RUN, 0, "A"]


def test_a_pending_slot_without_an_image_is_rolled_back_at_once(tmp_path, images):
    pack = Pack(tmp_path, _partition(tmp_path / "p", images[0], None))  # slot B erased
    pack.write(S.stage(_installed(3), 1, 4))
    assert pack.boot()[:3] == [B.RUN, 0, "A"]
    assert pack.record()[S.PENDING] == S.NONE and pack.record()[S.ROLLBACKS] == 1


def test_no_valid_slot_is_recovery_and_nothing_runs(tmp_path, images):
    pack = Pack(tmp_path, _partition(tmp_path / "p", *images))
    pack.write(S.blank())  # a record with no confirmed image
    what, slot, ran, running, lines = pack.boot()
    assert (what, slot, ran, running) == (B.RECOVERY, S.RECOVERY, None, S.RECOVERY)  # slot A unmounted


def test_a_confirmed_slot_whose_image_is_gone_is_recovery(tmp_path, images):
    pack = Pack(tmp_path, _partition(tmp_path / "p", None, images[1]))  # slot A erased
    pack.write(_installed(3))
    assert pack.boot()[:3] == [B.RECOVERY, S.RECOVERY, None]
    assert pack.record()[S.COUNTER0] == S.NONE


def test_a_damaged_record_runs_slot_a_with_a_note(tmp_path, images):
    # a pack that runs its protections is safer than one in recovery (nothing drives the FETs there)
    pack = Pack(tmp_path, _partition(tmp_path / "p", *images))
    pack.write(_installed(3))
    (pack.data / SS.FILE).write_bytes(b"BMSS" + bytes(30))  # no valid copy (no .bak yet)
    what, slot, ran, _, lines = pack.boot()
    assert (what, slot) == (B.RUN, 0) and ran == "A"
    assert pack.record() == B.factory()  # a good record again; the floor starts at 0
    assert "boot: slot record note %d (%d)" % (SS.N_SLOTS_CORRUPT, 4) in lines


def test_no_record_and_no_image_mounts_nothing_and_writes_nothing(tmp_path, images):
    pack = Pack(tmp_path, _partition(tmp_path / "p", None, images[1]))
    assert pack.boot()[:3] == [B.NO_SLOTS, S.NONE, None]
    assert os.listdir(pack.data) == []


def test_a_port_without_romfs_does_nothing_and_says_so_once(tmp_path):
    pack = Pack(tmp_path, None)  # the unix port has no vfs.rom_ioctl
    what, slot, ran, running, lines = pack.boot()
    assert (what, slot, ran, running) == (B.NO_ROMFS, S.NONE, None, S.NONE)
    assert len(lines) == 1 and "no ROMFS partition" in lines[0]
    assert os.listdir(pack.data) == []


def test_the_boot_script_on_a_port_without_romfs_says_so_once_and_touches_no_file(tmp_path):
    # the unix port lacks micropython.alloc_emergency_exception_buf: a stand-in module
    shim = ("import sys\nclass M:\n    @staticmethod\n    def alloc_emergency_exception_buf(n):\n"
            "        pass\nsys.modules['micropython'] = M\nexec(open(%r).read())\n"
            % os.path.join(paths.ROOT, "firmware", "boot.py"))
    r = _run(_exe(), ["-c", shim])
    assert r.stdout.splitlines() == [
        "boot: no ROMFS partition on this port: no A/B slots, the files on the filesystem run"]


# the decision alone, on CPython

def test_choose_follows_slots_and_checks_the_image():
    both = {0, 1}.__contains__
    assert B.choose(None, True, both) == (0, B.factory())
    assert B.choose(None, True, {1}.__contains__) == (S.NONE, None)
    assert B.choose(None, False, both) == (0, B.factory())  # damaged beyond the backup: slot A runs
    assert B.choose([0, 0, 0], False, both) == (0, B.factory())  # not a valid record: the same
    assert B.choose(None, False, {1}.__contains__)[0] == S.RECOVERY  # damaged, and nothing in slot A
    staged = S.stage(_installed(), 1, 4)
    assert B.choose(staged, False, both)[0] == 1
    slot, rec = B.choose(staged, False, {0}.__contains__)
    assert slot == 0 and rec[S.PENDING] == S.NONE and rec[S.ROLLBACKS] == 1
    assert B.choose(staged, False, set().__contains__)[0] == S.RECOVERY
