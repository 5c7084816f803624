# Owns the installer's side of a firmware update over RS485 inside the bench
# world (issue 15, the scenario's update event with "via": "rs485"):
# `bmsctl update FILE --via rtu:PORT --unit N` as tools/bmsctl/mbupdate.py
# runs it (run_pack: the Modbus login, the status record, begin, the blocks by
# FC 0x41 where the pack offers it, else FC 0x15, check, activate; pymodbus's
# PDUs and RTU framing) on the PC end of the master's Link IN
# (world.links[0].a), in virtual time:
#   - the line runs at the port's baud (the master's inv_baud_high_count: 9600
#     or 115200, as app.inverter reads it), BITS_PER_CHAR bits per character:
#     a request's bytes reach the master one character time apart, a reply's
#     bytes count as received one character time apart from when the master
#     wrote them (not before the request is off the wire), and the PC keeps
#     t3.5 of silence after every frame before it sends the next (Serial Line
#     2.5.1.1); the PC itself answers at once (its tick is 1 ms);
#   - the flash time the request cost the pack that answers (its partition's
#     erases and pages since the request's last byte, sim.romfs.ERASE_MS / PAGE_US) holds
#     its reply back, as sim.bus does for a CAN frame sent in a stalled tick (a
#     reply relayed over CAN is held there already; the serial ends are not);
#   - bmsctl's blocking session runs in a thread of its own that runs only in
#     its turn (its reply came or its timeout is due): a run repeats exactly.
# Unit = the pack's link address: 1 is the master itself, any other is relayed
# by the master (over CAN, or down the RS485 chain on a bench without CAN), as
# every Modbus request is. "pack": "all" updates the packs one after another
# (RS485 has no broadcast of the image), the master last: it restarts after
# its activate, and relays nothing until its link has formed again. Progress (each 10 %) and the result
# are the trace's update lines, as tools.benchupdate writes them over CAN.
# Host-side only.
import threading

from pymodbus.framer import FramerRTU

from sim import romfs
from tools.benchupdate import installer_secrets, read_bundle, update_line
from tools.bmsctl import mbupdate as M
from tools.bmsctl.client import Pack, load_map
from tools.bmsctl.mbpdu import decoder
from tools.bmsctl.transport import TransportError

BITS_PER_CHAR = 11  # start, 8 data, parity (or a 2nd stop), stop (Serial Line 2.5.1)
TICK_MS = 1
FAST = True  # the blocks by FC 0x41 where the pack offers it (False: FC 0x15 always, tools/perf.py's "before")


def t35_us(baud):
    """The inter-frame silence: 3.5 characters, 1750 us above 19200 baud (Serial Line 2.5.1.1)."""
    return 1750 if baud > 19200 else 3.5 * BITS_PER_CHAR * 1e6 / baud


def port_baud(world):
    """The master's Link IN baud (the PC port shares it with an RS485 inverter)."""
    from bms.params import index_of
    return 115200 if world.packs[0].app.params.v[index_of("inv_baud_high_count")] else 9600


class _Closed(Exception):
    pass


class RtuTester:
    name = "update-rtu"
    period_ms = TICK_MS

    def __init__(self, world, baud=None):
        self.world = world
        self.end = world.links[0].a
        self.baud = baud or port_baud(world)
        self.char_us = BITS_PER_CHAR * 1e6 / self.baud
        self.gap_us = t35_us(self.baud)
        self.secrets = installer_secrets(world)
        self.map = load_map()
        self.framer = FramerRTU(decoder())
        self.waiting = []  # (pack index, bundle bytes) not started yet
        self.results = {}  # pack index -> result line
        self.times = {}  # pack index -> (start, end) of its session, ms since the scenario's start
        self.vias = {}  # pack index -> the block function used (0x41, 0x15)
        self.progress = {}  # pack index -> [(t_ms, bytes acknowledged)] per block
        self.requests = 0
        self.closed = False
        self._thread = None
        self._go = threading.Semaphore(0)
        self._back = threading.Semaphore(0)
        self._done = True
        self._free_us = 0  # the line is silent (t3.5 after the last frame) from here
        self._tx = None  # the request frame being sent
        self._tx_start_us = 0
        self._tx_sent = 0
        self._req_end_us = 0
        self._unit = 0
        self._rx = bytearray()
        self._rx_at = []  # each reply byte's time on the wire (us)
        self._deadline_ms = 0
        self._reply = None
        self._waiting_reply = False
        self._flash = None  # the partition the answering pack's flash stall is read from

    # -- the scenario's side ---------------------------------------------------------
    def start(self, path, pack):
        """bmsctl update FILE --via rtu: --unit (pack k's link address), or each pack (pack -1)."""
        data = read_bundle(self.world, path, pack)
        if data is None:
            return
        for k in ((list(range(1, len(self.world.packs))) + [0]) if pack < 0 else (pack,)):
            self.waiting.append((k, data))

    def _line(self, pack, done, total, result):
        update_line(self.world, pack, done, total, result)

    # -- bmsctl's thread -------------------------------------------------------------
    def exchange(self, unit, pdu):
        """bmsctl's transport API, in the session's thread: the request goes on
        the line at the next tick; the reply or a timeout hands the turn back."""
        from tools.gateway import reply_timeout_ms
        self._tx = self.framer.encode(bytes(pdu), unit, 0)
        self._tx_sent = 0
        self._tx_start_us = None
        self._unit = unit
        self._flash = None  # read once the request is all on the line (_send)
        self._reply = None
        self._deadline_ms = self.world.runner.now_ms + reply_timeout_ms(self.world, unit)
        self.requests += 1
        self._back.release()
        self._go.acquire()
        if self.closed:
            raise _Closed()
        if self._reply is None:
            raise TransportError("no answer from unit %d on the bench's Link IN within %d ms" % (
                unit, reply_timeout_ms(self.world, unit)))
        return self._reply

    def _flash_of(self, unit):
        """(partition, erases, pages) of the pack whose serial reply a flash stall
        holds back: unit's, unless that reply comes over CAN (None)."""
        w = self.world
        if unit != 1 and w.with_can:
            return None
        for p in w.packs:
            rom = p.board.rom
            if (p.app.state.link_address or 1) == unit and rom is not None:
                return rom, rom.erases, rom.pages
        return None

    def _stall_us(self):
        f = self._flash
        if f is None:
            return 0
        rom, erases, pages = f
        return (rom.erases - erases) * romfs.ERASE_MS * 1000 + (rom.pages - pages) * romfs.PAGE_US

    def _session(self, k, data):
        unit = self.world.packs[k].app.state.link_address or 1
        sent = [0]

        steps = self.progress[k] = []

        def progress(done, total):
            steps.append((self.world.t_ms(), done))
            if done * 10 // total != sent[0] * 10 // total:
                self._line(k, done, total, None)
            sent[0] = done
        t0 = self.world.t_ms()
        try:
            r, s = M.run_pack(Pack(self, unit, self.map), self.secrets[k], data, progress, fast=FAST)
        except _Closed:
            return
        self.times[k] = (t0, self.world.t_ms())
        self.results[k] = r
        if s is not None:
            self.vias[k] = s["via"]
            sent[0] = len(data)
        self._line(k, sent[0], len(data), r)

    def _run(self, k, data):
        self._go.acquire()
        try:
            self._session(k, data)
        finally:
            self._done = True
            self._back.release()

    def _turn(self):
        self._go.release()
        self._back.acquire()

    # -- the world's side ----------------------------------------------------------
    def tick(self, now_ms):
        now_us = now_ms * 1000
        if self._done and self.waiting:
            k, data = self.waiting.pop(0)
            self._done = False
            self._thread = threading.Thread(target=self._run, args=(k, data), name="bench-rtu-%d" % k, daemon=True)
            self._thread.start()
            self._turn()
        if self._done:
            self._drain()
            return
        if self._tx is not None:
            self._send(now_us)
        if self._waiting_reply:
            self._receive(now_us)
            if self._reply is not None or now_ms >= self._deadline_ms:
                self._waiting_reply = False
                self._turn()
                if self._tx is not None:
                    self._send(now_us)  # the next request starts in the same tick when the line allows

    def _send(self, now_us):
        tx = self._tx
        if self._tx_start_us is None:
            self._tx_start_us = max(now_us, self._free_us)
            self._rx = bytearray()
            self._rx_at = []
        k = min(len(tx), int((now_us - self._tx_start_us) / self.char_us)) if now_us >= self._tx_start_us else 0
        if k > self._tx_sent:
            self.end.write(tx[self._tx_sent:k])
            self._tx_sent = k
        if self._tx_sent == len(tx):
            # the flash work from here on is this request's (an erase the pack began before,
            # while the request was on the line, already held its services: sim.vtime)
            self._flash = self._flash_of(self._unit)
            self._req_end_us = self._tx_start_us + len(tx) * self.char_us
            self._free_us = self._req_end_us + self.gap_us
            self._tx = None
            self._waiting_reply = True

    def _receive(self, now_us):
        end = self.end
        if end.any():
            data = end.read()
            # written since the last tick, after the flash work the request cost
            t = max(self._rx_at[-1] if self._rx_at else 0, now_us - 1000 + self._stall_us(), self._req_end_us)
            for b in data:
                t += self.char_us
                self._rx.append(b)
                self._rx_at.append(t)
        n = 0
        while n < len(self._rx_at) and self._rx_at[n] <= now_us:
            n += 1
        if not n:
            return
        used, dev, _tid, pdu = self.framer.decode(bytes(self._rx[:n]))
        if used and pdu and dev == self._unit:
            self._reply = pdu
            self._free_us = self._rx_at[n - 1] + self.gap_us
        elif used:
            del self._rx[:used]
            del self._rx_at[:used]

    def _drain(self):
        if self.end.any():
            self.end.read()  # a late reply with no session waiting: dropped, as a PC tool does

    def close(self):
        """The scenario ended: a session still waiting ends."""
        self.closed = True
        if not self._done:
            self._turn()

    def block_rate(self, k):
        """Bundle bytes/s of pack k's blocks (first to last acknowledged), None with fewer than two."""
        p = self.progress.get(k, [])
        if len(p) < 2 or p[-1][0] == p[0][0]:
            return None
        return (p[-1][1] - p[0][1]) * 1000 / (p[-1][0] - p[0][0])
