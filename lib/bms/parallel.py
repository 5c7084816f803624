# Owns the rules of parallel packs (SPEC 7, `000` 3.3.3.2 / 5.3 / 5.6, `004`):
# roles, dynamic addressing, joining, and the master's table of the packs it
# hears. Pure: the link service (app.link) feeds it what arrived and the time.
#  - Role: a pack that hears a pack on its Link IN segment is a slave and
#    takes the address that pack hands it (upstream address + 1); a pack that
#    hears nothing there for DISCOVER_MS after power-on is the master,
#    address 1 (its Link IN faces the inverter). A master that later hears a
#    pack on Link IN (a pack powered on upstream of it) hands over: it becomes
#    that pack's slave. DIP variant (board.link_dip_master True): master at
#    once, never hands over; 0 = automatic.
#  - Fixed address (parameter link_fixed_address_count, SPEC 6's address DIP;
#    read at start): 1 = the DIP master's path; a >= 2 = a slave at address a
#    at once, whatever upstream hands it; it hands a + 1 down like any pack, so
#    addresses along the chain may have gaps and need not increase. A fixed
#    slave with no master upstream is an orphan (below) from the start.
#  - A slave whose upstream goes silent (cable cut, pack off upstream) keeps
#    its address and role but knows it reaches no master (orphan): it sends no
#    reports, and passes "no master" down, so a cut-off tail never forms a
#    second system (its packs keep protecting themselves).
#  - Joining: a slave keeps its FETs open (hold) until the master's system
#    voltage is within JOIN_MV (1 V, `004`) of its own stack voltage.
#  - Address conflict: frames from our own address that we did not send (two
#    packs set to one fixed address, a second master): the table keeps the
#    address and the time (conflict_heard); it counts as a parallel failure
#    for OFFLINE_MS after the last such frame.
#  - The master counts slaves online (a report within OFFLINE_MS); a slave
#    heard before and now silent is offline (parallel failure). When the
#    online count grows and then stays put for STABLE_MS the system is
#    (re)formed: the generation number goes up and every pack flickers RUN
#    (Roles.form: the master's role holds its system's generation).
from defs.const import const
from array import array
from proto import link

NONE = const(0)
SINGLE = const(1)
MASTER = const(2)
SLAVE = const(3)

DISCOVER_MS = const(2000)
UPSTREAM_LOST_MS = const(3000)
HELLO_LOST_MS = const(3000)
OFFLINE_MS = const(3500)
STABLE_MS = const(3000)
REPORT_MS = const(1000)
ADDR_MS = const(100)  # RS485: 9 bytes every 100 ms, 9 % of 9600 baud
BOOT_HOLD_MS = const(250)
HELLO_MS = const(500)
JOIN_MV = const(1000)
N = link.MAX_PACKS + 1  # table rows by address (row 0 unused)
MAX_CELLS = const(16)
MAX_TEMPS = const(8)
CELLS_MAX_AGE_MS = const(10000)  # cells older than this are not told to the inverter


def elapsed(now, since):
    # ticks are masked to 30 bits (defs.ticks)
    return (now - since) & 0x3FFFFFFF


class Roles:
    def __init__(self, dip_master=False, fixed=0):
        """fixed: the fixed address (0 automatic, 1 master, 2..MAX_PACKS a
        slave; anything else is automatic); dip_master wins over it."""
        self.dip_master = dip_master
        self.fixed = link.MASTER if dip_master else (fixed if link.valid_address(fixed) else 0)
        self.role = NONE
        self.address = 0
        self.start_ms = -1
        self.up_ms = -1  # last time a pack was heard on Link IN
        self.up_dst = 0  # the address it handed us
        self.up_flags = 0
        self.hello_ms = -1  # last HELLO from the master (slaves)
        self.changes = 0  # role/address changes (tests: stability)
        # the master's formed system (form())
        self.gen = 0  # its generation
        self.formed = 1  # packs in it (1 = the master alone)
        self.form_count = 1  # packs online at the last form()
        self.form_since_ms = 0  # since when
        self.formed_ms = -1

    def heard_upstream(self, now_ms, dst, flags):
        self.up_ms = now_ms
        self.up_dst = dst
        self.up_flags = flags

    def upstream(self, now_ms):
        return self.up_ms >= 0 and elapsed(now_ms, self.up_ms) < UPSTREAM_LOST_MS

    def master_reached(self, now_ms):
        """A master is reachable: we are it, or the chain upstream says so."""
        if self.role == MASTER:
            return True
        return self.role == SLAVE and self.upstream(now_ms) and (self.up_flags & link.ADDR_MASTER_REACHED) != 0

    def _set(self, role, address):
        if role != self.role or address != self.address:
            self.role = role
            self.address = address
            self.changes += 1

    def step(self, now_ms):
        if self.up_ms < 0 and self.role != NONE:
            return  # decided, and no pack was ever upstream: nothing below can change it (a fixed role neither)
        if self.start_ms < 0:
            self.start_ms = now_ms
        if self.fixed == link.MASTER:
            self._set(MASTER, link.MASTER)
            return
        if self.fixed:
            self._set(SLAVE, self.fixed)
            return
        up = self.upstream(now_ms)
        dst = self.up_dst
        if up and link.valid_address(dst) and dst != link.MASTER:
            self._set(SLAVE, dst)  # also a master handing over, or a new address
        elif self.role == NONE and not up and self.up_ms < 0 and elapsed(now_ms, self.start_ms) >= DISCOVER_MS:
            self._set(MASTER, link.MASTER)
        elif self.role == NONE and self.up_ms >= 0 and not up and elapsed(now_ms, self.start_ms) >= DISCOVER_MS + UPSTREAM_LOST_MS:
            # heard a pack upstream once, never got an address: it is gone; nothing upstream
            self._set(MASTER, link.MASTER)

    def form(self, now_ms, count):
        """The master's formation rule (count: packs online): the generation
        goes up when the count has grown above the last formed count and
        stayed put for STABLE_MS; True then."""
        if count != self.form_count:
            self.form_count = count
            self.form_since_ms = now_ms
        if count < self.formed:
            self.formed = count  # a pack lost: no new flicker, the count says it
        elif count > self.formed and elapsed(now_ms, self.form_since_ms) >= STABLE_MS:
            self.formed = count
            self.gen = (self.gen % 255) + 1
            self.formed_ms = now_ms
            return True
        return False


class Table:
    """The master's view of every pack by address (own row included),
    filled from the reports (bms.linkrows.take); no allocation once built.
    Built at first need (issue 12: a pack alone needs none of the other
    rows): at boot, seen and
    online for every address, every other field for rows 0..1 only (row 1,
    the master's own, is all a pack alone reads); build() gives every field
    N rows (the master's first report from a peer, a slave's first own row
    at its address), build_series() the cells/NTC block (the first cells
    reply). app.link builds them through app.service.built. Each field is a
    memoryview of n rows into one of four buffers, one per item type (an
    array per field would cost its own object and block-rounded buffer as
    well). A field a report carries as u16/i16 is 16-bit (half the RAM); its
    writers (bms.linkrows.take_*, bms.system.own_row) give it only values in
    range (CPython raises, MicroPython would wrap)."""

    def __init__(self):
        b = memoryview(bytearray(2 * N))
        self.seen = b[:N]  # a report ever arrived
        self.online = b[N:]
        self._rows(2)  # self.n: the rows the other fields hold, 2 until build(), then N
        # every cell and NTC of a pack, on request (link.REQ_CELLS): row a at a * MAX_*
        self.cells = None
        self.temps = None
        self.conflicts = 0  # frames from our own address we did not send
        self.conflict_addr = 0  # the address of the last one, while it counts (conflict_at)
        self.conflict_ms = 0
        self.heard = 0  # rows bms.linkrows.take first marked seen (app.link marks the own row)

    def _rows(self, n):
        """Every field but seen, online, cells and temps with n rows, all new
        (a MemoryError part way leaves self.n as it was: every field holds
        at least that many rows, and the next build starts over)."""
        z = memoryview(bytes(9 * n))  # zero items the arrays are made of (no buffer-sized temporary)
        b = memoryview(bytearray(7 * n))
        w = memoryview(array("i", z[:7 * n]))
        h = memoryview(array("H", z))
        s = memoryview(array("h", z[:2 * n]))
        self.soc_pct = b[:n]
        self.soh_pct = b[n:2 * n]
        self.flags = b[2 * n:3 * n]
        self.idx_cell = b[3 * n:4 * n]  # min << 4 | max
        self.idx_temp = b[4 * n:5 * n]
        self.n_cells = b[5 * n:6 * n]
        self.n_temps = b[6 * n:]
        self.last_ms = w[:n]
        self.voltage_mv = w[n:2 * n]
        self.current_ma = w[2 * n:3 * n]
        self.ccl_ma = w[3 * n:4 * n]
        self.dcl_ma = w[4 * n:5 * n]
        self.full_mah = w[5 * n:6 * n]  # learned full charge capacity (else rated)
        self.cells_ms = w[6 * n:]  # when the last complete set of cells arrived, -1 none
        for a in range(n):
            self.cells_ms[a] = -1
        self.cap_ah = h[:n]
        self.cvl_mv = h[n:2 * n]
        self.dvl_mv = h[2 * n:3 * n]
        self.min_cell_mv = h[3 * n:4 * n]
        self.max_cell_mv = h[4 * n:5 * n]
        self.alarms = h[5 * n:6 * n]
        self.protections = h[6 * n:7 * n]
        self.faults = h[7 * n:8 * n]
        self.cycles = h[8 * n:]
        self.min_temp_dc = s[:n]
        self.max_temp_dc = s[n:]
        self.n = n

    def build(self):
        """Every row (idempotent), and bms.linkrows, which stores the
        reports in them and encodes a slave's own (take, put_*); returns
        the table (app.service.built). Row 1 starts empty too: the master
        builds at a peer's report, which its tick reads before it writes its
        own row (app.link; every tick once the pack has read its AFE, and
        never before)."""
        import bms.linkrows  # noqa: F401 (a failed import leaves sys.modules: the next build tries again)
        if self.n < N:
            self._rows(N)
        return self

    def build_series(self):
        """The cells/NTC block (idempotent); returns the table."""
        if self.cells is None:
            z = memoryview(bytes(MAX_CELLS * N))  # zero items, as in _rows
            self.cells = array("H", z)
            self.temps = array("h", z[:MAX_TEMPS * N])
        return self

    def forget(self, a):
        """Row a leaves the table (the PC tool removed a pack that is gone): no
        longer offline; heard again, it joins as a new pack."""
        if self.seen[a]:
            self.heard -= 1
        self.seen[a] = 0
        self.online[a] = 0
        if a < self.n:
            self.cells_ms[a] = -1

    def conflict_heard(self, now_ms, a):
        """A frame from address a (ours) that we did not send."""
        self.conflicts += 1
        self.conflict_addr = a
        self.conflict_ms = now_ms

    def conflict_at(self, now_ms):
        """The address in conflict (a frame from it within OFFLINE_MS), else 0;
        an older conflict is forgotten here (the link service's tick)."""
        if self.conflict_addr and elapsed(now_ms, self.conflict_ms) >= OFFLINE_MS:
            self.conflict_addr = 0
        return self.conflict_addr

    def cells_fresh(self, now_ms, a):
        """Row a holds a complete set of cells younger than CELLS_MAX_AGE_MS."""
        return link.valid_address(a) and a < self.n and self.cells_ms[a] >= 0 and \
            elapsed(now_ms, self.cells_ms[a]) < CELLS_MAX_AGE_MS

    def expire(self, now_ms, own):
        """Mark silent packs offline; returns the online count."""
        if not self.heard:
            return self.online[own]  # no other row was ever online
        n = 0
        for a in range(1, N):
            if self.online[a] and a != own and elapsed(now_ms, self.last_ms[a]) >= OFFLINE_MS:
                self.online[a] = 0
            n += self.online[a]
        return n

    def nth_online(self, k):
        """The address of the k-th pack online (1 = the lowest address), 0 for
        none: pack numbers for readers that count packs 1..n (the inverter's
        RS485 addresses), whatever gaps the addresses have."""
        for a in range(1, N):
            if self.online[a]:
                k -= 1
                if k == 0:
                    return a
        return 0

    def offline(self):
        if not self.heard:
            return 0  # the own row is never offline
        n = 0
        for a in range(1, N):
            if self.seen[a] and not self.online[a]:
                n += 1
        return n
