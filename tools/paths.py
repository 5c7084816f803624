# Owns the host's module path: the board's /lib, its root (firmware/) and the
# board modules, the way MicroPython sees them on a board.
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _d in ("lib", "firmware", "boards", "tools"):
    _p = os.path.join(ROOT, _d)
    if _p not in sys.path:
        sys.path.insert(0, _p)
