# Frozen into the firmware (bytecode and qstrs in flash, not in the heap):
# the port's usual modules, and the BMS's stable lower layers (defs, proto,
# drivers, store, update: tools/frozen.py's "lower" part, the deployed copies
# with const() inlined as tools/deploy.py makes them, staged under
# build/frozen/BMS_ESP32_ROMFS/). The app (app/, bms/, board, main) stays in the ROMFS
# image, which an update replaces; the frozen packages shadow their copies
# there ('.frozen' comes before '/rom' on sys.path). README "RAM and CPU on
# the board" has the figures. makemanifest runs this with the cwd set to
# this directory.
import os
import sys

_root = os.path.abspath(os.path.join(os.getcwd(), "..", "..", ".."))
sys.path.insert(0, _root)
from tools import frozen  # noqa: E402

include("$(PORT_DIR)/boards/manifest.py")
# BMS_OWNER_KEY (make firmware OWNER_KEY=F.pub): the update key built into update/trust.py
frozen.stage("esp32_bq", "lower", os.path.join(_root, "build", "frozen", "BMS_ESP32_ROMFS"),
             owner_key=os.environ.get("BMS_OWNER_KEY"))
freeze(os.path.join(_root, "build", "frozen", "BMS_ESP32_ROMFS", "src"))
