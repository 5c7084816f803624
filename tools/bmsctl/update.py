# Owns `bmsctl update FILE --unit N`: one pack's firmware update over CAN with
# udsoncan's client on can-isotp (python-can bus: a USB adapter, or the bench's
# udp_multicast), the UDS session app.uds serves (ISO 14229-1; ids 0x18DA_TA_F1):
# programming session, security access answered with the installer secret
# (the seed is the pack's login nonce, the key HMAC-SHA-256(secret, seed + 2):
# tools.authkit.response, the Modbus login's), request download of the whole
# bundle, transfer data in the pack's block length with a rich progress bar,
# transfer exit, the check routine (verify + stage), then the activate routine
# (the pack restarts into the new image, which confirms itself after its
# self-test). An interrupted transfer resumes: the pack's DID 0xF1A3 names
# the bundle under way, 0xF1A2 the bytes it has, and a request download at
# that offset goes on from there. Every refusal is one line naming the
# service and the NRC.
import struct

import udsoncan
from udsoncan import DidCodec, services
from udsoncan.client import Client
from udsoncan.exceptions import NegativeResponseException, TimeoutException, UnexpectedResponseException

from tools import authkit
from tools.canbus import open_bus
from tools.bmsctl.transport import TESTER_ADDRESS

PF = 0xDA
DID_VERSION = 0xF189
DID_SLOTS = 0xF1A0
DID_COUNTERS = 0xF1A1
DID_TRANSFER = 0xF1A2
DID_BUNDLE = 0xF1A3
RT_CHECK = 0xFF01
RT_ACTIVATE = 0x0201
RT_DEFAULTS = 0x0202
STATES = ("idle", "header", "image", "received", "staged", "failed")
REASONS = ("ok", "format", "signature", "board", "downgrade", "recovery", "length", "hash", "file", "order",
           "flash", "state", "no slots", "too big")


class UpdateError(Exception):
    pass


class _Raw(DidCodec):
    def __init__(self, n, decode):
        self.n = n
        self.dec = decode

    def encode(self, *a):
        raise NotImplementedError

    def decode(self, payload):
        return self.dec(payload)

    def __len__(self):
        return self.n


def _slot(b):
    return {0xFF: None, 0xFE: "recovery"}.get(b, "AB"[b] if b < 2 else b)


DIDS = {
    DID_VERSION: _Raw(8, lambda p: p.rstrip(b"\0").decode("ascii", "replace")),
    DID_SLOTS: _Raw(4, lambda p: {"running": _slot(p[0]), "confirmed": _slot(p[1]), "pending": _slot(p[2]),
                                  "tries": p[3]}),
    DID_COUNTERS: _Raw(8, lambda p: dict(zip(("floor", "running"), struct.unpack(">II", p)))),
    DID_TRANSFER: _Raw(11, lambda p: {"state": STATES[p[0]] if p[0] < len(STATES) else p[0],
                                      "reason": REASONS[p[1]] if p[1] < len(REASONS) else p[1],
                                      "received": struct.unpack(">I", p[2:6])[0],
                                      "total": struct.unpack(">I", p[6:10])[0], "next_block": p[10]}),
    DID_BUNDLE: _Raw(32, bytes),
}


def uds_ids(pack_address, tester=TESTER_ADDRESS):
    """(tester -> pack, pack -> tester): ISO 15765-2 normal fixed addressing, physical."""
    base = (6 << 26) | (PF << 16)
    return base | (pack_address << 8) | tester, base | (tester << 8) | pack_address


def client_config(secret):
    cfg = dict(udsoncan.configs.default_client_config)
    cfg.update({"data_identifiers": DIDS, "request_timeout": 30, "p2_timeout": 2, "p2_star_timeout": 10,
                "use_server_timing": False,
                "security_algo": lambda level, seed, params: authkit.response(params, bytes(seed), authkit.INSTALLER),
                "security_algo_params": secret})
    return cfg


def manifest_digest(data):
    import hashlib
    from update import bundle as fmt
    n = fmt.header_length(data[:fmt.HEAD])
    return hashlib.sha256(data[fmt.HEAD:n - fmt.SIG_BYTES]).digest(), n


def _nrc(e):
    r = e.response
    return "%s refused: NRC 0x%02X (%s)" % (r.service.get_name(), r.code, r.code_name)


def identify(client):
    r = client.read_data_by_identifier([DID_VERSION, DID_SLOTS, DID_COUNTERS, DID_TRANSFER])
    v = r.service_data.values
    return {"version": v[DID_VERSION], "slots": v[DID_SLOTS], "counters": v[DID_COUNTERS],
            "transfer": v[DID_TRANSFER]}


def update(client, data, progress=None, activate=True):
    """Send bundle bytes data over the udsoncan client (its config from
    client_config); progress(done, total). Returns the pack's identification
    before activation. UpdateError with one line on any refusal."""
    try:
        digest, _ = manifest_digest(data)
    except Exception as e:  # noqa: the bundle module names what is wrong
        raise UpdateError("not an update bundle: %s" % e)
    try:
        client.change_session(services.DiagnosticSessionControl.Session.programmingSession)
        client.unlock_security_access(1)
        start = 0
        t = client.read_data_by_identifier([DID_TRANSFER, DID_BUNDLE]).service_data.values
        if t[DID_BUNDLE] == digest and t[DID_TRANSFER]["state"] in ("header", "image") \
                and t[DID_TRANSFER]["total"] == len(data):
            start = t[DID_TRANSFER]["received"]  # the same bundle, interrupted: resume
        mem = udsoncan.MemoryLocation(address=start, memorysize=len(data), address_format=32, memorysize_format=32)
        r = client.request_download(mem)
        block = r.service_data.max_length - 2
        seq = 1
        pos = start
        while pos < len(data):
            chunk = data[pos:pos + block]
            client.transfer_data(seq, chunk)
            seq = (seq + 1) & 0xFF
            pos += len(chunk)
            if progress:
                progress(pos, len(data))
        client.request_transfer_exit()
        client.start_routine(RT_CHECK)
        ident = identify(client)
        if activate:
            client.start_routine(RT_ACTIVATE)
        return ident
    except NegativeResponseException as e:
        raise UpdateError(_nrc(e))
    except (TimeoutException, UnexpectedResponseException) as e:
        raise UpdateError("no valid answer: %s" % e)


def open_can_client(via, unit, secret, timeout_s=2.0):
    """(client, closer) over python-can + can-isotp for --via can:IFACE:CHANNEL[:BITRATE]."""
    import can
    import isotp
    from udsoncan.connections import PythonIsoTpConnection
    kind, _, rest = via.partition(":")
    iface, _, chan = rest.partition(":")
    chan, _, rate = chan.partition(":")
    if kind != "can" or not iface or not chan:
        raise UpdateError("update runs over CAN (--via can:INTERFACE:CHANNEL[:BITRATE]) or Modbus file records "
                          "(rtu:DEVICE[:BAUD], tcp:HOST:PORT), got %r" % via)
    try:
        bus = open_bus(iface, chan, int(rate) if rate else None)
    except Exception as e:  # noqa: python-can raises many kinds for a missing interface
        raise UpdateError("cannot open CAN %s:%s: %s" % (iface, chan, e))
    notifier = can.Notifier(bus, [])
    tx, rx = uds_ids(unit)
    stack = isotp.NotifierBasedCanStack(bus, notifier, address=isotp.Address(
        isotp.AddressingMode.Normal_29bits, txid=tx, rxid=rx), params={"tx_padding": 0xCC, "blocking_send": True})
    conn = PythonIsoTpConnection(stack)
    client = Client(conn, config=client_config(secret))
    client.open()

    def close():
        client.close()
        notifier.stop()
        bus.shutdown()
    return client, close


def cmd_update(args, out):
    """bmsctl update FILE: the CLI (--via can:..., --unit, --secret-file)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn, TimeRemainingColumn
    from tools.bmsctl.cli import read_secret
    from tools.bmsctl.client import CtlError
    if not args.g_secret_file:
        raise CtlError("update needs the installer secret: --secret-file F")
    try:
        with open(args.file, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CtlError("cannot read %s: %s" % (args.file, e.strerror))
    secret = read_secret(args.g_secret_file)
    if args.via.split(":")[0] in ("rtu", "tcp") or getattr(args, "transport", None) is not None:
        from tools.bmsctl.mbupdate import cmd_update_modbus  # Modbus file records (FC 0x15)
        return cmd_update_modbus(args, out, data, secret, getattr(args, "transport", None))
    try:
        client, close = open_can_client(args.via, args.unit, secret, args.timeout or 2.0)
    except UpdateError as e:
        raise CtlError(str(e))
    try:
        with Progress("pack %d" % args.unit, BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      TimeRemainingColumn()) as bar:
            task = bar.add_task("update", total=len(data))
            ident = update(client, data, lambda done, total: bar.update(task, completed=done),
                           activate=not args.no_activate)
    except UpdateError as e:
        raise CtlError("pack %d: %s" % (args.unit, e))
    finally:
        close()
    out.write("pack %d: staged in slot %s, running %s %s; %s\n" % (
        args.unit, ident["slots"]["pending"], ident["version"], ident["slots"]["running"],
        "restarting into the new image (it confirms itself after its self-test)" if not args.no_activate
        else "activate later with the routine 0x0201 or a reset"))
    return 0
