"""tools/canbus.open_bus: on udp_multicast two buses on different groups (two
benches on one machine) do not hear each other, and one group still works."""
import sys

import can
import pytest

from tools.canbus import open_bus


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="IP_MULTICAST_ALL is Linux's")
def test_udp_multicast_hears_only_its_own_group():
    a1 = open_bus("udp_multicast", "239.74.170.1")
    a2 = open_bus("udp_multicast", "239.74.170.1")
    b = open_bus("udp_multicast", "239.74.170.2")
    try:
        a1.send(can.Message(arbitration_id=0x18EF01F1, data=b"\x02\x03\x00", is_extended_id=True))
        got = a2.recv(timeout=2.0)
        assert got is not None and got.arbitration_id == 0x18EF01F1  # the same group hears it
        assert b.recv(timeout=0.3) is None  # the other group does not
    finally:
        for bus in (a1, a2, b):
            bus.shutdown()
