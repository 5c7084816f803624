# Owns the trace format of the bench: one JSON object per line, keys in a
# fixed order and values written the same way on CPython and MicroPython (their
# json modules and dict orders differ), so two runs can be compared byte for
# byte. Host-side only: this allocates freely.
from defs import codes, modes
from bms import indicate
from defs import afe as afe_bits
from defs.codes import FC_NAMES

# bms.sleep.BY_* in order; None while awake
SLEEP_NAMES = (None, "button", "under_voltage", "low_cell", "idle", "command", "inverter")
_ALERTS = ((afe_bits.ALERT_CUV, "CUV"), (afe_bits.ALERT_COV, "COV"), (afe_bits.ALERT_OCC, "OCC"),
           (afe_bits.ALERT_OCD, "OCD"), (afe_bits.ALERT_SCD, "SCD"))


_STRS = {}  # memo of _str: keys and names repeat on every line
_STRS_MAX = 128


def _str(s):
    r = _STRS.get(s)
    if r is not None:
        return r
    r = _quote(s)
    if len(_STRS) < _STRS_MAX:
        _STRS[s] = r
    return r


def _quote(s):
    out = ['"']
    for ch in s:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def value(v):
    t = type(v)
    if t is int:  # not bool (a type of its own)
        return str(v)
    if t is str:
        return _str(v)
    if t is list:
        return "[" + ", ".join([str(x) if type(x) is int else value(x) for x in v]) + "]"
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, dict):
        return "{" + ", ".join(_str(k) + ": " + value(v[k]) for k in sorted(v)) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError("trace value of type %s" % type(v).__name__)


def line(pairs):
    """One trace line from (key, value) pairs, keys in the given order."""
    return "{" + ", ".join([_str(k) + ": " + value(v) for k, v in pairs]) + "}"


def frame_line(t_ms, bus, id_, ext, data):
    """A frame on a bus: the trace line every CAN frame gets."""
    return line([("t_ms", t_ms), ("bus", bus), ("id", id_), ("ext", ext),
                 ("data", "%02x" * len(data) % tuple(data))])


def alert_names(bits):
    return [n for b, n in _ALERTS if bits & b]


def pack_pairs(t_ms, pack, st):
    snap = st.snap
    leds = st.leds
    p = indicate.NAMES
    return [
        ("t_ms", t_ms), ("pack", pack), ("mode", modes.NAMES[st.mode]),
        ("chg_fet", st.chg_fet), ("dsg_fet", st.dsg_fet), ("pchg_fet", st.pchg_fet),
        ("soc_pct", st.soc_pct if st.soc_valid else None), ("current_ma", st.current_ma),
        ("stack_mv", snap.stack_mv), ("cell_mv", list(snap.cell_mv)), ("temp_dc", list(snap.temp_dc)),
        ("alarms", codes.names(codes.ALARMS, st.alarms)),
        ("protections", codes.names(codes.PROTECTIONS, st.protections)),
        ("faults", codes.names(codes.FAULTS, st.faults)),
        ("hw_alerts", alert_names(st.hw_alerts)),
        ("leds", {"run": p[leds[indicate.RUN]], "alm": p[leds[indicate.ALM]],
                  "soc": [p[leds[indicate.SOC0 + k]] for k in range(indicate.N_SOC)],
                  "ms": p[leds[indicate.MS]]}),
        ("buzzer", p[st.buzzer]), ("afe_ok", snap.ok),
        ("sleep", SLEEP_NAMES[st.sleep_reason]),
        ("contacts", [(st.contacts & 1) != 0, (st.contacts & 2) != 0]),
        ("inverter_lost", st.inverter_lost),
        # issue 4: balancing per cell, SOH and counters, the limits told to the inverter
        ("balancing", [(st.balance_mask >> c & 1) != 0 for c in range(len(snap.cell_mv))]),
        ("soh_pct", st.soh_pct), ("cycles", st.cycles), ("cvl_mv", st.cvl_mv), ("ccl_ma", st.ccl_ma),
        ("dcl_ma", st.dcl_ma), ("force_charge", [n for k, n in enumerate(FC_NAMES) if st.force_charge >> k & 1]),
        # parallel packs: the link address (0 = none yet) and role
        ("address", st.link_address), ("role", _role(st)),
    ]


def _role(st):
    if st.link_role == 3:
        return "slave"
    return "master" if st.link_role == 2 and st.link_parallel else "single"


def system_obj(view):
    """The master's system view (bms.system.SystemView) as a trace object."""
    v = view
    return {"packs_online": v.packs_online, "packs_offline": v.packs_offline,
            "packs_blocking_charge": v.packs_blocking_charge,
            "packs_blocking_discharge": v.packs_blocking_discharge,
            "voltage_mv": v.voltage_mv, "current_ma": v.current_ma, "soc_pct": v.soc_pct,
            "soh_pct": v.soh_pct, "cvl_mv": v.cvl_mv, "ccl_ma": v.ccl_ma, "dcl_ma": v.dcl_ma,
            "dvl_mv": v.dvl_mv, "min_cell": [v.min_cell_mv, v.min_cell_pack, v.min_cell_index],
            "max_cell": [v.max_cell_mv, v.max_cell_pack, v.max_cell_index],
            "min_temp": [v.min_temp_dc, v.min_temp_pack, v.min_temp_index],
            "max_temp": [v.max_temp_dc, v.max_temp_pack, v.max_temp_index],
            "parallel_failure": v.parallel_failure, "generation": v.generation}


def signature(st):
    """What counts as a change worth a trace line between the per-second ones."""
    return (st.mode, st.chg_fet, st.dsg_fet, st.pchg_fet, st.soc_pct, bytes(st.leds), st.buzzer,
            st.alarms, st.protections, st.faults, st.hw_alerts, st.snap.ok, st.safe_reason,
            st.sleep_reason, st.contacts, st.inverter_lost, st.balance_mask, st.force_charge,
            st.link_role, st.link_address, st.link_parallel, st.link_hold, st.link_online)
