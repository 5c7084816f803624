# Owns the firmware update session over Modbus file records (issue 15; Modbus
# Application Protocol 6.14/6.15, reference type 6) for app.host: the same
# transfer as the UDS session (app.updsess: one update.updater.Updater, and
# update_hold while a session lasts), built at the first request on its files.
#   file FILE_CTL (0xFF00)
#     FC 0x15 record 0, a command:
#       [CMD_BEGIN, total u32, offset u32]  (5 registers) a new transfer of
#           `total` bundle bytes (offset 0), or the resume of the one under way
#           (offset = bytes received); starts the session: refused 06 while
#           current flows or the UDS session holds the pack
#       [CMD_CHECK]     all bytes in: verify + stage (the UDS 0x37 + 0xFF01)
#       [CMD_ACTIVATE]  reset into the staged image (after the reply)
#       [CMD_END]       end the session (the transfer stays: it may resume)
#     FC 0x14 records 0..STATUS_REGS-1 (any range inside): state
#       (update.updater.STATES), reason (update.updater.REASONS), bytes
#       received u32, total u32, BLOCK_BYTES, the session (0 none, 1 this one,
#       2 the UDS session), the SHA-256 of the manifest under way (16 registers),
#       BLOCK_FC (FC_UPDATE_BLOCK: the blocks may come that way)
#   file FILE_DATA (0xFF01), FC 0x15 record k: bundle bytes k * BLOCK_BYTES ..,
#     two per register (high byte first), only the next block (k * BLOCK_BYTES
#     = bytes received, else 02, nothing changes), BLOCK_BYTES long except the
#     last, which is the rest (its last register padded when the rest is odd)
#   the same blocks by FC_UPDATE_BLOCK (0x41, user-defined: proto.modbus):
#     block k, its BLOCK_BYTES bytes (the last: the rest, unpadded), the same
#     checks and refusals as record k of FILE_DATA; the reply is the block
#     number, 3 bytes, not an echo of 244: on RS485 the block's cycle is one
#     request long, not two (the status record's BLOCK_FC register says the
#     pack takes it; bmsctl falls back to FC 0x15 where it does not)
# Everything needs the port's installer session (the Modbus login), else 01
# counted (auth.refuse). A bundle the updater refuses: 03 and DIAG reason
# R_UPDATE with the updater's reason ("update refused: signature"); the
# transfer ends (a new CMD_BEGIN at offset 0). A malformed command or block
# 03 (DIAG says why), changing nothing. Every refusal counts in DIAG. The session ends with CMD_END,
# an activate, or SESSION_MS without a request (update_hold released).
from defs.const import const
from defs.ticks import ticks_diff
from proto import modbus as mb
from proto.wire import put_u16, get_u16
from bms import params as P
from app.hostctl import INSTALLER, EX_BUSY, R_NO_SESSION, R_RANGE, R_UPDATE

FILE_CTL = const(0xFF00)
FILE_DATA = const(0xFF01)
BLOCK_BYTES = const(240)  # 120 registers: one sub-request per 253-byte PDU (7 + 240 + 2 header bytes)
CMD_END = const(0)
CMD_BEGIN = const(1)
CMD_CHECK = const(2)
CMD_ACTIVATE = const(3)
STATUS_REGS = const(25)
_BLOCK_FC_REG = const(24)
SESSION_MS = const(10000)
# the activate's reply leaves first: the UART, or a relayed reply's ISO-TP
# frames to the master (app.host.RESTART_DELAY_MS likewise)
RESET_DELAY_MS = const(200)
_US = const(1)
_OTHER = const(2)


class HostUpdate:
    def __init__(self, host, hold, restart=None, file_digest=None):
        """host: app.host.Host (its auth, state, params, DIAG); hold: the
        pack's app.updsess.UpdateSession; restart() -> the MCU reset or None
        (main.py sets it; None: activate is refused 03); file_digest: the
        check routine's (update.updater.file_check)."""
        self.h = host
        self.hold = hold
        self.restart = restart
        self.file_digest = file_digest
        self.port = -1  # the port whose session holds the pack
        self.last_ms = 0
        self._reset_fn = None
        self._reset_ms = 0
        self._ahead = False  # a block went in: erase what the next one needs before it comes

    def held(self):
        return self.hold.owner is self

    def tick(self, now_ms):
        """SESSION_MS without a request ends the session; a due reset runs;
        after a block the flash block the next one reaches is erased here,
        while that block is on the line (the port's receive buffer holds it:
        a 45 ms erase no longer holds the reply)."""
        if self._ahead:
            self._ahead = False
            u = self.hold.upd
            if self.held() and u is not None:
                u.erase_ahead(BLOCK_BYTES)
        if self.held() and ticks_diff(now_ms, self.last_ms) > SESSION_MS:
            self._end()
        if self._reset_fn is not None and ticks_diff(now_ms, self._reset_ms) >= RESET_DELAY_MS:
            fn = self._reset_fn
            self._reset_fn = None
            self._end()
            fn()

    def _end(self):
        self.hold.release(self)
        self.port = -1

    def pdu(self, req, r, out, port):
        """FC 0x14 / 0x15 on the update files, FC_UPDATE_BLOCK, into out; the
        reply's length."""
        h = self.h
        now = h.now_ms
        fc = r.fc
        if h.auth is None or h.auth.level(port, now) < INSTALLER:
            h._refuse(port, R_NO_SESSION, FILE_DATA if fc == mb.FC_UPDATE_BLOCK else FILE_CTL)
            return mb.exception(out, fc, mb.EX_ILLEGAL_FUNCTION)
        h.auth.touch(port, now)
        if self.held() and port == self.port:
            self.last_ms = now
        if fc == mb.FC_READ_FILE:
            return self._status(req, r, out)
        if fc == mb.FC_UPDATE_BLOCK:
            e = self._block(req, r.data, r.addr, r.count, False, port)
            if e:
                return mb.exception(out, fc, e)
            out[0] = fc
            out[1] = req[2]
            out[2] = req[3]
            return 3
        i = r.data
        for _ in range(r.count):
            f, rec, n = mb.file_sub(req, i)
            e = self._write(req, i + 7, f, rec, n, port, now)
            if e:
                return mb.exception(out, fc, e)
            i += 7 + 2 * n
        k = 2 + req[1]
        for j in range(k):  # the normal response is an echo of the request (6.15)
            out[j] = req[j]
        return k

    def _idle(self):
        h = self.h
        d = h.params.v[P.CURRENT_DEADBAND_MA]
        return -d <= h.st.current_ma <= d and not h.st.fet_off_failed

    def _refused(self, port, why):
        from update.updater import REASONS
        self.h._refuse(port, R_UPDATE, FILE_DATA, text="update refused: " + REASONS[why], count=False)
        return mb.EX_ILLEGAL_VALUE

    def _write(self, req, at, f, rec, n, port, now):
        if f == FILE_CTL:
            if rec != 0 or n < 1:
                return mb.EX_ILLEGAL_ADDRESS
            cmd = get_u16(req, at)
            if cmd == CMD_BEGIN:
                return self._begin(req, at, n, port, now)
            if cmd == CMD_END:
                if self.held() and port == self.port:
                    self._end()
                return 0
            if not self.held() or port != self.port or n != 1:
                return self._range(port, "no update session on this port" if n == 1 else None)
            u = self.hold.upd
            from update import updater as W
            if cmd == CMD_CHECK:
                if u is None or u.state not in (W.IMAGE, W.RECEIVED, W.STAGED) or u.received != u.total:
                    return self._range(port, "not all bytes in")
                r = u.end() if u.state == W.IMAGE else 0
                if not r:
                    r = u.check(self.file_digest)
                return self._refused(port, r) if r else 0
            if cmd == CMD_ACTIVATE:
                fn = self.restart() if self.restart is not None else None
                if u is None or u.state != W.STAGED or fn is None:
                    return self._range(port, "nothing staged" if fn is not None else "no reset here")
                self._reset_fn = fn  # after the reply (tick)
                self._reset_ms = now
                return 0
            return self._range(port, "unknown update command")
        if f != FILE_DATA:
            return mb.EX_ILLEGAL_ADDRESS
        return self._block(req, at, rec, n, True, port)

    def _block(self, req, at, rec, n, regs, port):
        """Block rec of the bundle at req[at:], n registers (regs: FC 0x15) or
        n bytes long; 0 or the exception code."""
        if not self.held() or port != self.port:
            return self._range(port, "no update session on this port")
        u = self.hold.upd
        if rec * BLOCK_BYTES != u.received:
            self.h._refuse(port, R_RANGE, FILE_DATA, text="record %d is not the next block (%d)"
                           % (rec, u.received // BLOCK_BYTES), count=False)
            return mb.EX_ILLEGAL_ADDRESS
        size = u.total - u.received
        if size > BLOCK_BYTES:
            size = BLOCK_BYTES
        want = (size + 1) // 2 if regs else size
        if n != want:
            return self._range(port, "a block is %d %s here" % (want, "registers" if regs else "bytes"))
        r = u.feed(req, at, at + size)
        if r:
            return self._refused(port, r)
        self._ahead = True
        return 0

    def _range(self, port, text):
        self.h._refuse(port, R_RANGE, FILE_CTL, text=text, count=False)
        return mb.EX_ILLEGAL_VALUE

    def _begin(self, req, at, n, port, now):
        if n != 5:
            return self._range(port, "begin: command, total u32, offset u32")
        if not self._idle():
            self.h._refuse(port, R_UPDATE, FILE_CTL, text="update refused: current flows", count=False)
            return EX_BUSY
        if self.hold.owner is not None and not (self.held() and port == self.port):
            self.h._refuse(port, R_UPDATE, FILE_CTL, text="update refused: another session holds the pack",
                           count=False)
            return EX_BUSY
        u = self.hold.updater()
        if u is None:
            self.h._refuse(port, R_UPDATE, FILE_CTL, text="update refused: no update on this install", count=False)
            return mb.EX_ILLEGAL_VALUE
        total = get_u16(req, at + 2) << 16 | get_u16(req, at + 4)
        offset = get_u16(req, at + 6) << 16 | get_u16(req, at + 8)
        self.hold.take(self)
        self.port = port
        self.last_ms = now
        r = u.begin(total, offset)
        return self._refused(port, r) if r else 0

    def _status(self, req, r, out):
        u = self.hold.upd
        owner = self.hold.owner
        i = r.data
        o = 2
        for _ in range(r.count):
            f, rec, n = mb.file_sub(req, i)
            i += 7
            o = mb.file_reply(out, o, n)
            if f != FILE_CTL or rec + n > STATUS_REGS or o < 0:
                return mb.exception(out, r.fc, mb.EX_ILLEGAL_ADDRESS)
            for k in range(rec, rec + n):
                put_u16(out, o, self._reg(k, u, owner))
                o += 2
        out[0] = r.fc
        out[1] = o - 2
        return o

    def _reg(self, k, u, owner):
        if k == 0:
            return u.state if u else 0
        if k == 1:
            return u.reason if u else 0
        if k < 6:
            x = (u.received if k < 4 else u.total) if u else 0
            return (x >> 16) & 0xFFFF if k % 2 == 0 else x & 0xFFFF
        if k == 6:
            return BLOCK_BYTES
        if k == 7:
            return 0 if owner is None else (_US if owner is self else _OTHER)
        if k == _BLOCK_FC_REG:
            return mb.FC_UPDATE_BLOCK
        d = u.digest if u is not None else None
        j = 2 * (k - 8)
        return (d[j] << 8 | d[j + 1]) if d else 0
