# Owns `bmsctl update FILE --via rtu:DEVICE[:BAUD] | tcp:HOST:PORT --unit N`:
# one pack's firmware update over Modbus file records (the board side is
# app.hostupd; requests and replies are pymodbus's FileRecord PDUs, not the
# board's encoder): the installer login (the Modbus login), the status record
# (the same bundle under way? then resume at its bytes received), begin, the
# blocks in order with a rich progress bar, check (verify + stage), then
# activate. Every refusal is one line naming the step, the Modbus exception
# and the reason in the pack's DIAG block.
import struct

from pymodbus.pdu.file_message import FileRecord, WriteFileRecordRequest

from tools.bmsctl.client import CtlError, Pack
from tools.bmsctl.update import STATES, manifest_digest

# app.hostupd's layout (README "Firmware update": the Modbus file-record session)
FILE_CTL = 0xFF00
FILE_DATA = 0xFF01
CMD_END, CMD_BEGIN, CMD_CHECK, CMD_ACTIVATE = 0, 1, 2, 3
STATUS_REGS = 24


def _cmd(pack, regs, what):
    _write(pack, FILE_CTL, 0, struct.pack(">%dH" % len(regs), *regs), what)


def _write(pack, file_number, record, data, what):
    req = WriteFileRecordRequest(records=[FileRecord(file_number=file_number, record_number=record,
                                                     record_data=data)])
    try:
        pack.ask(req, what)
    except CtlError as e:
        d = pack.diag_or_none()
        raise CtlError("%s%s" % (e, " - " + d["text"] if d and d["reason"] and d["text"] else ""))


def status(pack):
    """The pack's update status record (app.hostupd): state, reason, received,
    total, block bytes, session holder, manifest digest."""
    raw = pack.read_file(FILE_CTL, 0, STATUS_REGS, "update status")
    v = struct.unpack(">HHIIHH32s", raw)
    return {"state": STATES[v[0]] if v[0] < len(STATES) else v[0], "reason": v[1], "received": v[2],
            "total": v[3], "block": v[4], "holder": ("none", "modbus", "uds")[min(v[5], 2)], "digest": v[6]}


def update(pack, data, progress=None, activate=True):
    """Send bundle bytes data to pack (a logged-in tools.bmsctl.client.Pack);
    progress(done, total). Returns the status after the check."""
    try:
        digest, _ = manifest_digest(data)
    except Exception as e:  # noqa: the bundle module names what is wrong
        raise CtlError("not an update bundle: %s" % e)
    s = status(pack)
    start = 0
    if s["digest"] == digest and s["state"] in ("header", "image") and s["total"] == len(data):
        start = s["received"]  # the same bundle, interrupted: resume
    block = s["block"]
    if start % block:
        start = 0
    n = len(data)
    _cmd(pack, [CMD_BEGIN, n >> 16, n & 0xFFFF, start >> 16, start & 0xFFFF], "update begin")
    pos = start
    while pos < n:
        chunk = data[pos:pos + block]
        _write(pack, FILE_DATA, pos // block, chunk + b"\0" * (len(chunk) & 1), "update block %d" % (pos // block))
        pos += len(chunk)
        if progress:
            progress(pos, n)
    _cmd(pack, [CMD_CHECK], "update check")
    s = status(pack)
    if activate:
        _cmd(pack, [CMD_ACTIVATE], "update activate")
    else:
        _cmd(pack, [CMD_END], "update end")
    return s


def cmd_update_modbus(args, out, data, secret, transport=None):
    """update FILE over --via rtu:/tcp: (or transport, tests)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn, TimeRemainingColumn
    from tools.bmsctl.client import load_map
    from tools.bmsctl.transport import TransportError, open_transport
    try:
        t = transport or open_transport(args.via, args.timeout)
    except TransportError as e:
        raise CtlError(str(e))
    try:
        pack = Pack(t, args.unit, load_map(args.map_file))
        pack.login(2, secret)
        with Progress("pack %d" % args.unit, BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      TimeRemainingColumn()) as bar:
            task = bar.add_task("update", total=len(data))
            s = update(pack, data, lambda done, total: bar.update(task, completed=done), not args.no_activate)
    finally:
        if transport is None:
            t.close()
    out.write("pack %d: %s, %d bytes verified; %s\n" % (
        args.unit, s["state"], s["received"], "restarting into the new image (it confirms itself after its "
        "self-test)" if not args.no_activate else "activate later (command 3 of file 0xFF00) or reset"))
    return 0
