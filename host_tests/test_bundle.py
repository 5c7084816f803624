# Update bundles (issue 15): made on the host (tools/bmsctl/bundle.py, signed
# with `cryptography`), checked by the pack (lib/update/bundle.py) before a byte
# of the image is written. A good bundle passes; every forgery, a bundle for
# another board, a downgrade and a malformed header are refused with the
# reason; the check runs in the 32-bit MicroPython under a heap cap.
import hashlib
import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tools import paths
from tools.bmsctl import bundle as host
from tools.bmsctl.cli import main as bmsctl
from update import bundle as board

IMAGE = bytes(range(256)) * 40
FILES = {"app/app.mpy": b"\x4d\x06app", "lib/bms/soc.mpy": b"\x4d\x06soc"}


def _key():
    k = Ed25519PrivateKey.generate()
    return k, bytes.fromhex(host.public_hex(k))


def _bundle(key, board_name="esp32_bq", counter=3, min_recovery=1, manifest=None):
    m = manifest if manifest is not None else host.manifest(board_name, "1.2.0", counter, IMAGE, FILES,
                                                            min_recovery)
    return host.pack(m, IMAGE, key)


def _header(data):
    return data[:board.header_length(data[:board.HEAD])]


def test_a_good_bundle_passes_and_its_image_matches_the_signed_digest():
    k, pub = _key()
    data = _bundle(k)
    head = _header(data)
    m = board.check(head, pub, "esp32_bq", 3, 1)
    assert m["version"] == "1.2.0" and m["counter"] == 3
    image = data[len(head):]
    assert len(image) == m["image_bytes"]
    assert hashlib.sha256(image).hexdigest() == m["image_sha256"]
    assert m["files"] == {n: hashlib.sha256(b).hexdigest() for n, b in FILES.items()}


@pytest.mark.parametrize("case,reason", [
    ("other key", "signature does not verify"),
    ("tampered manifest", "signature does not verify"),
    ("tampered signature", "signature does not verify"),
    ("other board", "for board rp2040_bq, this pack is esp32_bq"),
    ("downgrade", "security counter 2 is below 3"),
    ("newer recovery", "needs recovery 2"),
    ("not JSON", "not JSON"),
    ("missing field", "field counter missing"),
    ("bad magic", "not an update bundle"),
    ("format", "bundle format 9"),
    ("truncated", "header is"),
])
def test_refused_with_the_reason(case, reason):
    k, pub = _key()
    data = _bundle(k)
    if case == "other key":
        data = _bundle(_key()[0])
    elif case == "tampered manifest":
        i = data.index(b'"counter":3')
        data = data[:i + 10] + b"9" + data[i + 11:]
    elif case == "tampered signature":
        h = len(_header(data))
        data = data[:h - 5] + bytes([data[h - 5] ^ 1]) + data[h - 4:]
    elif case == "other board":
        data = _bundle(k, board_name="rp2040_bq")
    elif case == "downgrade":
        data = _bundle(k, counter=2)
    elif case == "newer recovery":
        data = _bundle(k, min_recovery=2)
    elif case == "not JSON":
        data = _bundle(k, manifest=b"{not json")
    elif case == "missing field":
        m = json.loads(host.manifest("esp32_bq", "1", 3, IMAGE, FILES))
        del m["counter"]
        data = _bundle(k, manifest=json.dumps(m).encode())
    elif case == "bad magic":
        data = b"XXXX" + data[4:]
    elif case == "format":
        data = data[:4] + b"\x09" + data[5:]
    with pytest.raises(board.BundleError, match=reason):
        head = data[:board.header_length(data[:board.HEAD])]
        if case == "truncated":
            head = head[:-1]
        board.check(head, pub, "esp32_bq", 3, 1)


def test_the_counter_of_the_confirmed_image_is_the_floor():
    k, pub = _key()
    assert board.check(_header(_bundle(k, counter=5)), pub, "esp32_bq", 5, 1)["counter"] == 5
    with pytest.raises(board.BundleError, match="downgrade"):
        board.check(_header(_bundle(k, counter=4)), pub, "esp32_bq", 5, 1)


def test_the_check_runs_in_32_bit_micropython(tmp_path, mpy32):
    # 96 KB: the modules are compiled from source here (on the board they run from the image)
    k, pub = _key()
    files = {"app/m%02d.mpy" % i: bytes([i]) * 100 for i in range(90)}  # a manifest as big as a real one
    data = host.pack(host.manifest("esp32_bq", "1.2.0", 3, IMAGE, files), IMAGE, k)
    head = _header(data)
    bad = head[:20] + bytes([head[20] ^ 1]) + head[21:]
    (tmp_path / "good").write_bytes(head)
    (tmp_path / "bad").write_bytes(bad)
    code = ("import gc\nfrom update import bundle\n"
            "def load(p):\n    with open(p, 'rb') as f:\n        return f.read()\n"
            "gc.collect()\nm = bundle.check(load(%r), %r, 'esp32_bq', 3, 1)\n"
            "print(m['counter'], len(m['files']))\n"
            "try:\n    bundle.check(load(%r), %r, 'esp32_bq', 3, 1)\nexcept bundle.BundleError as e:\n    print(e)\n"
            % (str(tmp_path / "good"), pub, str(tmp_path / "bad"), pub))
    r = mpy32(code, heap="96K")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["3 90", "signature does not verify with this pack's key"]


def test_bmsctl_bundle_signs_the_boards_romfs_image(tmp_path, capsys):
    out = tmp_path / "b.bin"
    assert bmsctl(["bundle", "--board", "esp32_bq", "--version", "2.0.0", "--counter", "7",
                   "--out", str(out)]) == 0
    data = out.read_bytes()
    with open(os.path.join(paths.ROOT, "tools", "keys", "dev-ed25519.pub")) as f:
        pub = bytes.fromhex(f.read().strip())
    head = _header(data)
    m = board.check(head, pub, "esp32_bq", 7, 1)
    image = data[len(head):]
    assert hashlib.sha256(image).hexdigest() == m["image_sha256"]
    assert "app/app.mpy" in m["files"] and "board.mpy" in m["files"]
    # a ROMFS image starts with its header record (MicroPython docs, vfs.VfsRom: 0xD2 0xCD 0x31)
    assert image[:3] == b"\xd2\xcd\x31"
    assert "version" in m["files"]  # the version the pack reports (update.boot.version), hashed too


def test_the_pack_reports_the_bundles_version_from_its_image(tmp_path, mpy32):
    # the board's image mounted by MicroPython's own vfs.VfsRom, read back by the boot part's reader
    out = tmp_path / "b.bin"
    assert bmsctl(["bundle", "--board", "esp32_bq", "--version", "2.10.3", "--out", str(out)]) == 0
    data = out.read_bytes()
    (tmp_path / "img").write_bytes(data[len(_header(data)):])
    code = ("import vfs\nfrom update import boot\nprint(boot.version())\n"
            "with open(%r, 'rb') as f:\n    vfs.mount(vfs.VfsRom(f.read()), '/rom')\n"
            "print(boot.version())\n" % str(tmp_path / "img"))
    r = mpy32(code, heap="512K")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["None", "b'2.10.3'"]  # nothing mounted yet: no version


@pytest.mark.parametrize("version", ["2", "v2.0", "2.0.0.1", "2.256", "300.1", "12.34.567", "2..0", "２.0", ""])
def test_a_version_the_pack_cannot_report_is_refused(tmp_path, capsys, version):
    out = tmp_path / "b.bin"
    assert bmsctl(["bundle", "--board", "esp32_bq", "--version", version, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "MAJOR.MINOR" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_keys_new_refuses_to_overwrite(tmp_path, capsys):
    prefix = str(tmp_path / "owner")
    assert bmsctl(["keys", "new", "--out", prefix]) == 0
    pub = (tmp_path / "owner.pub").read_text().strip()
    assert len(bytes.fromhex(pub)) == 32
    assert oct(os.stat(prefix + ".pem").st_mode & 0o777) == "0o600"
    assert bmsctl(["keys", "new", "--out", prefix]) == 1
    assert "exists" in capsys.readouterr().err


def test_the_firmware_reports_the_mounted_images_version_else_its_own(monkeypatch):
    from app import hostbuild
    from app.host import VERSION
    from update import boot

    class Board:
        fw_version = None

    assert hostbuild.version(Board()) == VERSION  # no /rom/version on this host: the built-in 1.0
    monkeypatch.setattr(boot, "version", lambda: b"2.1.0")
    assert hostbuild.version(Board()) == b"2.1.0"
    b = Board()
    b.fw_version = b"3.0"  # the bench: its simulated slot's file
    assert hostbuild.version(b) == b"3.0"
