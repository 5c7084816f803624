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
         "dc": ("degC", 0.1), "pct": ("%", 1), "mah": ("Ah", 0.001), "count": ("", 1),
         "ppm": ("ppm", 1)}


def _board():
    for d in (os.path.join(ROOT, "lib"), os.path.join(ROOT, "firmware")):
        if d not in sys.path:
            sys.path.insert(0, d)
    from app import host, hostctl, hostfile
    from bms import ptable
    from proto import sunspec
    return host, hostctl, hostfile, ptable, sunspec


def describe():
    host, ctl, hf, ptable, ss = _board()
    from store import eventlog as ev
    access = {ptable.USER: "RW", ptable.ADMIN: "RW", ptable.FACTORY: "R"}
    from bms.params import INSTALLATION
    params = []
    for pid, name, default, lo, hi, acc in ptable.TABLE:
        unit, scale = UNITS.get(name.rsplit("_", 1)[-1], ("", 1))
        params.append({"register": host.PARAM + 2 * (pid - 1), "regs": 2, "type": "int32", "id": pid,
                       "name": name, "unit": unit, "scale": scale, "min": lo, "max": hi,
                       "default": default, "access": access[acc],
                       "write_level": host.INSTALLER if access[acc] == "RW" else None,
                       "installation": pid - 1 in INSTALLATION})
    blocks = [
        {"register": host.INFO, "regs": host.INFO_REGS, "name": "info", "access": "R",
         "fields": ["map_version", "param_count", "param_base", "firmware_version", "unit", "serial[16]",
                    "address_fixed", "address_conflict",
                    {"name": "can_kbps", "unit": "kbit/s",
                     "meaning": "CAN bit rate the pack runs at; 0 while it still listens (sends nothing)"},
                    {"name": "can_stored_kbps", "unit": "kbit/s",
                     "meaning": "the stored rate (can_bitrate_count) it listens at first after a start"}],
         "note": "unit: the pack's link address (unit id through the master); address_fixed: 1 = fixed "
                 "(parameter link_fixed_address_count or the DIP, as read at start), 0 = automatic; "
                 "address_conflict: an address another pack also uses (heard in the last 3.5 s), 0 none"},
        {"register": host.DIAG, "regs": host.DIAG_REGS, "name": "diag", "access": "R",
         "fields": ["reason", "register", "param_id", "refused", "text[64]"],
         "reasons": list(host.REASONS)},
        {"register": host.CHALLENGE, "regs": host.CHALLENGE_REGS, "name": "challenge", "access": "R",
         "note": "read all 8: a fresh 16-byte nonce; exception 06 while locked out"},
        {"register": host.LOGIN, "regs": host.LOGIN_REGS, "name": "login", "access": "RW",
         "note": "read 1: session level; write 0: log out; write level + HMAC-SHA-256(secret, nonce + level)"},
        {"register": host.SET_SECRET, "regs": host.SET_SECRET_REGS, "name": "set_secret", "access": "W",
         "write_level": host.INSTALLER,
         "note": "write all 33: level, then the 64-byte blob of tools.authkit.set_secret_blob (installer "
                 "session; that level's sessions end); never readable"},
        {"register": host.PROVISION, "regs": host.PROVISION_REGS, "name": "provision", "access": "W",
         "note": "write all 17: level, then the 32-byte secret in clear: commissioning, only in "
                 "maintenance mode (the forced-update jumper fitted at boot) with the button held; "
                 "else exception 01 (counted); journalled (event kind %d, value = the level)" % ev.KIND_HOST},
        {"register": ctl.CTL, "regs": ctl.CTL_REGS, "name": "control", "access": "RW",
         "note": "a command is one write covering exactly its registers; without the level: "
                 "exception 01 (counted); a value outside min..max: 03 (DIAG says why); "
                 "a calibration before the last one was applied: 06; every accepted write is "
                 "journalled (event kind %d, code = offset)" % ev.KIND_HOST,
         "fields": _ctl(ctl)},
        {"register": host.PARAM, "regs": host.PARAM_REGS, "name": "params", "access": "RW"},
        {"register": ss.SUNS, "regs": 2, "name": "SunS", "access": "R"},
        {"register": ss.AT_1, "regs": 2 + ss.L_1, "name": "sunspec_1", "model": 1, "access": "R"},
        {"register": ss.AT_802, "regs": 2 + ss.L_802, "name": "sunspec_802", "model": 802, "access": "R"},
        {"register": ss.AT_803, "regs": 2 + ss.L_803, "name": "sunspec_803", "model": 803, "access": "R",
         "note": "the system as a bank: %d string rows, string k = the pack at link address k" % ss.MAX_STRINGS},
        {"register": ss.AT_804, "regs": 2 + ss.L_804, "name": "sunspec_804", "model": 804, "access": "R",
         "note": "this pack's string (index = its link address), one module"},
        {"register": ss.AT_805, "regs": 2 + ss.L_805, "name": "sunspec_805", "model": 805, "access": "R"},
        {"register": ss.AT_END, "regs": 2, "name": "sunspec_end", "access": "R"},
    ]
    return {"map_version": host.MAP_VERSION, "blocks": blocks, "params": params, "files": _files(hf, ctl, ev)}


def _ctl(c):
    """The CTL block's registers: offset (also the journal's event code), registers, type,
    access, write level, range, meaning."""
    i, u = c.INSTALLER, c.USER
    rows = [
        (c.H_CLOCK, "clock_s", 2, "uint32", "RW", i, c.CLOCK_MIN_S, c.CLOCK_MAX_S,
         "Unix time (s), 0 while not set; write: set the clock (journalled, C_CLOCK_SET)"),
        (c.H_CLOCK_SET, "clock_set", 1, "uint16", "R", None, 0, 1, "1 once the clock is set"),
        (c.H_FETS, "fet_off", 1, "uint16", "RW", i, 0, 3,
         "FETs held open: bit 0 charge, bit 1 discharge; 0 releases (protections still decide)"),
        (c.H_BUZZER, "buzzer", 1, "uint16", "RW", u, 0, 1, "buzzer on/off (parameter buzzer_enable)"),
        (c.H_SLEEP, "sleep", 1, "uint16", "RW", i, 1, 2, "write 1: sleep, 2: wake; reads 1 while asleep"),
        (c.H_RESET, "reset", 1, "uint16", "RW", i, 1, 1,
         "write 1: protection reset as the button does (latched faults, lock-outs, SCP); "
         "reads the resets asked (low 16 bits)"),
        (c.H_DEFAULTS, "defaults", 1, "uint16", "W", i, 1, 1, "write 1: parameters back to defaults"),
        (c.H_HISTORY_CLEAR, "history_clear", 1, "uint16", "W", i, 1, 1, "write 1: clear the event history"),
        (c.H_I_OFFSET, "i_offset_ma", 2, "int32", "RW", i, "-current_deadband_ma", "current_deadband_ma",
         "current sensor offset (mA)"),
        (c.H_FCC, "capacity_mah", 2, "int32", "RW", i, "rated_capacity_mah/2", "1.1*rated_capacity_mah",
         "full-charge capacity (mAh); SOH follows"),
        (c.H_SOC, "soc_ppm", 2, "int32", "RW", i, 0, 1000000, "state of charge (ppm)"),
        (c.H_CYCLES, "cycles", 2, "int32", "RW", i, 0, c.MAX_CYCLES, "cycle count"),
        (c.H_V_GAIN, "v_gain_ppm", 2, "int32", "RW", i, _row(c.P.CAL_V_GAIN_PPM, 3), _row(c.P.CAL_V_GAIN_PPM, 4),
         "voltage gain (ppm, 1000000 = as read) on cells, stack and pack side (parameter cal_v_gain_ppm)"),
        (c.H_I_GAIN, "i_gain_ppm", 2, "int32", "RW", i, _row(c.P.CAL_I_GAIN_PPM, 3), _row(c.P.CAL_I_GAIN_PPM, 4),
         "current gain (ppm) before the offset (parameter cal_i_gain_ppm)"),
        (c.H_REMOVE, "remove_pack", 1, "uint16", "RW", i, 2, c.MAX_PACKS,
         "master: write the link address of a pack it no longer hears: it leaves the system "
         "(its parallel failure ends); reads the packs offline"),
        (c.H_RESTART, "restart", 1, "uint16", "W", i, 1, 1,
         "write 1: the MCU restarts after the reply (counters saved first)"),
    ]
    return [{"register": c.CTL + k, "offset": k, "name": n, "regs": r, "type": t, "access": a,
             "write_level": lv, "min": lo, "max": hi, "meaning": m}
            for k, n, r, t, a, lv, lo, hi, m in rows]


def _row(index, col):
    from bms import ptable
    return ptable.TABLE[index][col]


def _files(f, c, ev):
    """FC 0x14 file records: the history index and the events (app.hostfile);
    the update session's files (app.hostupd)."""
    from app import hostupd as u  # on sys.path since _board()
    from proto import modbus as mb
    return [
        {"file": u.FILE_CTL, "name": "update_ctl", "access": "RW", "write_level": c.INSTALLER,
         "records": u.STATUS_REGS,
         "note": "FC 0x15 record 0: a command (1 begin: total u32, offset u32; 2 check; 3 activate; 0 end); "
                 "FC 0x14: the status (state, reason, received u32, total u32, block bytes, session, "
                 "manifest SHA-256, block function)"},
        {"file": u.FILE_DATA, "name": "update_data", "access": "W", "write_level": c.INSTALLER,
         "block_bytes": u.BLOCK_BYTES, "block_function": mb.FC_UPDATE_BLOCK,
         "note": "FC 0x15 record k: bundle bytes k * block_bytes .., the next block only; or function "
                 "block_function: byte count, block k u16, the bytes (unpadded); reply: k"},
        {"file": f.FILE_INDEX, "name": "history_index", "records": f.INDEX_REGS, "access": "R",
         "fields": [["count", "uint32"], ["oldest_seq", "uint32"], ["newest_seq", "uint32"]],
         "note": "newest_seq 0xFFFFFFFF when empty"},
        {"file": f.FILE_EVENTS, "name": "history", "access": "R", "record_regs": f.EV_REGS,
         "records_per_file": f.PER_FILE,
         "addressing": "event seq s: file %d + s // %d, record s %% %d; length = n * %d registers "
                       "(events s .. s + n - 1, in one file)" % (f.FILE_EVENTS, f.PER_FILE, f.PER_FILE,
                                                                 f.EV_REGS),
         "fields": [["seq", "uint32"], ["t_s", "uint32"], ["boot", "uint16"], ["flags", "uint8"],
                    ["kind", "uint8"], ["code", "uint8"], ["pack", "uint8"], ["value", "int32"]],
         "flags": {"1": "raised (for kinds %d, %d: the value after; clear: before)" % (ev.KIND_PARAM, ev.KIND_HOST),
                   "2": "t_s counts from the start of boot `boot` (clock not set), else Unix time"},
         "kinds": {"0": "alarm", "1": "protection", "2": "fault", str(ev.KIND_STORE): "store/firmware",
                   str(ev.KIND_PARAM): "parameter write (code: parameter id)",
                   str(ev.KIND_HOST): "host command (code: control offset)"},
         "host_codes": {str(c.J_SET_SECRET): "set_secret (value before: 1 if the level had a secret; "
                                             "after: the level)",
                        str(c.J_PROVISION): "provision (commissioning; value after: the level)"},
         "clear": "control register %d (history_clear), installer" % (c.CTL + c.H_HISTORY_CLEAR)},
    ]


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
