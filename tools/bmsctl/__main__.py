import sys

from tools import paths  # noqa: F401  (lib/ on the path for the shared tables)
from tools.bmsctl.cli import main

sys.exit(main())
