# Owns the link service (SPEC 7): every LINK_MS it reads the Link IN RS485
# segment (addresses handed down, bms.parallel.Roles), hands the next address
# down Link OUT, and on the shared Link CAN bus (lib/proto/link) sends this
# pack's reports (slaves, every REPORT_MS, staggered by address) or the
# HELLO (master), and reads what the others send. It writes the app.link
# fields of PackState (role, address, hold, the M/S LED is indicate's; the
# parallel failure, which protect shows as the PARALLEL alarm; the forming
# flicker, which indicate plays) and the master's pack table the system stage
# aggregates. It reads no port itself: its tick runs the connector's readers
# (app.router for Link IN and Link OUT, app.canport for CAN) at fixed points,
# and they hand it the link frames (on_link_in, on_link_out, on_frame) and
# the other services theirs; app.compose connects them. Boards without CAN
# (board.can None) carry the
# same messages framed for RS485 (lib/proto/link) on the chain: reports go
# up (a slave writes on Link IN, each pack reads its Link OUT and relays them
# up its Link IN to the master), the master's HELLO/CMD/REQ go down (Link OUT,
# relayed down by every slave). Buffers are allocated once; the pack table's
# rows at their first need (_built: a peer's report, the first cells reply),
# and app.linkpeer, what only packs in parallel run (a slave's reports, the
# master's HELLO), at its first need too (_peer).
from defs.const import const
from defs import codes
from bms import parallel
from bms import params as P
from bms.system import own_row
from proto import link
from app.service import Service, built

LINK_MS = const(100)
_ASK = const(1)  # Link._marks bits, by address: ask the pack for its cells (ask_cells)
_FORGET = const(2)  # the PC tool removed it (remove)


def _views(buf, off):
    """{n: memoryview buf[:off + n]} for the payload lengths n a link frame
    has (proto.link.LENGTHS: 2 and 8; Rs485Parser takes no other), made once:
    the tick writes a frame's first bytes without allocating a slice."""
    mv = memoryview(buf)
    return {n: mv[:off + n] for n in link.LENGTHS}


def _peer():
    """app.linkpeer, what only packs in parallel run (app.service.built
    imports it at the first need; then a look-up)."""
    import app.linkpeer
    return app.linkpeer


class Link(Service):
    name = "link"
    period_ms = LINK_MS

    def __init__(self, state, params, can=None, can_rx=None, rx_in=None, rx_out=None, dip_master=False):
        """can: the CAN port (sending), can_rx its reader (app.canport); rx_in,
        rx_out: the readers of Link IN / Link OUT (app.router), whose ports
        the link writes to. dip_master (SPEC 6): the DIP says master (address
        1); else the parameter link_fixed_address_count, read here (at start,
        as a DIP): 0 automatic (dynamic addressing), 1..32 a fixed address."""
        self.state = state
        self.params = params
        self.can = can
        self.can_rx = can_rx
        self.rx_in = rx_in
        self.rx_out = rx_out
        self.roles = parallel.Roles(dip_master, params.v[P.LINK_FIXED_ADDRESS_COUNT])
        state.link_fixed = self.roles.fixed != 0
        self.table = parallel.Table()  # its rows built at first need (_built)
        self.failed = 0  # frames dropped: the heap could not hold the table's rows (app.service.built)
        self.rx_frames = 0  # good link frames read on Link IN
        self.relayed = 0  # frames passed on up or down the chain
        self._now = 0  # the tick's time, for the frames the readers hand over
        self._want_cells = False  # slave: the master asked for every cell (REQ_CELLS)
        self._want_reports = False
        self._marks = bytearray(parallel.N)  # master: _ASK | _FORGET by address, for the next tick
        self._marked = False  # some mark set since the last tick
        self._out = bytearray(link.RS485_MAX)
        self._addr = bytearray(9)  # the last ADDR frame (7 + 2 bytes), framed again when it changes
        self._pl = bytearray(8)
        self._out_v = _views(self._out, 7)  # by payload length: 7 + n bytes
        self._pl_v = _views(self._pl, 0)
        self._last_addr_ms = -1
        self._last_hello_ms = -1
        self._last_report_ms = -1
        self.sys_mv = 0  # the master's system voltage from HELLO (slaves)
        self.hello_gen = 0
        self.hello_online = 0  # the packs online the master's HELLO says (slaves)
        self.bad_frames = 0
        self.tx_errors = 0
        if rx_in is not None:
            state.link_hold = True  # until the first ticks tell whether a pack is upstream

    # --- one tick ----------------------------------------------------------------
    def tick(self, now_ms):
        st = self.state
        r = self.roles
        self._now = now_ms
        if self.rx_in is not None:
            self.rx_in.poll(now_ms)  # on_link_in; the rest to the router's other subscribers
        if self.rx_out is not None:
            self.rx_out.poll(now_ms)  # on_link_out
        was = r.role
        r.step(now_ms)
        if r.role == parallel.SLAVE and was == parallel.NONE:
            st.link_hold = True  # a joiner: FETs open until the system voltage matches
        if self.can_rx is not None:
            self.can_rx.poll()  # on_frame; the rest to the port's other subscribers
        st.link_role = r.role
        st.link_address = r.address
        if r.role == parallel.MASTER:
            st.link_hold = False
            st.link_orphan = False
            off = self._master(now_ms)
        elif r.role == parallel.SLAVE:
            st.link_orphan = not r.master_reached(now_ms)
            st.link_online = 0
            if st.link_hold and r.hello_ms >= 0 and parallel.elapsed(now_ms, r.hello_ms) < parallel.HELLO_LOST_MS \
                    and self.sys_mv and st.snap.reads:
                d = st.snap.stack_mv - self.sys_mv  # joining: FETs open until the system voltage matches
                if -parallel.JOIN_MV <= d <= parallel.JOIN_MV:
                    st.link_hold = False
            p = built(self, _peer)
            if p is not None:  # else no report, as on a lost frame; the next tick tries again
                p.slave(self, now_ms)
        else:
            # undecided: a pack heard upstream waits for the system voltage; the
            # first BOOT_HOLD_MS every pack waits (an upstream pack speaks every ADDR_MS)
            st.link_hold = self.rx_in is not None and (
                r.up_ms >= 0 or parallel.elapsed(now_ms, r.start_ms) < parallel.BOOT_HOLD_MS)
        if self._last_addr_ms < 0 or parallel.elapsed(now_ms, self._last_addr_ms) >= parallel.ADDR_MS:
            self._last_addr_ms = now_ms
            self._send_addr(now_ms)
        st.link_parallel = r.role == parallel.MASTER and st.link_online > 1
        c = self.table.conflict_at(now_ms)
        st.link_conflict = c
        if r.role == parallel.MASTER:
            st.link_failure = off > 0 or c != 0
        else:
            st.link_failure = (r.role == parallel.SLAVE and st.link_orphan) or c != 0

    def _flags(self):
        st = self.state
        f = 0
        if codes.chg_allowed(st):
            f |= link.F_CHG_OK
        if codes.dsg_allowed(st):
            f |= link.F_DSG_OK
        if st.chg_fet:
            f |= link.F_CHG_FET
        if st.dsg_fet:
            f |= link.F_DSG_FET
        if st.link_hold:
            f |= link.F_HOLD
        return f

    def _master(self, now_ms):
        """The master's tick; returns the packs offline."""
        st = self.state
        t = self.table
        a = link.MASTER
        if st.snap.reads:
            own_row(t, a, st, self.params, self._flags())
            t.last_ms[a] = now_ms
            t.seen[a] = 1
            t.online[a] = 1
        marked = self._marked
        marks = self._marks
        if marked:
            self._marked = False
            for k in range(2, parallel.N):
                if marks[k] & _FORGET:
                    marks[k] &= _ASK
                    if not t.online[k]:  # back since the request: it stays
                        t.forget(k)
        n = t.expire(now_ms, a)
        st.link_online = n
        if marked:
            d = self._pl
            for k in range(2, parallel.N):
                if marks[k]:  # _ASK: the forgets were taken above
                    marks[k] = 0
                    if t.online[k]:
                        link.put_pair(d, link.REQ_CELLS, 0)
                        self._send(link.T_REQ, k, d, 2)
        if self.roles.form(now_ms, n):
            self._flicker(now_ms)
        # a single pack (no slave ever heard) stays silent on the bus
        off = t.offline()
        if off + n > 1 and (self._last_hello_ms < 0 or parallel.elapsed(now_ms, self._last_hello_ms) >= parallel.HELLO_MS):
            p = built(self, _peer)
            if p is not None:  # else the next tick tries again
                self._last_hello_ms = now_ms
                p.hello(self, n, off)
        return off

    def _built(self, series):
        """The table holds every row (a peer's report, a slave's own row at
        its address), and the cells/NTC block when series; False: the heap
        could not hold them (counted in failed), the frame is dropped."""
        t = self.table
        if t.n < parallel.N and built(self, t.build) is None:
            return False
        return not series or t.cells is not None or built(self, t.build_series) is not None

    def remove(self, a):
        """Master: pack a, no longer heard, leaves the table on the next tick
        (the PC tool's "remove a pack from the system", app.hostctl)."""
        if link.valid_address(a) and a != link.MASTER:
            self._marks[a] |= _FORGET
            self._marked = True

    # --- the master's cells of a slave, for the inverter's RS485 server ------------
    def ask_cells(self, a):
        """Master: ask pack a for every cell on the next tick."""
        if link.valid_address(a) and a != link.MASTER:
            self._marks[a] |= _ASK
            self._marked = True

    def _flicker(self, now_ms):
        st = self.state
        st.link_flicker_ms = now_ms  # indicate plays bms.indicate.SEQ_PARALLEL from here
        st.link_flicker_count += 1

    # --- I/O -------------------------------------------------------------------
    def _send(self, typ, dst, d, n):
        can = self.can
        if can is None:
            # RS485 transport: up the chain toward the master, or down from it
            rx = self.rx_out if self.roles.role == parallel.MASTER else self.rx_in
            if rx is not None:
                link.rs485_frame(self._out, typ, self.roles.address, dst, d, n)
                rx.port.write(self._out_v[n])
            return
        try:
            can.send(link.can_id(typ, self.roles.address, dst), self._pl_v[n], can.FLAG_EXT_ID)
        except OSError:
            self.tx_errors += 1

    def _relay(self, port, p):
        """Parser p's frame on to port, framed again in _out: the same bytes
        (its CRC was good), with no view kept of each parser's buffer."""
        link.rs485_frame(self._out, p.typ, p.src, p.dst, p.payload, p.n)
        port.write(self._out_v[p.n])
        self.relayed += 1

    def _send_addr(self, now_ms):
        if self.rx_out is None:
            return
        out = self.rx_out.port
        r = self.roles
        f = link.ADDR_MASTER_REACHED if r.master_reached(now_ms) else 0
        g = r.gen if r.role == parallel.MASTER else self.hello_gen
        nxt = r.address + 1 if link.valid_address(r.address) and r.address < link.MAX_PACKS else 0
        a = self._addr
        if a[0] != link.SOF or a[3] != r.address or a[4] != nxt or a[5] != f or a[6] != g:
            d = self._pl
            link.put_pair(d, f, g)
            link.rs485_frame(a, link.T_ADDR, r.address, nxt, d, 2)
        out.write(a)

    def on_link_in(self, p, now_ms):
        """A good link frame arrived on Link IN (from upstream), in parser p."""
        self.rx_frames += 1
        typ = p.typ
        if typ == link.T_ADDR:
            self.roles.heard_upstream(now_ms, p.dst, p.payload[0])
            return
        r = self.roles
        dst = p.dst
        if r.role != parallel.SLAVE:
            self.bad_frames += 1  # only a slave has a master upstream
            return
        if dst == link.BROADCAST or dst == r.address:
            self._handle(now_ms, typ, p.src, dst, p.payload)
        # down the chain: every frame not for us (addresses along it may have gaps
        # and need not increase; segments are one-way, no loops), none for the master
        if (dst == link.BROADCAST or (link.valid_address(dst) and dst != r.address and dst != link.MASTER)) \
                and self.rx_out is not None:
            self._relay(self.rx_out.port, p)

    def on_link_out(self, p, now_ms):
        """A good link frame arrived on Link OUT (from downstream: reports on
        boards without CAN), in parser p."""
        if p.typ == link.T_ADDR:
            return
        r = self.roles
        if r.role == parallel.MASTER:
            self._handle(now_ms, p.typ, p.src, p.dst, p.payload)
        elif r.role == parallel.SLAVE and p.src == r.address:
            self.table.conflict_heard(now_ms, p.src)  # a pack below uses our address: not passed up
        elif r.role == parallel.SLAVE and p.dst == link.MASTER and not self.state.link_orphan \
                and self.rx_in is not None:
            self._relay(self.rx_in.port, p)  # up the chain

    def on_frame(self, bus, fr):
        """A link frame from the CAN port (29-bit, proto.link.CAN_FILTER)."""
        id_ = fr[0]
        if id_ >> 24 != link.PREFIX:  # the id's fields: proto.link's header
            return
        typ = (id_ >> 16) & 0xFF
        data = fr[1]
        if len(data) != link.length_of(typ):
            self.bad_frames += 1
            return
        self._handle(self._now, typ, id_ & 0xFF, (id_ >> 8) & 0xFF, data)  # src, dst

    def _handle(self, now_ms, typ, src, dst, data):
        """One link message (from CAN or RS485), length already checked."""
        r = self.roles
        t = self.table
        if src == r.address and src != 0:
            t.conflict_heard(now_ms, src)  # another pack uses our address
            return
        if typ == link.T_HELLO:
            if src != link.MASTER or r.role != parallel.SLAVE:
                if r.role == parallel.MASTER:
                    t.conflict_heard(now_ms, link.MASTER)  # another pack acts as master
                return
            r.hello_ms = now_ms
            self.sys_mv = link.get_u16(data, link.HELLO_MV)
            self.hello_online = data[link.HELLO_ONLINE]
            g = data[link.HELLO_GEN]
            if g != self.hello_gen:
                self.hello_gen = g
                if g:
                    self._flicker(now_ms)
        elif r.role == parallel.MASTER and dst == link.MASTER:
            if not link.valid_address(src):
                self.bad_frames += 1
            elif self._built(typ == link.T_CELLS or typ == link.T_TEMPS):
                import bms.linkrows  # the rows' build() imported it: a look-up (no "from": no name tuple built)
                if not bms.linkrows.take(t, now_ms, typ, src, data):
                    self.bad_frames += 1
        elif r.role == parallel.SLAVE and src == link.MASTER and (dst == r.address or dst == link.BROADCAST):
            if typ == link.T_REQ and dst == r.address:
                if data[0] == link.REQ_CELLS:
                    self._want_cells = True
                elif data[0] == link.REQ_REPORTS:
                    self._want_reports = True
            elif typ == link.T_CMD and data[0] == link.CMD_RESET_PROTECT:
                # refused: on a shared bus the source id proves nothing, and this reset
                # clears latched failures, lock-outs and SCP, which need the button
                # (the manuals' "manual intervention") until an authenticated PC-tool
                # session exists
                self.state.link_refused += 1
