"""The simulated wiring: CAN frames reach every powered port on the same
segment, not across an unplugged cable; frames are tapped for the trace and
counted in bits; a serial segment carries bytes both ways only while plugged."""
from sim import bus


def test_can_delivery_cuts_power_and_tap():
    seen = []
    b = bus.CanBus("can", lambda: 1234, tap=lambda *a: seen.append(a))
    inv, p0, p1, p2 = (b.attach(n, pos) for n, pos in (("inv", -1), ("p0", 0), ("p1", 1), ("p2", 2)))
    p0.send(0x351, b"\x30\x02\xe8\x03", 0)
    assert [p.recv()[0] for p in (inv, p1, p2)] == [0x351] * 3
    assert p0.recv() is None  # a node does not receive its own frame
    assert seen == [(1234, "can", 0x351, False, b"\x30\x02\xe8\x03")]
    b.cuts.add(1)  # unplug the cable between pack 1 and pack 2
    p0.send(0x18FF0001, b"x", bus.FLAG_EXT_ID)
    assert inv.any() and p1.any() and not p2.any()
    p2.powered = False
    b.cuts.clear()
    p0.send(0x355, b"", 0)
    assert not p2.any()
    assert seen[-2][3] is True  # extended id tapped as such


def test_frame_bits_match_protocol_figures():
    # PROTOCOLS 6: 8-byte frame 111 bits (standard) / 131 (extended) before
    # stuffing, worst case 135 / 160 after
    assert bus.frame_bits(False, 8) == 111 + (111 - 13) // 4
    assert 111 < bus.frame_bits(False, 8) <= 135
    assert 131 < bus.frame_bits(True, 8) <= 160


def test_receive_queue_overflow_is_counted():
    b = bus.CanBus("can", lambda: 0)
    tx, rx = b.attach("a", 0), b.attach("b", 1)
    for i in range(70):
        tx.send(i, b"", 0)
    first = rx.recv()
    assert first[0] == 0 and first[3] == bus.RECV_ERR_OVERRUN and rx.lost == 0


def test_serial_link_both_ways_and_unplugged():
    link = bus.SerialLink()
    link.a.write(b"~20014A")
    assert link.b.any() == 7 and link.b.read() == b"~20014A" and link.b.read() is None
    link.b.write(b"OK")
    assert link.a.read(1) == b"O" and link.a.read() == b"K"
    link.plugged = False
    link.a.write(b"lost")
    assert link.b.any() == 0
