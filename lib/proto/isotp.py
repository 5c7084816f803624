# Owns ISO-TP (ISO 15765-2) segmentation on classic CAN for the board: one
# channel receives a message of up to len(rx) bytes (single frame, or first
# frame + consecutive frames under our flow control) and sends one of up to
# len(tx) bytes (single frame, or first frame + consecutive frames as the
# peer's flow control allows). The caller owns the CAN port: it hands every
# frame for this channel to on_frame() and sends what pending() puts in
# self.frame, calling sent() once the port took it. No allocation after
# construction. Host protocols (Modbus PDUs, UDS) run on top.
#
# PCI (ISO 15765-2:2016 9.6, classic CAN, no escape sequence):
#   SF 0x0L (L 1..7) | FF 0x1L LL (12-bit length 8..4095) + 6 bytes
#   CF 0x2N (N = sequence number, 1 after the FF, wrapping 15 -> 0) + 7 bytes
#   FC 0x3S BS STmin (S: 0 continue, 1 wait, 2 overflow; BS 0 = no more FC;
#      STmin 0..0x7F ms, 0xF1..0xF9 = 100..900 us)
# Timeouts (9.8.2): N_Bs and N_Cr 1000 ms.
from defs.const import const
from defs.ticks import ticks_add, ticks_diff

TIMEOUT_MS = const(1000)
# Our flow control as a receiver: the MCP2515 holds two received frames and the
# board polls it every few ms, so the sender pauses after BLOCK_SIZE frames and
# keeps STMIN_MS between them.
BLOCK_SIZE = const(2)
STMIN_MS = const(2)
PAD = const(0xCC)  # frames are padded to 8 bytes (ISO 15765-2 9.4.2, the usual filler)
MAX_WAITS = const(8)  # FC WAIT frames tolerated before a send is dropped

_IDLE = const(0)
_RX = const(1)  # receiving consecutive frames
_TX_FC = const(2)  # sent the FF (or a block), waiting for the peer's flow control
_TX_CF = const(3)  # sending consecutive frames
_FC_CTS = const(0)
_FC_WAIT = const(1)
_FC_OVFLW = const(2)


def _stmin_ms(b):
    if b <= 0x7F:
        return b
    if 0xF1 <= b <= 0xF9:
        return 1  # 100..900 us: one ms is the board's resolution
    return 0x7F  # reserved values: the slowest (ISO 15765-2 9.6.5.4)


class Channel:
    def __init__(self, rx_size, tx_size, block_size=BLOCK_SIZE, stmin_ms=STMIN_MS):
        """block_size: the BS our flow control asks for (0: no further flow
        control, for a receiver that polls faster than STMIN_MS frames come);
        stmin_ms: the STmin it asks for (0: a block's frames back to back,
        for a receiver whose port holds a whole block)."""
        self.block_size = block_size
        self.stmin_ms = stmin_ms
        self.rx = bytearray(rx_size)
        self.tx = bytearray(tx_size)
        self.frame = bytearray(8)  # the next frame to send (pending() length)
        self.errors = 0  # frames dropped: bad PCI, wrong sequence, overflow, timeouts
        self._rx_state = _IDLE
        self._rx_len = 0
        self._rx_pos = 0
        self._rx_sn = 0
        self._rx_block = 0
        self._rx_ms = 0
        self._fc_due = -1  # a flow control to send: its flag (-1 none)
        self._tx_state = _IDLE
        self._tx_len = 0
        self._tx_pos = 0
        self._tx_sn = 0
        self._tx_block = 0  # CFs left in this block (-1: no limit)
        self._tx_st = 0
        self._tx_ms = 0
        self._waits = 0
        self._pend = 0  # length of self.frame when a frame is built and not yet sent

    # -- receiving -------------------------------------------------------------
    def on_frame(self, data, now_ms):
        """One CAN frame for this channel; the length of a complete message
        now in self.rx, else 0."""
        n = len(data)
        if n < 1:
            self.errors += 1
            return 0
        kind = data[0] >> 4
        if kind == 0:
            ln = data[0] & 0x0F
            if ln < 1 or ln > 7 or ln > n - 1 or ln > len(self.rx):
                self.errors += 1
                return 0
            if self._rx_state == _RX:
                self.errors += 1  # a reception interrupted by a new message
            self._rx_state = _IDLE
            rx = self.rx
            for i in range(ln):
                rx[i] = data[1 + i]
            return ln
        if kind == 1:
            if n < 8:
                self.errors += 1
                return 0
            ln = ((data[0] & 0x0F) << 8) | data[1]
            if ln < 8:
                self.errors += 1
                return 0
            if ln > len(self.rx):
                self.errors += 1
                self._rx_state = _IDLE
                self._fc_due = _FC_OVFLW
                return 0
            rx = self.rx
            for i in range(6):
                rx[i] = data[2 + i]
            self._rx_len = ln
            self._rx_pos = 6
            self._rx_sn = 1
            self._rx_state = _RX
            self._rx_ms = now_ms
            self._rx_block = self.block_size
            self._fc_due = _FC_CTS
            return 0
        if kind == 2:
            if self._rx_state != _RX or (data[0] & 0x0F) != self._rx_sn:
                if self._rx_state == _RX:
                    self._rx_state = _IDLE
                self.errors += 1
                return 0
            rx = self.rx
            k = self._rx_len - self._rx_pos
            if k > 7:
                k = 7
            if n - 1 < k:
                self._rx_state = _IDLE
                self.errors += 1
                return 0
            p = self._rx_pos
            for i in range(k):
                rx[p + i] = data[1 + i]
            self._rx_pos = p + k
            self._rx_sn = (self._rx_sn + 1) & 0x0F
            self._rx_ms = now_ms
            if self._rx_pos >= self._rx_len:
                self._rx_state = _IDLE
                return self._rx_len
            self._rx_block -= 1
            if self._rx_block == 0:
                self._rx_block = self.block_size
                self._fc_due = _FC_CTS
            return 0
        if kind == 3:
            self._flow(data, n, now_ms)
            return 0
        self.errors += 1
        return 0

    def _flow(self, data, n, now_ms):
        if self._tx_state != _TX_FC or n < 3:
            self.errors += 1  # unexpected flow control
            return
        flag = data[0] & 0x0F
        if flag == _FC_CTS:
            self._tx_block = data[1] if data[1] else -1
            self._tx_st = _stmin_ms(data[2])
            self._tx_state = _TX_CF
            if self._tx_pos == 6:  # the first CF may go at once; later ones keep STmin after the last
                self._tx_ms = ticks_add(now_ms, -self._tx_st)
            self._waits = 0
        elif flag == _FC_WAIT and self._waits < MAX_WAITS:
            self._waits += 1
            self._tx_ms = now_ms
        else:
            self.errors += 1  # overflow, too many waits, or a reserved flag: the send is dropped
            self._tx_state = _IDLE

    # -- sending ---------------------------------------------------------------
    def send(self, n, now_ms):
        """Start sending self.tx[:n]; False (nothing starts) while a send is
        under way or n does not fit."""
        if self._tx_state != _IDLE or n < 1 or n > len(self.tx) or n > 4095:
            return False
        self._tx_len = n
        self._tx_pos = 0
        self._tx_ms = now_ms
        self._tx_state = _TX_CF if n <= 7 else -1  # -1: the FF is next
        return True

    def busy(self):
        return self._tx_state != _IDLE

    def reset(self):
        """Drop what is under way (both directions, a frame not yet sent)."""
        self._rx_state = _IDLE
        self._tx_state = _IDLE
        self._fc_due = -1
        self._pend = 0

    def pending(self, now_ms):
        """Build the next frame due now into self.frame; its length (8), or 0."""
        if self._pend:
            return self._pend
        self._timeouts(now_ms)
        f = self.frame
        if self._fc_due >= 0:
            f[0] = 0x30 | self._fc_due
            f[1] = self.block_size
            f[2] = self.stmin_ms
            self._pad(3)
            self._fc_due = -1
            self._pend = 8
            return 8
        st = self._tx_state
        tx = self.tx
        if st == -1:
            ln = self._tx_len
            f[0] = 0x10 | (ln >> 8)
            f[1] = ln & 0xFF
            for i in range(6):
                f[2 + i] = tx[i]
            self._tx_pos = 6
            self._tx_sn = 1
            self._tx_state = _TX_FC
            self._tx_ms = now_ms
            self._pend = 8
            return 8
        if st == _TX_CF:
            if self._tx_len <= 7 and self._tx_pos == 0:
                ln = self._tx_len
                f[0] = ln
                for i in range(ln):
                    f[1 + i] = tx[i]
                self._pad(1 + ln)
                self._tx_state = _IDLE
                self._pend = 8
                return 8
            if ticks_diff(now_ms, self._tx_ms) < self._tx_st:
                return 0
            k = self._tx_len - self._tx_pos
            if k > 7:
                k = 7
            f[0] = 0x20 | self._tx_sn
            p = self._tx_pos
            for i in range(k):
                f[1 + i] = tx[p + i]
            self._pad(1 + k)
            self._tx_pos = p + k
            self._tx_sn = (self._tx_sn + 1) & 0x0F
            self._tx_ms = now_ms
            if self._tx_pos >= self._tx_len:
                self._tx_state = _IDLE
            elif self._tx_block > 0:
                self._tx_block -= 1
                if self._tx_block == 0:
                    self._tx_state = _TX_FC
            self._pend = 8
            return 8
        return 0

    def sent(self):
        """The port took self.frame."""
        self._pend = 0

    def _pad(self, i):
        f = self.frame
        while i < 8:
            f[i] = PAD
            i += 1

    def _timeouts(self, now_ms):
        if self._rx_state == _RX and ticks_diff(now_ms, self._rx_ms) > TIMEOUT_MS:
            self._rx_state = _IDLE
            self.errors += 1  # N_Cr: the sender stopped
        if self._tx_state == _TX_FC and ticks_diff(now_ms, self._tx_ms) > TIMEOUT_MS:
            self._tx_state = _IDLE
            self.errors += 1  # N_Bs: no flow control came
