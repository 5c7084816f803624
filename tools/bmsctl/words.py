# Owns the plain words bmsctl uses for the board's codes (defs.codes: the
# manuals' alarm, protection and fault names): event history records, and
# the alarms `live` shows, each naming the cell (or sensor) and the threshold
# parameter it crossed.
import calendar
import time

from defs import codes
from store import eventlog

PLAIN = {
    "OV": "cell over-voltage", "UV": "cell under-voltage", "TOV": "pack over-voltage",
    "TUV": "pack under-voltage", "COC": "charge over-current", "DOC": "discharge over-current",
    "COT": "charge over-temperature", "CUT": "charge under-temperature",
    "DOT": "discharge over-temperature", "DUT": "discharge under-temperature",
    "EOT": "ambient over-temperature", "EUT": "ambient under-temperature", "USOC": "low state of charge",
    "MOS OT": "MOSFET over-temperature", "IMB": "cell imbalance", "PARALLEL": "parallel system failure",
    "COVP": "cell over-voltage", "POVP": "pack over-voltage", "CUVP": "cell under-voltage",
    "PUVP": "pack under-voltage", "COCP": "charge over-current", "DOCP": "discharge over-current",
    "SCP": "short circuit", "CHTP": "charge over-temperature", "DHTP": "discharge over-temperature",
    "CLTP": "charge under-temperature", "DLTP": "discharge under-temperature", "EOTP": "ambient over-temperature",
    "EUTP": "ambient under-temperature",
    "CELL": "cell reading implausible", "NTC": "temperature sensor open or shorted",
    "SAMPLE": "cell sum disagrees with the stack voltage", "AFE": "monitor chip not answering",
    "CHG MOS": "current through the charge FET while off", "DSG MOS": "current through the discharge FET while off",
    "PRECHARGE": "pre-charge did not finish", "REVERSED": "reversed polarity", "CURRENT": "current reading stuck",
    "STORE": "flash store failed at start",
}
STORE_CODES = {eventlog.C_BOOT: "firmware started (boot %d)", eventlog.C_LOG_CLEARED: "history cleared (%d records)",
               eventlog.C_CLOCK_SET: "clock set (to %d)", eventlog.C_EVENTS_LOST: "%d events lost before logging",
               eventlog.C_COUNTERS_CORRUPT: "counters corrupt, reset (%d)",
               eventlog.C_COUNTERS_BACKUP: "counters from the backup copy (%d)",
               eventlog.C_CAN_FOLLOWED: "CAN bus heard at %d kbit/s, not the stored rate: the pack runs at it"}
TABLES = {codes.KIND_ALARM: codes.ALARMS, codes.KIND_PROTECTION: codes.PROTECTIONS, codes.KIND_FAULT: codes.FAULTS}
RECORD_FIELDS = ("seq", "t_s", "time", "kind", "code", "name", "raised", "pack", "value", "words")

# alarm/protection name -> (threshold parameter stem, what crossed it). The
# stems are bms.ptable's (cell_ov -> cell_ov_alarm_mv / cell_ov_p1_mv).
THRESHOLDS = {"OV": ("cell_ov", "cell_max"), "COVP": ("cell_ov", "cell_max"),
              "UV": ("cell_uv", "cell_min"), "CUVP": ("cell_uv", "cell_min"),
              "TOV": ("pack_ov", "pack"), "POVP": ("pack_ov", "pack"),
              "TUV": ("pack_uv", "pack"), "PUVP": ("pack_uv", "pack"),
              "COC": ("chg_oc", "current"), "COCP": ("chg_oc", "current"),
              "DOC": ("dsg_oc", "current"), "DOCP": ("dsg_oc", "current"),
              "COT": ("chg_ht", "temp_max"), "CHTP": ("chg_ht", "temp_max"),
              "CUT": ("chg_lt", "temp_min"), "CLTP": ("chg_lt", "temp_min"),
              "DOT": ("dsg_ht", "temp_max"), "DHTP": ("dsg_ht", "temp_max"),
              "DUT": ("dsg_lt", "temp_min"), "DLTP": ("dsg_lt", "temp_min"),
              "IMB": ("imb", "spread"), "MOS OT": ("mos_ot", "temp_max")}


def when(t_s, boot_time=False):
    if t_s is None:
        return "?"
    if boot_time:
        return "boot+%ds" % t_s
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t_s))


def parse_time(text):
    """Unix seconds from 'YYYY-MM-DD[THH:MM[:SS]]' (UTC) or an integer; None for None."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return calendar.timegm(time.strptime(text, fmt))
        except ValueError:
            continue
    from tools.bmsctl.client import CtlError
    raise CtlError("not a time: %r (YYYY-MM-DD[THH:MM[:SS]] UTC, or Unix seconds)" % text)


def event_name(kind, code):
    table = TABLES.get(kind)
    if table is not None and code < len(table):
        return table[code]
    return "kind %d code %d" % (kind, code)


def record(e, hist, pack):
    """A decoded history event (the map's field names) as a dict with plain
    words; hist: the map's history file entry (kinds), pack: client.Pack (names
    of parameter ids and control offsets)."""
    kind, code, value, flags = e.get("kind"), e.get("code"), e.get("value"), e.get("flags", 0)
    raised = bool(flags & eventlog.F_RAISED)
    kname = hist.get("kinds", {}).get(str(kind), "kind %s" % kind).split(" (")[0]
    if kind in TABLES:
        name = event_name(kind, code)
        text = "%s %s %s (value %d)" % (PLAIN.get(name, name), codes.KIND_NAMES[kind],
                                        "raised" if raised else "cleared", value)
    elif kind == eventlog.KIND_STORE:
        name = "note %d" % code
        fmt = STORE_CODES.get(code)
        text = fmt % value if fmt else "store/firmware note %d (value %d)" % (code, value)
    elif kname.startswith("parameter"):
        p = next((p for p in pack.params if p.get("id") == code), None)
        name = p["name"] if p else "parameter %d" % code
        text = "%s %s %d" % (name, "set to" if raised else "was", value)
    elif kname.startswith("host"):
        ctl = next((b for b in pack.map["blocks"] if b["name"] == "control"), {"fields": []})
        f = next((f for f in ctl["fields"] if isinstance(f, dict) and f.get("offset") == code), None)
        other = hist.get("host_codes", {}).get(str(code))  # journalled writes outside the control block
        name = f["name"] if f else (other.split(" (")[0] if other else "command %d" % code)
        text = "host command %s %s %d" % (name, "value" if raised else "before", value)
    else:
        name = "code %s" % code
        text = "%s %s (value %s)" % (kname, code, value)
    return {"seq": e.get("seq"), "t_s": e.get("t_s"), "time": when(e.get("t_s"), flags & eventlog.F_BOOT_TIME),
            "kind": kname, "code": code, "name": name, "raised": raised, "pack": e.get("pack"), "value": value,
            "words": ("pack %d: " % e["pack"] if e.get("pack") else "") + text}


def active(evt_vnd1, evt_vnd2):
    """[(kind name, code name)] of SunSpec 802 EvtVnd1 (alarms | protections << 16) and EvtVnd2 (faults)."""
    out = []
    for n in codes.names(codes.FAULTS, evt_vnd2 or 0):
        out.append(("fault", n))
    for n in codes.names(codes.PROTECTIONS, (evt_vnd1 or 0) >> 16):
        out.append(("protection", n))
    for n in codes.names(codes.ALARMS, (evt_vnd1 or 0) & 0xFFFF):
        out.append(("alarm", n))
    return out


def alarm_line(kind, name, where, threshold):
    """'protection: cell over-voltage, cell 7 at 3.712 V (cell_ov_p1_mv 3.65 V)'.
    where: the measurement's words or None; threshold: (param name, shown value) or None."""
    s = "%s: %s" % (kind, PLAIN.get(name, name))
    if where:
        s += ", " + where
    if threshold:
        s += " (%s %s)" % threshold
    return s


def threshold_param(kind, name):
    """The parameter whose value is the threshold of this alarm/protection, or None."""
    t = THRESHOLDS.get(name)
    if t is None or kind == "fault":
        return None
    return "%s_%s_%s" % (t[0], "alarm" if kind == "alarm" else "p1",
                         {"cell_ov": "mv", "cell_uv": "mv", "pack_ov": "mv", "pack_uv": "mv", "imb": "mv",
                          "chg_oc": "ma", "dsg_oc": "ma"}.get(t[0], "dc"))
