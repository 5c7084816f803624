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
#
# `bmsctl update FILE --all`: every unit 1..32 that answers (DID 0xF189), up
# to --parallel of them at a time, each on its own ISO-TP channel over one
# shared python-can bus (one Notifier), a progress bar per pack and a summary;
# a transfer broken off by a timeout is asked again once, resuming.
# tools/benchupdate.py runs the same run_pack() inside the bench world.
import struct

import udsoncan
from udsoncan import DidCodec, services
from udsoncan.client import Client
from udsoncan.exceptions import NegativeResponseException, TimeoutException, UnexpectedResponseException

from tools import authkit, canbus
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
           "flash", "state", "no slots", "too big", "no key")


PARALLEL = 4  # packs at a time with --all (the bus, not the packs, is the limit: README "Firmware update")


class UpdateError(Exception):
    def __init__(self, text, timeout=False):
        Exception.__init__(self, text)
        self.timeout = timeout  # no answer (a resume may go on), not a refusal


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


def client_config(secret, quiet=False):
    """quiet: udsoncan logs nothing (a scan's silent units are no news)."""
    cfg = dict(udsoncan.configs.default_client_config)
    if quiet:
        import logging
        cfg["logger_name"] = "quiet"
        logging.getLogger("UdsClient[quiet]").setLevel(logging.CRITICAL + 1)
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
        raise UpdateError("no valid answer: %s" % e, timeout=isinstance(e, TimeoutException))


def answers(client):
    """The unit's firmware version (DID 0xF189), None when it does not answer."""
    try:
        return client.read_data_by_identifier([DID_VERSION]).service_data.values[DID_VERSION]
    except (TimeoutException, NegativeResponseException, UnexpectedResponseException):
        return None


def run_pack(client, data, progress=None, activate=True, retries=1):
    """One pack of a fan-out: update() with a resume after a timeout (at most
    retries more times). ("ok", identification) or ("refused: REASON", None):
    the refusal's line plus the pack's own reason (DID 0xF1A2) where it has one."""
    for attempt in range(retries + 1):
        try:
            return "ok", update(client, data, progress, activate)
        except UpdateError as e:
            if e.timeout and attempt < retries:
                continue
            why = str(e)
            try:
                t = client.read_data_by_identifier([DID_TRANSFER]).service_data.values[DID_TRANSFER]
                if t["reason"] != "ok":
                    why += " (%s)" % t["reason"]
            except Exception:  # noqa: the pack may be gone; the refusal's line is enough
                pass
            return "refused: " + why, None


def _parse_via(via):
    kind, _, rest = via.partition(":")
    iface, _, chan = rest.partition(":")
    chan, _, rate = chan.partition(":")
    if kind != "can" or not iface or not chan:
        raise UpdateError("update runs over CAN (--via can:INTERFACE:CHANNEL[:BITRATE]) or Modbus file records "
                          "(rtu:DEVICE[:BAUD], tcp:HOST:PORT), got %r" % via)
    return iface, chan, int(rate) if rate else None


def open_bus(via):
    """(bus, notifier, closer) for --via can:IFACE:CHANNEL[:BITRATE]."""
    import can
    iface, chan, rate = _parse_via(via)
    try:
        bus = canbus.open_bus(iface, chan, rate)
    except Exception as e:  # noqa: python-can raises many kinds for a missing interface
        raise UpdateError("cannot open CAN %s:%s: %s" % (iface, chan, e))
    notifier = can.Notifier(bus, [])

    def close():
        notifier.stop()
        bus.shutdown()
    return bus, notifier, close


def bus_client(bus, notifier, unit, secret, request_timeout=None, quiet=False):
    """An open udsoncan client for unit on its own ISO-TP channel of a shared bus."""
    import isotp
    from udsoncan.connections import PythonIsoTpConnection
    tx, rx = uds_ids(unit)
    stack = isotp.NotifierBasedCanStack(bus, notifier, address=isotp.Address(
        isotp.AddressingMode.Normal_29bits, txid=tx, rxid=rx), params={"tx_padding": 0xCC, "blocking_send": True})
    cfg = client_config(secret, quiet)
    if request_timeout is not None:
        cfg["request_timeout"] = request_timeout
    client = Client(PythonIsoTpConnection(stack), config=cfg)
    client.open()
    return client


def open_can_client(via, unit, secret, timeout_s=2.0):
    """(client, closer) over python-can + can-isotp for --via can:IFACE:CHANNEL[:BITRATE]."""
    bus, notifier, close_bus = open_bus(via)
    client = bus_client(bus, notifier, unit, secret)

    def close():
        client.close()
        close_bus()
    return client, close


def scan(bus, notifier, secret, units, timeout_s):
    """{unit: version} of the units that answer, asked all at once."""
    from concurrent.futures import ThreadPoolExecutor
    clients = {u: bus_client(bus, notifier, u, secret, timeout_s, quiet=True) for u in units}
    try:
        with ThreadPoolExecutor(len(units)) as ex:
            got = dict(zip(units, ex.map(lambda u: answers(clients[u]), units)))
    finally:
        for c in clients.values():
            c.close()
    return {u: v for u, v in got.items() if v is not None}


def summary(results):
    """The fan-out's summary lines: one per pack, then the count."""
    lines = []
    for unit in sorted(results):
        res, ident = results[unit]
        lines.append("pack %d: %s" % (unit, res if ident is None else "ok, staged in slot %s (was %s %s)" % (
            ident["slots"]["pending"], ident["version"], ident["slots"]["running"])))
    ok = sum(1 for r, _ in results.values() if r == "ok")
    lines.append("%d of %d packs updated" % (ok, len(results)))
    return lines


def read_inputs(args):
    """(bundle bytes, installer secret) of bmsctl update FILE --secret-file F."""
    from tools.bmsctl.secrets import read_secret
    from tools.bmsctl.client import CtlError
    if not args.g_secret_file:
        raise CtlError("update needs the installer secret: --secret-file F")
    try:
        with open(args.file, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CtlError("cannot read %s: %s" % (args.file, e.strerror))
    return data, read_secret(args.g_secret_file)


def cmd_update(args, out):
    """bmsctl update FILE over CAN: the CLI (--via can:..., --unit | --all, --secret-file)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn, TimeRemainingColumn
    from tools.bmsctl.client import CtlError
    data, secret = read_inputs(args)
    if args.all:
        return _update_all(args, out, data, secret, CtlError)
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


def _update_all(args, out, data, secret, CtlError):
    """--all: scan, then every pack that answered, --parallel at a time."""
    from concurrent.futures import ThreadPoolExecutor
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn, \
        TimeRemainingColumn
    from tools.bmsctl.client import MAX_UNIT
    try:
        bus, notifier, close = open_bus(args.via)
    except UpdateError as e:
        raise CtlError(str(e))
    try:
        found = scan(bus, notifier, secret, list(range(1, MAX_UNIT + 1)), args.timeout or 0.5)
        if not found:
            raise CtlError("no pack answered on units 1..%d" % MAX_UNIT)
        results = {}
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      TimeRemainingColumn()) as bar:
            tasks = {u: bar.add_task("pack %d" % u, total=len(data)) for u in found}

            def one(u):
                client = bus_client(bus, notifier, u, secret)
                try:
                    results[u] = run_pack(client, data, lambda done, total: bar.update(tasks[u], completed=done),
                                          activate=not args.no_activate)
                finally:
                    client.close()
            with ThreadPoolExecutor(args.parallel or PARALLEL) as ex:
                list(ex.map(one, sorted(found)))
    finally:
        close()
    for line in summary(results):
        out.write(line + "\n")
    return 0 if all(r == "ok" for r, _ in results.values()) else 1
