"""The scenario contract: every documented event parses into integer units;
every kind of bad input is one clear error naming the problem."""
import json
import os

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


# --- property: a mutated valid scenario runs or is one clean error, never a traceback ---

from hypothesis import given, settings, strategies as st  # noqa: E402

BASE = {"packs": 2, "duration_s": 3, "seed": 5, "initial": {"soc_pct": [40, 60], "ambient_c": 20},
        "params": {"cycle_ms": 100}, "profile": "none", "start_h": 8, "comment": "base",
        "inverter": {"protocol_id": 1, "bus": "can", "emulator": "pylon"},
        "events": [
            {"t_s": 0.5, "set": "current_a", "value": 10},
            {"t_s": 0.6, "set": "ambient_c", "value": 30},
            {"t_s": 0.7, "sensor": "cell_mv", "pack": 0, "index": 3, "value": 3400},
            {"t_s": 0.8, "sensor": "ntc_c", "pack": 1, "index": 6, "value": None},
            {"t_s": 0.9, "sensor": "current_a", "pack": 0, "value": 1.5},
            {"t_s": 1.0, "fault": "cell_offset", "pack": 1, "index": 2, "value": 30, "on": True},
            {"t_s": 1.1, "fault": "afe_crc", "pack": 0, "value": 300},
            {"t_s": 1.2, "fault": "short_circuit", "pack": 1, "on": False},
            {"t_s": 1.3, "press": "button", "pack": 0, "hold_s": 0.2},
            {"t_s": 1.4, "link": "unplug", "between": [0, 1]},
            {"t_s": 1.5, "power": "off", "pack": 1},
        ]}
WORDS = ("current_a", "ambient_c", "cell_mv", "ntc_c", "short_circuit", "afe_crc", "ntc_open", "button",
         "rs485", "can", "victron", "sma", "pylon", "solar", "none", "plug", "on", "index", "value", "t_s", "")
ODD = (float("nan"), float("inf"), float("-inf"), True, False, None, 2 ** 64, -0.0)
leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.integers(-3, 40),
                 st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(WORDS), st.text(max_size=4))
jsonish = st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.sampled_from(WORDS), inner, max_size=3)),
                       max_leaves=6)


def _paths(node, path=()):
    yield path
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield from _paths(v, path + (k,))


@st.composite
def mutated(draw):
    """A JSON text: BASE with 1-3 values replaced, keys dropped or added,
    or (in the text) a key given twice or the document nested deep."""
    doc = json.loads(json.dumps(BASE))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(doc))))
        if not path:
            doc = draw(jsonish) if draw(st.integers(0, 9)) == 0 else doc
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        how = draw(st.sampled_from(("near", "near", "near", "odd", "replace", "drop", "add")))
        old = parent[path[-1]]
        if how == "near" and isinstance(old, (int, float)) and not isinstance(old, bool) and abs(old) < 1e9:
            m = abs(old)
            parent[path[-1]] = draw(st.one_of(st.integers(-2 - int(m), 3 * int(m) + 40), st.floats(-1.0 - m, 2.0 * m + 1)))
        elif how == "near" and isinstance(old, str):
            parent[path[-1]] = draw(st.sampled_from(WORDS))
        elif how == "odd":
            parent[path[-1]] = draw(st.sampled_from(ODD))
        elif how in ("near", "replace"):
            parent[path[-1]] = draw(jsonish)
        elif how == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(WORDS))] = draw(jsonish)
        else:
            parent.append(draw(jsonish))
        if not isinstance(doc, (dict, list)):
            break
    text = json.dumps(doc)  # NaN / Infinity come out as the tokens CPython's json reads back
    tweak = draw(st.sampled_from(("none",) * 8 + ("duplicate", "deep")))
    if tweak == "duplicate" and text.startswith("{") and len(text) > 2:
        text = '{"seed": 1, ' + text[1:]
    elif tweak == "deep":
        n = draw(st.one_of(st.integers(1, 5), st.integers(6, 3000)))
        text = "[" * n + text + "]" * n
    return text


@settings(max_examples=int(os.environ.get("SCENARIO_EXAMPLES", "100")))
@given(mutated())
def test_mutated_scenario_runs_or_is_one_clean_error(tmp_path_factory, text):
    import simworld
    from tools import bench
    f = tmp_path_factory.mktemp("s") / "s.json"
    f.write_text(text)
    try:
        _, sc = bench.load_scenario(str(f))
    except bench.BenchError as e:
        msg = "bench: error: %s" % e  # what main() prints
        assert len(msg.splitlines()) == 1 and "Traceback" not in msg
        return
    # the run is cut to 3 s (the base's length) so the slice stays fast; events keep their order
    sc.duration_ms = min(sc.duration_ms, 3000)
    for e in sc.events:
        e.t_ms = min(e.t_ms, sc.duration_ms)
    lines = []
    simworld.World(sc, lines.append).run()
    assert lines and not [ln for ln in lines if '"error"' in ln], lines
