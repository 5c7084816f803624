"""The scenario contract: every documented event parses into integer units;
every kind of bad input is one clear error naming the problem."""
import json

import pytest

from sim import scenario as scn

FAULTS = ("cell_offset", "ntc_open", "afe_silent", "current_offset")


def parse(doc):
    return scn.parse(json.dumps(doc), FAULTS)


def test_defaults():
    sc = parse({})
    assert (sc.packs, sc.duration_ms, sc.soc_pct, sc.ambient_dc, sc.events) == (1, 3600000, [50], 250, [])


def test_every_event_kind_converts_to_sim_units():
    sc = parse({"packs": 2, "duration_s": 100, "initial": {"soc_pct": [10, 90], "ambient_c": -5.5},
                "params": {"cycle_ms": 200},
                "events": [
                    {"t_s": 3, "set": "current_a", "value": -12.5},
                    {"t_s": 1, "set": "ambient_c", "value": 31.2},
                    {"t_s": 2, "sensor": "cell_mv", "pack": 1, "index": 15, "value": 3650},
                    {"t_s": 2, "sensor": "ntc_c", "pack": 0, "index": 6, "value": None},
                    {"t_s": 2, "sensor": "current_a", "pack": 0, "value": 1.5},
                    {"t_s": 4, "fault": "current_offset", "pack": 1, "on": True, "value": 0.3},
                    {"t_s": 5.25, "press": "button", "pack": 1, "hold_s": 3},
                ]})
    assert sc.soc_pct == [10, 90] and sc.ambient_dc == -55 and sc.params == [("cycle_ms", 200)]
    got = [(e.t_ms, e.action, e.name, e.pack, e.index, e.value) for e in sc.events]
    assert got == [
        (1000, "set", "ambient_c", -1, 0, 312),
        (2000, "sensor", "cell_mv", 1, 15, 3650),
        (2000, "sensor", "ntc_dc", 0, 6, None),
        (2000, "sensor", "current_ma", 0, 0, 1500),
        (3000, "set", "current_a", -1, 0, -12500),
        (4000, "fault", "current_offset", 1, 0, 300),
        (5250, "press", "button", 1, 0, 3000),
    ]


@pytest.mark.parametrize("doc,msg", [
    ([], "must be a JSON object"),
    ({"pack": 2}, 'unknown key "pack"'),
    ({"packs": 33}, "packs: 33 outside 1..32"),
    ({"packs": 1.5}, "packs: whole number expected"),
    ({"duration_s": "long"}, 'duration_s: number expected, got "long"'),
    ({"initial": {"soc_pct": 120}}, "initial.soc_pct: 120 outside 0..100"),
    ({"packs": 2, "initial": {"soc_pct": [1]}}, "initial.soc_pct: 1 values for 2 packs"),
    ({"events": [{"set": "current_a", "value": 1}]}, "events[0]: t_s missing"),
    ({"duration_s": 10, "events": [{"t_s": 11, "set": "current_a", "value": 1}]}, "events[0].t_s: 11 outside"),
    ({"events": [{"t_s": 1}]}, "events[0]: needs exactly one of"),
    ({"events": [{"t_s": 1, "set": "voltage", "value": 1}]}, 'cannot set "voltage"'),
    ({"events": [{"t_s": 1, "set": "current_a", "value": 5000}]}, "events[0].value: 5000 outside"),
    ({"events": [{"t_s": 1, "sensor": "cell_mv", "index": 16, "value": 3000}]}, "events[0].index: 16 outside 0..15"),
    ({"events": [{"t_s": 1, "sensor": "cell_mv", "index": 1}]}, "value missing"),
    ({"events": [{"t_s": 1, "sensor": "cell_mv", "pack": 1, "index": 1, "value": 3}]}, "events[0].pack: 1 outside 0..0"),
    ({"events": [{"t_s": 1, "fault": "melt", "on": True}]}, 'unknown fault "melt"'),
    ({"events": [{"t_s": 1, "fault": "ntc_open", "index": 7}]}, "events[0].index: 7 outside 0..6"),
    ({"events": [{"t_s": 1, "fault": "afe_silent", "on": "yes"}]}, "events[0].on: true or false"),
    ({"events": [{"t_s": 1, "press": "door"}]}, 'can only press "button"'),
    ({"events": [{"t_s": 1, "set": "current_a", "value": 1, "colour": 2}]}, 'unknown key "colour"'),
])
def test_bad_input_names_the_problem(doc, msg):
    with pytest.raises(scn.ScenarioError) as e:
        parse(doc)
    assert msg in str(e.value)


def test_invalid_json():
    with pytest.raises(scn.ScenarioError, match="not valid JSON"):
        scn.parse("{", FAULTS)


def test_params_apply_together_so_a_threshold_can_move_with_its_release():
    # lowering cell OV level 1 below its current release alone would break the
    # order; moving both at once is a valid table
    sc = parse({"params": {"cell_ov_p1_mv": 3500, "cell_ov_p1_rel_mv": 3400,
                           "cell_ov_alarm_mv": 3450, "cell_ov_alarm_rel_mv": 3350}})
    assert ("cell_ov_p1_mv", 3500) in sc.params
    with pytest.raises(scn.ScenarioError, match="params: "):
        parse({"params": {"cell_ov_p1_rel_mv": 3700}})
