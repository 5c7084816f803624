# Owns the scenario contract of the bench: parses and checks a scenario
# document and converts every value to the integer units the simulation uses.
# Any problem is one ScenarioError naming the field; nothing half-parsed runs.
import json
from bms.params import Params, index_of

MAX_PACKS = 32
MAX_DURATION_S = 31 * 24 * 3600
SENSORS = ("cell_mv", "ntc_c", "current_a")
# Faults the mock AFE can inject (sim.mock_afe.FAULTS holds the same names).
ACTIONS = ("set", "sensor", "fault", "press", "link", "power", "inject", "update")
SETTABLE = ("current_a", "ambient_c")
PROFILES = ("none", "solar")
# faults that take a value: (scale to the sim unit, lowest, highest) in the
# document's unit: mV added to the cell reading, A added to the current,
# failed reads per mille (without a value the mock AFE fails 100 per mille)
FAULT_VALUES = {"cell_offset": (1, -65535, 65535), "current_offset": (1000, -2000, 2000), "afe_crc": (1, 1, 1000)}
# the document nests 3 deep (events[i].between); json recurses per level
MAX_DEPTH = 8


class ScenarioError(ValueError):
    pass


def _num(where, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ScenarioError("%s: number expected, got %s" % (where, json.dumps(v)))
    if v < lo or v > hi:
        raise ScenarioError("%s: %s outside %s..%s" % (where, json.dumps(v), lo, hi))
    return v


def _scaled(v, scale):
    """A JSON number times scale, rounded half away from zero, as int."""
    x = v * scale
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def _int(where, v, lo, hi):
    _num(where, v, lo, hi)
    if isinstance(v, float):
        if v != int(v):
            raise ScenarioError("%s: whole number expected, got %s" % (where, json.dumps(v)))
        v = int(v)
    return v


def _loads(text):
    """json.loads, after one scan for what it accepts or fails on differently
    on CPython and MicroPython: nesting deeper than MAX_DEPTH (RecursionError,
    MemoryError), NaN and Infinity (not JSON numbers, RFC 8259 section 6) and a
    duplicate key (RFC 8259 section 4: the names SHOULD be unique; json lets
    the last one win)."""
    stack = []  # per open container: the keys seen (object) or None (array)
    key = False  # the next string is a key of stack[-1]
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if key:
                try:
                    name = json.loads(text[i:j + 1])
                except ValueError:
                    break  # json.loads below names the problem
                if name in stack[-1]:
                    raise ScenarioError("duplicate key %s (line %d)" % (json.dumps(name), _line(text, i)))
                stack[-1].add(name)
                key = False
            i = j + 1
            continue
        if c == "{" or c == "[":
            if len(stack) == MAX_DEPTH:
                raise ScenarioError("nested deeper than %d levels (line %d)" % (MAX_DEPTH, _line(text, i)))
            stack.append(set() if c == "{" else None)
            key = c == "{"
        elif c == "}" or c == "]":
            if stack:
                stack.pop()
            key = False
        elif c == ",":
            key = bool(stack) and stack[-1] is not None
        elif c == "N" or c == "I":
            raise ScenarioError("NaN and Infinity are not JSON numbers (line %d)" % _line(text, i))
        i += 1
    try:
        return json.loads(text)
    except ValueError as e:
        raise ScenarioError("not valid JSON (%s)" % e)


def _line(text, i):
    return text.count("\n", 0, i) + 1


def _only(where, obj, allowed):
    for k in obj:
        if k not in allowed:
            raise ScenarioError("%s: unknown key %s" % (where, json.dumps(k)))


class Event:
    """One event: t_ms, action, the integer value in the sim's unit, and the
    target (pack, index, name)."""

    def __init__(self, t_ms, action, name, pack, index, value, on):
        self.t_ms = t_ms
        self.action = action  # "set" | "sensor" | "fault" | "press"
        self.name = name  # what is set / sensor kind / fault name / "button"
        self.pack = pack
        self.index = index
        self.value = value  # int in sim units, or None (sensor override removed)
        self.on = on


class Scenario:
    def __init__(self):
        self.packs = 1
        self.duration_ms = 3600 * 1000
        self.seed = 1
        self.soc_pct = [50]
        self.ambient_dc = 250
        self.params = []  # (name, value) in document order
        self.profile = "none"
        self.start_ms = 0  # time of day at t = 0 (the solar profile's clock)
        self.events = []
        # inverter: (issue 7) None, or (emulator kind | None, bus, protocol_id)
        self.inverter = None
        # firmware update (issue 15): the public key file the packs trust (None:
        # the development key); updates: the scenario uses them (partitions, fw)
        self.update_pubkey = None
        self.updates = False


def parse(text, fault_names):
    doc = _loads(text)
    if not isinstance(doc, dict):
        raise ScenarioError("the scenario must be a JSON object")
    _only("scenario", doc, ("packs", "duration_s", "seed", "initial", "params", "profile", "start_h", "events",
                            "comment", "inverter", "update_pubkey"))
    sc = Scenario()
    sc.packs = _int("packs", doc.get("packs", 1), 1, MAX_PACKS)
    sc.duration_ms = _scaled(_num("duration_s", doc.get("duration_s", 3600), 0.1, MAX_DURATION_S), 1000)
    sc.seed = _int("seed", doc.get("seed", 1), 0, 0xFFFFFFFF)
    _parse_initial(sc, doc.get("initial", {}))
    prm = doc.get("params", {})
    if not isinstance(prm, dict):
        raise ScenarioError("params: object of name: value expected")
    pairs = []
    for name in sorted(prm):
        v = _int("params." + name, prm[name], -(1 << 31), (1 << 31) - 1)
        try:
            pairs.append((index_of(name), v))
        except ValueError as e:
            raise ScenarioError("params: " + str(e))
        sc.params.append((name, v))
    try:  # all at once: a threshold may move together with its release
        Params().set_many(pairs)
    except ValueError as e:
        raise ScenarioError("params: " + str(e))
    sc.inverter = _parse_inverter(doc.get("inverter", "none"))
    sc.start_ms = _scaled(_num("start_h", doc.get("start_h", 0), 0, 24), 3600000)
    sc.profile = doc.get("profile", "none")
    if sc.profile not in PROFILES:
        raise ScenarioError("profile: %s is not one of %s" % (json.dumps(sc.profile), ", ".join(PROFILES)))
    evs = doc.get("events", [])
    if not isinstance(evs, list):
        raise ScenarioError("events: list expected")
    for i in range(len(evs)):
        sc.events.append(_parse_event("events[%d]" % i, evs[i], sc, fault_names))
    sc.events.sort(key=lambda e: e.t_ms)  # stable: same-time events keep their order
    if "update_pubkey" in doc:
        sc.update_pubkey = _path("update_pubkey", doc["update_pubkey"])
    sc.updates = sc.update_pubkey is not None or any(e.action == "update" for e in sc.events)
    return sc


def _path(where, v):
    if not isinstance(v, str) or not v:
        raise ScenarioError("%s: a file name expected, got %s" % (where, json.dumps(v)))
    return v


INVERTERS = ("victron", "sma", "pylon")


def _parse_inverter(v):
    """"victron" | "sma" | "pylon" | "none", or {"protocol_id": 0|1|2, "bus":
    "can"|"rs485", "emulator": "victron"|"sma"|"pylon"|null}."""
    if v == "none" or v is None:
        return None
    if isinstance(v, str):
        if v not in INVERTERS:
            raise ScenarioError("inverter: %s is not one of none, %s" % (json.dumps(v), ", ".join(INVERTERS)))
        return (v, "can", 1 if v == "pylon" else 0)
    if not isinstance(v, dict):
        raise ScenarioError("inverter: a name or an object expected")
    _only("inverter", v, ("protocol_id", "bus", "emulator"))
    kind = v.get("emulator", None)
    if kind is not None and kind not in INVERTERS:
        raise ScenarioError("inverter.emulator: %s is not one of %s" % (json.dumps(kind), ", ".join(INVERTERS)))
    bus = v.get("bus", "can")
    if bus not in ("can", "rs485"):
        raise ScenarioError("inverter.bus: %s is not can or rs485" % json.dumps(bus))
    if bus == "rs485" and kind not in (None, "pylon"):
        raise ScenarioError("inverter.emulator: %s does not speak Pylontech RS485 (only pylon does)" % json.dumps(kind))
    pid = _int("inverter.protocol_id", v.get("protocol_id", 1 if kind == "pylon" else 0), 0, 2)
    if pid == 2 and kind is not None:
        raise ScenarioError("inverter.protocol_id: no emulator speaks protocol 2 (Schneider, reserved)")
    return (kind, bus, pid)


def _parse_initial(sc, ini):
    if not isinstance(ini, dict):
        raise ScenarioError("initial: object expected")
    _only("initial", ini, ("soc_pct", "ambient_c"))
    soc = ini.get("soc_pct", 50)
    if isinstance(soc, list):
        if len(soc) != sc.packs:
            raise ScenarioError("initial.soc_pct: %d values for %d packs" % (len(soc), sc.packs))
        sc.soc_pct = [_int("initial.soc_pct[%d]" % k, soc[k], 0, 100) for k in range(len(soc))]
    else:
        sc.soc_pct = [_int("initial.soc_pct", soc, 0, 100)] * sc.packs
    sc.ambient_dc = _scaled(_num("initial.ambient_c", ini.get("ambient_c", 25), -40, 85), 10)


def _pack(where, ev, sc):
    return _int(where + ".pack", ev.get("pack", 0), 0, sc.packs - 1)


def _parse_event(where, ev, sc, fault_names):
    if not isinstance(ev, dict):
        raise ScenarioError(where + ": object expected")
    if "t_s" not in ev:
        raise ScenarioError(where + ": t_s missing")
    t_ms = _scaled(_num(where + ".t_s", ev["t_s"], 0, sc.duration_ms / 1000), 1000)
    acts = [a for a in ACTIONS if a in ev]
    if len(acts) != 1:
        raise ScenarioError(where + ": needs exactly one of " + ", ".join(ACTIONS))
    act = acts[0]
    name = ev[act]
    if act == "set":
        _only(where, ev, ("t_s", "set", "value"))
        if "value" not in ev:
            raise ScenarioError(where + ": value missing")
        if name == "current_a":
            return Event(t_ms, act, name, -1, 0, _scaled(_num(where + ".value", ev["value"], -2000, 2000), 1000), True)
        if name == "ambient_c":
            return Event(t_ms, act, name, -1, 0, _scaled(_num(where + ".value", ev["value"], -40, 85), 10), True)
        raise ScenarioError("%s: cannot set %s (one of %s)" % (where, json.dumps(name), ", ".join(SETTABLE)))
    if act == "sensor":
        _only(where, ev, ("t_s", "sensor", "pack", "index", "value"))
        pack = _pack(where, ev, sc)
        if "value" not in ev:
            raise ScenarioError(where + ": value missing (null removes the override)")
        v = ev["value"]
        if name == "cell_mv":
            idx = _int(where + ".index", ev.get("index"), 0, 15)
            val = None if v is None else _int(where + ".value", v, 0, 65535)
            return Event(t_ms, act, name, pack, idx, val, True)
        if name == "ntc_c":
            idx = _int(where + ".index", ev.get("index"), 0, 6)
            val = None if v is None else _scaled(_num(where + ".value", v, -60, 200), 10)
            return Event(t_ms, act, "ntc_dc", pack, idx, val, True)
        if name == "current_a":
            if "index" in ev:
                raise ScenarioError(where + ".index: the current_a sensor takes no index")
            val = None if v is None else _scaled(_num(where + ".value", v, -2000, 2000), 1000)
            return Event(t_ms, act, "current_ma", pack, 0, val, True)
        raise ScenarioError("%s: unknown sensor %s (one of %s)" % (where, json.dumps(name), ", ".join(SENSORS)))
    if act == "fault":
        _only(where, ev, ("t_s", "fault", "pack", "on", "index", "value"))
        if name not in fault_names:
            raise ScenarioError("%s: unknown fault %s (one of %s)" % (where, json.dumps(name), ", ".join(fault_names)))
        on = ev.get("on", True)
        if not isinstance(on, bool):
            raise ScenarioError(where + ".on: true or false expected")
        top = 15 if name.startswith("cell_") else 6 if name.startswith("ntc_") else None
        if top is None and "index" in ev:
            raise ScenarioError("%s.index: fault %s takes no index" % (where, json.dumps(name)))
        idx = 0 if top is None else _int(where + ".index", ev.get("index", 0), 0, top)
        rng = FAULT_VALUES.get(name)
        val = 0
        if rng is not None and "value" in ev:
            val = _scaled(_num(where + ".value", ev["value"], rng[1], rng[2]), rng[0])
        elif rng is None and _num(where + ".value", ev.get("value", 0), -1e9, 1e9) != 0:  # 0: nothing to add
            raise ScenarioError("%s.value: fault %s takes no value" % (where, json.dumps(name)))
        return Event(t_ms, act, name, _pack(where, ev, sc), idx, val, on)
    if act == "link":  # parallel packs: the Link cable between packs k and k+1
        _only(where, ev, ("t_s", "link", "between"))
        if name not in ("unplug", "plug"):
            raise ScenarioError("%s: link must be \"unplug\" or \"plug\", not %s" % (where, json.dumps(name)))
        b = ev.get("between")
        if not isinstance(b, list) or len(b) != 2:
            raise ScenarioError(where + ".between: [k, k + 1] expected")
        k = _int(where + ".between[0]", b[0], 0, sc.packs - 2) if sc.packs > 1 else None
        if k is None or _int(where + ".between[1]", b[1], 1, sc.packs - 1) != k + 1:
            raise ScenarioError(where + ".between: [k, k + 1] of neighbouring packs expected")
        return Event(t_ms, act, name, k, 0, 0, name == "plug")
    if act == "power":  # parallel packs: switch pack k off or on
        _only(where, ev, ("t_s", "power", "pack"))
        if name not in ("off", "on"):
            raise ScenarioError("%s: power must be \"off\" or \"on\", not %s" % (where, json.dumps(name)))
        return Event(t_ms, act, name, _pack(where, ev, sc), 0, 0, name == "on")
    if act == "inject":
        return _parse_inject(where, ev, sc, t_ms, name)
    if act == "update":  # firmware update (issue 15): bmsctl update FILE run by the bench
        _only(where, ev, ("t_s", "update", "pack", "via"))
        f = _path(where + ".update", name)
        via = ev.get("via", "can")
        if via not in VIAS:
            raise ScenarioError("%s.via: %s is not can or rs485" % (where, json.dumps(via)))
        inv = sc.inverter
        if via == "rs485" and inv is not None and inv[0] is not None and inv[1] == "rs485":
            raise ScenarioError(where + ".via: the scenario's RS485 inverter uses the master's Link IN, "
                                "where bmsctl update --via rtu: would be")
        k = ev.get("pack", 0)
        pack = -1 if k == "all" else _int(where + ".pack", k, 0, sc.packs - 1)
        return Event(t_ms, act, f, pack, VIAS.index(via), 0, True)  # index: the way (VIAS)
    _only(where, ev, ("t_s", "press", "pack", "hold_s"))
    if name != "button":
        raise ScenarioError("%s: can only press \"button\", not %s" % (where, json.dumps(name)))
    hold = _scaled(_num(where + ".hold_s", ev.get("hold_s", 0.5), 0.05, 60), 1000)
    return Event(t_ms, act, name, _pack(where, ev, sc), 0, hold, True)


INJECT_MAX = 1024  # bytes of one rs485 inject
VIAS = ("can", "rs485")  # an update's way: UDS on CAN, Modbus RTU on the master's Link IN


def _hex(where, v, most):
    if not isinstance(v, str) or len(v) % 2:
        raise ScenarioError(where + ": hex string of whole bytes expected")
    out = bytearray(len(v) // 2)
    for i in range(len(out)):
        pair = v[2 * i:2 * i + 2]
        for ch in pair:
            if ch not in "0123456789abcdefABCDEF":
                raise ScenarioError("%s: %s is not hex" % (where, json.dumps(v)))
        out[i] = int(pair, 16)
    if len(out) > most:
        raise ScenarioError("%s: %d bytes, at most %d" % (where, len(out), most))
    return bytes(out)


def _parse_inject(where, ev, sc, t_ms, bus):
    """A foreign node's frame on the CAN bus (name "can", index = id, on =
    ext) or bytes arriving on pack `into`'s Link IN (name "rs485", pack = k);
    value: the bytes."""
    if bus == "can":
        _only(where, ev, ("t_s", "inject", "id", "ext", "data"))
        ext = ev.get("ext")
        if not isinstance(ext, bool):
            raise ScenarioError(where + ".ext: true or false expected")
        id_ = _int(where + ".id", ev.get("id"), 0, 0x1FFFFFFF if ext else 0x7FF)
        return Event(t_ms, "inject", bus, -1, id_, _hex(where + ".data", ev.get("data"), 8), ext)
    if bus == "rs485":
        _only(where, ev, ("t_s", "inject", "into", "data"))
        k = _int(where + ".into", ev.get("into"), 0, sc.packs - 1)
        data = _hex(where + ".data", ev.get("data"), INJECT_MAX)
        if not data:
            raise ScenarioError(where + ".data: at least one byte expected")
        return Event(t_ms, "inject", bus, k, 0, data, True)
    raise ScenarioError("%s: inject must be \"can\" or \"rs485\", not %s" % (where, json.dumps(bus)))
