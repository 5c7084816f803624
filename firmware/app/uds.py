# Owns the UDS server of the firmware update session (issue 15; ISO 14229-1
# over ISO-TP, proto.isotp, on 29-bit ids 0x18DA_TA_SA: proto.uds). One tester
# at a time (as app.hostcan). The CAN port (app.canport) hands frames to
# on_frame, which only reassembles (no allocation per frame); a complete
# request is served at the next tick: a long one (request download: an erase
# and a record save; the block that completes the bundle header: the
# signature check; the check routine) first gets 0x78 responsePending and its
# answer one tick later.
#   0x10 01 default / 02 programming: entered only while no current flows
#        (`004` 7.3: the battery idle or its relays cut off before an upgrade;
#        refused 0x22 otherwise, nothing is switched under load); while it
#        lasts state.update_hold asks control to hold both FETs open and the
#        limits to send CCL = DCL = 0 (app.updsess, which the Modbus session
#        shares: while it holds the pack 0x10 02 is refused 0x22); it ends with
#        0x10 01, S3 (5 s without a request) or a reset.
#   0x27 01/02 security access = the installer login of bms.auth: the seed is
#        a fresh nonce (auth.challenge), the key HMAC-SHA-256(installer secret,
#        seed + 0x02), the Modbus login's answer (auth.login); lock-out,
#        replay and expiry are auth's. Port: PORT_BASE + the tester's SA.
#   0x34/0x36/0x37 the bundle (update.updater): memoryAddress = the offset in
#        the bundle (0 a new transfer; the bytes received so far, DID 0xF1A2,
#        resumes the one under way after a break), memorySize = its length;
#        block counter from 1 per request download, wrapping 0xFF -> 0x00; a
#        block with another counter (out of order, repeated) is refused 0x73.
#   0x31 routines: 0xFF01 verify + stage, 0x0201 activate (reset into the
#        staged image), 0x0202 parameters to defaults.
#   0x22 DIDs (proto.uds), 0x11 01/03 reset (installer), 0x3E tester present.
# Every refusal is a negative response, counted (refused, by_nrc).
# The bundle broadcast (proto.uds BC_*: one tester's frames to every pack at
# once) is taken only inside this pack's open download (programming session,
# security access, 0x34), from the tester that opened it, after an announce
# naming that download (its total; and its manifest digest once the header is
# in), and only the frame that carries the next byte the transfer expects (the
# slot is written in order: a pack that missed a frame stops advancing and the
# tester sends it the rest over UDS). Its bytes wait in a small buffer for
# the next tick, which feeds them to the updater as a TransferData block would
# be (the header checked the moment it is complete, the image hashed; no
# allocation per frame). A broadcast frame from the session's tester counts as
# its activity (S3). Taken and ignored frames are counted (DID 0xF1A5).
# While the programming session is open the CAN chip takes only the 29-bit
# frames for this pack (session_filters: link and 0x18 frames to its address,
# link broadcasts, the bundle broadcast) and the other selections' 11-bit
# ones: a fan-out's UDS frames to the other packs do not fill its two receive
# buffers. The subscribers' selections come back when the session ends.
from array import array

from defs.const import const
from app.service import Service
from app.hostcan import send_due
from app.updsess import UpdateSession
from bms import auth as A
from bms import params as P
from defs.ticks import ticks_diff
from proto import isotp, link, uds as U
from update import slots as S

PORT_BASE = const(0x200)
ACTIVE_MS = const(10)
IDLE_MS = const(100)
# while this pack's download is open: the port is read every ms, and our flow
# control asks for blocks of 2 frames (the MCP2515's two receive buffers,
# both drained per read) back to back (STmin 0)
DOWNLOAD_MS = const(1)
STMIN_MS = const(0)
# the most frames per flow-control block (a FIFO controller, the bench's 64-frame port): a
# longer burst would hold the bus from the link's frames for more than ~2 ms at 500 kbit/s
MAX_BS = const(8)
_IDLE_TESTER_MS = const(2000)
_BC_BUF = const(512)  # broadcast bytes waiting for the tick's feed (a poll may deliver 64 frames)
_EXT = const(2)  # FLAG_EXT_ID
# the prefix (top five bits) and the destination byte (bits 8..15) of a 29-bit id:
# link frames are PREFIX | type | dst | src, UDS and host PREFIX 0x18 | PF | TA | SA
SESSION_MASK = const(0x1F00FF00)
_NONE = const(0xFF)
_RECOVERY = const(0xFE)
# the services whose answer may take longer than P2 (0x78 first)
_LONG = (U.DOWNLOAD, U.ROUTINE)
_SUB_SIDS = (U.SESSION, U.RESET, U.SECURITY, U.ROUTINE, U.TESTER_PRESENT)


def session_filters(address, selections):
    """The chip's acceptance items while a programming session is open: the
    29-bit frames to address (link, UDS, host protocol), link broadcasts and
    the bundle broadcast, and the 11-bit items of selections (the inverter's).
    One mask for the four 29-bit items: they fit an MCP2515 beside one
    other; the session's own two first (an MCP2515 alone with them gives
    them RXB0, which rolls over into RXB1: both buffers)."""
    hi = U.BC_BASE >> 24
    own = [(hi << 24 | address << 8, SESSION_MASK, _EXT), (U.BC_BASE & ~0xFF, SESSION_MASK, _EXT),
           (link.PREFIX << 24 | address << 8, SESSION_MASK, _EXT),
           (link.PREFIX << 24 | link.BROADCAST << 8, SESSION_MASK, _EXT)]
    return own + [s for s in selections if not s[2] & _EXT]


def _slot_byte(s):
    return _RECOVERY if s == S.RECOVERY else (_NONE if s < 0 else s)


class Uds(Service):
    name = "uds"
    period_ms = IDLE_MS

    def __init__(self, state, params, auth, can, address, can_rx=None, make_updater=None, slot_store=None,
                 running=-1, version=b"", restart=None, defaults=None, file_digest=None, hold=None):
        """auth: bms.auth.Auth (the host protocol's); address(): this pack's
        link address; make_updater() -> update.updater.Updater (called at
        the first request download; None: no update on this install);
        slot_store: the boot part's record (DIDs); running: the slot the boot
        part mounted (update.boot.RUNNING); restart() -> the function that
        restarts the MCU, or None (then 0x11 and activate are refused 0x22:
        main.py sets app.restart after the composition); defaults():
        parameters to defaults;
        file_digest(slot, name): for the check routine (update.updater);
        hold: the pack's app.updsess.UpdateSession (shared with the Modbus
        session; default: one of its own on make_updater)."""
        self.state = state
        self.params = params
        self.auth = auth
        self.can = can
        self.can_rx = can_rx
        self.address = address
        self.hold = hold if hold is not None else UpdateSession(state, make_updater)
        self.slot_store = slot_store
        self.running = running
        self.version = version
        self.restart = restart
        self._reset_fn = None
        self.defaults = defaults
        self.file_digest = file_digest
        self.ch = isotp.Channel(U.MAX_BLOCK + 6, 96, isotp.BLOCK_SIZE, STMIN_MS)
        self._mv = memoryview(self.ch.frame)
        self._req = memoryview(self.ch.rx)
        self.out = self.ch.tx
        self.now_ms = 0
        self.tester = -1
        self._tester_ms = 0
        self._traffic_ms = 0
        self._n = 0  # length of a request waiting for the tick
        self._pending = False  # 0x78 sent: serve it now
        self._reset_due = False
        self.session = U.DEFAULT
        self._last_ms = 0  # last request (S3)
        self._dl = False  # a download is open (0x34 accepted, no 0x37 / refusal since)
        self._seq = 1
        self._bc_on = False  # an announce named the open download
        self._bc_tag = bytearray(3)  # the announce's manifest digest bytes
        self._bc = bytearray(_BC_BUF)
        self._bc_fill = 0
        self.bc_taken = 0
        self.bc_ignored = 0
        self.narrowed = False  # session_filters on the chip
        self.filter_errors = 0  # the chip refused them (the session goes on with the wide selections)
        self.busy = 0
        self.errors = 0
        self.requests = 0
        self.refused = 0
        self.last_nrc = 0
        self.by_nrc = array("H", [0] * len(U.NRCS))

    # -- frames ------------------------------------------------------------------
    def on_frame(self, bus, fr):
        id_ = fr[0]
        if id_ >> 8 == U.BC_BASE >> 8:
            self._broadcast(id_ & 0xFF, fr[1])
            return
        if (id_ >> 16) & 0x1FFF != U.BASE >> 16:
            return
        self._traffic_ms = self.now_ms
        if not self._dl:
            self.period_ms = ACTIVE_MS
        if (id_ >> 8) & 0xFF != self.address():
            return
        sa = id_ & 0xFF
        now = self.now_ms
        if self.tester != sa:
            if self.tester >= 0 and (self.session != U.DEFAULT or ticks_diff(now, self._tester_ms) < _IDLE_TESTER_MS):
                self.busy += 1
                return
            self._end_session()
            self.tester = sa
        self._tester_ms = now
        n = self.ch.on_frame(fr[1], now)
        if n:
            self._n = n

    def _broadcast(self, sa, d):
        self._traffic_ms = self.now_ms
        if not self._dl:
            self.period_ms = ACTIVE_MS  # a pack left out still empties its receive queue
        u = self.upd
        if not self._dl or sa != self.tester or len(d) != 8 or u is None:
            self.bc_ignored += 1
            return
        self._last_ms = self.now_ms
        seq = (d[0] << 8) | d[1]
        if seq == U.BC_ANNOUNCE:
            t = self._bc_tag
            t[0] = d[5]
            t[1] = d[6]
            t[2] = d[7]
            self._bc_on = u.total == (d[2] << 16) | (d[3] << 8) | d[4] and self._bc_same()
            return
        at = seq * U.BC_DATA
        nxt = u.received + self._bc_fill
        f = self._bc_fill
        if not self._bc_on or not at <= nxt < at + U.BC_DATA or nxt >= u.total or f + U.BC_DATA > _BC_BUF:
            self.bc_ignored += 1
            return
        k = at + U.BC_DATA - nxt
        if k > u.total - nxt:
            k = u.total - nxt  # the last frame's padding
        b = self._bc
        j = 2 + nxt - at
        for i in range(k):
            b[f + i] = d[j + i]
        self._bc_fill = f + k
        self.bc_taken += 1

    def _bc_same(self):
        """The announced bundle is the one under way (its digest is known
        once the header is in: until then the header's check decides)."""
        g = self.upd.digest
        t = self._bc_tag
        return g is None or (g[0] == t[0] and g[1] == t[1] and g[2] == t[2])

    def _bc_flush(self):
        n = self._bc_fill
        self._bc_fill = 0
        if not self._dl:
            return
        if self.upd.feed(self._bc, 0, n):
            self._dl = False  # the bundle refused (its reason in DID 0xF1A2)
        elif not self._bc_same():
            self._bc_on = False  # the header that came is not the announced bundle's

    def tick(self, now_ms):
        self.now_ms = now_ms
        if self.period_ms != IDLE_MS:
            if self.can_rx is not None:
                self.can_rx.poll()
            if self._dl:
                self.period_ms = DOWNLOAD_MS
            elif self.session == U.DEFAULT and ticks_diff(now_ms, self._traffic_ms) >= _IDLE_TESTER_MS:
                self.period_ms = IDLE_MS
            else:
                self.period_ms = ACTIVE_MS
        if self._bc_fill:
            self._bc_flush()
        if self.session != U.DEFAULT and ticks_diff(now_ms, self._last_ms) > U.S3_MS:
            self._end_session()  # S3: the tester went away
        if self.tester < 0:
            return
        ch = self.ch
        if self._n and not ch.busy():
            n = self._n
            req = self._req
            if not self._pending and self._long(req, n):
                self._pending = True
                self._answer(self._neg_raw(req[0], U.NRC_PENDING), now_ms)
            else:
                self._n = 0
                self._pending = False
                self.requests += 1
                self._last_ms = now_ms
                self._answer(self._serve(req, n, now_ms), now_ms)
        self.errors += send_due(ch, self.can, U.BASE | (self.tester << 8) | (self.address() & 0xFF), self._mv,
                                now_ms)
        if self._reset_due and not ch.busy() and not ch.pending(now_ms):
            self._reset_due = False
            self._end_session()
            self._reset_fn()

    def _answer(self, k, now_ms):
        if k:
            self.ch.send(k, now_ms)

    def _long(self, req, n):
        sid = req[0]
        if sid == U.TRANSFER:
            return self._dl and self.upd is not None and self.upd.header_completes(n - 2)
        return self.session == U.PROGRAMMING and sid in _LONG

    def _end_session(self):
        if self.session != U.DEFAULT and self.tester >= 0:
            self.auth.logout(PORT_BASE + self.tester)
        if self._bc_fill:
            self._bc_flush()  # what the broadcast brought is the pack's to resume from
        if self.narrowed:
            self._filters(False)
        self.session = U.DEFAULT
        self._dl = False  # the transfer itself stays in the UpdateSession: a new session may resume it
        self._bc_on = False
        self.hold.release(self)

    def _filters(self, narrow):
        rx = self.can_rx
        a = self.address()
        if rx is None or not hasattr(self.can, "set_filters") or (narrow and not 1 <= a <= link.MAX_PACKS):
            return
        try:
            self.can.set_filters(session_filters(a, rx.selections()) if narrow else rx.selections())
            self.narrowed = narrow
        except (OSError, ValueError, MemoryError):  # MemoryError: the driver's set-up module
            # (drivers.mcp2515cfg, imported for the call) did not fit; the chip is untouched
            # and the session goes on with the filters it had
            self.filter_errors += 1
        self._block_size()

    def _block_size(self):
        """Our flow control's BS: no more frames in a block than the port
        holds (rx_depth: an MCP2515's two buffers, one while the session's
        filters share them with the inverter's item, drivers.mcp2515; a
        controller with a receive FIFO more, up to MAX_BS), BLOCK_SIZE on a
        port that does not say."""
        depth = getattr(self.can, "rx_depth", None)
        d = depth(True) if depth is not None else isotp.BLOCK_SIZE
        self.ch.block_size = d if 0 < d < MAX_BS else (MAX_BS if d else isotp.BLOCK_SIZE)

    @property
    def upd(self):
        return self.hold.upd

    # -- answers -------------------------------------------------------------------
    def _neg_raw(self, sid, nrc):
        o = self.out
        o[0] = U.NEGATIVE
        o[1] = sid
        o[2] = nrc
        return 3

    def _neg(self, sid, nrc):
        self.refused += 1
        self.last_nrc = nrc
        for i in range(len(U.NRCS)):
            if U.NRCS[i] == nrc:
                self.by_nrc[i] += 1
        return self._neg_raw(sid, nrc)

    def _pos(self, req, k):
        """A positive answer echoing req[1:k]; its length."""
        o = self.out
        o[0] = req[0] + U.POSITIVE
        for i in range(1, k):
            o[i] = req[i]
        return k

    def _installer(self, sid, now_ms):
        """0 when the tester holds the installer level in the programming
        session, else the NRC."""
        if self.session != U.PROGRAMMING:
            return U.NRC_NOT_IN_SESSION
        port = PORT_BASE + self.tester
        if self.auth.level(port, now_ms) != A.INSTALLER:
            self.auth.refuse(port, A.R_NO_SESSION)
            return U.NRC_ACCESS_DENIED
        self.auth.touch(port, now_ms)
        return 0

    def _idle(self):
        """No current flows, and the FETs obeyed (state.fet_off_failed)."""
        st = self.state
        i = st.current_ma
        return -self.params.v[P.CURRENT_DEADBAND_MA] <= i <= self.params.v[P.CURRENT_DEADBAND_MA] \
            and not st.fet_off_failed

    def _serve(self, req, n, now_ms):
        sid = req[0]
        k = self._dispatch(sid, req, n, now_ms)
        if k > 0 and sid in _SUB_SIDS and n > 1 and req[1] & 0x80 and self.out[0] != U.NEGATIVE:
            return 0  # suppressPosRspMsgIndicationBit
        return k

    def _dispatch(self, sid, req, n, now_ms):
        if sid == U.TESTER_PRESENT:
            if n != 2:
                return self._neg(sid, U.NRC_LENGTH)
            if req[1] & 0x7F:
                return self._neg(sid, U.NRC_SUB_NOT_SUPPORTED)
            return self._pos(req, 2)
        if sid == U.SESSION:
            return self._session(req, n)
        if sid == U.READ_DID:
            return self._read(req, n)
        if sid == U.SECURITY:
            return self._security(req, n, now_ms)
        if sid == U.DOWNLOAD or sid == U.TRANSFER or sid == U.EXIT or sid == U.ROUTINE or sid == U.RESET:
            nrc = self._installer(sid, now_ms)
            if nrc:
                return self._neg(sid, nrc)
            if sid == U.DOWNLOAD:
                return self._download(req, n)
            if sid == U.TRANSFER:
                return self._transfer(req, n)
            if sid == U.EXIT:
                return self._exit(req, n)
            if sid == U.ROUTINE:
                return self._routine(req, n)
            return self._reset(req, n)
        return self._neg(sid, U.NRC_NOT_SUPPORTED)

    def _session(self, req, n):
        if n != 2:
            return self._neg(U.SESSION, U.NRC_LENGTH)
        sub = req[1] & 0x7F
        if sub == U.DEFAULT:
            self._end_session()
        elif sub == U.PROGRAMMING:
            if not self._idle() or not self.hold.take(self):
                return self._neg(U.SESSION, U.NRC_CONDITIONS)
            self.session = U.PROGRAMMING
            if not self.narrowed:
                self._filters(True)
        else:
            return self._neg(U.SESSION, U.NRC_SUB_NOT_SUPPORTED)
        o = self.out
        self._pos(req, 2)
        o[2] = U.P2_MS >> 8
        o[3] = U.P2_MS & 0xFF
        o[4] = (U.P2_STAR_MS // 10) >> 8
        o[5] = (U.P2_STAR_MS // 10) & 0xFF
        return 6

    def _security(self, req, n, now_ms):
        sid = U.SECURITY
        if self.session != U.PROGRAMMING:
            return self._neg(sid, U.NRC_NOT_IN_SESSION)
        if n < 2:
            return self._neg(sid, U.NRC_LENGTH)
        sub = req[1] & 0x7F
        port = PORT_BASE + self.tester
        au = self.auth
        o = self.out
        if sub == 1:
            if n != 2:
                return self._neg(sid, U.NRC_LENGTH)
            if au.level(port, now_ms) == A.INSTALLER:
                seed = bytes(A.NONCE_LEN)  # already unlocked: a zero seed (ISO 14229-1 9.4.1)
            else:
                seed = au.challenge(port, now_ms)
                if seed is None:
                    return self._neg(sid, U.NRC_DELAY if au.lock_remaining_ms(now_ms) > 0 else U.NRC_CONDITIONS)
            self._pos(req, 2)
            o[2:2 + A.NONCE_LEN] = seed
            return 2 + A.NONCE_LEN
        if sub == 2:
            if n != 2 + A.MAC_LEN:
                return self._neg(sid, U.NRC_LENGTH)
            was_locked = au.lock_remaining_ms(now_ms) > 0
            if au.login(port, A.INSTALLER, bytes(req[2:n]), now_ms):
                return self._pos(req, 2)
            r = au.last_reason
            if r == A.R_LOCKED or was_locked:
                return self._neg(sid, U.NRC_DELAY)
            if r == A.R_NO_CHALLENGE:
                return self._neg(sid, U.NRC_SEQUENCE)
            if r == A.R_BAD_MAC:
                return self._neg(sid, U.NRC_ATTEMPTS if au.locked else U.NRC_INVALID_KEY)
            return self._neg(sid, U.NRC_CONDITIONS)  # no installer secret: not commissioned
        return self._neg(sid, U.NRC_SUB_NOT_SUPPORTED)

    def _download(self, req, n):
        sid = U.DOWNLOAD
        if n < 3:
            return self._neg(sid, U.NRC_LENGTH)
        la = req[2] & 0x0F
        ls = req[2] >> 4
        if n != 3 + la + ls:
            return self._neg(sid, U.NRC_LENGTH)
        if req[1] != 0 or not 1 <= la <= 4 or not 1 <= ls <= 4:
            return self._neg(sid, U.NRC_RANGE)  # no compression/encryption; sizes of at most 4 bytes
        if not self._idle():
            return self._neg(sid, U.NRC_CONDITIONS)
        addr = 0
        for i in range(la):
            addr = (addr << 8) | req[3 + i]
        size = 0
        for i in range(ls):
            size = (size << 8) | req[3 + la + i]
        u = self.hold.updater()
        if u is None:
            return self._neg(sid, U.NRC_CONDITIONS)
        from update import updater as W
        self._bc_on = False
        r = u.begin(size, addr)
        if r:
            self._dl = False
            if r == W.R_NO_SLOTS:
                return self._neg(sid, U.NRC_CONDITIONS)
            if r == W.R_FLASH:
                return self._neg(sid, U.NRC_PROGRAMMING)
            if r == W.R_NO_KEY:
                return self._neg(sid, U.NRC_NOT_ACCEPTED)
            return self._neg(sid, U.NRC_RANGE)
        self._dl = True
        self._seq = 1
        o = self.out
        o[0] = sid + U.POSITIVE
        o[1] = 0x20  # lengthFormatIdentifier: 2 bytes of maxNumberOfBlockLength
        o[2] = U.MAX_BLOCK >> 8
        o[3] = U.MAX_BLOCK & 0xFF
        return 4

    def _transfer(self, req, n):
        sid = U.TRANSFER
        if not self._dl:
            return self._neg(sid, U.NRC_SEQUENCE)
        if n < 2 or n > U.MAX_BLOCK:
            return self._neg(sid, U.NRC_LENGTH)
        if req[1] != self._seq:
            return self._neg(sid, U.NRC_BLOCK_COUNTER)
        if self.upd.feed(req, 2, n):
            self._dl = False
            return self._neg(sid, U.NRC_PROGRAMMING)
        self._seq = (self._seq + 1) & 0xFF
        return self._pos(req, 2)

    def _exit(self, req, n):
        sid = U.EXIT
        if not self._dl or self.upd.received != self.upd.total:
            return self._neg(sid, U.NRC_SEQUENCE)
        self._dl = False
        if self.upd.end():
            return self._neg(sid, U.NRC_PROGRAMMING)
        self.out[0] = sid + U.POSITIVE
        return 1

    def _routine(self, req, n):
        sid = U.ROUTINE
        if n < 4:
            return self._neg(sid, U.NRC_LENGTH)
        if req[1] & 0x7F != 1:
            return self._neg(sid, U.NRC_SUB_NOT_SUPPORTED)
        rid = (req[2] << 8) | req[3]
        from update import updater as W
        u = self.upd
        if rid == U.RT_CHECK:
            if self._dl or u is None or u.state not in (W.RECEIVED, W.STAGED):
                return self._neg(sid, U.NRC_SEQUENCE)
            if u.check(self.file_digest):
                return self._neg(sid, U.NRC_PROGRAMMING)
        elif rid == U.RT_ACTIVATE:
            if u is None or u.state != W.STAGED:
                return self._neg(sid, U.NRC_SEQUENCE)
            if not self._reset_ok():
                return self._neg(sid, U.NRC_CONDITIONS)
        elif rid == U.RT_DEFAULTS:
            if self.defaults is None:
                return self._neg(sid, U.NRC_CONDITIONS)
            try:
                self.defaults()
            except OSError:  # the flash
                return self._neg(sid, U.NRC_PROGRAMMING)
            except (ValueError, MemoryError):  # the kept values do not validate against the
                # defaults (nothing changed), or the rows (bms.params.rows, imported per use)
                # did not fit the heap: refused, the tester may try again
                return self._neg(sid, U.NRC_CONDITIONS)
        else:
            return self._neg(sid, U.NRC_RANGE)
        self._pos(req, 4)
        self.out[4] = 0  # routineStatusRecord: 0 = done
        return 5

    def _reset(self, req, n):
        if n != 2:
            return self._neg(U.RESET, U.NRC_LENGTH)
        if req[1] & 0x7F not in (1, 3):
            return self._neg(U.RESET, U.NRC_SUB_NOT_SUPPORTED)
        if not self._reset_ok():
            return self._neg(U.RESET, U.NRC_CONDITIONS)
        return self._pos(req, 2)

    def _reset_ok(self):
        """A restart is due once the answer is out; False where none is possible."""
        self._reset_fn = self.restart() if self.restart is not None else None
        self._reset_due = self._reset_fn is not None
        return self._reset_due

    # -- identification ----------------------------------------------------------------
    def _read(self, req, n):
        sid = U.READ_DID
        if n < 3 or n % 2 != 1:
            return self._neg(sid, U.NRC_LENGTH)
        o = self.out
        o[0] = sid + U.POSITIVE
        k = 1
        for i in range(1, n, 2):
            did = (req[i] << 8) | req[i + 1]
            try:
                m = self._did(did, k + 2)
            except IndexError:  # more DIDs than one answer holds
                m = -1
            if m < 0:
                return self._neg(sid, U.NRC_RANGE)
            o[k] = req[i]
            o[k + 1] = req[i + 1]
            k += 2 + m
        return k

    def _did(self, did, at):
        """Write DID did's value at out[at:]; its length, -1 unknown."""
        o = self.out
        if did == U.DID_VERSION:
            v = self.version
            for i in range(U.VERSION_LEN):
                o[at + i] = v[i] if i < len(v) else 0
            return U.VERSION_LEN
        if did == U.DID_SLOTS or did == U.DID_COUNTERS:
            rec = None
            if self.slot_store is not None:
                try:
                    rec = self.slot_store.load()[0]
                except OSError:
                    rec = None
            if did == U.DID_SLOTS:
                o[at] = _slot_byte(self.running)
                o[at + 1] = _slot_byte(rec[S.CONFIRMED]) if rec else _NONE
                o[at + 2] = _slot_byte(rec[S.PENDING]) if rec else _NONE
                o[at + 3] = rec[S.TRIES] if rec else 0
                return 4
            _u32(o, at, rec[S.FLOOR] if rec else 0)
            _u32(o, at + 4, S.counter(rec, self.running) if rec and self.running in (0, 1) else -1)  # -1: 0xFFFFFFFF
            return 8
        u = self.upd
        if did == U.DID_TRANSFER:
            o[at] = u.state if u else 0
            o[at + 1] = u.reason if u else 0
            _u32(o, at + 2, u.received if u else 0)
            _u32(o, at + 6, u.total if u else 0)
            o[at + 10] = self._seq
            return 11
        if did == U.DID_BUNDLE:
            d = u.digest if u is not None else None
            for i in range(32):
                o[at + i] = d[i] if d else 0
            return 32
        if did == U.DID_BROADCAST:
            _u32(o, at, self.bc_taken)
            _u32(o, at + 4, self.bc_ignored)
            return 8
        if did == U.DID_REFUSED:
            o[at] = (self.refused >> 8) & 0xFF
            o[at + 1] = self.refused & 0xFF
            o[at + 2] = self.last_nrc
            return 3
        return -1


def _u32(o, at, v):
    o[at] = (v >> 24) & 0xFF
    o[at + 1] = (v >> 16) & 0xFF
    o[at + 2] = (v >> 8) & 0xFF
    o[at + 3] = v & 0xFF
