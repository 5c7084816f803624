# Owns the host-side inverter emulators (CPython only, cantools + the DBC):
# a Victron GX, an SMA Sunny Island and a Pylon-family hybrid on the CAN bus,
# and a Pylon-family hybrid polling over RS485. They consume the battery's
# frames and act on them: charge only up to CVL/CCL, discharge only up to
# DCL, and raise their own alarm (current 0) when the battery goes silent.
from tools.emulators.inverters import CanInverter, Rs485Inverter, make, KINDS  # noqa: F401
