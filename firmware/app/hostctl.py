# Owns the host handler's command registers (app.host; issue 13) and the sink
# its writes go to. CTL block, register CTL + H_* (H_* is also the event code of
# a store.eventlog.KIND_HOST record):
#   H_CLOCK (2)      Unix s, u32 high word first (0 while not set); write: set it
#   H_CLOCK_SET      1 when the clock is set (read-only)
#   H_FETS           FETs the PC tool holds open: bit 0 charge, bit 1 discharge;
#                    0 releases (the protections still decide; nothing closes a FET)
#   H_BUZZER         buzzer_enable (0/1): a parameter written at USER level
#   H_SLEEP          write 1 sleep (bms.sleep.BY_COMMAND), 2 wake; reads 1 asleep
#   H_RESET          write 1: a protection reset, the button's path (app.protect);
#                    reads the resets asked so far (low 16 bits)
#   H_DEFAULTS       write 1: parameters back to defaults (persist.restore_defaults)
#   H_HISTORY_CLEAR  write 1: the event history cleared (persist.clear_history)
#   H_I_OFFSET (2)   current offset, mA, int32 (bms.soc.SET_*: the estimate stage
#   H_FCC (2)        full-charge capacity, mAh   applies each on its next tick;
#   H_SOC (2)        SOC, ppm                    another one before that: 06)
#   H_CYCLES (2)     cycle count
#   H_V_GAIN (2)     voltage gain, ppm (parameter cal_v_gain_ppm: app.acquire applies it)
#   H_I_GAIN (2)     current gain, ppm (parameter cal_i_gain_ppm)
#   H_REMOVE         master: write a link address 2..32: the pack the master no
#                    longer hears leaves its table (app.link.Link.remove), so its
#                    "offline" (the parallel failure) ends; reads the packs offline
#   H_RESTART        write 1: the MCU restarts once the reply is out (app.host tick)
# A command is one write covering exactly its registers (else 02); it needs an
# installer session (H_BUZZER: a user one), else 01, counted; a value outside its
# range 03, DIAG says why. Every accepted command is journalled: the register's
# value before (H_RESET: the fault bits; H_REMOVE: 1 if the pack was in the
# table) and the value written; the gains as parameter writes. A secret set
# (app.host) is journalled as code J_SET_SECRET: before 1 if that level had a
# secret, after the level (never the secret).
from bms import params as P
from bms import soc
from bms.parallel import MASTER
from proto.link import MAX_PACKS
from proto import modbus as mb
from proto.wire import put_u16, get_u16
from store.eventlog import KIND_PARAM, KIND_HOST

from defs.const import const

USER = const(1)  # auth levels (IFACE.md)
INSTALLER = const(2)
EX_BUSY = const(0x06)  # server device busy (Application Protocol 7)

# DIAG reason codes (also auth.refuse's reason code)
R_OK = const(0)
R_NO_SESSION = const(1)
R_READ_ONLY = const(2)
R_RANGE = const(3)
R_INVALID = const(4)
R_LOGIN = const(5)
R_NOT_PRESENT = const(6)
R_UPDATE = const(7)  # app.hostupd: the update session refused (the text says why)
REASONS = ("ok", "no installer session", "read-only", "out of range", "refused by validate",
           "login failed", "commissioning needs the jumper at boot and the button held", "update refused")

CTL = const(300)
H_CLOCK = const(0)
H_CLOCK_SET = const(2)
H_FETS = const(3)
H_BUZZER = const(4)
H_SLEEP = const(5)
H_RESET = const(6)
H_DEFAULTS = const(7)
H_HISTORY_CLEAR = const(8)
H_I_OFFSET = const(9)
H_FCC = const(11)
H_SOC = const(13)
H_CYCLES = const(15)
H_V_GAIN = const(17)
H_I_GAIN = const(19)
H_REMOVE = const(21)
H_RESTART = const(22)
CTL_REGS = const(23)
J_SET_SECRET = const(200)  # the journal code of a secret set (no control offset has it)
J_PROVISION = const(201)  # the journal code of a commissioning (app.host PROVISION; value: the level)
CLOCK_MIN_S = const(946684800)  # 2000-01-01; the event log keeps t_s and values as int32
CLOCK_MAX_S = 0x7FFFFFFF
MAX_CYCLES = const(100000)


class Journal:
    """The host handler's sink over app.persist: each accepted write into the
    event history (value before, value after), parameters into the store, and
    the persist service's clock, history and defaults."""

    def __init__(self, persist):
        self.p = persist
        self.history = persist.store.log  # store.eventlog.EventLog
        self._base = None  # the clock's base_s split into small ints (no big int per read)
        self._hi = 0
        self._lo = 0

    def changed(self, pid, old, new, port):
        self.p.log(pid, old, False, KIND_PARAM)
        self.p.log(pid, new, True, KIND_PARAM)

    def command(self, code, old, new, port):
        self.p.log(code, old, False, KIND_HOST)
        self.p.log(code, new, True, KIND_HOST)

    def save_params(self):
        self.p.store.params.save(self.p.app.params)

    def set_clock(self, unix_s):
        """To the second the persist service last counted (its tick: each second)."""
        self.p.set_clock(unix_s)

    def clear_history(self):
        self.p.clear_history()

    def restore_defaults(self):
        self.p.restore_defaults()

    def unix_s(self):
        """The Unix time now, -1 while the clock is not set (may allocate)."""
        c = self.p.clock
        return c.base_s + c.up_s if c.base_s >= 0 else -1

    def clock_set(self):
        return self.p.clock.base_s >= 0

    def clock_word(self, k):
        """Word k (0 high, 1 low) of the Unix time now, 0 while not set."""
        c = self.p.clock
        if c.base_s < 0:
            return 0
        if c.base_s != self._base:  # once per clock setting
            self._base = c.base_s
            self._hi = c.base_s >> 16
            self._lo = c.base_s & 0xFFFF
        lo = self._lo + c.up_s
        return (self._hi + (lo >> 16)) & 0xFFFF if k == 0 else lo & 0xFFFF


def _wide(k):
    return k == H_CLOCK or (H_I_OFFSET <= k < H_REMOVE and (k - H_I_OFFSET) & 1 == 0)


def _half(x, k, first):
    """Register k of a 2-register value x starting at first: high word first."""
    return ((x >> 16) if k == first else x) & 0xFFFF


def _value(h, k):
    """What command register k reads (an int; a 2-register value whole)."""
    st = h.st
    if k == H_FETS:
        return st.host_fet_off
    if k == H_BUZZER:
        return h.params.v[P.BUZZER_ENABLE]
    if k == H_SLEEP:
        return 1 if st.sleep_reason else 0
    if k == H_RESET:
        return st.protect_reset_req & 0xFFFF
    if k == H_I_OFFSET:
        return st.i_offset_ma
    if k == H_FCC:
        return st.fcc_mah if st.fcc_mah > 0 else h.params.v[P.RATED_CAPACITY_MAH]
    if k == H_SOC:
        return st.soc_ppm
    if k == H_CYCLES:
        return st.cycles
    if k == H_V_GAIN or k == H_I_GAIN:
        return h.params.v[_gain(k)]
    if k == H_REMOVE:
        return h.link.table.offline() if h.link is not None and st.link_role == MASTER else 0
    return 0


def read(h, a, end, out, o):
    """Registers a .. end - 1 of the CTL block into out[o:]."""
    j = h.journal
    for reg in range(a, end):
        k = reg - CTL
        if k < H_CLOCK_SET:
            w = j.clock_word(k) if j is not None else 0
        elif k == H_CLOCK_SET:
            w = 1 if j is not None and j.clock_set() else 0
        elif H_I_OFFSET <= k < H_REMOVE:
            first = k - ((k - H_I_OFFSET) & 1)
            w = _half(_value(h, first), k, first)
        else:
            w = _value(h, k)
        put_u16(out, o, w)
        o += 2
    return 0


def _range(h, k):
    """(lowest, highest) a write of command k may carry."""
    v = h.params.v
    if k == H_CLOCK:
        return CLOCK_MIN_S, CLOCK_MAX_S
    if k == H_FETS:
        return 0, 3
    if k == H_BUZZER:
        return 0, 1
    if k == H_SLEEP:
        return 1, 2
    if k == H_I_OFFSET:  # the estimator itself learns offsets inside the dead band only
        return -v[P.CURRENT_DEADBAND_MA], v[P.CURRENT_DEADBAND_MA]
    if k == H_FCC:  # the span a learned capacity is kept in (bms.soc.calibrate)
        r = v[P.RATED_CAPACITY_MAH]
        return r // 2, r + r // 10
    if k == H_SOC:
        return 0, 1000000
    if k == H_CYCLES:
        return 0, MAX_CYCLES
    if k == H_V_GAIN or k == H_I_GAIN:
        i = _gain(k)
        rows = P.rows()
        return P.row_int(rows.MIN, i), P.row_int(rows.MAX, i)
    if k == H_REMOVE:
        return 2, MAX_PACKS
    return 1, 1  # the one-shot commands


_NAMES = {H_CLOCK: "clock", H_FETS: "fets", H_BUZZER: "buzzer", H_SLEEP: "sleep", H_RESET: "reset",
          H_DEFAULTS: "defaults", H_HISTORY_CLEAR: "history clear", H_I_OFFSET: "current offset",
          H_FCC: "capacity", H_SOC: "soc", H_CYCLES: "cycles", H_V_GAIN: "voltage gain",
          H_I_GAIN: "current gain", H_REMOVE: "remove", H_RESTART: "restart"}
_CAL = {H_I_OFFSET: soc.SET_I_OFFSET, H_FCC: soc.SET_FCC, H_SOC: soc.SET_SOC, H_CYCLES: soc.SET_CYCLES}


def _gain(k):
    """The parameter row of a gain command (H_V_GAIN, H_I_GAIN)."""
    return P.CAL_V_GAIN_PPM if k == H_V_GAIN else P.CAL_I_GAIN_PPM


def _remove_refusal(h, a):
    """Why pack a cannot be removed now (None: it can)."""
    if h.link is None or h.st.link_role != MASTER:
        return "remove: this pack is not the master"
    t = h.link.table
    if t.online[a]:
        return "remove: pack %d is online (unplug it or switch it off first)" % a
    if not t.seen[a]:
        return "remove: pack %d is not in the system" % a
    return None


def write(h, req, r, port):
    """One command write (FC06 / FC16 inside the CTL block); 0 or an exception code."""
    k = r.addr - CTL
    reg = r.addr
    wide = _wide(k)
    if k not in _NAMES or r.count != (2 if wide else 1):
        if k == H_CLOCK_SET and r.count == 1:
            h._refuse(port, R_READ_ONLY, reg)
        return mb.EX_ILLEGAL_ADDRESS
    need = USER if k == H_BUZZER else INSTALLER
    if h._level(port) < need:
        h._refuse(port, R_NO_SESSION, reg, text="%s needs auth level %d" % (_NAMES[k], need))
        return mb.EX_ILLEGAL_FUNCTION
    j = h.journal
    if j is None and (k == H_CLOCK or k == H_DEFAULTS or k == H_HISTORY_CLEAR):
        return mb.EX_ILLEGAL_ADDRESS  # no store behind this handler
    if k == H_RESTART and h.restart is None:
        return mb.EX_ILLEGAL_ADDRESS  # nothing here can restart the MCU
    if r.fc == mb.FC_WRITE_SINGLE:
        x = r.value
    elif wide:
        x = (get_u16(req, r.data) << 16) | get_u16(req, r.data + 2)
        if k != H_CLOCK and x & 0x80000000:
            x -= 0x100000000
    else:
        x = get_u16(req, r.data)
    lo, hi = _range(h, k)
    if x < lo or x > hi:
        h._refuse(port, R_RANGE, reg, text="%s: %d outside %d..%d" % (_NAMES[k], x, lo, hi), count=False)
        return mb.EX_ILLEGAL_VALUE
    if k == H_REMOVE:
        why = _remove_refusal(h, x)
        if why is not None:
            h._refuse(port, R_RANGE, reg, text=why, count=False)
            return mb.EX_ILLEGAL_VALUE
    st = h.st
    old = _value(h, k)
    if k in _CAL:
        if st.cal_req != st.cal_done:
            return EX_BUSY  # the estimate stage has not taken the last one yet
        st.cal_what = _CAL[k]
        st.cal_value = x
        st.cal_req += 1
    elif k == H_BUZZER:
        return h.commit(((P.BUZZER_ENABLE, x),), port, reg)  # a parameter: journalled as one
    elif k == H_V_GAIN or k == H_I_GAIN:
        return h.commit(((_gain(k), x),), port, reg)
    elif k == H_CLOCK:
        old = j.unix_s()
        j.set_clock(x)
    elif k == H_FETS:
        st.host_fet_off = x
    elif k == H_SLEEP:
        st.host_sleep_cmd = x
        st.host_sleep_req += 1
    elif k == H_RESET:
        old = st.faults
        st.protect_reset_req += 1
    elif k == H_DEFAULTS:
        j.restore_defaults()
    elif k == H_HISTORY_CLEAR:
        j.clear_history()
    elif k == H_REMOVE:
        old = 1
        h.link.remove(x)
    else:
        h.restart_ms = h.now_ms  # app.host's tick restarts once the reply is out
    h.auth.touch(port, h.now_ms)
    h.reason = R_OK
    if j is not None:
        j.command(k, old, x, port)
    return 0
