# Owns the code names the manuals use for protections, alarms and failures
# (SPEC 2, `003` 5.1), and their bit positions in PackState's bitmasks. The
# trace, the PC tool and the inverter flags all name states through here.
PROTECTIONS = ("COVP", "POVP", "CUVP", "PUVP", "COCP", "DOCP", "SCP",
               "CHTP", "DHTP", "CLTP", "DLTP", "MOS OT", "EOTP", "EUTP")
ALARMS = ("OV", "UV", "TOV", "TUV", "COC", "DOC", "COT", "CUT", "DOT", "DUT",
          "EOT", "EUT", "USOC", "MOS OT", "IMB")
FAULTS = ("CELL", "NTC", "SAMPLE", "AFE", "CHG MOS", "DSG MOS", "PRECHARGE", "REVERSED")


def names(table, mask):
    """The names of the set bits, lowest bit first (allocates: not for the control step)."""
    out = []
    for i in range(len(table)):
        if mask & (1 << i):
            out.append(table[i])
    return out
