# Owns the operating modes (SPEC 3) and the rule that picks one from the
# measured current. Pure: inputs are values, the result is a mode number.
from defs.const import const
POWER_OFF = const(0)
STANDBY = const(1)
CHARGE = const(2)
DISCHARGE = const(3)
PROTECTION = const(4)
FAILURE = const(5)
SLEEP = const(6)

NAMES = ("power_off", "standby", "charge", "discharge", "protection", "failure", "sleep")


def mode_from_current(current_ma, deadband_ma):
    """Current inside the dead band (SPEC 1) is standby, + charges, - discharges."""
    if current_ma >= deadband_ma:
        return CHARGE
    if current_ma <= -deadband_ma:
        return DISCHARGE
    return STANDBY
