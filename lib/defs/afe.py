# Owns the AFE contract: what every analog-front-end driver (BQ76952, the mock
# AFE of lib/sim) provides to the firmware. Drivers subclass Afe and define
# every method its docstring lists; the firmware only calls those.

# Alert bits returned by read_alerts(): the AFE's own hardware protections,
# the second channel independent of the firmware (PROTOCOLS 4, safety alert A).
from defs.const import const
ALERT_CUV = const(0x04)
ALERT_COV = const(0x08)
ALERT_OCC = const(0x10)
ALERT_OCD = const(0x20)
ALERT_SCD = const(0x80)


class HwLimits:
    """Thresholds for the AFE's hardware protections (integer units)."""

    def __init__(self, cov_mv, cuv_mv, occ_ma, ocd_ma, scd_ma,
                 cov_delay_ms, cuv_delay_ms, occ_delay_ms, ocd_delay_ms, scd_delay_us):
        self.cov_mv = cov_mv
        self.cuv_mv = cuv_mv
        self.occ_ma = occ_ma
        self.ocd_ma = ocd_ma
        self.scd_ma = scd_ma
        self.cov_delay_ms = cov_delay_ms
        self.cuv_delay_ms = cuv_delay_ms
        self.occ_delay_ms = occ_delay_ms
        self.ocd_delay_ms = ocd_delay_ms
        self.scd_delay_us = scd_delay_us


class Afe:
    """The interface: what every driver defines (the firmware only calls
    these; the base class holds comm_errors alone, so a board keeps no stub
    methods):
      read(snap): fill snap (cells, stack, pack, current, temperatures) in
        place. Return True on a complete good read; on any transfer error
        count it in comm_errors, leave snap's values as they were and return
        False.
      set_fets(chg, dsg, pchg): command the charge, discharge and pre-charge
        FETs (bools).
      set_balance(mask): bleed the cells whose bit is set (bit 0 = cell 1).
      program_protections(limits): program the hardware protections from a
        HwLimits.
      read_alerts(): latched ALERT_* bits of hardware protections that tripped.
      clear_alerts(mask): clear latched alerts; the hardware re-arms its
        protections."""

    comm_errors = 0  # transfer errors since start (CRC, NACK, timeout); only grows
