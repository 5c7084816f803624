# Owns the host side of the pack's login (bms.auth on the board), written
# from the protocol, not from the board's code: CPython's hmac for the
# responses and the set-secret blob, HKDF (RFC 5869, the `cryptography`
# package) for per-device secrets from a factory key and the serial number,
# PBKDF2 for secrets an installer types as a passphrase.
#   python -m tools.authkit derive --factory-key-file KEY --serial SN [--level 2]
#   python -m tools.authkit response --secret HEX --nonce HEX --level 2
import argparse
import hashlib
import hmac
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

USER = 1
INSTALLER = 2
UPDATE_KEY = 3  # bms.auth.UPDATE_KEY: the owner's update key, provisioned like a secret (no login)
SECRET_LEN = 32
HKDF_SALT = b"bms-auth-v1"
PBKDF2_ROUNDS = 200000  # slows an offline guess at a captured challenge-response


def response(secret, nonce, level):
    """The login answer: HMAC-SHA-256(secret, nonce + bytes([level]))."""
    return hmac.new(secret, bytes(nonce) + bytes([level]), hashlib.sha256).digest()


def derive_secret(factory_key, serial, level):
    """A pack's secret for level from the factory key (kept by the maker,
    never on a pack) and the pack's serial: unique per device, so one pack's
    secret opens no other (ETSI EN 303 645 provision 5.1-1)."""
    info = b"level %d serial " % level + serial.encode()
    return HKDF(algorithm=hashes.SHA256(), length=SECRET_LEN, salt=HKDF_SALT, info=info).derive(factory_key)


def secret_from_passphrase(passphrase, serial):
    """A 32-byte secret from what an installer types, salted per pack."""
    return hashlib.pbkdf2_hmac("sha256", passphrase.encode(), HKDF_SALT + b" " + serial.encode(),
                               PBKDF2_ROUNDS, SECRET_LEN)


def set_secret_blob(installer_secret, login_nonce, level, new_secret):
    """The 64 bytes of a secret change inside an installer session:
    masked = new XOR HMAC(K, 01 + nonce + level), then
    tag = HMAC(K, 02 + nonce + level + masked); login_nonce is the nonce the
    session's login answered."""
    if len(new_secret) != SECRET_LEN:
        raise ValueError("secret must be %d bytes" % SECRET_LEN)
    lv = bytes([level])
    pad = hmac.new(installer_secret, b"\x01" + bytes(login_nonce) + lv, hashlib.sha256).digest()
    masked = bytes(a ^ b for a, b in zip(new_secret, pad))
    tag = hmac.new(installer_secret, b"\x02" + bytes(login_nonce) + lv + masked, hashlib.sha256).digest()
    return masked + tag


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.authkit", description="host side of the pack login (bms.auth)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("derive", help="a pack's secret from the factory key and its serial")
    d.add_argument("--factory-key-file", required=True)
    d.add_argument("--serial", required=True)
    d.add_argument("--level", type=int, choices=(USER, INSTALLER), default=INSTALLER)
    r = sub.add_parser("response", help="the login response to a nonce")
    r.add_argument("--secret", required=True, help="hex")
    r.add_argument("--nonce", required=True, help="hex, 16 bytes")
    r.add_argument("--level", type=int, choices=(USER, INSTALLER), required=True)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "derive":
            with open(a.factory_key_file, "rb") as f:
                key = f.read()
            if len(key) < 32:
                raise ValueError("factory key file holds %d bytes, at least 32 needed" % len(key))
            print(derive_secret(key, a.serial, a.level).hex())
        else:
            print(response(bytes.fromhex(a.secret), bytes.fromhex(a.nonce), a.level).hex())
    except (OSError, ValueError) as e:
        print("authkit: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
