# Owns the update bundle's header on the board: what a pack checks before it
# writes a byte of a new image. A bundle is
#   MAGIC (4) | format (1) | manifest length (u16, big-endian) | manifest (JSON, UTF-8)
#   | signature (64: Ed25519 over SHA-256(manifest)) | image (the ROMFS image)
# and the manifest names the board, the version, the security counter (only
# moves forward: a confirmed image's counter is the minimum accepted from then
# on), the image's length and SHA-256, every file's SHA-256 and the minimum
# recovery version. The pack verifies the signature over a 32-byte digest
# (not over the image) with the public key it was given at commissioning; the
# image itself is then checked against the signed SHA-256 as it streams in.
# Runs only while an update is checked: allocates freely.
import hashlib
import json

from update.ed25519 import verify

MAGIC = b"BMSU"
FORMAT = 1
SIG_BYTES = 64
MAX_MANIFEST = 16384
HEAD = 7  # magic, format, manifest length


# refusal reasons (BundleError.code; update.updater adds its own after these)
R_FORMAT = 1  # not a bundle, an unknown format, a malformed manifest
R_SIGNATURE = 2  # the signature does not verify with this pack's key (or another key signed it)
R_BOARD = 3  # made for another board
R_DOWNGRADE = 4  # security counter below the confirmed image's
R_RECOVERY = 5  # needs a newer boot/recovery part


class BundleError(Exception):
    """A bundle the pack refuses; str() is the reason in plain words, code
    one of R_*."""

    def __init__(self, text, code=R_FORMAT):
        super().__init__(text)
        self.code = code


def header_length(head):
    """The bytes of head (the first HEAD bytes of a bundle) up to the image."""
    if len(head) < HEAD or bytes(head[:4]) != MAGIC:
        raise BundleError("not an update bundle")
    if head[4] != FORMAT:
        raise BundleError("bundle format %d, this pack reads %d" % (head[4], FORMAT))
    n = (head[5] << 8) | head[6]
    if n < 2 or n > MAX_MANIFEST:
        raise BundleError("manifest length %d out of range" % n)
    return HEAD + n + SIG_BYTES


def check(header, public_key, board, min_counter, recovery_version):
    """The manifest (a dict) of a bundle header (everything before the
    image) signed by public_key for this board and not older than
    min_counter; BundleError otherwise."""
    total = header_length(header)
    if len(header) != total:
        raise BundleError("header is %d bytes, %d expected" % (len(header), total))
    manifest = bytes(header[HEAD:total - SIG_BYTES])
    sig = bytes(header[total - SIG_BYTES:total])
    if not verify(public_key, hashlib.sha256(manifest).digest(), sig):
        raise BundleError("signature does not verify with this pack's key", R_SIGNATURE)
    try:
        m = json.loads(manifest)
    except ValueError:
        raise BundleError("manifest is not JSON")
    if not isinstance(m, dict):
        raise BundleError("manifest is not an object")
    for key, kind in (("board", str), ("version", str), ("counter", int), ("image_bytes", int),
                      ("image_sha256", str), ("min_recovery", int), ("files", dict)):
        if not isinstance(m.get(key), kind):
            raise BundleError("manifest field %s missing or not %s" % (key, kind.__name__))
    if m["board"] != board:
        raise BundleError("image is for board %s, this pack is %s" % (m["board"], board), R_BOARD)
    if m["counter"] < min_counter:
        raise BundleError("security counter %d is below %d (a downgrade)" % (m["counter"], min_counter), R_DOWNGRADE)
    if m["min_recovery"] > recovery_version:
        raise BundleError("image needs recovery %d, this pack has %d" % (m["min_recovery"], recovery_version), R_RECOVERY)
    if len(m["image_sha256"]) != 64 or m["image_bytes"] <= 0:
        raise BundleError("manifest image fields malformed")
    return m
