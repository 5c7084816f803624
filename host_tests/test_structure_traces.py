"""A change of structure changes nothing a pack does: the traces of the
fixed scenarios in fixtures/structure (the demo; 8 packs with a cable pulled
and a pack switched off and on; the Victron, SMA and Pylon emulators on CAN and
Pylon on RS485; DOCP lock-out and button reset; a power cycle) are the ones
recorded (tools/tracefix.py). A change that is meant to alter behaviour
re-records them (`python -m tools.tracefix record NAME`) and says which lines
moved in its commit message."""
import pytest

from tools import tracefix


@pytest.mark.parametrize("name", tracefix.names())
def test_trace_is_the_recorded_one(name):
    d = tracefix.first_difference(tracefix.recorded(name), tracefix.trace(name))
    assert d is None, "%s differs at line %d:\n  was: %s\n  now: %s" % ((name,) + d)
