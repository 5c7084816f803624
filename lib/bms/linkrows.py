# Owns the pack table's rows to and from the link reports (SPEC 7; the
# payload layouts in the proto.link header): the encoders of a pack's row (a
# slave's STATUS, LIMITS, EXTREMES, INFO, CAPACITY, CELLS, TEMPS), their
# decoders, take() that stores a peer's report in the master's table
# (bms.parallel.Table), and the master's HELLO. Only packs in parallel send
# or read them: Table.build imports this module with the rows it fills
# (issue 12: a pack alone holds neither). Encoders fill a caller's buffer in
# place, no allocation.
from bms import parallel
from proto import link
from proto.link import PER_FRAME, HELLO_GEN, HELLO_ONLINE, HELLO_MV, HELLO_FLAGS
from proto.wire import put_u8, put_u16, put_i16, put_u24, get_u16, get_i16, get_u24, trunc


def put_status(d, t, a):
    put_u16(d, 0, t.voltage_mv[a])
    put_i16(d, 2, trunc(t.current_ma[a], 10))
    d[4] = t.soc_pct[a]
    d[5] = t.soh_pct[a]
    d[6] = t.flags[a]
    put_u8(d, 7, t.cap_ah[a])


def take_status(t, a, d):
    t.voltage_mv[a] = get_u16(d, 0)
    t.current_ma[a] = get_i16(d, 2) * 10
    t.soc_pct[a] = d[4] if d[4] <= 100 else 100
    t.soh_pct[a] = d[5] if d[5] <= 100 else 100
    t.flags[a] = d[6]
    t.cap_ah[a] = d[7]


def put_limits(d, t, a):
    put_u16(d, 0, t.cvl_mv[a])
    put_u16(d, 2, t.ccl_ma[a] // 10)
    put_u16(d, 4, t.dcl_ma[a] // 10)
    put_u16(d, 6, t.dvl_mv[a])


def take_limits(t, a, d):
    t.cvl_mv[a] = get_u16(d, 0)
    t.ccl_ma[a] = get_u16(d, 2) * 10
    t.dcl_ma[a] = get_u16(d, 4) * 10
    t.dvl_mv[a] = get_u16(d, 6)


def put_extremes(d, t, a):
    put_u16(d, 0, t.min_cell_mv[a])
    put_u16(d, 2, t.max_cell_mv[a])
    put_i16(d, 4, t.min_temp_dc[a])
    put_i16(d, 6, t.max_temp_dc[a])


def take_extremes(t, a, d):
    t.min_cell_mv[a] = get_u16(d, 0)
    t.max_cell_mv[a] = get_u16(d, 2)
    t.min_temp_dc[a] = get_i16(d, 4)
    t.max_temp_dc[a] = get_i16(d, 6)


def put_info(d, t, a):
    d[0] = t.idx_cell[a]
    d[1] = t.idx_temp[a]
    put_u16(d, 2, t.alarms[a])
    put_u16(d, 4, t.protections[a])
    put_u16(d, 6, t.faults[a])


def take_info(t, a, d):
    t.idx_cell[a] = d[0]
    t.idx_temp[a] = d[1]
    t.alarms[a] = get_u16(d, 2)
    t.protections[a] = get_u16(d, 4)
    t.faults[a] = get_u16(d, 6)


def put_capacity(d, t, a):
    put_u24(d, 0, t.full_mah[a])
    put_u16(d, 3, t.cycles[a])
    d[5] = d[6] = d[7] = 0


def take_capacity(t, a, d):
    t.full_mah[a] = get_u24(d, 0)
    t.cycles[a] = get_u16(d, 3)


def put_series(d, arr, first, cnt, signed):
    """CELLS (signed False: mV) or TEMPS (signed True: dC): arr[first..first+2]
    of cnt values; past cnt 0."""
    d[0] = first
    d[1] = cnt
    for k in range(PER_FRAME):
        i = first + k
        v = arr[i] if i < cnt else 0
        if signed:
            put_i16(d, 2 + 2 * k, v)
        else:
            put_u16(d, 2 + 2 * k, v)


def take_series(arr, base, d, signed):
    """A CELLS/TEMPS payload d into arr[base + index] for the indexes below
    its count (the caller has checked first < count <= its room)."""
    first = d[0]
    cnt = d[1]
    for k in range(PER_FRAME):
        i = first + k
        if i < cnt:
            arr[base + i] = get_i16(d, 2 + 2 * k) if signed else get_u16(d, 2 + 2 * k)


def take(t, now_ms, typ, src, d):
    """Store one report (d: the 8-byte payload) from address src into table
    t, its rows built (build(), and build_series() for T_CELLS / T_TEMPS);
    False: not a report, or a CELLS/TEMPS count the table cannot hold."""
    if not link.valid_address(src):
        return False
    if typ == link.T_STATUS:
        take_status(t, src, d)
        t.last_ms[src] = now_ms
        if not t.seen[src]:
            t.heard += 1
        t.seen[src] = 1
        t.online[src] = 1
    elif typ == link.T_LIMITS:
        take_limits(t, src, d)
    elif typ == link.T_EXTREMES:
        take_extremes(t, src, d)
    elif typ == link.T_INFO:
        take_info(t, src, d)
    elif typ == link.T_CAPACITY:
        take_capacity(t, src, d)
    elif typ == link.T_CELLS or typ == link.T_TEMPS:
        cells = typ == link.T_CELLS
        first = d[0]
        cnt = d[1]
        top = parallel.MAX_CELLS if cells else parallel.MAX_TEMPS
        if cnt > top or first >= cnt:
            return False
        take_series(t.cells if cells else t.temps, src * top, d, not cells)
        if cells:
            t.n_cells[src] = cnt
            if first + link.PER_FRAME >= cnt:
                t.cells_ms[src] = now_ms
        else:
            t.n_temps[src] = cnt
    else:
        return False
    return True


def put_hello(d, gen, online, system_mv, failure):
    d[HELLO_GEN] = gen
    d[HELLO_ONLINE] = online
    put_u16(d, HELLO_MV, system_mv)
    d[HELLO_FLAGS] = 1 if failure else 0
    d[5] = d[6] = d[7] = 0
