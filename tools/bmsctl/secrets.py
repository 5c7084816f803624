# Owns the secrets a bmsctl run logs in with: a secret file (64 hex digits or
# the 32 bytes), or a passphrase made into the secret with the pack's serial
# (tools.authkit), and the login itself (client.Pack.login). Used by the CLI,
# the TUI's unlock dialog and the update commands.
import getpass

from tools import authkit
from tools.bmsctl import sunspec
from tools.bmsctl.client import LEVELS, CtlError


def read_secret(path):
    """A 32-byte secret from a file: 64 hex digits, or the 32 bytes themselves."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CtlError("cannot read secret file %s: %s" % (path, e.strerror or e))
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = data
    if len(key) != authkit.SECRET_LEN:
        raise CtlError("secret file %s: %d bytes, %d wanted (64 hex digits or 32 raw bytes)" % (
            path, len(key), authkit.SECRET_LEN))
    return key


def serial_of(t, unit):
    dev = sunspec.scan(t, unit)
    sn = sunspec.point(dev.models["common"][0], "SN") if dev and dev.models.get("common") else None
    if not sn:
        raise CtlError("unit %d: no serial number in its SunSpec common model: a passphrase needs it "
                       "(use --secret-file)" % unit)
    return sn


def secret_for(t, unit, secret_file, passphrase, prompt):
    """passphrase: True to ask for it on the terminal, or the passphrase itself (the TUI's dialog)."""
    if secret_file:
        return read_secret(secret_file)
    if passphrase:
        sn = serial_of(t, unit)
        text = passphrase if isinstance(passphrase, str) else getpass.getpass("%s (pack %s): " % (prompt, sn))
        return authkit.secret_from_passphrase(text, sn)
    raise CtlError("a login needs --secret-file F or --passphrase")


def do_login(pack, level_name, secret_file, passphrase):
    level = LEVELS[level_name]
    secret = secret_for(pack.t, pack.unit, secret_file, passphrase, "%s passphrase" % level_name)
    pack.login(level, secret)
    pack.secret = secret
    return level
