# The board's ISO-TP channel (lib/proto/isotp.py) against can-isotp, an
# independent ISO 15765-2 implementation: messages of every length class go
# both ways (single frame, first + consecutive frames under flow control,
# sequence numbers wrapping past 15), and what the standard calls errors
# (wrong sequence number, an overflowing first frame, a sender that stops,
# no flow control) drop the message, are counted and leave the channel usable.
import time

import isotp
import pytest
from hypothesis import given, settings, strategies as hs

from tools import paths  # noqa: F401
from proto import isotp as tp

BOARD_ID = 0x18EF01F1  # host -> board
HOST_ID = 0x18EFF101  # board -> host


class Pair:
    """can-isotp (the host) wired to our channel (the board) frame by frame."""

    def __init__(self, rx_size=300, tx_size=300, params=None):
        self.to_board = []
        self.to_host = []
        addr = isotp.Address(isotp.AddressingMode.Normal_29bits, txid=BOARD_ID, rxid=HOST_ID)
        self.host = isotp.TransportLayerLogic(
            rxfn=self._host_rx, txfn=lambda m: self.to_board.append(bytes(m.data)), address=addr,
            params=dict({"tx_padding": 0x55}, **(params or {})))
        self.board = tp.Channel(rx_size, tx_size)
        self.now_ms = 1000
        self.got = []

    def _host_rx(self, timeout=0):
        if self.to_host:
            return isotp.CanMessage(arbitration_id=HOST_ID, data=self.to_host.pop(0), extended_id=True)
        return None

    def step(self, board_ms=1):
        self.host.process()
        while self.to_board:
            n = self.board.on_frame(self.to_board.pop(0), self.now_ms)
            if n:
                self.got.append(bytes(self.board.rx[:n]))
        while True:
            n = self.board.pending(self.now_ms)
            if not n:
                break
            self.to_host.append(bytes(self.board.frame[:n]))
            self.board.sent()
        self.now_ms += board_ms

    def run(self, until, limit_s=10.0):
        t0 = time.monotonic()
        while not until():
            assert time.monotonic() - t0 < limit_s, "no progress"
            self.step()
            time.sleep(0.0005)


@pytest.mark.parametrize("n", [1, 7, 8, 13, 14, 62, 112, 113, 256, 300])
def test_host_to_board_every_length_class(n):
    p = Pair()
    msg = bytes((i * 7 + 3) & 0xFF for i in range(n))
    p.host.send(msg)
    p.run(lambda: p.got)
    assert p.got == [msg]
    assert p.board.errors == 0


@pytest.mark.parametrize("n", [1, 7, 8, 20, 120, 250, 300])
def test_board_to_host_every_length_class(n):
    p = Pair()
    msg = bytes((i * 11 + 1) & 0xFF for i in range(n))
    p.board.tx[:n] = msg
    assert p.board.send(n, p.now_ms)
    assert not p.board.send(1, p.now_ms)  # one send at a time
    p.run(lambda: p.host.available())
    assert p.host.recv() == msg
    assert not p.board.busy()
    # every frame the board sent is 8 bytes, padded with 0xCC
    assert all(len(f) == 8 for f in p.to_host)


def test_the_board_honours_the_hosts_block_size_and_stmin():
    p = Pair(params={"blocksize": 3, "stmin": 5})
    msg = bytes(range(100))
    p.board.tx[:100] = msg
    p.board.send(100, p.now_ms)
    sent_at = []
    orig = p.board.sent

    def mark():
        if p.board.frame[0] >> 4 == 2:
            sent_at.append(p.now_ms)
        orig()
    p.board.sent = mark
    p.run(lambda: p.host.available())
    assert p.host.recv() == msg
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:])]
    assert min(gaps) >= 5


def test_our_flow_control_is_what_the_module_says():
    p = Pair()
    p.host.send(bytes(40))
    p.run(lambda: p.to_host)
    fc = p.to_host[0]
    assert fc[0] == 0x30 and fc[1] == tp.BLOCK_SIZE and fc[2] == tp.STMIN_MS


def test_a_first_frame_longer_than_the_buffer_gets_overflow_and_nothing_is_delivered():
    ch = tp.Channel(64, 8)
    assert ch.on_frame(bytes([0x10, 100, 1, 2, 3, 4, 5, 6]), 0) == 0
    assert ch.pending(0) == 8
    assert ch.frame[0] == 0x32  # FC overflow
    assert ch.errors == 1
    # the next good message still comes through
    ch.sent()
    assert ch.on_frame(bytes([0x03, 9, 8, 7, 0, 0, 0, 0]), 1) == 3
    assert bytes(ch.rx[:3]) == bytes([9, 8, 7])


def test_a_wrong_sequence_number_drops_the_message():
    ch = tp.Channel(64, 8)
    ch.on_frame(bytes([0x10, 20, 0, 1, 2, 3, 4, 5]), 0)
    assert ch.on_frame(bytes([0x22, 6, 7, 8, 9, 10, 11, 12]), 1) == 0  # SN 2, 1 expected
    assert ch.errors == 1
    assert ch.on_frame(bytes([0x21, 6, 7, 8, 9, 10, 11, 12]), 2) == 0  # no reception under way now
    assert ch.errors == 2


def test_a_sender_that_stops_times_out_and_the_channel_recovers():
    ch = tp.Channel(64, 8)
    ch.on_frame(bytes([0x10, 20, 0, 1, 2, 3, 4, 5]), 0)
    ch.pending(0)
    ch.sent()
    ch.pending(tp.TIMEOUT_MS + 1)  # N_Cr passed
    assert ch.errors == 1
    assert ch.on_frame(bytes([0x21, 6, 7, 8, 9, 10, 11, 12]), tp.TIMEOUT_MS + 2) == 0
    assert ch.on_frame(bytes([0x02, 5, 6]), tp.TIMEOUT_MS + 3) == 2


def test_no_flow_control_drops_the_send():
    ch = tp.Channel(8, 64)
    ch.send(30, 0)
    assert ch.pending(0) == 8 and ch.frame[0] == 0x10
    ch.sent()
    assert ch.pending(500) == 0 and ch.busy()
    assert ch.pending(tp.TIMEOUT_MS + 1) == 0  # N_Bs passed
    assert not ch.busy() and ch.errors == 1


def test_flow_control_overflow_from_the_peer_drops_the_send():
    ch = tp.Channel(8, 64)
    ch.send(30, 0)
    ch.pending(0)
    ch.sent()
    ch.on_frame(bytes([0x32, 0, 0]), 1)
    assert not ch.busy() and ch.errors == 1


def test_a_tick_wrap_in_the_middle_of_a_send():
    p = Pair()
    p.now_ms = (1 << 30) - 3
    p.board.tx[:50] = bytes(range(50))
    p.board.send(50, p.now_ms)

    def step_wrapped(board_ms=1):
        Pair.step(p, board_ms)
        p.now_ms &= (1 << 30) - 1
    p.step = step_wrapped
    p.run(lambda: p.host.available())
    assert p.host.recv() == bytes(range(50))


@settings(max_examples=300, deadline=None)
@given(hs.lists(hs.binary(min_size=0, max_size=8), max_size=40))
def test_random_frames_never_raise_and_never_deliver_beyond_the_buffer(frames):
    ch = tp.Channel(32, 32)
    t = 0
    for f in frames:
        n = ch.on_frame(f, t)
        assert 0 <= n <= 32
        while ch.pending(t):
            ch.sent()
        t += 3


ON_BOARD = """
import micropython
from proto.isotp import Channel
ch = Channel(64, 64)
peer = Channel(64, 64)
for i in range(50):
    ch.tx[i] = i
got = []
def run():
    # a 50-byte message board -> peer and back, frame by frame, heap locked
    ch.send(50, 0)
    t = 0
    n = 0
    while t < 200 and not n:
        k = ch.pending(t)
        if k:
            n = peer.on_frame(ch.frame, t)
            ch.sent()
        k = peer.pending(t)
        if k:
            ch.on_frame(peer.frame, t)
            peer.sent()
        t += 1
    return n
micropython.heap_lock()
try:
    n = run()
finally:
    micropython.heap_unlock()
print(n, bytes(peer.rx[:n]) == bytes(range(50)), ch.errors, peer.errors)
"""


def test_a_segmented_exchange_allocates_nothing_on_32_bit_micropython(mpy32):
    r = mpy32(ON_BOARD, heap="64K")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["50", "True", "0", "0"]
