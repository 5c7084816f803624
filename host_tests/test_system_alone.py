"""bms.system: the master alone (its own row the only row ever seen) gets
from alone() exactly the view the full aggregate over the table gives (SPEC 7
rules in bms.system), for random row contents; and a table with a second row
(online, or seen and gone offline) still takes the full aggregate."""
from hypothesis import given, settings, strategies as stt

from bms import linkrows, parallel
from bms.state import PackState
from bms.system import SystemView, aggregate, aggregate_rows
from proto import link as lp

OWN = lp.MASTER
U16 = stt.integers(0, 65535)

row = stt.fixed_dictionaries({
    "voltage_mv": U16, "current_ma": stt.integers(-32768, 32767).map(lambda x: x * 10),
    "soc_pct": stt.integers(0, 100), "soh_pct": stt.integers(0, 100), "flags": stt.integers(0, 255),
    "cap_ah": stt.integers(0, 255), "cvl_mv": U16, "ccl_ma": U16.map(lambda x: x * 10),
    "dcl_ma": U16.map(lambda x: x * 10), "dvl_mv": U16, "min_cell_mv": U16, "max_cell_mv": U16,
    "min_temp_dc": stt.integers(-400, 1200), "max_temp_dc": stt.integers(-400, 1200),
    "idx_cell": stt.integers(0, 255), "idx_temp": stt.integers(0, 255),
    "alarms": U16, "protections": U16, "faults": U16})


def _table(rows):
    t = parallel.Table()  # the master alone: its own row only (the rows built at the first peer report)
    if len(rows) > 1:
        t.build()
    for a in rows:
        if a != OWN:  # another pack is heard through its status report
            assert linkrows.take(t, 0, lp.T_STATUS, a, bytes(8))
    for a, r in rows.items():
        for k, x in r.items():
            getattr(t, k)[a] = x
        t.seen[a] = t.online[a] = 1
    return t


def _view(fn, t, st):
    v = SystemView()
    if fn is aggregate:  # it takes the link flags from proto.link itself
        fn(v, t, st, parallel.N)
    else:
        fn(v, t, st, parallel.N, lp.F_CHG_OK, lp.F_DSG_OK, lp.F_HOLD)
    return vars(v)


def _state(fc, cvl, dvl):
    st = PackState()
    st.force_charge, st.cvl_mv, st.dvl_mv = fc, cvl, dvl
    return st


@settings(max_examples=300, deadline=None)
@given(r=row, fc=stt.integers(0, 3), cvl=U16, dvl=U16)
def test_alone_equals_the_full_aggregate(r, fc, cvl, dvl):
    t = _table({OWN: r})
    st = _state(fc, cvl, dvl)
    assert _view(aggregate, t, st) == _view(aggregate_rows, t, st)


@settings(max_examples=50, deadline=None)
@given(r=row, other=row, gone=stt.booleans())
def test_a_second_row_takes_the_full_aggregate(r, other, gone):
    t = _table({OWN: r, 5: other})
    if gone:
        t.online[5] = 0
    st = _state(0, 3550 * 16, 2800 * 16)
    v = _view(aggregate, t, st)
    assert v == _view(aggregate_rows, t, st)
    assert v["packs_online"] == (1 if gone else 2)
    assert v["packs_offline"] == (1 if gone else 0)
