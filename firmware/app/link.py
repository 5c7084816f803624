# Owns the link service (SPEC 7): every LINK_MS it reads the Link IN RS485
# segment (addresses handed down, bms.parallel.Roles), hands the next address
# down Link OUT, and on the shared Link CAN bus (lib/proto/link) sends this
# pack's reports (slaves, every REPORT_MS, staggered by address) or the
# HELLO (master), and reads what the others send. It writes the "link:"
# fields of PackState (role, address, hold, the M/S LED is indicate's) and the
# master's pack table the system stage aggregates. It is the one reader of
# the CAN port: frames that are not link frames go to the services in
# `listeners` (on_frame("can", frame)); bytes on Link IN that are not link
# frames are lost (an RS485 inverter protocol on the master's Link IN needs
# a hand-over here: noticed, not built). Buffers are allocated once.
from bms import indicate, codes, parallel
from bms.system import own_row
from proto import link
from app.service import Service

LINK_MS = 100


def _uart(port):
    if port is not None and hasattr(port, "any") and hasattr(port, "read") and hasattr(port, "write"):
        return port
    return None


def _trunc10(v):
    return v // 10 if v >= 0 else -((-v) // 10)


class Link(Service):
    name = "link"
    period_ms = LINK_MS

    def __init__(self, state, params, board):
        self.state = state
        self.params = params
        self.can = getattr(board, "can", None)
        # the RS485 ends in machine.UART shape (write/read/any: the bench); a board
        # whose ends are drivers.rs485 (frame API) gets no addressing over them yet
        self.link_in = _uart(getattr(board, "link_in", None))
        self.link_out = _uart(getattr(board, "link_out", None))
        # DIP variant (SPEC 6): board.link_dip_master True = the DIP says master
        # (address 1), False/absent = automatic (dynamic addressing)
        self.roles = parallel.Roles(bool(getattr(board, "link_dip_master", False)))
        self.table = parallel.Table()
        self.forming = parallel.Forming()
        self.listeners = []
        self._p = link.Rs485Parser()
        self._out = bytearray(link.RS485_MAX)
        self._pl = bytearray(8)
        self._frame = [0, memoryview(bytearray(8)), 0, 0]
        self._last_addr_ms = -1
        self._last_hello_ms = -1
        self._last_report_ms = -1
        self._gen_seen = 0
        self.sys_mv = 0  # the master's system voltage from HELLO (slaves)
        self.hello_gen = 0
        self.bad_frames = 0
        self.tx_errors = 0
        if self.link_in is not None:
            state.link_hold = True  # until the first ticks tell whether a pack is upstream

    # --- one tick ----------------------------------------------------------------
    def tick(self, now_ms):
        st = self.state
        r = self.roles
        self._read_rs485(now_ms)
        was = r.role
        r.step(now_ms)
        if r.role == parallel.SLAVE and was == parallel.NONE:
            st.link_hold = True  # a joiner: FETs open until the system voltage matches
        self._read_can(now_ms)
        st.link_role = r.role
        st.link_address = r.address
        if r.role == parallel.MASTER:
            st.link_hold = False
            st.link_orphan = False
            self._master(now_ms)
        elif r.role == parallel.SLAVE:
            st.link_orphan = not r.master_reached(now_ms)
            self._slave(now_ms)
        else:
            # undecided: a pack heard upstream waits for the system voltage; the
            # first BOOT_HOLD_MS every pack waits (an upstream pack speaks every ADDR_MS)
            st.link_hold = self.link_in is not None and (
                r.up_ms >= 0 or parallel.elapsed(now_ms, r.start_ms) < parallel.BOOT_HOLD_MS)
        if self._last_addr_ms < 0 or parallel.elapsed(now_ms, self._last_addr_ms) >= parallel.ADDR_MS:
            self._last_addr_ms = now_ms
            self._send_addr(now_ms)
        st.link_parallel = r.role == parallel.MASTER and st.link_online > 1

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
        st = self.state
        t = self.table
        a = link.MASTER
        if st.snap.reads:
            own_row(t, a, st, self.params, self._flags())
            t.last_ms[a] = now_ms
            t.seen[a] = 1
            t.online[a] = 1
        n = t.expire(now_ms, a)
        st.link_online = n
        if self.forming.step(now_ms, n):
            self._flicker(now_ms)
        # a single pack (no slave ever heard) stays silent on the bus
        if t.offline() + n > 1 and (self._last_hello_ms < 0 or parallel.elapsed(now_ms, self._last_hello_ms) >= parallel.HELLO_MS):
            self._last_hello_ms = now_ms
            d = self._pl
            d[0] = self.forming.gen
            d[1] = n
            link.put_u16(d, 2, self._system_mv())
            d[4] = 1 if t.offline() else 0
            d[5] = d[6] = d[7] = 0
            self._send_can(link.T_HELLO, link.BROADCAST, d, 8)

    def _system_mv(self):
        t = self.table
        s = n = 0
        for a in range(1, parallel.N):
            if t.online[a] and not (t.flags[a] & link.F_HOLD):
                s += t.voltage_mv[a]
                n += 1
        return s // n if n else self.state.snap.stack_mv

    def _slave(self, now_ms):
        st = self.state
        r = self.roles
        st.link_online = 0
        heard = r.hello_ms >= 0 and parallel.elapsed(now_ms, r.hello_ms) < parallel.HELLO_LOST_MS
        if st.link_hold:
            if heard and self.sys_mv and st.snap.reads:
                d = st.snap.stack_mv - self.sys_mv
                if -parallel.JOIN_MV <= d <= parallel.JOIN_MV:
                    st.link_hold = False
        if st.link_orphan:
            return  # no master upstream: no second system
        # staggered reports: address a reports in the 100 ms slot a % 10 of each second
        slot = (now_ms // LINK_MS) % (parallel.REPORT_MS // LINK_MS)
        if slot != r.address % (parallel.REPORT_MS // LINK_MS):
            return
        if self._last_report_ms >= 0 and parallel.elapsed(now_ms, self._last_report_ms) < parallel.REPORT_MS // 2:
            return
        self._last_report_ms = now_ms
        self._report()

    def _report(self):
        st = self.state
        t = self.table
        a = self.roles.address
        own_row(t, a, st, self.params, self._flags())
        d = self._pl
        link.put_u16(d, 0, t.voltage_mv[a])
        link.put_i16(d, 2, _trunc10(t.current_ma[a]))
        d[4] = t.soc_pct[a]
        d[5] = t.soh_pct[a]
        d[6] = t.flags[a]
        link.put_u8(d, 7, t.cap_ah[a])
        self._send_can(link.T_STATUS, link.MASTER, d, 8)
        link.put_u16(d, 0, t.cvl_mv[a])
        link.put_u16(d, 2, t.ccl_ma[a] // 10)
        link.put_u16(d, 4, t.dcl_ma[a] // 10)
        link.put_u16(d, 6, t.dvl_mv[a])
        self._send_can(link.T_LIMITS, link.MASTER, d, 8)
        link.put_u16(d, 0, t.min_cell_mv[a])
        link.put_u16(d, 2, t.max_cell_mv[a])
        link.put_i16(d, 4, t.min_temp_dc[a])
        link.put_i16(d, 6, t.max_temp_dc[a])
        self._send_can(link.T_EXTREMES, link.MASTER, d, 8)
        d[0] = t.idx_cell[a]
        d[1] = t.idx_temp[a]
        link.put_u16(d, 2, t.alarms[a])
        link.put_u16(d, 4, t.protections[a])
        link.put_u16(d, 6, t.faults[a])
        self._send_can(link.T_INFO, link.MASTER, d, 8)

    def _flicker(self, now_ms):
        st = self.state
        st.seq = indicate.SEQ_PARALLEL
        st.seq_start_ms = now_ms

    # --- I/O -------------------------------------------------------------------
    def _send_can(self, typ, dst, d, n):
        can = self.can
        if can is None:
            return
        try:
            can.send(link.can_id(typ, self.roles.address, dst), memoryview(d)[:n], can.FLAG_EXT_ID)
        except OSError:
            self.tx_errors += 1

    def _send_addr(self, now_ms):
        out = self.link_out
        if out is None:
            return
        r = self.roles
        d = self._pl
        d[0] = link.ADDR_MASTER_REACHED if r.master_reached(now_ms) else 0
        d[1] = self.forming.gen if r.role == parallel.MASTER else self.hello_gen
        nxt = r.address + 1 if link.valid_address(r.address) and r.address < link.MAX_PACKS else 0
        n = link.rs485_frame(self._out, link.T_ADDR, r.address, nxt, d, 2)
        out.write(memoryview(self._out)[:n])

    def _read_rs485(self, now_ms):
        port = self.link_in
        if port is None:
            return
        p = self._p
        while port.any():
            data = port.read()
            if not data:
                break
            for b in data:
                if p.feed(b) and p.typ == link.T_ADDR:
                    self.roles.heard_upstream(now_ms, p.dst, p.payload[0])

    def _read_can(self, now_ms):
        can = self.can
        if can is None:
            return
        fr = self._frame
        r = self.roles
        t = self.table
        while can.any():
            can.recv(fr)
            id_ = fr[0]
            typ = link.id_type(id_) if fr[2] & can.FLAG_EXT_ID else -1
            if typ < 0:
                for s in self.listeners:
                    s.on_frame("can", fr)
                continue
            src = link.id_src(id_)
            dst = link.id_dst(id_)
            data = fr[1]
            if len(data) != link.length_of(typ):
                self.bad_frames += 1
                continue
            if src == r.address and src != 0:
                t.conflicts += 1  # another pack uses our address
                continue
            if typ == link.T_HELLO:
                if src != link.MASTER or r.role != parallel.SLAVE:
                    if r.role == parallel.MASTER:
                        t.conflicts += 1
                    continue
                r.hello_ms = now_ms
                self.sys_mv = link.get_u16(data, 2)
                g = data[0]
                if g != self.hello_gen:
                    self.hello_gen = g
                    if g:
                        self._flicker(now_ms)
            elif r.role == parallel.MASTER and dst == link.MASTER:
                if not t.take(now_ms, typ, src, data):
                    self.bad_frames += 1
