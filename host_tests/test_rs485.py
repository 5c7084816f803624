# The RS485 port (lib/drivers/rs485.py) and its idle-gap framing
# (lib/drivers/rs485frame.py) against a UART model on a virtual microsecond
# clock: DE timing, the UART's face, idle-gap framing, timeouts, overflow.
import pytest

from drivers.rs485 import LINK_IN, LINK_OUT, RS485
from drivers.rs485frame import FramedRS485


class Clock:
    def __init__(self):
        self.t = 0

    def ticks(self):
        return self.t & 0x3FFFFFFF

    def sleep(self, us):
        self.t += us


class Pin:
    def __init__(self, clk):
        self.clk = clk
        self.level = 0
        self.edges = []

    def value(self, v=None):
        if v is None:
            return self.level
        if v != self.level:
            self.edges.append((self.clk.t, v))
        self.level = v


class Uart:
    """8N1 at `baud`: bytes written leave one per character time; received
    bytes become readable at their scheduled arrival times. mode: 'txdone',
    'flush' or 'plain' (neither)."""

    def __init__(self, clk, baud, de, mode="txdone"):
        self.clk, self.de = clk, de
        self.char_us = 10 * 1000000 / baud
        self.tx_end = 0
        self.sent = []          # (byte, start time, end time, DE level at start)
        self.rx = []            # (arrival time, byte)
        if mode in ("txdone", "flush"):
            setattr(self, mode, getattr(self, "_" + mode))

    def write(self, data):
        t = max(self.clk.t, self.tx_end)
        for b in data:
            self.sent.append((b, t, t + self.char_us, self.de.level))
            t += self.char_us
        self.tx_end = t
        return len(data)

    def _txdone(self):
        return self.clk.t >= self.tx_end

    def _flush(self):
        # like most ports: returns when the FIFO is empty, i.e. the last byte
        # is in the shift register (one character before it has left)
        self.clk.t = max(self.clk.t, self.tx_end - self.char_us)

    def any(self):
        return sum(1 for t, _ in self.rx if t <= self.clk.t)

    def readinto(self, buf):
        n = 0
        while n < len(buf) and self.rx and self.rx[0][0] <= self.clk.t:
            buf[n] = self.rx.pop(0)[1]
            n += 1
        return n

    def feed(self, start_us, data, gap_chars=0.0):
        """Bytes back to back from start_us (each arrives at its stop bit),
        with gap_chars of silence between consecutive bytes."""
        t = start_us
        for b in data:
            t += self.char_us
            self.rx.append((t, b))
            t += gap_chars * self.char_us
        return t


def port(baud=9600, mode="txdone", frame_size=256):
    clk = Clock()
    de = Pin(clk)
    u = Uart(clk, baud, de, mode)
    p = FramedRS485(u, de, baud, bus=LINK_OUT, frame_size=frame_size, ticks_us=clk.ticks, sleep_us=clk.sleep)
    return p, u, de, clk


def test_the_port_has_the_uarts_face():
    # what app.link and app.router use of board.link_in / link_out: write
    # with DE, and the UART's received bytes as they came
    clk = Clock()
    de = Pin(clk)
    u = Uart(clk, 9600, de)
    u.read = lambda n=None: bytes(u.rx.pop(0)[1] for _ in range(len(u.rx) if n is None else n))
    p = RS485(u, de, 9600, bus=LINK_IN, ticks_us=clk.ticks, sleep_us=clk.sleep)
    assert p.write(b"ab") == 2 and [b for b, *_ in u.sent] == [97, 98] and de.level == 0
    u.feed(clk.t, b"xyz123")
    clk.t += 10 * 1042
    assert p.any() == 6
    buf = bytearray(2)
    assert p.readinto(buf) == 2 and buf == b"xy"
    assert p.read(1) == b"z" and p.read() == b"123" and p.any() == 0


def test_character_and_gap_times_from_the_baud_rate():
    p, *_ = port(9600)
    assert p.char_us == 1042 and p.gap_us == 3647  # 10 bits / 9600 baud; x 3.5
    p.set_baud(115200)
    assert p.char_us == 87 and p.gap_us == 305
    assert (LINK_IN, LINK_OUT) == (1, 2)


@pytest.mark.parametrize("mode", ["txdone", "flush", "plain"])
@pytest.mark.parametrize("baud", [9600, 115200])
def test_de_high_while_sending_low_after_the_last_byte(mode, baud):
    p, u, de, clk = port(baud, mode)
    assert de.level == 0
    p.write(b"~20014A420000FDA2\r")
    assert all(level == 1 for _, _, _, level in u.sent)  # DE high for every byte
    last_end = u.sent[-1][2]
    (t_on, on), (t_off, off) = de.edges
    assert on == 1 and off == 0 and t_on <= u.sent[0][1]
    assert t_off >= last_end  # not before the last stop bit has left
    assert t_off - last_end <= 2 * p.char_us  # and promptly after it
    assert p.tx_bytes == 18 and p.tx_timeouts == 0


def test_de_dropped_even_when_txdone_never_comes():
    p, u, de, clk = port(9600)
    u.txdone = lambda: False
    p.write(b"abc")
    assert de.level == 0 and p.tx_timeouts == 1
    assert clk.t <= 6 * p.char_us


def test_idle_gap_splits_frames_and_not_inside_one():
    p, u, de, clk = port(9600)
    # frame 1: bytes with 3 character times of silence between them (< 3.5):
    # still one frame; then 4 characters of silence; frame 2
    end = u.feed(0, b"\x01\x03\x00\x10", gap_chars=3.0)
    u.feed(end + 4 * u.char_us, b"\x02\x04")
    assert bytes(p.frame[:p.read_frame(100)]) == b"\x01\x03\x00\x10"
    assert bytes(p.frame[:p.read_frame(100)]) == b"\x02\x04"
    assert p.frames == 2


def test_frame_ends_only_after_three_and_a_half_characters():
    p, u, de, clk = port(115200)
    u.feed(0, b"abc")
    last = u.rx[-1][0]
    while True:
        n = p.poll()
        if n:
            break
        clk.t += 10
    # closed 3.5 characters of silence + the one character a next byte would
    # need to show up, after the last byte (seen within one 10 us poll)
    assert n == 3 and p.gap_us + p.char_us <= clk.t - last < p.gap_us + p.char_us + 20


def test_read_timeout_when_nothing_comes():
    p, u, de, clk = port(9600)
    assert p.read_frame(50) == 0
    assert p.timeouts == 1 and 50000 <= clk.t < 51000


def test_read_timeout_when_the_line_never_goes_quiet():
    p, u, de, clk = port(115200, frame_size=16)
    u.feed(0, bytes(2000))  # a babbling node, far longer than the buffer
    assert p.read_frame(1) == 0
    assert p.timeouts == 1


def test_overflow_cut_and_counted():
    p, u, de, clk = port(115200, frame_size=8)
    u.feed(0, bytes(range(12)))
    n = p.read_frame(100)
    assert n == 8 and bytes(p.frame[:n]) == bytes(range(8))
    assert p.overflows == 1 and p.rx_bytes == 12
    u.feed(clk.t + 10000, b"ok")
    assert bytes(p.frame[:p.read_frame(100)]) == b"ok" and p.overflows == 1


def test_discard_drops_buffered_bytes():
    p, u, de, clk = port(9600)
    u.feed(0, b"junk")
    clk.t = 10 * p.char_us
    p.discard()
    assert p.read_frame(10) == 0


def test_frame_counter_wraps_below_the_small_int_limit():
    # 2**30 frames is ~10 years at 3 frames/s but the counter must never
    # leave the board's small ints (it would allocate on every frame)
    p, u, de, clk = port(9600)
    p.frames = (1 << 30) - 1
    end = u.feed(0, b"\x01\x03\x00\x10")
    u.feed(end + 4 * u.char_us, b"\x02\x04")
    p.read_frame(100)
    assert p.frames == 0
    p.read_frame(100)
    assert p.frames == 1
