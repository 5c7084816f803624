# The RS485 port (lib/drivers/rs485.py) against a UART model on a virtual
# microsecond clock: DE timing and the UART's face.
import pytest

from drivers.rs485 import LINK_IN, LINK_OUT, RS485


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


def port(baud=9600, mode="txdone"):
    clk = Clock()
    de = Pin(clk)
    u = Uart(clk, baud, de, mode)
    p = RS485(u, de, baud, bus=LINK_OUT, ticks_us=clk.ticks, sleep_us=clk.sleep)
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


def test_character_time_from_the_baud_rate():
    p, *_ = port(9600)
    assert p.char_us == 1042  # 10 bits (8N1) / 9600 baud, rounded up
    p.set_baud(115200)
    assert p.char_us == 87
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
