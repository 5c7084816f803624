# Owns talking to one unit of the register map: requests built and replies
# decoded by pymodbus's PDU classes (independent of the board's encoder), the
# map itself from tools.regmap's JSON (blocks and their fields, parameter
# rows), the login (challenge read, HMAC-SHA-256 by tools.authkit, response
# write) and every refusal turned into one CtlError line naming the unit, the
# register or parameter, the Modbus exception and the reason the board's DIAG
# block gives.
import json
import re
import struct

from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.file_message import FileRecord, ReadFileRecordRequest
from pymodbus.pdu.register_message import (ReadHoldingRegistersRequest, WriteMultipleRegistersRequest)

from tools import authkit
from tools.bmsctl.mbpdu import decoder
from tools.bmsctl.transport import TransportError

MAX_READ = 125  # registers per FC 03 (Application Protocol 6.3)
MAX_WRITE = 123  # registers per FC 16 (6.12)
LEVELS = {"user": authkit.USER, "installer": authkit.INSTALLER}
MAX_UNIT = 32  # unit u = the pack at link address u, relayed by the master; 1 = the master (the system)
LEVEL_NAMES = {0: "none", authkit.USER: "user", authkit.INSTALLER: "installer"}
EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
              4: "device failure", 6: "busy", 0x0A: "gateway path unavailable",
              0x0B: "gateway: target did not respond"}


class CtlError(Exception):
    """One plain line for the installer (cli prints it, no traceback)."""


def load_map(path=None):
    """The register map: a JSON file (`python -m tools.regmap --json > F`), or
    the one this checkout's board code describes."""
    if path:
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise CtlError("cannot read the register map %s: %s" % (path, e))
    from tools import regmap
    return regmap.describe()


def block(regmap, *names):
    """The first block of regmap named one of names (None: not in this map)."""
    for b in regmap["blocks"]:
        if b["name"] in names:
            return b
    return None


def fields(blk):
    """blk's fields as dicts with name, offset, regs, type (uint16, int16,
    uint32, int32 high word first, text) and, where the map gives them, unit,
    scale, min, max, access. A field named as a plain string is one uint16
    register, "name[N]" N bytes of text; consecutive unless offset/register say."""
    out = []
    off = 0
    for f in blk.get("fields", []):
        if isinstance(f, str):
            m = re.fullmatch(r"(\w+)\[(\d+)\]", f)
            spec = {"name": m.group(1), "type": "text", "regs": (int(m.group(2)) + 1) // 2} if m else \
                {"name": f, "type": "uint16", "regs": 1}
        else:
            spec = dict(f)
            spec.setdefault("type", "uint16")
            spec.setdefault("regs", 2 if spec["type"] in ("int32", "uint32") else 1)
        if "offset" not in spec:
            spec["offset"] = spec["register"] - blk["register"] if "register" in spec else off
        off = spec["offset"] + spec["regs"]
        out.append(spec)
    return out


def decode(spec, regs):
    t = spec["type"]
    if t == "text":
        return struct.pack(">%dH" % len(regs), *regs).rstrip(b"\0").decode("ascii", "replace")
    if len(regs) == 1:
        v = regs[0]
        return v - 0x10000 if t == "int16" and v & 0x8000 else v
    v = (regs[0] << 16) | regs[1]
    return v - (1 << 32) if t == "int32" and v & 0x80000000 else v


def encode(spec, value):
    if spec["regs"] == 1:
        return [value & 0xFFFF]
    return [(value >> 16) & 0xFFFF, value & 0xFFFF]


def regs_of(data):
    return list(struct.unpack(">%dH" % (len(data) // 2), data))


class Pack:
    """One unit id through a transport (unit 1 = the system, N = pack N)."""

    def __init__(self, transport, unit, regmap):
        self.t = transport
        self.unit = unit
        self.map = regmap
        self.params = regmap["params"]
        self.by_name = {p["name"]: p for p in self.params}
        self.session = 0
        self.login_nonce = None  # the nonce the session's login answered (passwd needs it)
        self._dec = decoder()

    def who(self):
        return "unit %d" % self.unit

    # -- one request ---------------------------------------------------------------
    def ask(self, req, what):
        """pymodbus request -> its decoded response; a Modbus exception raises
        CtlError naming what (a register, a parameter) and, for a write the
        board refused, the reason in its DIAG block."""
        req.dev_id = self.unit
        try:
            reply = self.t.exchange(self.unit, bytes([req.function_code]) + req.encode())
        except TransportError as e:
            raise CtlError("%s: %s: %s" % (self.who(), what, e))
        try:
            r = self._dec.decode(reply)
        except Exception:  # pymodbus raises several kinds for bytes it cannot parse
            r = None
        if r is None:
            raise CtlError("%s: %s: malformed reply %s" % (self.who(), what, reply.hex()))
        if isinstance(r, ExceptionResponse):
            raise CtlError("%s: %s: exception %02X (%s)%s" % (
                self.who(), what, r.exception_code, EXCEPTIONS.get(r.exception_code, "unknown"),
                self._why(req, r.exception_code)))
        if r.function_code != req.function_code:
            raise CtlError("%s: %s: reply to function %d, not %d" % (self.who(), what, r.function_code,
                                                                      req.function_code))
        return r

    def _why(self, req, code):
        """' - reason' from DIAG when it is about this write, else the usual meaning."""
        if isinstance(req, WriteMultipleRegistersRequest):
            d = self.diag_or_none()
            if d and d["reason"] and d["register"] == req.address:
                return " - " + (d["text"] or self.reason_name(d["reason"]))
            if code == 1:
                return " - needs an installer session (--login installer)"
        if code == 6 and req.address == self.block_reg("challenge"):
            return " - login locked out after repeated failures; try again later"
        return ""

    def reason_name(self, code):
        reasons = (block(self.map, "diag") or {}).get("reasons", [])
        return reasons[code] if 0 <= code < len(reasons) else "reason %d" % code

    def block_reg(self, name):
        b = block(self.map, name)
        return b["register"] if b else None

    def read(self, addr, count, what=None):
        out = []
        while count > 0:
            n = min(count, MAX_READ)
            r = self.ask(ReadHoldingRegistersRequest(address=addr, count=n), what or "register %d" % addr)
            if len(r.registers) != n:
                raise CtlError("%s: %s: %d registers in the reply, %d asked" % (
                    self.who(), what or "register %d" % addr, len(r.registers), n))
            out += r.registers
            addr += n
            count -= n
        return out

    def write(self, addr, regs, what=None):
        self.ask(WriteMultipleRegistersRequest(address=addr, registers=list(regs)), what or "register %d" % addr)

    def read_file(self, file_number, record, length, what):
        """length registers of a file record (FC 0x14); pymodbus's FileRecord takes bytes."""
        r = self.ask(ReadFileRecordRequest(records=[FileRecord(file_number=file_number, record_number=record,
                                                              record_length=2 * length)]), what)
        return r.records[0].record_data

    # -- blocks ------------------------------------------------------------------------
    def need(self, *names):
        b = block(self.map, *names)
        if b is None:
            raise CtlError("%s: the register map has no %s block (firmware without it?)" % (
                self.who(), "/".join(names)))
        return b

    def read_block(self, blk):
        """{field: value} of a block with fields."""
        regs = self.read(blk["register"], blk["regs"], blk["name"])
        return {f["name"]: decode(f, regs[f["offset"]:f["offset"] + f["regs"]]) for f in fields(blk)}

    def diag_or_none(self):
        b = block(self.map, "diag")
        if b is None:
            return None
        try:
            regs = self.read(b["register"], b["regs"], "diag")
        except CtlError:
            return None
        d = {f["name"]: decode(f, regs[f["offset"]:f["offset"] + f["regs"]]) for f in fields(b)}
        return {"reason": d.get("reason", 0), "register": d.get("register"), "text": d.get("text", "")}

    # -- parameters --------------------------------------------------------------------
    def param(self, name):
        p = self.by_name.get(name)
        if p is None:
            import difflib
            near = difflib.get_close_matches(name, self.by_name, 3)
            raise CtlError("%s: no parameter %r%s" % (self.who(), name,
                                                      " (did you mean %s?)" % ", ".join(near) if near else ""))
        return p

    def read_params(self, rows=None):
        """{name: value} of rows (default all), in as few reads as the map allows."""
        rows = self.params if rows is None else rows
        if not rows:
            return {}
        lo = min(p["register"] for p in rows)
        hi = max(p["register"] + p["regs"] for p in rows)
        if len(rows) == 1 or hi - lo <= 4 * MAX_READ:
            regs = self.read(lo, hi - lo, rows[0]["name"] if len(rows) == 1 else "parameters")
            return {p["name"]: decode(p, regs[p["register"] - lo:p["register"] - lo + p["regs"]]) for p in rows}
        return {p["name"]: self.read_params([p])[p["name"]] for p in rows}

    def write_param(self, p, value):
        """Write one parameter and read it back; the value read back."""
        what = "%s (register %d)" % (p["name"], p["register"])
        self.write(p["register"], encode(p, value), what)
        got = decode(p, self.read(p["register"], p["regs"], what))
        if got != value:
            raise CtlError("%s: %s: wrote %d, read back %d" % (self.who(), what, value, got))
        return got

    # -- login -------------------------------------------------------------------------
    def challenge(self):
        b = self.need("challenge")
        return struct.pack(">%dH" % b["regs"], *self.read(b["register"], b["regs"], "login challenge"))

    def login(self, level, secret):
        b = self.need("login")
        nonce = self.challenge()
        mac = authkit.response(secret, nonce, level)
        try:
            self.write(b["register"], [level] + regs_of(mac), "login as %s" % LEVEL_NAMES[level])
        except CtlError as e:
            raise CtlError("%s (wrong secret, or this level has no secret yet: not commissioned)" % e)
        got = self.read(b["register"], 1, "session level")[0]
        if got != level:
            raise CtlError("%s: login as %s accepted but the session level reads %d" % (
                self.who(), LEVEL_NAMES[level], got))
        self.session = level
        self.login_nonce = nonce
        return level

    def level(self):
        b = self.need("login")
        return self.read(b["register"], 1, "session level")[0]

    def logout(self):
        b = self.need("login")
        self.write(b["register"], [0], "log out")
        self.session = 0
