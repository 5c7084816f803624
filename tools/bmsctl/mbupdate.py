# Owns `bmsctl update FILE --via rtu:DEVICE[:BAUD] | tcp:HOST:PORT --unit N`:
# one pack's firmware update over Modbus file records (the board side is
# app.hostupd; requests and replies are pymodbus's FileRecord PDUs, not the
# board's encoder): the installer login (the Modbus login), the status record
# (the same bundle under way? then resume at its bytes received), begin, the
# blocks in order with a rich progress bar, check (verify + stage), then
# activate. The blocks go by FC 0x41 (tools.bmsctl.mbpdu: a 3-byte reply
# instead of FC 0x15's echo of the block) when the register map describes it
# and the pack's status record says it takes it (a pack without it answers
# the 25-register status read with an exception: FC 0x15 then). Every
# refusal is one line naming the step, the Modbus exception and the reason in
# the pack's DIAG block.
import struct

from pymodbus.pdu.file_message import FileRecord, WriteFileRecordRequest

from tools.bmsctl.client import CtlError, Pack
from tools.bmsctl.mbpdu import FC_UPDATE_BLOCK, UpdateBlockRequest
from tools.bmsctl.update import STATES, manifest_digest

# app.hostupd's layout (README "Firmware update": the Modbus file-record session)
FILE_CTL = 0xFF00
FILE_DATA = 0xFF01
CMD_END, CMD_BEGIN, CMD_CHECK, CMD_ACTIVATE = 0, 1, 2, 3
STATUS_REGS = 25  # 24 before FC 0x41 (register 24: the block function the pack takes)
OLD_STATUS_REGS = 24


def _cmd(pack, regs, what):
    _write(pack, FILE_CTL, 0, struct.pack(">%dH" % len(regs), *regs), what)


def _write(pack, file_number, record, data, what):
    _ask(pack, WriteFileRecordRequest(records=[FileRecord(file_number=file_number, record_number=record,
                                                          record_data=data)]), what)


def _block(pack, block, data, what):
    """FC 0x41: one block of the bundle, unpadded; the reply names the block."""
    r = _ask(pack, UpdateBlockRequest(block, data), what)
    if r.block != block:
        raise CtlError("%s: %s: the reply names block %d" % (pack.who(), what, r.block))


def _ask(pack, req, what):
    try:
        return pack.ask(req, what)
    except CtlError as e:
        d = pack.diag_or_none()
        raise CtlError("%s%s" % (e, " - " + d["text"] if d and d["reason"] and d["text"] else ""))


def block_function(regmap):
    """The block function the register map describes for the update files (None: FC 0x15 only)."""
    for f in regmap.get("files", []):
        if f.get("file") == FILE_DATA:
            return f.get("block_function")
    return None


def status(pack):
    """The pack's update status record (app.hostupd): state, reason, received,
    total, block bytes, session holder, manifest digest, the block function it
    takes (0: FC 0x15 only; a pack that has no register 24)."""
    try:
        raw = pack.read_file(FILE_CTL, 0, STATUS_REGS, "update status")
    except CtlError:
        raw = pack.read_file(FILE_CTL, 0, OLD_STATUS_REGS, "update status") + b"\0\0"
    v = struct.unpack(">HHIIHH32sH", raw)
    return {"state": STATES[v[0]] if v[0] < len(STATES) else v[0], "reason": v[1], "received": v[2],
            "total": v[3], "block": v[4], "holder": ("none", "modbus", "uds")[min(v[5], 2)], "digest": v[6],
            "block_fc": v[7]}


def update(pack, data, progress=None, activate=True, fast=True):
    """Send bundle bytes data to pack (a logged-in tools.bmsctl.client.Pack);
    progress(done, total); fast=False: FC 0x15 blocks even where FC 0x41 is
    offered. Returns the status after the check (its "via": the block
    function used)."""
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
    fc = FC_UPDATE_BLOCK if fast and s["block_fc"] == FC_UPDATE_BLOCK == block_function(pack.map) else 0x15
    pos = start
    while pos < n:
        chunk = data[pos:pos + block]
        what = "update block %d" % (pos // block)
        if fc == FC_UPDATE_BLOCK:
            _block(pack, pos // block, chunk, what)
        else:
            _write(pack, FILE_DATA, pos // block, chunk + b"\0" * (len(chunk) & 1), what)
        pos += len(chunk)
        if progress:
            progress(pos, n)
    _cmd(pack, [CMD_CHECK], "update check")
    s = status(pack)
    s["via"] = fc
    if activate:
        _cmd(pack, [CMD_ACTIVATE], "update activate")
    else:
        _cmd(pack, [CMD_END], "update end")
    return s


def run_pack(pack, secret, data, progress=None, activate=True, fast=True):
    """One pack's whole session (login as installer, update()): ("ok", status)
    or ("refused: LINE (REASON)", None), REASON the pack's update reason where
    its status record has one (as tools.bmsctl.update.run_pack names it over UDS)."""
    from tools.bmsctl.update import REASONS
    try:
        pack.login(2, secret)
        return "ok", update(pack, data, progress, activate, fast)
    except CtlError as e:
        why = str(e)
        try:
            r = status(pack)["reason"]
            if r:
                why += " (%s)" % (REASONS[r] if r < len(REASONS) else r)
        except CtlError:  # the pack may be gone; the refusal's line is enough
            pass
        return "refused: " + why, None


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
