"""The parameter table: invariants of the rows, the default table validates,
and every kind of invalid write is refused with its reason, leaving the
running values as they were."""
import ast
import os

import pytest

from bms import params as P
from bms import prows
from bms.params import Params, TABLE, validate

UNITS = ("_ms", "_us", "_mv", "_ma", "_mah", "_dc", "_pct", "_count", "_reads", "_tries", "_ppm")
# settings that are switches or choices, not quantities
UNITLESS = ("buzzer_enable", "dry_contact_mapping", "heater")


def test_ids_are_stable_and_names_unique():
    ids = [r[0] for r in TABLE]
    assert ids == list(range(1, len(TABLE) + 1))  # append-only, no gaps
    names = [r[1] for r in TABLE]
    assert len(set(names)) == len(names)
    # the original rows keep their ids and names
    assert TABLE[0][:2] == (1, "cycle_ms") and TABLE[12][:2] == (13, "hw_scd_delay_us")


def test_names_carry_their_unit_defaults_in_range_small_ints():
    for row in TABLE:
        rid, name, default, lo, hi, access = row
        assert name in UNITLESS or name.endswith(UNITS), name
        assert lo <= default <= hi, name
        assert -(1 << 30) < lo and hi < (1 << 30), name  # small ints on the board
        assert access in (prows.USER, prows.ADMIN, prows.FACTORY)


def test_index_constants_for_every_row():
    for i, row in enumerate(TABLE):
        assert getattr(P, row[1].upper()) == i, row[1]


def _index_constants():
    """NAME -> n of every module-level `NAME = const(n)` in bms/params.py
    (not the module's own `_NAME` constants)."""
    with open(P.__file__) as f:
        tree = ast.parse(f.read())
    found = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "const"
                and not node.targets[0].id.startswith("_")):
            found[node.targets[0].id] = node.value.args[0].value
    return found


def test_every_index_constant_is_its_rows_id_minus_one():
    rows = {r[1].upper(): r[0] for r in TABLE}
    consts = _index_constants()
    for name, n in consts.items():
        assert name in rows, name + ": no row of that name in bms.ptable"
        assert n == rows[name] - 1, name
    missing = sorted(set(rows) - set(consts))
    assert not missing, "write NAME = const(id - 1) in bms/params.py for " + ", ".join(missing)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sources():
    for top in ("lib", "firmware", "boards", "tools", "host_tests"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(d, f)


def _param_names_used(tree):
    """(line, NAME) of every bms.params constant the module names:
    `from bms.params import NAME` and ALIAS.NAME for `from bms import params as ALIAS`."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "bms":
            aliases.update(a.asname or a.name for a in node.names if a.name == "params")
        elif isinstance(node, ast.ImportFrom) and node.module == "bms.params":
            for a in node.names:
                yield node.lineno, a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.isupper()):
            yield node.lineno, node.attr


def test_every_parameter_constant_the_code_names_exists():
    # the one way to read a parameter is params.v[P.NAME]: a name the table
    # lacks is an error here, not a -1 index at run time
    bad = []
    used = 0
    for path in _sources():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for line, name in _param_names_used(tree):
            used += 1
            if not hasattr(P, name):
                bad.append("%s:%d %s" % (os.path.relpath(path, ROOT), line, name))
    assert used > 100  # the walk saw the firmware's reads
    assert not bad, bad


def test_deployed_code_reads_parameters_by_constant_not_by_name():
    # index_of(name) is the host side's (scenarios, tools, tests): on the board
    # a name lookup per read is a linear search, and a missing row only fails
    # when that line runs
    found = []
    for path in _sources():
        rel = os.path.relpath(path, ROOT)
        if rel.startswith(("tools", "host_tests", os.path.join("lib", "sim"))):
            continue
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            name = getattr(node, "attr", None) or getattr(node, "id", None)
            if name == "index_of" and rel != os.path.join("lib", "bms", "params.py"):
                found.append("%s:%d" % (rel, node.lineno))
    assert not found, found


def test_default_table_validates():
    assert validate(Params().v) is None


def test_every_protection_has_three_levels_with_threshold_release_delay():
    prefixes = ("cell_ov", "cell_uv", "pack_ov", "pack_uv", "chg_oc", "dsg_oc", "chg_ht", "chg_lt",
                "dsg_ht", "dsg_lt", "mos_ot", "amb_ht", "amb_lt", "imb")  # the F_* order
    assert len(prefixes) == P.N_FAMILIES
    assert sorted(P.HIGH_FAMS + P.LOW_FAMS) == list(range(P.N_FAMILIES))
    for f, prefix in enumerate(prefixes):
        base = P.FAM_ROW0 + P.FAM_ROWS * f
        # over voltage, over current, high temperature and imbalance trip high
        assert (f in P.HIGH_FAMS) == (prefix.endswith(("_ov", "_oc", "_ht", "_ot")) or prefix == "imb")
        for k, lvl in enumerate(("alarm", "p1", "p2")):
            names = [TABLE[base + 3 * k + j][1] for j in range(3)]
            assert names[0].startswith("%s_%s_" % (prefix, lvl))
            assert "_rel_" in names[1] and names[2] == "%s_%s_delay_ms" % (prefix, lvl)


def test_manual_values():
    p = Params().v
    assert p[P.CHARGE_MV] == 56000 and p[P.FLOAT_MV] == 54600
    assert p[P.PACK_OV_P1_MV] == 57600 and p[P.PACK_UV_P1_MV] == 44800
    assert p[P.MAX_CHG_MA] == 70000 and p[P.MAX_DSG_MA] == 100000
    assert p[P.CHG_LT_P1_DC] == 0  # no charging below 0 C
    assert p[P.IMB_FAIL_MV] == 1000 and p[P.OC_LOCK_COUNT] == 3 and p[P.BUZZER_ENABLE] == 0
    assert p[P.STANDBY_SLEEP_MS] == 24 * 3600 * 1000 and p[P.UV_WAKE_TRIES] == 10
    assert p[P.HW_COV_MV] > p[P.CELL_OV_P2_MV] and p[P.HW_CUV_MV] < p[P.CELL_UV_P2_MV]
    assert p[P.HW_OCC_MA] > p[P.CHG_OC_P2_MA] and p[P.HW_OCD_MA] > p[P.DSG_OC_P2_MA]


def refused(prm, name, value, *words):
    before = list(prm.v)
    with pytest.raises(ValueError) as e:
        prm.set_by_name(name, value)
    assert list(prm.v) == before
    msg = str(e.value)
    for w in words:
        assert w in msg, msg
    return msg


def test_out_of_range_refused_with_reason():
    prm = Params()
    refused(prm, "cell_ov_p2_mv", 5000, "cell_ov_p2_mv", "outside")
    refused(prm, "cycle_ms", 1, "outside")
    refused(prm, "oc_lock_count", 0, "outside")


def test_non_integer_refused():
    prm = Params()
    refused(prm, "cycle_ms", 100.0, "integer")
    refused(prm, "buzzer_enable", True, "integer")


def test_unknown_name_refused():
    with pytest.raises(ValueError):
        Params().set_by_name("no_such_mv", 1)


@pytest.mark.parametrize("name,value", [
    ("cell_ov_p1_rel_mv", 3600),  # high limit: release at the threshold
    ("cell_ov_alarm_rel_mv", 3560),  # above its threshold
    ("cell_uv_p1_rel_mv", 2800),  # low limit: release at the threshold
    ("pack_uv_p2_rel_mv", 39000),  # below its threshold
    ("chg_lt_p1_rel_dc", -10),
    ("mos_ot_p2_rel_dc", 1100),
])
def test_release_on_wrong_side_refused(name, value):
    refused(Params(), name, value, name, "release")


@pytest.mark.parametrize("name,value", [
    ("cell_ov_p1_mv", 3650),  # not below p2
    ("cell_ov_alarm_mv", 3600),  # not below p1
    ("cell_uv_p2_mv", 2800),  # low: p2 must stay below p1
    ("chg_ht_p2_dc", 440),
    ("dsg_lt_alarm_dc", -100),
    ("imb_p1_mv", 250),  # below alarm
])
def test_levels_out_of_order_refused(name, value):
    refused(Params(), name, value, "must be")


@pytest.mark.parametrize("name,value,why", [
    ("cell_ov_p2_mv", 3750, "hw_cov_mv"),
    ("hw_cov_mv", 3650, "hw_cov_mv"),
    ("hw_cuv_mv", 2500, "hw_cuv_mv"),
    ("hw_occ_ma", 85000, "hw_occ_ma"),
    ("dsg_oc_p2_ma", 230000, "hw_ocd_ma"),
    ("button_reset_min_ms", 10000, "button_reset_max_ms"),
    ("imb_fail_mv", 800, "imb_fail_mv"),
])
def test_second_channel_and_windows_stay_ordered(name, value, why):
    refused(Params(), name, value, why)


def test_delays_may_be_in_any_order():
    prm = Params()
    prm.set_by_name("cell_ov_p2_delay_ms", 5000)  # longer than p1's
    assert prm.v[P.CELL_OV_P2_DELAY_MS] == 5000


def test_valid_write_applies_and_set_many_is_all_or_nothing():
    prm = Params()
    prm.set_by_name("cell_ov_p1_mv", 3620)
    assert prm.v[P.CELL_OV_P1_MV] == 3620
    before = list(prm.v)
    with pytest.raises(ValueError):
        prm.set_many([(P.CELL_OV_ALARM_MV, 3500), (P.CELL_OV_P1_MV, 3400)])
    assert list(prm.v) == before
    # moving a whole family at once, in an order that single writes would refuse
    prm.set_many([(P.CELL_OV_P2_MV, 3640), (P.CELL_OV_P1_MV, 3630), (P.CELL_OV_ALARM_MV, 3610)])
    assert validate(prm.v) is None


def test_validate_reports_a_reason_for_a_broken_table():
    vals = list(Params().v)
    vals[P.PACK_OV_P1_REL_MV] = vals[P.PACK_OV_P1_MV] + 1
    assert "pack_ov_p1_rel_mv" in validate(vals)


def test_settings_the_afe_cannot_hold_are_refused():
    # a 12 A hardware OCC is 3 mV across the 250 uOhm shunt, below the chip's
    # 4 mV; a 7-day standby is past half the tick period (issue 14)
    p = Params()
    for name, value in (("hw_occ_ma", 12000), ("hw_occ_delay_ms", 1000),
                        ("hw_cov_delay_ms", 10000), ("standby_sleep_ms", 604800000)):
        with pytest.raises(ValueError):
            p.set_by_name(name, value)
    assert p.v[P.HW_OCC_MA] == 90000 and p.v[P.STANDBY_SLEEP_MS] == 86400000
