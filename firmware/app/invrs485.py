# Owns the inverter's Pylontech RS485 server on Link IN (SPEC 8, issue 7;
# lib/proto/pylon_rs485): the framer, the parsed request, the addressing
# (this pack, or the others from the master's table) and the reply, built
# in one preallocated buffer. app.inverter builds it at the first ASCII
# bytes on Link IN (issue 12: a pack whose inverter speaks CAN never holds
# it) and hands it every chunk from then on; presence, errors and the bus
# choice stay the inverter's.
from defs.const import const
from array import array
from bms import params as P
from bms import parallel
from bms.system import full_mah
from defs import codes
from proto import link, pylon_can as pc
from proto import pylon_rs485 as pr
from proto.wire import div, put_u16, put_i16
from app.inverter import BUS_CAN, BUS_RS485, SERIAL, SW_VERSION_MAJOR, SW_VERSION_MINOR
from app.service import head_view

NAME = b"PYLON-MPY "  # 10 ASCII
MAKER = b"PYLON-COMPATIBLE    "  # 20 ASCII
_ALL_PACKS = const(8)  # packs listed in a 0x42 INFO 0xFF reply
_PACK_BYTES = const(1 + 2 * 16 + 1 + 2 * 8 + 17)  # one pack's 0x42 data at most (16 cells, 8 temps, count 4)
_INFO_BYTES = 2 + _ALL_PACKS * _PACK_BYTES


class Rs485Server:
    """Frames and parses the requests of on_rs485 and builds each reply into
    self.out (preallocated; no allocation per request)."""

    def __init__(self, inv, packs=None, serial=SERIAL):
        """inv: the app.inverter.Inverter it serves (state, parameters, view,
        port, presence); packs and serial: as the inverter's."""
        self.inv = inv
        self.st = inv.st
        self.serial = serial
        params = self.params = inv.params
        self.view = inv.view
        self.framer = pr.Framer()
        self.req = pr.Request()
        self._views = {}  # reply length -> memoryview of out (made once per length)
        self.out = bytearray(18 + 2 * _INFO_BYTES)
        # the reply's INFO is built in the tail of out: encode_frame writes the hex
        # of info[k] at 13 + 2k, 14 + 2k, before out[18 + _INFO_BYTES + k + 1], the
        # next byte it reads (test_inverter_rs485 checks the overlap)
        self.info = memoryview(self.out)[18 + _INFO_BYTES:]
        self.scratch = bytearray(_PACK_BYTES + 2)  # another pack's 0x42 INFO from the link
        self.packs = packs  # link: the master's table of the other packs (app.link.Link)
        self.now_ms = 0
        v = params.v
        self.units = v[P.INV_RS485_UNITS_COUNT]
        # 0x47 fields in order (python-pylontech system_parameters_fmt, FHEM
        # _callSystemParameters): cell high/low/under V mV, charge high/low T
        # 0.1 K, charge current limit, module high/low/under V mV, discharge
        # high/low T, discharge current limit. Currents in 0.1 A (FHEM x100/1000,
        # bms-to-inverter x10; python-pylontech alone divides by 100); the
        # discharge limit negative, as both readers of real packs show it.
        self.sys = array("i", (v[P.CELL_OV_ALARM_MV], v[P.CELL_UV_ALARM_MV], v[P.CELL_UV_P1_MV],
                               v[P.CHG_HT_ALARM_DC] + 2731, v[P.CHG_LT_ALARM_DC] + 2731,
                               div(v[P.MAX_CHG_MA], 100), v[P.PACK_OV_ALARM_MV],
                               v[P.PACK_UV_ALARM_MV], v[P.PACK_UV_P1_MV],
                               v[P.DSG_HT_ALARM_DC] + 2731, v[P.DSG_LT_ALARM_DC] + 2731,
                               -div(v[P.MAX_DSG_MA], 100)))
        self.t_hi = v[P.DSG_HT_ALARM_DC]
        self.t_lo = v[P.DSG_LT_ALARM_DC]

    def on_rs485(self, buf, n):
        """Serve the requests in buf[:n]; returns how many were errors (a
        bad frame, or one to this pack with an RTN error: the inverter
        counts them in inverter_errors)."""
        framer = self.framer
        bad = 0
        for i in range(n):
            m = framer.feed(buf[i])
            if m and not self._request(framer.buf, m):
                bad += 1
        return bad

    def _request(self, buf, n):
        """One request; False when it is an error."""
        req = self.req
        if not pr.parse(buf, n, req):
            return False
        view = self.view
        first = pr.FIRST_ADR
        last = first + (view.packs_online if view.packs_online > 0 else 1) - 1
        any_adr = req.adr == pr.ADR_ANY and (req.cid2 == pr.CMD_VERSION or req.cid2 == pr.CMD_MANUFACTURER)
        if (req.adr < first or req.adr > last) and not any_adr:
            return True  # another pack's address: silence
        inv = self.inv
        ok = req.rtn == pr.RTN_OK
        if ok:
            inv._hear(BUS_RS485)
        if inv.forced_bus == BUS_CAN:
            return ok
        self.now_ms = inv._now
        m = self.reply(req, self.st.inverter_lost)
        inv.link.write(head_view(self._views, self.out, m))
        return ok

    def _error(self, req, rtn):
        return pr.encode_frame(self.out, req.ver if 0 <= req.ver < 256 else 0x20,
                               req.adr & 0xFF, pr.CID1, rtn, self.info, 0)

    def reply(self, req, lost):
        if req.rtn != pr.RTN_OK:
            return self._error(req, req.rtn)
        c = req.cid2
        info = self.info
        if (c == pr.CMD_ANALOG or c == pr.CMD_ALARM or c == pr.CMD_MANAGEMENT or c == pr.CMD_SERIAL
                or c == pr.CMD_FIRMWARE):
            if req.info_len < 1:
                return self._error(req, pr.RTN_FORMAT)
            if req.info[0] != req.adr and req.info[0] != pr.ALL_PACKS:
                return self._error(req, pr.RTN_ADR)
        view = self.view
        if not view.valid and c != pr.CMD_VERSION and c != pr.CMD_MANUFACTURER:
            return self._error(req, pr.RTN_COMM)
        st = self.st
        n = 0
        if c == pr.CMD_VERSION:
            n = 0
        elif c == pr.CMD_MANUFACTURER:
            _copy(info, 0, NAME)
            info[10] = SW_VERSION_MAJOR
            info[11] = SW_VERSION_MINOR
            _copy(info, 12, MAKER)
            n = 32
        elif c == pr.CMD_ANALOG:
            if req.info[0] == pr.ALL_PACKS:
                n = self._analog_all()
            else:
                n = self._analog(req.adr)
            if n < 0:
                return self._error(req, pr.RTN_COMM)  # a slave's cells not held (yet)
        elif c == pr.CMD_ALARM:
            n = self._alarm(req.adr)
        elif c == pr.CMD_SYSPARAM:
            info[0] = pr.INFOFLAG  # python-pylontech parses info[1:], FHEM from INFO byte 1
            sys = self.sys
            for k in range(12):
                put_i16(info, 1 + 2 * k, sys[k])
            n = 25
        elif c == pr.CMD_MANAGEMENT:
            info[0] = req.adr
            n = 1 + self._management(1, lost)
        elif c == pr.CMD_SERIAL:
            info[0] = req.adr
            _copy(info, 1, self.serial)
            n = 17
        elif c == pr.CMD_FIRMWARE:
            info[0] = req.adr
            info[1] = SW_VERSION_MAJOR
            info[2] = SW_VERSION_MINOR
            info[3] = SW_VERSION_MAJOR
            info[4] = SW_VERSION_MINOR
            info[5] = 0
            n = 6
        elif c == pr.CMD_SYS_ANALOG:
            put_u16(info, 0, view.voltage_mv)
            put_i16(info, 2, div(view.current_ma, 100))
            info[4] = view.soc_pct & 0xFF
            put_u16(info, 5, st.cycles & 0xFFFF)
            info[7] = view.soh_pct & 0xFF
            info[8] = view.packs_online & 0xFF
            put_u16(info, 9, view.max_cell_mv)
            put_u16(info, 11, (view.max_cell_pack << 8) | view.max_cell_index)
            put_u16(info, 13, view.min_cell_mv)
            put_u16(info, 15, (view.min_cell_pack << 8) | view.min_cell_index)
            put_u16(info, 17, view.max_temp_dc + 2731)
            put_u16(info, 19, (view.max_temp_pack << 8) | view.max_temp_index)
            put_u16(info, 21, view.min_temp_dc + 2731)
            put_u16(info, 23, (view.min_temp_pack << 8) | view.min_temp_index)
            n = 25
        elif c == pr.CMD_SYS_ALARM:
            put_u16(info, 0, view.protections & 0xFFFF)
            put_u16(info, 2, view.alarms & 0xFFFF)
            put_u16(info, 4, view.faults & 0xFFFF)
            n = 6
        elif c == pr.CMD_SYS_MANAGEMENT:
            n = self._management(0, lost)
        ver = req.ver if req.ver in pr.VERSIONS else pr.VERSIONS[0]  # 0x4F asked with any VER
        return pr.encode_frame(self.out, ver, req.adr, pr.CID1, pr.RTN_OK, info, n)

    def _management(self, off, lost):
        view = self.view
        ccl = 0 if lost else view.ccl_ma
        dcl = 0 if lost else view.dcl_ma
        fc = view.force_charge
        flags = ((128 if ccl > 0 else 0) | (64 if dcl > 0 else 0)
                 | (32 if fc & (pc.FC_I | pc.FC_RECHARGE) else 0) | (16 if fc & pc.FC_II else 0)
                 | (8 if fc & pc.FC_FULL else 0))
        info = self.info
        put_u16(info, off, pc.safe_cvl(view, ccl))
        put_u16(info, off + 2, view.dvl_mv)
        put_i16(info, off + 4, div(ccl, 100))
        put_i16(info, off + 6, div(dcl, 100))
        info[off + 8] = flags
        return 9

    def _own(self, i):
        """This pack's 0x42 data at info[i]; returns the offset after it."""
        st = self.st
        snap = st.snap
        cap = full_mah(st, self.params)
        return pr.put_pack(self.info, i, snap.cell_mv, 0, len(snap.cell_mv), snap.temp_dc, 0,
                           len(snap.temp_dc), st.current_ma, snap.stack_mv, cap * st.soc_pct // 100,
                           cap, st.cycles & 0xFFFF, self.units)

    def _analog(self, adr):
        # link: another pack's address is answered from the master's table (app.link):
        # pack n (adr FIRST_ADR + n - 1) is the n-th online link address (fixed ones may have gaps)
        packs = self.packs
        if packs is not None and adr != pr.FIRST_ADR:
            return other_pack(packs, self.info, adr, packs.table.nth_online(adr - pr.FIRST_ADR + 1),
                              self.now_ms, self.units)
        info = self.info
        info[0] = pr.INFOFLAG
        info[1] = adr  # the command value (as 0x92/0x93/0x96 echo it; FHEM skips it)
        return self._own(2)

    def _analog_all(self):
        """INFO 0xFF: INFOFLAG, the module count, then every module without its
        address (python-pylontech get_values_fmt). Packs whose cells the master
        does not hold (yet) are left out; at most _ALL_PACKS (V3.3: 8 packs in
        a group, quoted by the pylontech C monitor's header)."""
        info = self.info
        info[0] = pr.INFOFLAG
        i = self._own(2)
        m = 1
        packs = self.packs
        if packs is not None:
            scratch = self.scratch
            last = self.view.packs_online
            for n in range(2, last + 1):
                if m >= _ALL_PACKS:
                    break
                k = other_pack(packs, scratch, pr.FIRST_ADR + n - 1, packs.table.nth_online(n), self.now_ms,
                               self.units)
                if k > 2:
                    for j in range(2, k):
                        info[i] = scratch[j]
                        i += 1
                    m += 1
        info[1] = m
        return i

    def _alarm(self, adr):
        st = self.st
        snap = st.snap
        info = self.info
        hi = self.sys[0]
        lo = self.sys[1]
        info[0] = pr.INFOFLAG
        info[1] = adr
        cells = snap.cell_mv
        info[2] = len(cells)
        i = 3
        for c in cells:
            info[i] = 2 if c >= hi else (1 if c <= lo else 0)
            i += 1
        temps = snap.temp_dc
        info[i] = len(temps)
        i += 1
        t_hi = self.t_hi
        t_lo = self.t_lo
        for t in temps:
            info[i] = 2 if t >= t_hi else (1 if t <= t_lo else 0)
            i += 1
        a = st.alarms
        p = st.protections
        info[i] = 2 if (a & pc.A_COC or p & pc.P_COC) else 0  # charge current
        info[i + 1] = 2 if (a & pc.A_OV or p & pc.P_OV) else (1 if (a & pc.A_UV or p & pc.P_UV) else 0)
        info[i + 2] = 2 if (a & pc.A_DOC or p & pc.P_DOC) else 0  # discharge current
        s1 = ((128 if p & _PUVP else 0) | (64 if p & pc.P_OT_CHG else 0) | (32 if p & pc.P_OT_DSG else 0)
              | (16 if p & pc.P_DOC else 0) | (4 if p & pc.P_COC else 0) | (2 if p & _CUVP else 0)
              | (1 if p & pc.P_OV else 0))
        s2 = 8 | (4 if st.dsg_fet else 0) | (2 if st.chg_fet else 0) | (1 if st.pchg_fet else 0)
        s3 = ((128 if st.current_ma > 0 else 0) | (64 if st.current_ma < 0 else 0)
              | (8 if st.soc_full else 0))
        info[i + 3] = s1
        info[i + 4] = s2
        info[i + 5] = s3
        info[i + 6] = 0
        info[i + 7] = 0
        return i + 8


def other_pack(packs, info, adr, a, now_ms, units):
    """The master's Pylontech 0x42 INFO of pack a (pylon address adr) from
    its link's table (packs: app.link.Link) into info (pr.put_pack, in units
    as the server's parameter says); asks a for fresh cells. Returns the
    length, or -1 while no fresh cells are held."""
    t = packs.table
    if not link.valid_address(a):
        return -1
    packs.ask_cells(a)
    if packs.roles.role != parallel.MASTER or not t.online[a] or not t.cells_fresh(now_ms, a):
        return -1
    info[0] = 0
    info[1] = adr
    cap = t.full_mah[a] if t.full_mah[a] > 0 else t.cap_ah[a] * 1000  # no CAPACITY report: rated
    return pr.put_pack(info, 2, t.cells, a * parallel.MAX_CELLS, t.n_cells[a], t.temps,
                       a * parallel.MAX_TEMPS, t.n_temps[a], t.current_ma[a], t.voltage_mv[a],
                       cap * t.soc_pct[a] // 100, cap, t.cycles[a], units)


def _copy(buf, i, src):
    for k in range(len(src)):
        buf[i + k] = src[k]


_PUVP = codes.bit(codes.PROTECTIONS, "PUVP")
_CUVP = codes.bit(codes.PROTECTIONS, "CUVP")

