# Owns the code names the manuals use for protections, alarms and failures
# (SPEC 2, `003` 5.1), and their bit positions in PackState's bitmasks. The
# trace, the PC tool and the inverter flags all name states through here.
from defs.const import const
PROTECTIONS = ("COVP", "POVP", "CUVP", "PUVP", "COCP", "DOCP", "SCP",
               "CHTP", "DHTP", "CLTP", "DLTP", "MOS OT", "EOTP", "EUTP",
               "IMB")  # protect: cell imbalance protection (stops charging)
ALARMS = ("OV", "UV", "TOV", "TUV", "COC", "DOC", "COT", "CUT", "DOT", "DUT",
          "EOT", "EUT", "USOC", "MOS OT", "IMB",
          "PARALLEL")  # link: parallel failure (a pack lost, a cut-off slave, an address conflict)
FAULTS = ("CELL", "NTC", "SAMPLE", "AFE", "CHG MOS", "DSG MOS", "PRECHARGE", "REVERSED",
          "IMB", "CURRENT",  # protect: imbalance > 1 V (`004`), current reading stuck
          "STORE")  # store: the flash failed at start (the pack runs without its store)
# What each fault means (bms.protect): CELL = a cell reading out of its physical
# range or stuck; NTC = open or shorted NTC; SAMPLE = sum of cells disagrees with
# the stack voltage; AFE = AFE silent / CRC errors; CHG MOS / DSG MOS = current
# through a FET commanded off; PRECHARGE = pre-charge did not finish; REVERSED =
# reversed polarity on P+/P-; IMB = cell difference beyond imb_fail_mv; CURRENT =
# the current reading stuck; STORE = the store could not be loaded at start, so
# the lock-outs and latched faults from before the reset are unknown: both FETs
# stay off until the button reset (app.app).

# Force-charge request bits in st.force_charge (bms.limits sets them; the
# inverter frames carry them).
FC_I = 1
FC_II = 2
FC_FULL = 4
FC_RECHARGE = 8
FC_NAMES = ("I", "II", "full", "recharge")

# Event kinds (defs.events.Events): which of the three tables an event's index is in.
KIND_ALARM = const(0)
KIND_PROTECTION = const(1)
KIND_FAULT = const(2)
KIND_NAMES = ("alarm", "protection", "fault")


def bit(table, name):
    return 1 << table.index(name)


def mask(table, names_):
    m = 0
    for n in names_:
        m |= 1 << table.index(n)
    return m


# Which protections stop which FET (SPEC 2 "action" column, `000` 3.4): over
# voltage, charge over current, charge temperature and imbalance stop charging;
# under voltage, discharge over current and discharge temperature stop
# discharging; short circuit, MOSFET and ambient temperature stop both. Every
# fault stops both (SPEC 2: sensor / MOS / pre-charge failure "stop both").
CHG_BLOCK = mask(PROTECTIONS, ("COVP", "POVP", "COCP", "CHTP", "CLTP", "SCP", "MOS OT",
                               "EOTP", "EUTP", "IMB"))
DSG_BLOCK = mask(PROTECTIONS, ("CUVP", "PUVP", "DOCP", "DHTP", "DLTP", "SCP", "MOS OT",
                               "EOTP", "EUTP"))
FAULT_CHG_BLOCK = (1 << len(FAULTS)) - 1
FAULT_DSG_BLOCK = (1 << len(FAULTS)) - 1


def chg_allowed(st):
    """The charge FET may be on: no protection or fault that stops charging."""
    return not (st.protections & CHG_BLOCK or st.faults & FAULT_CHG_BLOCK)


def dsg_allowed(st):
    """The discharge FET may be on: no protection or fault that stops discharging."""
    return not (st.protections & DSG_BLOCK or st.faults & FAULT_DSG_BLOCK)


def names(table, mask):
    """The names of the set bits, lowest bit first (allocates: not for the control step)."""
    out = []
    n = len(table)
    i = 0
    while mask >> i and i < n:  # up to the highest bit set
        if mask >> i & 1:
            out.append(table[i])
        i += 1
    return out
