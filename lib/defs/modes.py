# Owns the operating modes (SPEC 3) and the rule that picks one from the
# measured current. Pure: inputs are values, the result is a mode number.
POWER_OFF = 0
STANDBY = 1
CHARGE = 2
DISCHARGE = 3
PROTECTION = 4
FAILURE = 5
SLEEP = 6

NAMES = ("power_off", "standby", "charge", "discharge", "protection", "failure", "sleep")


def mode_from_current(current_ma, deadband_ma):
    """Current inside the dead band (SPEC 1) is standby, + charges, - discharges."""
    if current_ma >= deadband_ma:
        return CHARGE
    if current_ma <= -deadband_ma:
        return DISCHARGE
    return STANDBY
