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
# With more than one pack (and without --no-broadcast) the bundle goes once to
# all of them: every pack's download is opened over UDS (prepare(): session,
# security access, request download), then the bundle as raw broadcast
# frames (broadcast_frames(): proto.uds BC_*, on 0x18FFB0F1, paced at --rate
# frames/s, a VERIFY_S pause after the header while every pack checks its
# signature and an ERASE_S one wherever they erase a flash block; an announce
# every KEEPALIVE_S before, S3; another pass from the furthest behind while
# two or more packs lack bytes: behind(), next_pass(), PASSES in all), then
# run_pack() per pack: it reads where the pack stands (DIDs 0xF1A2/0xF1A3) and sends
# what the pack missed over UDS, then exit, check and activate as before.
# tools/benchupdate.py runs the same prepare(), broadcast_frames(), behind(),
# next_pass() and run_pack() inside the bench world.
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
DID_BROADCAST = 0xF1A5
BC_PF = 0xFF  # the broadcast's id: J1939 Proprietary B, PGN 0xFFB0, SA the tester (lib/proto/uds.py)
BC_GE = 0xB0
BC_DATA = 6  # bundle bytes per frame, after the u16 sequence number
BC_ANNOUNCE = 0xFFFF
BC_MAX_SEQ = 0xFFFE
ANNOUNCE_EVERY = 128  # data frames between two announces: a pack that missed one joins at the next
PASSES = 3  # broadcasts at most: another (from the furthest behind) while two or more packs lack bytes
VERIFY_S = 2.0  # the broadcast's pause after the header: the signature check (est. 0.3-1.3 s on an ESP32)
ERASE_S = 0.05  # and where every pack erases its next 4 KiB flash block (tens of ms on an ESP32)
FLASH_BLOCK = 4096  # update.slotwrite: a block is erased when its first 256-byte page is programmed
FLASH_PAGE = 256
# broadcast frames/s by default: at the low end of what an ESP32 with a pure-Python MCP2515 driver is
# estimated to take (150-940 frames/s across make perf runs, ~300 commonly quoted); native CAN
# (TWAI) takes --rate 2000
RATE = 200


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
    DID_BROADCAST: _Raw(8, lambda p: dict(zip(("taken", "ignored"), struct.unpack(">II", p)))),
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


def broadcast_id(tester=TESTER_ADDRESS):
    return (6 << 26) | (BC_PF << 16) | (BC_GE << 8) | tester


def announce(data):
    """The broadcast's announce frame for bundle data: total u24, manifest digest's first 3 bytes."""
    digest, _ = manifest_digest(data)
    return struct.pack(">H", BC_ANNOUNCE) + len(data).to_bytes(3, "big") + digest[:3]


def broadcast_frames(data, start=0, announce_every=ANNOUNCE_EVERY):
    """The 8-byte frames that broadcast bundle data from byte start, an
    announce first and every announce_every data frames: (offset after the
    frame, frame); and (offset, seconds) where the sender pauses: VERIFY_S
    after the header's last frame (every pack checks the signature then),
    ERASE_S after the frame that makes every pack erase a flash block (the
    slot is written in order, so all packs erase at the same bytes; frames
    sent meanwhile would wait in the CAN controller, two on an MCP2515)."""
    _, n = manifest_digest(data)
    erase = n + FLASH_BLOCK + FLASH_PAGE  # slot block 1's first page is complete: block 1 is erased
    while erase <= start // BC_DATA * BC_DATA:
        erase += FLASH_BLOCK
    first = start // BC_DATA
    last = (len(data) + BC_DATA - 1) // BC_DATA
    if last - 1 > BC_MAX_SEQ:
        raise UpdateError("bundle too long to broadcast (%d bytes)" % len(data))
    ann = announce(data)
    for k, seq in enumerate(range(first, last)):
        at = seq * BC_DATA
        if k % announce_every == 0:
            yield at, ann
        end = min(at + BC_DATA, len(data))
        yield end, struct.pack(">H", seq) + data[at:at + BC_DATA].ljust(BC_DATA, b"\xff")
        if at < n <= end:
            yield n, VERIFY_S
        if at < erase <= end:
            yield erase, ERASE_S
            erase += FLASH_BLOCK


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


def _bundle(data):
    try:
        return manifest_digest(data)
    except Exception as e:  # noqa: the bundle module names what is wrong
        raise UpdateError("not an update bundle: %s" % e)


def _session(fn):
    """fn() with udsoncan's exceptions as UpdateError lines."""
    try:
        return fn()
    except NegativeResponseException as e:
        raise UpdateError(_nrc(e))
    except (TimeoutException, UnexpectedResponseException) as e:
        raise UpdateError("no valid answer: %s" % e, timeout=isinstance(e, TimeoutException))


def _open(client, data, digest):
    """Programming session, security access, request download (resuming the
    same bundle where the pack has it): (bytes the pack has, block length)."""
    client.change_session(services.DiagnosticSessionControl.Session.programmingSession)
    client.unlock_security_access(1)
    start = 0
    t = client.read_data_by_identifier([DID_TRANSFER, DID_BUNDLE]).service_data.values
    if t[DID_BUNDLE] == digest and t[DID_TRANSFER]["state"] in ("header", "image") \
            and t[DID_TRANSFER]["total"] == len(data):
        start = t[DID_TRANSFER]["received"]  # the same bundle, interrupted: resume
    mem = udsoncan.MemoryLocation(address=start, memorysize=len(data), address_format=32, memorysize_format=32)
    r = client.request_download(mem)
    return start, r.service_data.max_length - 2


def _blocks(client, data, pos, end, block, progress=None):
    """TransferData from pos until end is reached (whole blocks); the new pos."""
    seq = 1
    while pos < end:
        chunk = data[pos:pos + block]
        client.transfer_data(seq, chunk)
        seq = (seq + 1) & 0xFF
        pos += len(chunk)
        if progress:
            progress(pos, len(data))
    return pos


def update(client, data, progress=None, activate=True):
    """Send bundle bytes data over the udsoncan client (its config from
    client_config); progress(done, total). Returns the pack's identification
    before activation. UpdateError with one line on any refusal."""
    digest, _ = _bundle(data)

    def run():
        pos, block = _open(client, data, digest)
        _blocks(client, data, pos, len(data), block, progress)
        client.request_transfer_exit()
        client.start_routine(RT_CHECK)
        ident = identify(client)
        if activate:
            client.start_routine(RT_ACTIVATE)
        return ident
    return _session(run)


def prepare(client, data):
    """Open the pack's download for a broadcast: update()'s start (session,
    security access, request download, resuming). The bytes the pack has;
    UpdateError as update()."""
    digest, _ = _bundle(data)
    return _session(lambda: _open(client, data, digest)[0])


def prepare_pack(client, data):
    """One pack's prepare() with a retry after a timeout: None (ready, or
    worth a try in run_pack) or ("refused: REASON", None)."""
    for _ in range(2):
        try:
            prepare(client, data)
            return None
        except UpdateError as e:
            if e.timeout:
                continue
            return _refused(client, e)
    return None


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
            return _refused(client, e)


def behind(client, data):
    """The bytes a pack has of bundle data while it still lacks some (DID
    0xF1A2); None when it has them all, its transfer failed or it does not answer."""
    try:
        t = client.read_data_by_identifier([DID_TRANSFER]).service_data.values[DID_TRANSFER]
    except (TimeoutException, NegativeResponseException, UnexpectedResponseException):
        return None
    if t["state"] in ("header", "image") and t["total"] == len(data) and t["received"] < len(data):
        return t["received"]
    return None


def next_pass(standing):
    """Where another broadcast starts ({unit: behind()}): the furthest behind,
    None when fewer than two packs lack bytes (the rest goes over UDS)."""
    got = [r for r in standing.values() if r is not None]
    return min(got) if len(got) > 1 else None


def _refused(client, e):
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


def send_broadcast(bus, data, start=0, rate=RATE, progress=None):
    """The broadcast of bundle data from byte start on a python-can bus, rate
    frames per second; progress(offset) now and then."""
    import can
    import time
    bid = broadcast_id()
    t0 = time.monotonic()
    i = 0
    for pos, fr in broadcast_frames(data, start):
        if not isinstance(fr, bytes):
            time.sleep(fr)
            t0 += fr
            continue
        wait = t0 + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        bus.send(can.Message(arbitration_id=bid, data=fr, is_extended_id=True))
        if progress and i % 64 == 0:
            progress(pos)
        i += 1


KEEPALIVE_S = 1.0  # an announce this often while other packs are prepared (S3 is 5 s)


def _keepalive(bus, data, stop):
    import can
    msg = can.Message(arbitration_id=broadcast_id(), data=announce(data), is_extended_id=True)
    while not stop.wait(KEEPALIVE_S):
        bus.send(msg)


def _update_all(args, out, data, secret, CtlError):
    """--all: scan, then every pack that answered, --parallel at a time; with
    more than one, prepare each, broadcast the bundle (again from the furthest
    behind while two or more lack bytes, PASSES in all), then each pack's rest."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn, \
        TimeRemainingColumn
    from tools.bmsctl.client import MAX_UNIT
    if args.rate is not None and args.rate < 1:
        raise CtlError("--rate is broadcast frames per second, at least 1 (got %d)" % args.rate)
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

            def with_client(u, fn):
                client = bus_client(bus, notifier, u, secret)
                try:
                    return fn(client, lambda done, total=0: bar.update(tasks[u], completed=done))
                finally:
                    client.close()
            units = sorted(found)
            pool = args.parallel or PARALLEL
            if len(units) > 1 and not args.no_broadcast:
                stop = threading.Event()
                keep = threading.Thread(target=_keepalive, args=(bus, data, stop), daemon=True)
                keep.start()
                try:
                    with ThreadPoolExecutor(pool) as ex:
                        prep = dict(zip(units, ex.map(lambda u: with_client(u, lambda c, p: prepare_pack(c, data)),
                                                      units)))
                finally:
                    stop.set()
                    keep.join()
                results.update({u: r for u, r in prep.items() if r is not None})
                units = [u for u in units if u not in results]

                def moved(pos):
                    for u in units:
                        bar.update(tasks[u], completed=pos)
                start = 0 if len(units) > 1 else None
                for k in range(PASSES):
                    if start is None:
                        break
                    send_broadcast(bus, data, start, args.rate or RATE, moved)
                    if k < PASSES - 1:
                        with ThreadPoolExecutor(pool) as ex:
                            start = next_pass(dict(zip(units, ex.map(
                                lambda u: with_client(u, lambda c, p: behind(c, data)), units))))
            with ThreadPoolExecutor(pool) as ex:
                done = ex.map(lambda u: with_client(u, lambda c, p: run_pack(c, data, p, activate=not args.no_activate)),
                              units)
                results.update(zip(units, done))
    finally:
        close()
    for line in summary(results):
        out.write(line + "\n")
    return 0 if all(r == "ok" for r, _ in results.values()) else 1
