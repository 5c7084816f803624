# The MCP2515 driver (lib/drivers/mcp2515.py) against the register-level model
# of host_tests/sim_mcp2515.py: bit timing, frames over a simulated bus,
# rollover, filters, the three transmit buffers, error states, bus-off with
# back-off, overflow, a chip that stops answering, and recv under heap_lock in
# the real MicroPython.
import os

import pytest

import sim_mcp2515 as sim
from drivers.mcp2515 import MCP2515
from drivers.mcp2515cfg import timing_of
from heap_probe import LOCKED

HERE = os.path.dirname(os.path.abspath(__file__))
EXT = MCP2515.FLAG_EXT_ID


class Clock:
    def __init__(self):
        self.t = 0

    def ticks(self):
        return self.t

    def sleep(self, ms):
        self.t += ms


def node(bus, name, osc=8000000, bitrate=500000, mode=0, int_pin=True, seed=None):
    chip = bus.attach(sim.Mcp2515(osc, seed=seed or (hash(name) & 0xFFFF), name=name))
    clk = Clock()
    can = MCP2515(chip.spi, chip.cs, osc_hz=osc, int_pin=chip.int_pin if int_pin else None,
                  ticks_ms=clk.ticks, sleep_ms=clk.sleep)
    if bitrate:
        can.init(bitrate, mode)
    return chip, can, clk


def slot():
    return [0, memoryview(bytearray(8)), 0, 0]


def frame(res):
    return (res[0], bytes(res[1]), res[2], res[3])


@pytest.fixture
def pair():
    bus = sim.Bus(500000)
    a = node(bus, "a")
    b = node(bus, "b")
    a[1].set_filters(None)
    b[1].set_filters(None)
    yield bus, a, b
    assert a[0].rejected == [] and b[0].rejected == []


# ---- bit timing ---------------------------------------------------------------

@pytest.mark.parametrize("osc,bitrate,cnf", [
    (8000000, 500000, (0x00, 0x90, 0x82)), (8000000, 250000, (0x00, 0xB1, 0x85)),
    (16000000, 500000, (0x00, 0xF0, 0x86)), (16000000, 250000, (0x41, 0xF1, 0x85))])
def test_init_programs_bit_timing_for_each_crystal_and_bitrate(osc, bitrate, cnf):
    bus = sim.Bus(bitrate)
    chip, can, _ = node(bus, "x", osc=osc, bitrate=bitrate)
    assert (chip.reg[sim.CNF1], chip.reg[sim.CNF2], chip.reg[sim.CNF3]) == cnf
    assert chip.mode() == sim.MODE_NORMAL
    assert chip.timing()[0] == bitrate  # the model's own check of the bit-timing rules
    t = can.get_timings()
    assert t[0] == bitrate and t[5] == list(cnf)
    assert t[1] + t[2] + t[3] + 0 >= 7  # sync + tseg1 + tseg2 = 8..25 TQ
    assert can.state() == can.STATE_ACTIVE
    assert chip.rejected == []


def test_bit_timing_rules_hold_and_sample_points():
    # 1 + tseg1 + tseg2 TQ per bit; PS2 > SJW; PropSeg + PS1 >= PS2
    assert timing_of(0x00, 0x90, 0x82, 8000000) == (500000, 1, 4, 3, 625)
    assert timing_of(0x00, 0xB1, 0x85, 8000000) == (250000, 1, 9, 6, 625)
    assert timing_of(0x00, 0xF0, 0x86, 16000000) == (500000, 1, 8, 7, 562)
    assert timing_of(0x41, 0xF1, 0x85, 16000000) == (250000, 2, 9, 6, 625)
    assert timing_of(0xC0, 0x90, 0x81, 8000000) is None  # PS2 (2) not > SJW (4)


def test_unsupported_bitrate_and_wrong_crystal():
    with pytest.raises(ValueError):
        node(sim.Bus(125000), "x", bitrate=125000)
    # a driver told 16 MHz on an 8 MHz chip: programs the wrong timing, cannot talk
    bus = sim.Bus(500000)
    a = node(bus, "a")
    chip = bus.attach(sim.Mcp2515(8000000, name="wrong"))
    wrong = MCP2515(chip.spi, chip.cs, 500000, osc_hz=16000000, sleep_ms=lambda ms: None)
    wrong.set_filters(None)
    a[1].set_filters(None)
    assert chip.timing()[0] == 250000
    wrong.send(0x100, b"x")
    bus.step(2000)
    assert a[1].recv() is None and chip.tec > 0


# ---- frames --------------------------------------------------------------------

def test_send_recv_standard_extended_and_rtr(pair):
    bus, (ca, a, _), (cb, b, _) = pair
    assert a.send(0x351, b"\x10\x02\x20\x03", 0) is not None
    bus.step()
    s = slot()
    assert frame(b.recv(s)) == (0x351, b"\x10\x02\x20\x03", 0, 0)
    assert b.send(0x18FF50E5, bytes(range(8)), EXT) is not None
    bus.step()
    assert frame(a.recv(s)) == (0x18FF50E5, bytes(range(8)), EXT, 0)
    a.send(0x7FF, b"", 0)
    a.send(0x1FFFFFFF, b"\x01", EXT)
    bus.step()
    # standard 0x7FF wins arbitration over extended 0x1FFFFFFF (same base id);
    # both buffers were full when the first was read
    assert frame(b.recv(s)) == (0x7FF, b"", 0, MCP2515.RECV_ERR_FULL)
    assert frame(b.recv(s)) == (0x1FFFFFFF, b"\x01", EXT, 0)
    a.send(0x123, b"\x00" * 3, MCP2515.FLAG_RTR)
    bus.step()
    got = b.recv()  # no list: a new one
    assert (got[0], len(got[1]), got[2]) == (0x123, 3, MCP2515.FLAG_RTR)
    assert b.recv(s) is None
    with pytest.raises(ValueError):
        a.send(0x800, b"", 0)
    with pytest.raises(ValueError):
        a.send(0x100, bytes(9), 0)


def test_rollover_into_rxb1_keeps_order_and_overflow_is_counted(pair):
    bus, (ca, a, _), (cb, b, clk) = pair
    s = slot()
    for i in range(3):
        a.send(0x200 + i, bytes([i]), 0)
        bus.step()
    # 0x200 in RXB0, 0x201 rolled over into RXB1, 0x202 lost
    assert cb.reg[sim.CANINTF] & 0x03 == 0x03
    assert cb.reg[sim.EFLG] & 0x80
    assert b.poll()
    assert b.overruns == 1 and cb.reg[sim.EFLG] & 0xC0 == 0  # counted and cleared
    r = frame(b.recv(s))
    assert r[0] == 0x200 and r[3] == MCP2515.RECV_ERR_FULL | MCP2515.RECV_ERR_OVERRUN
    a.send(0x210, b"", 0)  # lands in RXB0 while RXB1 still holds the older 0x201
    bus.step()
    assert [b.recv(s)[0] for _ in range(2)] == [0x201, 0x210]
    assert b.recv(s) is None
    assert b.get_counters()[7] == 1


def test_filters_masks_and_standard_data_bytes(pair):
    bus, (ca, a, _), (cb, b, _) = pair
    b.set_filters(((0x351, 0x7FF, 0), (0x355, 0x7FF, 0), (0x18FF5000, 0x1FFFFF00, EXT)))
    assert cb.mode() == sim.MODE_NORMAL
    s = slot()
    sent = [(0x351, b"\xAA\xBB", 0), (0x352, b"", 0), (0x355, b"\x01", 0),
            (0x18FF50E5, b"", EXT), (0x18FF51E5, b"", EXT), (0x351, b"", EXT)]
    got = []
    for i, d, f in sent:
        a.send(i, d, f)
        bus.step()
        r = b.recv(s)
        if r:
            got.append((r[0], r[2]))
    assert got == [(0x351, 0), (0x355, 0), (0x18FF50E5, EXT)]
    with pytest.raises(ValueError):  # three masks
        b.set_filters(((1, 0x7FF, 0), (2, 0x7F0, 0), (3, 0x700, 0)))
    with pytest.raises(ValueError):
        b.set_filters([(i, 0x7FF, 0) for i in range(7)])
    b.set_filters([])
    a.send(0x351, b"", 0)
    bus.step()
    assert b.recv(s) is None and cb.reg[sim.CANINTF] & 3 == 0  # the masks reject it
    b.set_filters(None)
    a.send(0x352, b"", 0)
    bus.step()
    assert b.recv(s)[0] == 0x352


def test_three_transmit_buffers_and_priority(pair):
    bus, (ca, a, _), (cb, b, _) = pair
    assert [a.send(0x500, b"1", 0), a.send(0x100, b"2", 0), a.send(0x300, b"3", 0)] == [0, 1, 2]
    assert all(ca.reg[t] & 0x08 for t in sim.TXB)
    assert a.send(0x050, b"4", 0) is None  # all three busy
    assert a.get_counters()[5] == 3
    bus.step()
    assert [f[1][0] for f in bus.log] == [0x100, 0x300, 0x500]  # lowest id first
    a.send(0x400, b"", 0)
    assert a.send(0x400, b"", 0) is None  # same id queued: order not guaranteed
    assert a.send(0x400, b"", MCP2515.FLAG_UNORDERED) == 1
    assert a.cancel_send(1) is True and a.cancel_send(2) is False


def test_lone_node_goes_error_passive_not_bus_off():
    bus = sim.Bus(500000)
    chip, can, _ = node(bus, "alone")
    can.send(0x100, b"", 0)
    bus.step(20000)
    assert chip.tec == 128 and not chip.bus_off  # ACK errors stop counting at passive
    assert can.poll() and can.state() == can.STATE_PASSIVE
    assert can.passives == 1 and can.warnings == 1


def test_bus_off_detected_recovered_with_back_off(pair):
    bus, (ca, a, clk), (cb, b, _) = pair
    bus.fault = "bit_error"
    a.send(0x100, b"", 0)
    bus.step(20000)
    assert ca.bus_off
    assert a.poll() and a.state() == a.STATE_BUS_OFF and a.bus_offs == 1
    assert not any(ca.reg[t] & 0x08 for t in sim.TXB)  # queued frames aborted
    with pytest.raises(OSError):
        a.send(0x100, b"", 0)
    bus.fault = None
    bus.idle(128 * 11 - 11)
    assert ca.bus_off
    bus.idle(11)  # 128 x 11 recessive bits: the chip recovers by itself
    assert not ca.bus_off and ca.tec == 0
    a.poll()
    assert a.state() == a.STATE_BUS_OFF  # our back-off still holds transmissions
    clk.t += 99
    a.poll()
    assert a.state() == a.STATE_BUS_OFF
    clk.t += 1
    a.poll()
    assert a.state() == a.STATE_ACTIVE
    assert a.send(0x101, b"", 0) is not None
    bus.step()
    assert b.recv()[0] == 0x101
    # a second bus-off soon after: the back-off doubles
    bus.fault = "bit_error"
    a.send(0x102, b"", 0)
    bus.step(20000)
    a.poll()
    bus.fault = None
    bus.idle(128 * 11)
    a.poll()
    clk.t += 100
    a.poll()
    assert a.state() == a.STATE_BUS_OFF
    clk.t += 100
    a.poll()
    assert a.state() == a.STATE_ACTIVE and a.bus_offs == 2
    # restart() leaves bus-off at once
    bus.fault = "bit_error"
    a.send(0x103, b"", 0)
    bus.step(20000)
    a.poll()
    a.restart()
    assert a.state() == a.STATE_ACTIVE and ca.tec == 0


def test_interrupt_pin_sets_a_flag_and_recv_skips_spi_while_high(pair):
    bus, (ca, a, _), (cb, b, _) = pair
    s = slot()
    n = cb.transactions
    assert b.recv(s) is None and cb.transactions == n  # INT high: no SPI at all
    assert not b.any()
    a.send(0x10, b"\x01", 0)
    bus.step()
    assert cb.int_pin.irq_calls == 1 and b._irq is True and b.any()
    assert b.recv(s)[0] == 0x10
    assert cb.int_pin.value() == 1


def test_chip_that_stops_answering_is_counted_and_reinitialised():
    bus = sim.Bus(500000)
    chip, can, clk = node(bus, "x", int_pin=False)
    can.set_filters(None)
    chip.dead = True
    assert can.recv(slot()) is None and can.spi_errors == 1
    assert can.poll() is False and can.spi_errors == 2
    assert can.state() == can.STATE_STOPPED
    with pytest.raises(OSError):
        can.send(0x1, b"", 0)
    assert can.poll() is False  # retry after the back-off fails again: counted
    clk.t += 100
    assert can.poll() is False and can.spi_errors == 3
    chip.dead = False
    clk.t += 200
    assert can.poll() is True
    assert can.state() == can.STATE_ACTIVE and can.chip_resets == 1
    assert chip.reg[sim.RXB[0]] & 0x60 == 0x60  # filters restored


def test_init_on_missing_chip_and_spi_faults_raise_and_count():
    bus = sim.Bus(500000)
    chip = bus.attach(sim.Mcp2515(8000000))
    chip.dead = True
    can = MCP2515(chip.spi, chip.cs, osc_hz=8000000, sleep_ms=lambda ms: None)
    with pytest.raises(OSError):
        can.init(500000)
    assert can.spi_errors == 1 and can.state() == can.STATE_STOPPED
    chip.dead = False
    can.init(500000)
    can.set_filters(None)
    chip.spi.fail = True
    with pytest.raises(OSError):
        can.send(0x1, b"", 0)
    assert can.recv() is None
    assert can.spi_errors == 3 and chip.cs.level == 1  # CS released after the fault


def test_mode_change_not_confirmed_times_out():
    bus = sim.Bus(500000)
    chip = bus.attach(sim.Mcp2515(8000000))
    chip.stuck_mode = True
    clk = Clock()
    can = MCP2515(chip.spi, chip.cs, osc_hz=8000000, ticks_ms=clk.ticks, sleep_ms=clk.sleep)
    with pytest.raises(OSError):
        can.init(500000)
    assert can.timeouts == 1 and can.spi_errors == 1
    assert 20 <= clk.t <= 30  # about 20 ms of polling


def test_chip_reset_behind_our_back_is_detected(pair):
    bus, (ca, a, _), (cb, b, _) = pair
    cb.reset()  # brown-out: configuration mode, CNF zero, filters garbage
    assert b.poll()
    assert b.chip_resets == 1 and cb.mode() == sim.MODE_NORMAL
    a.send(0x42, b"", 0)
    bus.step()
    assert b.recv()[0] == 0x42


def test_listen_only_and_loopback_modes():
    bus = sim.Bus(500000)
    ca, a, _ = node(bus, "a")
    cl, lo, _ = node(bus, "l", mode=MCP2515.MODE_SILENT)
    lo.set_filters(None)
    assert cl.mode() == sim.MODE_LISTEN
    a.send(0x1, b"", 0)
    bus.step(700)
    assert 0 < ca.tec <= 127  # a listener does not acknowledge: ACK errors
    assert lo.recv() is None  # and the frame an error-active sender flags is not stored
    assert lo.msg_errors > 0 and cl.rec == 0  # MERRF counted; REC stays 0 listen-only
    bus.step(5000)
    # error-passive (TEC > 127): its error flag is recessive, the frame valid for a listener
    assert ca.tec > 127 and lo.recv()[0] == 0x1
    while lo.recv() is not None:  # the retries of 0x1: each one valid for the listener
        pass
    a.restart()
    node(bus, "b")  # a normal node acknowledges
    a.send(0x2, b"", 0)
    bus.step(5000)
    assert lo.recv()[0] == 0x2 and ca.tec == 0
    cx, x, _ = node(sim.Bus(500000), "x", mode=MCP2515.MODE_LOOPBACK)
    x.set_filters(None)
    x.send(0x7, b"\x07", 0)
    cx.bus.step()
    assert frame(x.recv()) == (0x7, b"\x07", 0, 0)


# ---- the model rejects what the chip would not do ---------------------------------

def test_model_rejects_config_writes_outside_configuration_mode():
    bus = sim.Bus(500000)
    chip, can, _ = node(bus, "x")
    cs, spi = chip.cs, chip.spi
    cs.value(0)
    spi.write(bytes((sim.WRITE, sim.CNF1, 0x41)))
    cs.value(1)
    assert chip.reg[sim.CNF1] == 0x00 and chip.rejected
    chip.rejected.clear()
    can.send(0x1, b"", 0)  # nobody ACKs: stays pending
    cs.value(0)
    spi.write(bytes((sim.WRITE, 0x35, 0x08)))  # TXB0DLC while TXREQ is set
    cs.value(1)
    assert chip.rejected == ["write to TXB0 while TXREQ is set"]


def test_model_filters_and_masks_are_garbage_after_reset():
    # a driver that never writes the filters receives whatever they happen to
    # match: the driver must write them all
    chip = sim.Mcp2515(8000000, seed=7)
    assert any(chip.reg[a] for a in range(0x20, 0x28))


# ---- MicroPython: recv allocates nothing ---------------------------------------

HEAP_LOCK_RECV = """
with open('/lib/sim_mcp2515.py', 'w') as f:
    f.write(%(model)r)
import sim_mcp2515 as sim
from drivers.mcp2515 import MCP2515

bus = sim.Bus(500000)
nodes = []
for name in ('a', 'b'):
    chip = bus.attach(sim.Mcp2515(8000000, name=name))
    can = MCP2515(chip.spi, chip.cs, 500000, osc_hz=8000000, int_pin=chip.int_pin,
                  ticks_ms=lambda: 0, sleep_ms=lambda ms: None)
    can.set_filters(None)
    nodes.append(can)
a, b = nodes
s = [0, memoryview(bytearray(8)), 0, 0]

""" + LOCKED + """
def probe():
    if not lock_works():
        return "heap_lock does not catch allocation"
    a.send(0x100, b'w', 0)
    bus.step()
    b.recv(s)  # first use of this buffer builds its views
    out = []
    for i in range(6):
        if i %% 2:
            a.send(0x18FF5000 + i, bytes([i] * 8), MCP2515.FLAG_EXT_ID)
        else:
            a.send(0x300 + i, bytes([i] * i), 0)
        bus.step()
        r = locked(b.recv, s)
        if r == "allocates":
            return "recv allocates"
        out.append((r[0], bytes(r[1]), r[2]))
        if locked(b.poll) == "allocates":
            return "poll allocates"
    if locked(b.recv, s) is not None:
        return "empty recv"
    return out

print(probe())
"""


def test_recv_and_poll_allocate_nothing_in_micropython(mpy):
    with open(os.path.join(HERE, "sim_mcp2515.py")) as f:
        model = f.read()
    r = mpy.run(HEAP_LOCK_RECV % {"model": model}, timeout_s=120)
    assert r.returncode == 0, r.stderr
    want = []
    for i in range(6):
        if i % 2:
            want.append((0x18FF5000 + i, bytes([i] * 8), MCP2515.FLAG_EXT_ID))
        else:
            want.append((0x300 + i, bytes([i] * i), 0))
    assert r.stdout.strip() == str(want)


# ---- bit rate: listen-only, MERRF, error frames -------------------------------------

def test_listen_only_at_another_rate_sees_errors_and_disturbs_nobody():
    # Two nodes talk at 250 kbit/s. A node listening at 500 kbit/s counts receive
    # errors (MERRF; its REC stays 0: DS20001801 10.4 freezes the counters) and
    # destroys nothing; the same node in normal mode answers with error frames
    # that destroy the others' frames (the hazard of a wrong rate).
    bus = sim.Bus(250000)
    ca, a, _ = node(bus, "a", bitrate=250000)
    cb, b, _ = node(bus, "b", bitrate=250000)
    cl, lo, _ = node(bus, "l", bitrate=500000, mode=MCP2515.MODE_SILENT)
    for n in (a, b, lo):
        n.set_filters(None)
    got = []
    for i in range(5):
        a.send(0x305, bytes([i] * 8), 0)
        bus.step(2000)
        lo.poll()  # the CAN task's poll: counts MERRF
        got.append(b.recv()[1][0])
    assert lo.msg_errors == 5 and cl.rec == 0 and lo.recv() is None
    assert bus.error_frames == 0 and ca.tec == 0 and cb.rec == 0
    assert got == [0, 1, 2, 3, 4]  # the two at 250 kbit/s undisturbed
    with pytest.raises(OSError):  # listen-only: the driver refuses to queue a frame
        lo.send(0x1, b"", 0)
    assert cl.pending_tx() is None
    lo.init(250000, MCP2515.MODE_SILENT)  # the rate the others use: a valid frame
    lo.set_filters(None)
    a.send(0x306, b"\x01", 0)
    bus.step(2000)
    assert lo.recv()[0] == 0x306 and bus.error_frames == 0
    lo.init(500000)  # normal mode at the wrong rate: it flags every frame it sees
    a.send(0x307, b"\x02", 0)
    bus.step(300)
    assert bus.error_frames > 0 and ca.tec > 0 and cl.rec > 0
    assert cb.reg[sim.CANINTF] & 0x80  # b saw its frame destroyed


def test_the_first_items_group_gets_both_buffers(pair):
    """RXB0 rolls over into RXB1: the group of the first item (the busy 29-bit
    frames: the link, then the host protocol's ISO-TP) takes RXB0 where it fits,
    so two back-to-back 29-bit frames both wait; the inverter's 11-bit frames
    have RXB1 alone. The firmware's own selections, as app.compose sets them
    (two subscribers of the host selection: one filter)."""
    from proto import link, pylon_can
    from app.hostport import SELECTION
    bus, (ca, a, _), (cb, b, _) = pair
    b.set_filters((link.CAN_FILTER, pylon_can.CAN_FILTER, SELECTION, SELECTION))
    assert (b.rx_depth(True), b.rx_depth(False)) == (2, 1)
    s = slot()
    a.send(0x18DA03F1, b"\x21" + bytes(7), EXT)  # two consecutive frames of an ISO-TP block
    bus.step()
    a.send(0x18DA03F1, b"\x22" + bytes(7), EXT)
    bus.step()
    assert [bytes(b.recv(s)[1])[0] for _ in range(2)] == [0x21, 0x22] and b.overruns == 0
    a.send(0x305, b"\x01", 0)
    bus.step()
    a.send(0x305, b"\x02", 0)
    bus.step()
    b.poll()
    assert bytes(b.recv(s)[1]) == b"\x01" and b.recv(s) is None and b.overruns == 1  # one buffer
    # a group of more than two filters cannot have RXB0: the other one takes it
    b.set_filters(((0x18DA0300, 0x1FFFFF00, EXT), (0x18DB0300, 0x1FFFFF00, EXT), (0x18DC0300, 0x1FFFFF00, EXT),
                   (0x305, 0x7FF, 0)))
    assert (b.rx_depth(True), b.rx_depth(False)) == (1, 2)
    b.set_filters(None)
    assert (b.rx_depth(True), b.rx_depth(False)) == (2, 2)
    b.set_filters([])
    assert (b.rx_depth(True), b.rx_depth(False)) == (0, 0)


DROPPED_SETUP = """
from drivers.mcp2515 import MCP2515

class Dead:  # no chip: reads 0xFF
    def write(self, b):
        pass
    def readinto(self, b):
        for i in range(len(b)):
            b[i] = 0xFF

class Pin:
    def value(self, v=None):
        return 1

c = MCP2515(Dead(), Pin())
"""
DROPPED_CALLS = """
c.set_filters([(0x305, 0x7FF, 0), (0x1000, 0x1FFFF000, c.FLAG_EXT_ID)])
try:
    c.init(500000, c.MODE_SILENT, sample_point=62.5)
except OSError:
    pass
c.get_timings()
"""


def test_the_set_up_code_leaves_the_heap_after_each_call(dropped_after_each_call):
    # drivers.once: mcp2515cfg is imported for set_filters / init's timing
    # check / get_timings and dropped after each: nothing of it stays referenced (the heap is the
    # same after every round), and it was really gone (importing it to keep
    # costs its code)
    dropped_after_each_call(DROPPED_SETUP, DROPPED_CALLS, "drivers.mcp2515cfg", 1024, "128K")
