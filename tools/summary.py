# Owns the headless summary of a bench run: what a newcomer reads after
# `make bench` in a pipe, computed from the trace lines alone.
import json


def summarize(lines):
    packs = {}
    errors = []
    for ln in lines:
        o = json.loads(ln)
        if "error" in o:
            errors.append("pack %d at %.1f s: %s" % (o["pack"], o["t_ms"] / 1000, o["error"]))
            continue
        if "pack" not in o or "mode" not in o:
            continue
        p = packs.setdefault(o["pack"], {"first": o, "modes": {}, "min_cell": 99999, "max_cell": 0,
                                          "max_temp": -9999, "seen": set(), "last": o, "prev_t": o["t_ms"]})
        dt = o["t_ms"] - p["prev_t"]
        p["modes"][p["last"]["mode"]] = p["modes"].get(p["last"]["mode"], 0) + dt
        p["prev_t"] = o["t_ms"]
        p["last"] = o
        if o["afe_ok"] and o["cell_mv"]:
            p["min_cell"] = min(p["min_cell"], min(o["cell_mv"]))
            p["max_cell"] = max(p["max_cell"], max(o["cell_mv"]))
            p["max_temp"] = max(p["max_temp"], max(o["temp_dc"]))
        for k in ("alarms", "protections", "faults", "hw_alerts"):
            p["seen"].update(o[k])
    out = []
    for k in sorted(packs):
        p = packs[k]
        last = p["last"]
        total = sum(p["modes"].values()) or 1
        share = ", ".join("%s %d%%" % (m, 100 * v // total) for m, v in sorted(p["modes"].items()))
        out.append("pack %d: %.1f h simulated, SOC %s%% -> %s%%, mode time: %s" % (
            k, last["t_ms"] / 3.6e6, p["first"]["soc_pct"], last["soc_pct"], share))
        out.append("  cells %d..%d mV, max temperature %.1f C, now %s, FETs chg=%s dsg=%s" % (
            p["min_cell"], p["max_cell"], p["max_temp"] / 10, last["mode"], last["chg_fet"], last["dsg_fet"]))
        out.append("  states seen: %s" % (", ".join(sorted(p["seen"])) or "none"))
    out.extend("error: " + e for e in errors)
    return out
