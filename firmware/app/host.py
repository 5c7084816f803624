# Owns the host protocol handler (issue 13): Modbus PDUs from the PC tool or a
# SCADA, transport-independent (pdu(); RTU framing in on_rs485, Modbus TCP and
# ISO-TP elsewhere), over this register map (FC03 and FC04 read the same map):
#   0..16       INFO: map version, parameter count, parameter base, firmware
#               version (major << 8 | minor), unit id, serial number (16 ASCII bytes),
#               address mode (0 automatic, 1 fixed: link_fixed_address_count or the DIP,
#               as read at start), the address another pack also uses (0 none),
#               the CAN bit rate in kbit/s the pack runs at (0 while it still
#               listens, app.canrate) and the stored one (can_bitrate_count)
#   100..135    DIAG: the last refused write's reason (R_*), its first register,
#               its parameter id (0 none), refusals counted here, 64 bytes of
#               reason text (ASCII, NUL padded)
#   200..207    AUTH challenge: a read of exactly these 8 returns a fresh 16-byte
#               nonce (auth.challenge); exception 06 (busy) while locked out
#   208         AUTH level of this port (read); write 0: log out; write 17
#               registers from 208 (level, 32-byte HMAC-SHA-256): log in (auth.login)
#   230..262    SET_SECRET (write only, all 33 at once): level + the 64-byte blob of
#               auth.set_secret (installer session; refusals counted by auth)
#   270..286    PROVISION (write only, all 17 at once): level (3: the owner's update
#               key, auth.UPDATE_KEY) + the 32-byte secret in
#               clear (auth.provision): commissioning, only with physical presence
#               (maintenance mode, the forced-update jumper fitted at boot, and the
#               button held at the request), else 01, counted
#   1000 + 2 i  parameter row i (id i + 1, bms.ptable) as int32, high word first;
#               writes (06 / 0x10, partial words combine with the held value)
#               need an installer session (auth level >= 2), go through the
#               parameters' range and validate() as a whole, FACTORY rows are read-only;
#               each change journalled (journal.changed) and the parameters saved
#   300..322    CTL: clock, device control, calibration (app.hostctl)
#   FC 0x14     the event history as file records (app.hostfile)
#   FC 0x14/15  files 0xFF00.. (hostupd.FILE_CTL, FILE_DATA): the firmware update
#               session (app.hostupd, built at its first request); its blocks also
#               by FC 0x41 (proto.modbus.FC_UPDATE_BLOCK, user-defined)
#   40000..     SunSpec (proto.sunspec): 'SunS', 1, 802 (system), 803 (the system
#               as a bank, a string per link address), 804 (this pack's
#               string), 805 (this pack), end
# Exceptions (Modbus Application Protocol 7): 01 function not served, or a write
# without an installer session (01 "the server is in the wrong state to process
# a request of this type"; auth.refuse counts it); 02 a register outside the map,
# a range crossing blocks or a read-only register; 03 a malformed request, a
# value out of range or one validate() refuses (DIAG names why); 04 an
# unexpected error; 06 login locked out. Unit 0 (broadcast) acts without a
# reply; on RTU the relay (app.relay) decides first: other units are the pack
# at that link address, through the master; a slave on the RS485 chain answers
# its link address only. Without a relay other units get no reply.
# Reads allocate nothing; writes and logins are rare and may.
from app.service import Service, head_view
from app import hostctl, hostfile
from app.hostctl import INSTALLER, EX_BUSY, R_OK, R_NO_SESSION, R_READ_ONLY, R_RANGE, R_INVALID, \
    R_LOGIN, R_NOT_PRESENT, REASONS, CTL, CTL_REGS
from app.inverter import SERIAL, SW_VERSION_MAJOR, SW_VERSION_MINOR
from bms import auth as A
from bms.canrate import RATES_KBPS
from bms import params as P
from bms.parallel import MASTER, elapsed
from proto import modbus as mb
from proto import sunspec as ss
from proto.wire import put_u16, get_u16

from defs.const import const

MAP_VERSION = const(1)
INFO = const(0)
INFO_SERIAL = const(5)
INFO_FIXED = const(13)
INFO_CONFLICT = const(14)
INFO_CAN = const(15)
INFO_REGS = const(17)
DIAG = const(100)
DIAG_TEXT = const(104)
DIAG_TEXT_BYTES = const(64)
DIAG_REGS = const(4 + DIAG_TEXT_BYTES // 2)
CHALLENGE = const(200)
CHALLENGE_REGS = const(8)
LOGIN = const(208)
LOGIN_REGS = const(17)  # level + 32-byte MAC
SET_SECRET = const(230)
SET_SECRET_REGS = const(33)  # level + 64-byte blob
PROVISION = const(270)
PROVISION_REGS = const(17)  # level + 32-byte secret
PARAM = const(1000)
PARAM_REGS = 2 * P.rows().N  # folded into a constant at deploy: no rows held

MAKER = b"BMS-MPY"
MODEL = b"LFP 16S 51.2 V"
VERSION = ("%d.%d" % (SW_VERSION_MAJOR, SW_VERSION_MINOR)).encode()  # without an image `version` file
# A frame under way is dropped after this long without a byte. Not Modbus's
# 3.5 character times: the router reads the port every link period
# (app.link.LINK_MS, 100 ms), so a frame that takes longer than that on the
# wire (43 bytes at 9600 baud: a login) reaches us in several reads; a pause
# of 2.5 periods is a broken frame. A complete frame is answered at once
# (its length follows from the function code), so this only resynchronises.
GAP_MS = const(250)
PORT_RTU = const(1)  # auth's port id of the RTU port (app.hostcan: 0x100 + SA)
RESTART_DELAY_MS = const(200)  # the reply of a restart command leaves the UART / CAN chip first
UPDATE_FILES = const(0xFF00)  # app.hostupd.FILE_CTL: file records from here are the update session's
# While update requests (FC 0x15, FC_UPDATE_BLOCK, ours or relayed) come on
# RTU, the host reads Link IN itself every UPDATE_MS (the link service reads
# it every 100 ms), until UPDATE_HOLD_MS pass without one.
UPDATE_MS = const(1)
UPDATE_HOLD_MS = const(2000)


def version_word(v):
    """INFO register 3 of version text v ("MAJOR.MINOR[.x]"): MAJOR << 8 |
    MINOR; the built-in version's for any other text."""
    parts = bytes(v).split(b".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[0]) < 256 \
            and int(parts[1]) < 256:
        return int(parts[0]) << 8 | int(parts[1])
    return SW_VERSION_MAJOR << 8 | SW_VERSION_MINOR


class Host(Service):
    name = "host"
    period_ms = 50

    def __init__(self, state, params, view, port=None, auth=None, unit=1, journal=None, present=None,
                 update=None, version=VERSION, serial=SERIAL):
        """view: the system view (bms.system) model 802 shows; port: where RTU
        replies go (write()); auth: lib/bms/auth's API (None: no session ever,
        every write refused); journal: app.hostctl.Journal's API (the event
        history, the store, the clock; None: parameter writes stay in RAM, no
        history, clock or defaults); present(): someone is at the pack (only
        in maintenance mode: the button held now; None: never); update() ->
        the app.hostupd.HostUpdate of files 0xFF00.. (None: FC 0x15 not served);
        version: the running firmware's (bytes, app.hostbuild.version); serial:
        the pack's serial number (16 bytes, app.inverter.serial)."""
        self.serial = serial
        self.device_id = (MAKER, MODEL, version)  # FC 0x2B/0x0E basic objects 0, 1, 2
        self.version_word = version_word(version)
        self.present = present
        self.make_update = update
        self.upd = None
        self.st = state
        self.params = params
        self.view = view
        self.port = port
        self.auth = auth
        self.unit = unit
        self.journal = journal
        self.relay = None  # app.relay.Relay: RTU units other than ours (app.compose sets it)
        self.rx = None  # app.router.Router of Link IN, read while an update runs (app.compose sets it)
        self._update_ms = 0  # the last update request on RTU (period_ms UPDATE_MS since)
        self.link = None  # app.link.Link: the pack table (803), remove a pack (app.compose sets it)
        self.restart = None  # the MCU restart (app.compose sets it; None: the command is not served)
        self.restart_ms = -1  # a restart asked at this time (app.hostctl); the tick does it
        self.now_ms = 0
        self.r = mb.Request()
        self.framer = mb.Framer()
        self.tx = bytearray(mb.MAX_ADU)
        self._req = memoryview(self.framer.buf)[1:]
        self._out = memoryview(self.tx)[1:]
        self._views = {}
        self._scratch = bytearray(2 * ss.SCRATCH_REGS)
        self._blocks = ss.segments()
        self.reason = R_OK
        self.reason_reg = 0
        self.reason_id = 0
        self.refused = 0
        self.reason_text = bytearray(DIAG_TEXT_BYTES)
        self.replies = 0
        self.errors = 0  # unexpected exceptions answered with 04

    # -- RTU ---------------------------------------------------------------------
    def on_rs485(self, buf, n):
        """Binary bytes from the port (buf[:n]): RTU frames answered on self.port."""
        framer = self.framer
        framer.heard(self.now_ms)
        for i in range(n):
            m = framer.feed(buf[i])
            if m:
                self._frame(m)

    def _frame(self, m):
        unit = self.framer.buf[0]
        fc = self.framer.buf[1]
        if fc == mb.FC_UPDATE_BLOCK or fc == mb.FC_WRITE_FILE:
            self._update_ms = self.now_ms
            self.period_ms = UPDATE_MS
        if self.relay is not None and self.relay.route(self.framer.buf, m):
            return  # another pack's (relayed: its tick writes the reply), or not ours
        k = self.pdu(unit, self._req, m - 3, self._out, PORT_RTU)
        if k:
            self.reply(unit, k)

    def reply(self, unit, k):
        """Write the reply PDU in self._out[:k] as unit's RTU frame on the port."""
        if self.port is None:
            return
        n = mb.rtu_reply(self.tx, unit, k)
        self.port.write(head_view(self._views, self.tx, n))

    def tick(self, now_ms):
        """The clock for sessions; GAP_MS without a byte ends a frame under way."""
        self.now_ms = now_ms
        if self.auth is not None:
            self.auth.tick(now_ms)
        if self.upd is not None:
            self.upd.tick(now_ms)
        if self.period_ms == UPDATE_MS:
            if elapsed(now_ms, self._update_ms) >= UPDATE_HOLD_MS:
                self.period_ms = Host.period_ms
            elif self.rx is not None:
                self.rx.poll(now_ms)
        self.framer.quiet(now_ms, GAP_MS)
        if self.restart_ms >= 0 and elapsed(now_ms, self.restart_ms) >= RESTART_DELAY_MS:
            self.restart_ms = -1
            self.restart()

    # -- the PDU -------------------------------------------------------------------
    def pdu(self, unit, req, n, out, port):
        """Answer request PDU req[:n] into out; the reply's length (0: none)."""
        if unit != self.unit and unit != mb.BROADCAST:
            return 0
        st = self.st
        st.host_requests = (st.host_requests + 1) & 0x3FFFFFFF
        try:
            k = self._pdu(req, n, out, port)
        except Exception:  # nothing a host sends may stop the service
            self.errors += 1
            k = mb.exception(out, req[0] if n else 0, mb.EX_DEVICE_FAILURE)
        if unit == mb.BROADCAST:
            return 0
        self.replies += 1
        return k

    def _pdu(self, req, n, out, port):
        r = self.r
        e = mb.parse(req, n, r)
        if e:
            return mb.exception(out, r.fc if n else 0, e)
        fc = r.fc
        if fc == mb.FC_READ_HOLDING or fc == mb.FC_READ_INPUT:
            e = self._read(r.addr, r.count, out, 2, port)
            if e:
                return mb.exception(out, fc, e)
            out[0] = fc
            out[1] = 2 * r.count
            return 2 + 2 * r.count
        if fc == mb.FC_WRITE_SINGLE or fc == mb.FC_WRITE_MULTIPLE:
            e = self._write(req, r, port)
            if e:
                return mb.exception(out, fc, e)
            for i in range(5):  # FC06 echoes the request, FC16 its address and count
                out[i] = req[i]
            return 5
        if fc == mb.FC_READ_FILE or fc == mb.FC_WRITE_FILE or fc == mb.FC_UPDATE_BLOCK:
            if self.make_update is not None and (fc != mb.FC_READ_FILE or get_u16(req, r.data + 1) >= UPDATE_FILES):
                if self.upd is None:
                    self.upd = self.make_update()
                return self.upd.pdu(req, r, out, port)
            if fc == mb.FC_READ_FILE:
                return hostfile.read(self, req, r, out)
        if fc == mb.FC_MEI:
            return self._device_id(r, out)
        return mb.exception(out, fc, mb.EX_ILLEGAL_FUNCTION)

    # -- reads ---------------------------------------------------------------------
    def _read(self, a, c, out, o, port):
        """Registers a .. a + c - 1 into out[o:]; 0 or an exception code."""
        end = a + c
        if ss.SUNS <= a and end <= ss.TOP:
            return self._read_sunspec(a, end, out, o)
        if PARAM <= a and end <= PARAM + PARAM_REGS:
            v = self.params.v
            for reg in range(a, end):
                x = v[(reg - PARAM) >> 1]
                put_u16(out, o, ((x >> 16) if (reg - PARAM) & 1 == 0 else x) & 0xFFFF)
                o += 2
            return 0
        if CTL <= a and end <= CTL + CTL_REGS:
            return hostctl.read(self, a, end, out, o)
        if INFO <= a and end <= INFO + INFO_REGS:
            for reg in range(a, end):
                put_u16(out, o, self._info(reg - INFO))
                o += 2
            return 0
        if DIAG <= a and end <= DIAG + DIAG_REGS:
            for reg in range(a, end):
                k = reg - DIAG
                if k >= 4:
                    t = self.reason_text
                    out[o] = t[2 * (k - 4)]
                    out[o + 1] = t[2 * (k - 4) + 1]
                elif k == 0:
                    put_u16(out, o, self.reason)
                elif k == 1:
                    put_u16(out, o, self.reason_reg)
                elif k == 2:
                    put_u16(out, o, self.reason_id)
                else:
                    put_u16(out, o, self.refused)
                o += 2
            return 0
        if a == CHALLENGE and c == CHALLENGE_REGS:
            nonce = self.auth.challenge(port, self.now_ms) if self.auth is not None else None
            if nonce is None:
                return EX_BUSY
            for i in range(16):
                out[o + i] = nonce[i]
            return 0
        if a == LOGIN and c == 1:
            put_u16(out, o, self._level(port))
            return 0
        return mb.EX_ILLEGAL_ADDRESS

    def _info(self, k):
        if k == 0:
            return MAP_VERSION
        if k == 1:
            return PARAM_REGS // 2
        if k == 2:
            return PARAM
        if k == 3:
            return self.version_word
        if k == 4:
            return self.st.link_address or self.unit  # = its unit through the master
        if k == INFO_FIXED:
            return 1 if self.st.link_fixed else 0
        if k == INFO_CONFLICT:
            return self.st.link_conflict
        if k == INFO_CAN:
            return self.st.can_kbps
        if k == INFO_CAN + 1:
            return RATES_KBPS[self.params.v[P.CAN_BITRATE_COUNT]]
        i = 2 * (k - INFO_SERIAL)
        sn = self.serial
        return sn[i] << 8 | sn[i + 1] if i + 1 < len(sn) else 0

    def _read_sunspec(self, a, end, out, o):
        b = self._blocks
        s = self._scratch
        for k in range(len(b) - 1):
            lo = b[k]
            hi = b[k + 1]
            if hi <= a or lo >= end:
                continue
            self._fill(k, s)
            first = a if a > lo else lo
            last = end if end < hi else hi
            for i in range(2 * (first - lo), 2 * (last - lo)):
                out[o] = s[i]
                o += 1
        return 0

    def _fill(self, k, s):
        st = self.st
        if k == 0:
            ss.fill_suns(s)
        elif k == 1:
            ss.fill_common(s, MAKER, MODEL, self.device_id[2], self.serial, st.link_address or self.unit)
        elif k == 2:
            ss.fill_802(s, self.view, st)
        elif k < ss.SEG_804:
            t = self.link.table if self.link is not None else None
            master = st.link_role == MASTER
            # a slave's own row: held once it reported (bms.parallel.Table builds its rows then)
            own = st.link_address if t is not None and st.link_address < t.n else 0
            if k == ss.SEG_803:
                ss.fill_803(s, self.view, t, master, own)
            else:
                ss.fill_803_string(s, t, k - ss.SEG_ROW0 + 1, master, own)
        elif k == ss.SEG_804:
            ss.fill_804(s, st, st.link_address or 1)
        elif k == ss.SEG_805:
            ss.fill_805(s, st, self.serial, st.link_address or 1)
        else:
            ss.fill_end(s)

    def _device_id(self, r, out):
        """FC 0x2B/0x0E: read codes 1-3 stream the basic objects from r.obj
        (0 when past them), 4 one object (Application Protocol 6.21)."""
        ids = self.device_id
        if r.value == 4:
            if r.obj >= len(ids):
                return mb.exception(out, r.fc, mb.EX_ILLEGAL_ADDRESS)
            first = last = r.obj
        else:
            first = r.obj if r.obj < len(ids) else 0
            last = len(ids) - 1
        out[0] = mb.FC_MEI
        out[1] = mb.MEI_DEVICE_ID
        out[2] = r.value
        out[3] = 0x81  # basic identification, stream and individual access
        out[4] = 0  # no more follows
        out[5] = 0
        out[6] = last - first + 1
        i = 7
        for k in range(first, last + 1):
            s = ids[k]
            out[i] = k
            out[i + 1] = len(s)
            for j in range(len(s)):
                out[i + 2 + j] = s[j]
            i += 2 + len(s)
        return i

    # -- writes and sessions -------------------------------------------------------
    def _level(self, port):
        return self.auth.level(port, self.now_ms) if self.auth is not None else 0

    def _refuse(self, port, reason, reg, index=-1, text=None, count=True):
        """Note a refused write in DIAG; the handler's own security refusals
        (count: no session, read-only, a malformed login) are counted by
        auth.refuse too (auth.login counts the logins it refuses itself)."""
        self.reason = reason
        self.reason_reg = reg
        self.reason_id = index + 1
        self.refused += 1
        t = self.reason_text
        if text is None:
            text = REASONS[reason]
        b = text.encode() if isinstance(text, str) else text
        for i in range(DIAG_TEXT_BYTES):
            t[i] = b[i] if i < len(b) else 0
        if count and self.auth is not None:
            self.auth.refuse(port, self._auth_reason(port, reason))

    def _auth_reason(self, port, reason):
        """lib/bms/auth's R_* for one of this handler's DIAG reasons (a
        read-only register: a level no session has)."""
        if reason == R_NO_SESSION:
            return A.R_LEVEL if self._level(port) else A.R_NO_SESSION
        if reason == R_LOGIN:
            return A.R_BAD_LEVEL
        return A.R_LEVEL

    def _write(self, req, r, port):
        a = r.addr
        c = r.count
        if a == LOGIN and (c == 1 or c == LOGIN_REGS):
            return self._login(req, r, port)
        if a == SET_SECRET and c == SET_SECRET_REGS:
            return self._set_secret(req, r, port)
        if a == PROVISION and c == PROVISION_REGS:
            return self._provision(req, r, port)
        if CTL <= a and a + c <= CTL + CTL_REGS:
            return hostctl.write(self, req, r, port)
        if not (PARAM <= a and a + c <= PARAM + PARAM_REGS):
            return mb.EX_ILLEGAL_ADDRESS
        i0 = (a - PARAM) >> 1
        i1 = (a + c - 1 - PARAM) >> 1
        rows = P.rows()
        for i in range(i0, i1 + 1):
            if rows.ACCESS[i] == rows.FACTORY:
                self._refuse(port, R_READ_ONLY, a, i)
                return mb.EX_ILLEGAL_ADDRESS
        if self._level(port) < INSTALLER:
            self._refuse(port, R_NO_SESSION, a)
            return mb.EX_ILLEGAL_FUNCTION
        v = self.params.v
        pairs = []
        for i in range(i0, i1 + 1):
            hi = (v[i] >> 16) & 0xFFFF
            lo = v[i] & 0xFFFF
            for w in range(2):
                reg = PARAM + 2 * i + w
                if a <= reg < a + c:
                    x = r.value if r.fc == mb.FC_WRITE_SINGLE else get_u16(req, r.data + 2 * (reg - a))
                    if w == 0:
                        hi = x
                    else:
                        lo = x
            new = (hi - 0x10000 if hi & 0x8000 else hi) * 0x10000 + lo
            if new < P.row_int(rows.MIN, i) or new > P.row_int(rows.MAX, i):
                self._refuse(port, R_RANGE, a, i, "%s: %d outside %d..%d" % (
                    P.name_of(i), new, P.row_int(rows.MIN, i), P.row_int(rows.MAX, i)), False)
                return mb.EX_ILLEGAL_VALUE
            if new != v[i]:
                pairs.append((i, new))
        rows = None  # commit's set_many and save import their own
        if not pairs:
            return 0
        return self.commit(pairs, port, a)

    def commit(self, pairs, port, reg):
        """Apply parameter (index, value) pairs as a whole (validate()), then
        journal each change and save the parameters; 0 or 03 (DIAG says why)."""
        v = self.params.v
        old = [v[i] for i, _ in pairs]
        try:
            self.params.set_many(pairs)
        except ValueError as e:
            self._refuse(port, R_INVALID, reg, pairs[0][0], str(e), False)
            return mb.EX_ILLEGAL_VALUE
        self.auth.touch(port, self.now_ms)
        self.reason = R_OK
        j = self.journal
        if j is not None:
            for k in range(len(pairs)):
                if old[k] != pairs[k][1]:
                    j.changed(pairs[k][0] + 1, old[k], pairs[k][1], port)
            j.save_params()
        return 0

    def _login(self, req, r, port):
        if r.fc == mb.FC_WRITE_SINGLE or r.count == 1:
            x = r.value if r.fc == mb.FC_WRITE_SINGLE else get_u16(req, r.data)
            if x != 0:
                return mb.EX_ILLEGAL_VALUE
            if self.auth is not None:
                self.auth.logout(port)
            return 0
        level = get_u16(req, r.data)
        if self.auth is None or not 1 <= level <= INSTALLER:
            self._refuse(port, R_LOGIN, LOGIN)
            return mb.EX_ILLEGAL_VALUE
        mac = bytes(req[r.data + 2:r.data + 2 + 32])
        if not self.auth.login(port, level, mac, self.now_ms):
            self._refuse(port, R_LOGIN, LOGIN, count=False)
            return mb.EX_ILLEGAL_VALUE
        self.reason = R_OK
        return 0

    def _set_secret(self, req, r, port):
        """auth.set_secret refuses and counts by itself (no session, level too
        low, bad level or blob); DIAG says which."""
        if self.auth is None:
            self._refuse(port, R_NO_SESSION, SET_SECRET)
            return mb.EX_ILLEGAL_FUNCTION
        level = get_u16(req, r.data)
        blob = bytes(req[r.data + 2:r.data + 2 + 2 * (SET_SECRET_REGS - 1)])
        had = self.auth.has_secret(level)
        if not self.auth.set_secret(port, level, blob, self.now_ms):
            why = self.auth.last_reason
            if why == A.R_NO_SESSION or why == A.R_LEVEL:
                self._refuse(port, R_NO_SESSION, SET_SECRET, text="set secret needs an installer session",
                             count=False)
                return mb.EX_ILLEGAL_FUNCTION
            self._refuse(port, R_INVALID, SET_SECRET, text="set secret refused (auth reason %d)" % why,
                         count=False)
            return mb.EX_ILLEGAL_VALUE
        self.reason = R_OK
        if self.journal is not None:
            self.journal.command(hostctl.J_SET_SECRET, 1 if had else 0, level, port)
        return 0

    def _provision(self, req, r, port):
        """Commissioning: a level's secret in clear, only with physical presence
        (auth.provision refuses and counts the rest)."""
        level = get_u16(req, r.data)
        present = self.present is not None and bool(self.present())
        if self.auth is None or not self.auth.provision(level, bytes(req[r.data + 2:r.data + 34]), present):
            why = self.auth.last_reason if self.auth is not None else A.R_NOT_PRESENT
            if why == A.R_NOT_PRESENT:
                self._refuse(port, R_NOT_PRESENT, PROVISION, count=False)
                return mb.EX_ILLEGAL_FUNCTION
            self._refuse(port, R_INVALID, PROVISION, text="commissioning refused (auth reason %d)" % why,
                         count=False)
            return mb.EX_ILLEGAL_VALUE
        j = self.journal
        if j is not None:
            j.command(hostctl.J_PROVISION, 0, level, port)
        self.reason = R_OK
        return 0
