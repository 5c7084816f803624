# Owns the part of the link service (app.link) that only packs in parallel
# run: a slave's reports (in its slot of each REPORT_MS, every cell on the
# master's request) and the master's HELLO. It writes no PackState field
# (app.link is their writer).
# app.link imports it at the first need through app.service.built (issue 12:
# a pack alone never holds it); lk is the app.link.Link it works for.
from bms import parallel
from bms.system import own_row
from proto import link
from bms import linkrows
from app.link import LINK_MS


def hello(lk, n, off):
    """The master's HELLO: n packs online, off offline."""
    d = lk._pl
    linkrows.put_hello(d, lk.roles.gen, n, _system_mv(lk), off)
    lk._send(link.T_HELLO, link.BROADCAST, d, 8)


def _system_mv(lk):
    t = lk.table
    s = n = 0
    for a in range(1, parallel.N):
        if t.online[a] and not (t.flags[a] & link.F_HOLD):
            s += t.voltage_mv[a]
            n += 1
    return s // n if n else lk.state.snap.stack_mv


def slave(lk, now_ms):
    """A slave's reports (app.link's tick has set link_orphan and the hold)."""
    st = lk.state
    r = lk.roles
    if st.link_orphan:
        return  # no master upstream: no second system
    if lk._want_reports:
        lk._want_reports = False
        _report(lk)
    if lk._want_cells and st.snap.reads:
        lk._want_cells = False
        _send_cells(lk)
    # staggered reports: address a reports in the 100 ms slot a % 10 of each second
    slot = (now_ms // LINK_MS) % (parallel.REPORT_MS // LINK_MS)
    if slot != r.address % (parallel.REPORT_MS // LINK_MS):
        return
    if lk._last_report_ms >= 0 and parallel.elapsed(now_ms, lk._last_report_ms) < parallel.REPORT_MS // 2:
        return
    lk._last_report_ms = now_ms
    _report(lk)


def _report(lk):
    st = lk.state
    t = lk.table
    a = lk.roles.address
    if not lk._built(False):
        return  # the next slot tries again
    own_row(t, a, st, lk.params, lk._flags())
    d = lk._pl
    linkrows.put_status(d, t, a)
    lk._send(link.T_STATUS, link.MASTER, d, 8)
    linkrows.put_limits(d, t, a)
    lk._send(link.T_LIMITS, link.MASTER, d, 8)
    linkrows.put_extremes(d, t, a)
    lk._send(link.T_EXTREMES, link.MASTER, d, 8)
    linkrows.put_info(d, t, a)
    lk._send(link.T_INFO, link.MASTER, d, 8)


def _send_cells(lk):
    """The capacity (T_CAPACITY), every NTC (T_TEMPS) then every cell
    (T_CELLS), PER_FRAME a frame."""
    st = lk.state
    t = lk.table
    a = lk.roles.address
    if not lk._built(False):
        return  # the master asks again
    own_row(t, a, st, lk.params, lk._flags())
    d = lk._pl
    linkrows.put_capacity(d, t, a)
    lk._send(link.T_CAPACITY, link.MASTER, d, 8)
    snap = st.snap
    for cells in (False, True):
        arr = snap.cell_mv if cells else snap.temp_dc
        cnt = len(arr)
        top = parallel.MAX_CELLS if cells else parallel.MAX_TEMPS
        if cnt > top:
            cnt = top
        first = 0
        while first < cnt:
            linkrows.put_series(d, arr, first, cnt, not cells)
            lk._send(link.T_CELLS if cells else link.T_TEMPS, link.MASTER, d, 8)
            first += link.PER_FRAME
