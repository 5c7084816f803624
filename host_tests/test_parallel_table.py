"""bms.parallel.Table keeps the fields a link report carries as u16/i16 in
16-bit arrays: every value the wire can carry is stored as the report says
(decoded here with struct from the layouts in proto/link's header, not with
our decoder), and the master's own row (bms.system.own_row) is clamped to
the field as the report is (a CPython array("H") raises on anything else)."""
import struct

import pytest

from bms import parallel
from bms.params import Params
from bms.state import PackState
from bms.system import own_row
from proto import link as lp
from bms import linkrows

A = 7  # a slave's row


def _take(t, typ, payload):
    assert linkrows.take(t, 0, typ, A, payload)


def _built():
    """A table with every row (what app.link builds at the first peer report)."""
    return parallel.Table().build()


@pytest.mark.parametrize("payload", [b"\xff" * 8, b"\x00" * 8, b"\x7f\xff\x80\x00\x7f\xff\x80\x00",
                                     b"\x80\x00\x7f\xff\x80\x00\x7f\xff"])
def test_every_wire_value_of_the_16_bit_fields_is_stored_as_sent(payload):
    t = _built()
    _take(t, lp.T_LIMITS, payload)  # CVL mV u16, CCL 10 mA u16, DCL 10 mA u16, DVL mV u16
    cvl, ccl, dcl, dvl = struct.unpack(">HHHH", payload)
    assert (t.cvl_mv[A], t.ccl_ma[A], t.dcl_ma[A], t.dvl_mv[A]) == (cvl, ccl * 10, dcl * 10, dvl)
    _take(t, lp.T_EXTREMES, payload)  # min/max cell mV u16, min/max temp dC i16
    lo, hi, tlo, thi = struct.unpack(">HHhh", payload)
    assert (t.min_cell_mv[A], t.max_cell_mv[A], t.min_temp_dc[A], t.max_temp_dc[A]) == (lo, hi, tlo, thi)
    _take(t, lp.T_INFO, payload)  # cell idx u8, NTC idx u8, alarms, protections, faults u16
    _, _, al, pr, fa = struct.unpack(">BBHHH", payload)
    assert (t.alarms[A], t.protections[A], t.faults[A]) == (al, pr, fa)


@pytest.mark.parametrize("cvl, dvl, want_cvl, want_dvl", [
    (70000, -5, 0xFFFF, 0),  # outside the field: clamped as the LIMITS report clamps it
    (58400, 40000, 58400, 40000),  # the parameter ranges' ends (charge_mv, low_cutoff_mv)
])
def test_own_row_limits_are_what_the_limits_report_carries(cvl, dvl, want_cvl, want_dvl):
    t = _built()
    st = PackState()
    st.cvl_mv, st.dvl_mv = cvl, dvl
    st.alarms = st.protections = st.faults = 0x1FFFF  # 17 bits: the row keeps the report's 16
    own_row(t, A, st, Params(), 0)
    assert (t.cvl_mv[A], t.dvl_mv[A]) == (want_cvl, want_dvl)
    assert (t.alarms[A], t.protections[A], t.faults[A]) == (0xFFFF, 0xFFFF, 0xFFFF)
    d = bytearray(8)
    linkrows.put_limits(d, t, A)
    assert struct.unpack(">HxxxxH", d) == (want_cvl, want_dvl)


def _fields(t):
    return sorted((k, v) for k, v in vars(t).items() if hasattr(v, "itemsize"))


def test_every_field_has_rows_of_its_own():
    """The fields are views into shared buffers: each has a row per address
    (MAX_CELLS/MAX_TEMPS per address for the cells and NTCs) and none shares
    an element with another, so a report into one field changes no other."""
    t = _built().build_series()
    fields = _fields(t)
    sizes = {"cells": parallel.N * parallel.MAX_CELLS, "temps": parallel.N * parallel.MAX_TEMPS}
    assert {k: len(v) for k, v in fields} == {k: sizes.get(k, parallel.N) for k, _ in fields}
    assert len(fields) == 29 and all(t.cells_ms[a] == -1 for a in range(parallel.N))  # no complete cells yet
    for k, (_, v) in enumerate(fields):
        for i in range(len(v)):
            v[i] = k + 1
    assert [set(v) for _, v in fields] == [{k + 1} for k in range(len(fields))]


def test_at_boot_the_table_holds_seen_online_and_the_masters_own_row_only():
    """Before build(): seen and online for every address (what the pack
    list, the relay and the inverter's pack numbers read), every other field
    rows 0..1 (the master's own row 1, all a pack alone reads), no cells/NTC
    block; nothing is online or offline, no cells are fresh."""
    t = parallel.Table()
    fields = dict(_fields(t))
    assert {k: len(v) for k, v in fields.items()} == {k: parallel.N if k in ("seen", "online") else 2
                                                      for k in fields}
    assert len(fields) == 27 and t.cells is None and t.temps is None and t.n == 2
    assert t.expire(0, lp.MASTER) == 0 and t.offline() == 0 and t.nth_online(1) == 0
    assert not any(t.cells_fresh(0, a) for a in range(parallel.N))
    t.forget(5)  # the PC tool's remove of a pack never heard: nothing to forget
    assert t.heard == 0 and not t.seen[5]


def test_build_gives_every_row_once():
    """build() (the first peer report) gives every field N rows at their
    reset value (0; cells_ms -1: no cells yet) and keeps seen/online; built
    again, nothing changes (app.link writes the master's own row after it,
    test_link)."""
    t = parallel.Table()
    t.seen[lp.MASTER] = t.online[lp.MASTER] = 1
    assert t.build() is t and t.n == parallel.N
    after = _fields(t)
    assert all(v[a] == (-1 if k == "cells_ms" else 0) for k, v in after if k not in ("seen", "online")
               for a in range(parallel.N))
    assert t.expire(0, lp.MASTER) == 1 and t.nth_online(1) == lp.MASTER
    views = [v for _, v in after]
    t.build()
    assert [v for _, v in _fields(t)] == views
