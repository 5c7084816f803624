# Owns the machine-readable description of the board's Modbus register map
# (app.host, proto.sunspec) for the host tool and the docs: every block and every
# parameter register (from bms.ptable: register, name, unit, scale, minimum,
# maximum, default, access), the SunSpec models with their addresses.
#
#   python -m tools.regmap --json    the map as JSON on stdout
#   python -m tools.regmap           a plain table
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# unit suffix of a parameter name (bms.ptable's rule: units in names) -> unit, scale to SI-ish display
UNITS = {"mv": ("V", 0.001), "ma": ("A", 0.001), "ms": ("s", 0.001), "us": ("s", 1e-6),
         "dc": ("degC", 0.1), "pct": ("%", 1), "mah": ("Ah", 0.001), "count": ("", 1)}


def _board():
    for d in (os.path.join(ROOT, "lib"), os.path.join(ROOT, "firmware")):
        if d not in sys.path:
            sys.path.insert(0, d)
    from app import host
    from bms import ptable
    from proto import sunspec
    return host, ptable, sunspec


def describe():
    host, ptable, ss = _board()
    access = {ptable.USER: "RW", ptable.ADMIN: "RW", ptable.FACTORY: "R"}
    params = []
    for pid, name, default, lo, hi, acc in ptable.TABLE:
        unit, scale = UNITS.get(name.rsplit("_", 1)[-1], ("", 1))
        params.append({"register": host.PARAM + 2 * (pid - 1), "regs": 2, "type": "int32", "id": pid,
                       "name": name, "unit": unit, "scale": scale, "min": lo, "max": hi,
                       "default": default, "access": access[acc],
                       "write_level": host.INSTALLER if access[acc] == "RW" else None})
    blocks = [
        {"register": host.INFO, "regs": host.INFO_REGS, "name": "info", "access": "R",
         "fields": ["map_version", "param_count", "param_base", "firmware_version", "unit"]},
        {"register": host.DIAG, "regs": host.DIAG_REGS, "name": "diag", "access": "R",
         "fields": ["reason", "register", "param_id", "refused", "text[64]"],
         "reasons": list(host.REASONS)},
        {"register": host.CHALLENGE, "regs": host.CHALLENGE_REGS, "name": "challenge", "access": "R",
         "note": "read all 8: a fresh 16-byte nonce; exception 06 while locked out"},
        {"register": host.LOGIN, "regs": host.LOGIN_REGS, "name": "login", "access": "RW",
         "note": "read 1: session level; write 0: log out; write level + HMAC-SHA-256(secret, nonce + level)"},
        {"register": host.PARAM, "regs": host.PARAM_REGS, "name": "params", "access": "RW"},
        {"register": ss.SUNS, "regs": 2, "name": "SunS", "access": "R"},
        {"register": ss.AT_1, "regs": 2 + ss.L_1, "name": "sunspec_1", "model": 1, "access": "R"},
        {"register": ss.AT_802, "regs": 2 + ss.L_802, "name": "sunspec_802", "model": 802, "access": "R"},
        {"register": ss.AT_805, "regs": 2 + ss.L_805, "name": "sunspec_805", "model": 805, "access": "R"},
        {"register": ss.AT_END, "regs": 2, "name": "sunspec_end", "access": "R"},
    ]
    return {"map_version": host.MAP_VERSION, "blocks": blocks, "params": params}


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    d = describe()
    if "--json" in args:
        json.dump(d, sys.stdout, indent=1)
        print()
        return 0
    for b in d["blocks"]:
        print("%5d  %3d  %s" % (b["register"], b["regs"], b["name"]))
    for p in d["params"]:
        print("%5d  %3d  %-28s %-5s %s..%s %s" % (p["register"], p["regs"], p["name"], p["unit"],
                                                  p["min"], p["max"], p["access"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
