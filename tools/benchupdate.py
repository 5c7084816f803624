# Owns the installer's side of a firmware update inside the bench world
# (issue 15, the scenario's "update" event): `bmsctl update FILE --unit N` and
# `--all` as tools/bmsctl/update.py runs them (its run_pack(), answers() and
# client configuration: udsoncan's client on can-isotp's transport layer),
# but on a tester node of the simulated CAN bus (at the inverter end) and in
# virtual time:
#   - can-isotp's timers (STmin, N_Bs, N_Cr) read the world's clock while the
#     tester runs (isotp.tools.time is swapped for the world's clock then);
#   - the bus has 500 kbit/s: the tester puts a frame on it only while the
#     bits on the bus since its transmit queue last ran empty (every node's
#     frames, sim.bus.frame_bits: worst-case stuffing) stay within 500 bits
#     per ms (idle time saves no credit for a burst);
#   - each pack's session runs udsoncan's blocking client in a thread of its
#     own that runs only when the world hands it the turn (a frame for it or
#     its timeout is due) and hands it back when it waits again: one thread
#     at a time, in unit order, so a run repeats exactly.
# `--all` with more than one pack broadcasts the bundle (bmsctl's prepare(),
# broadcast_frames() and run_pack(), README "Firmware update"): each pack's
# download opened over UDS, an announce every KEEPALIVE_MS meanwhile (S3),
# then the broadcast frames as fast as the bus budget allows (or `rate`
# frames/s) with bmsctl's pauses (the signature check, flash erases), another
# pass while two or more packs lack bytes (bmsctl's behind() and next_pass()),
# then each pack's rest, exit, check and activate.
# Every pack's progress (each 10 %) and result is a trace line
# {"t_ms", "update": {"pack", "bytes", "of", "result"}} (result null while
# under way, "ok" or "refused: REASON"). The packs are commissioned with the
# bench's installer secrets first (tools.gateway.commission). Host-side only.
import threading
import time

import isotp
import isotp.tools
from udsoncan.client import Client
from udsoncan.connections import BaseConnection
from udsoncan.exceptions import TimeoutException

from sim import trace
from sim.bus import FLAG_EXT_ID, frame_bits
from tools import authkit
from tools.bmsctl import update as U

BITRATE = 500000
TICK_MS = 1
TXQ = 3  # frames the tester's CAN controller holds for sending (a consecutive frame waits for room)
TIMER_MS = 50
SCAN_TIMEOUT_S = 0.5
FIRST_UNIT = 1
LAST_UNIT = 32
BROADCAST = True  # --all broadcasts the image (False: bmsctl update --all --no-broadcast)
RATE = None  # broadcast frames/s (bmsctl's --rate); None: as fast as the bus budget allows
KEEPALIVE_MS = 1000
SCAN, PREPARE, BEHIND, UPDATE = "scan", "prepare", "behind", "update"  # a job's kind


def update_line(world, pack, done, total, result):
    """The trace's {"t_ms", "update": {"pack", "bytes", "of", "result"}} line."""
    world.emit(trace.line([("t_ms", world.t_ms()), (
        "update", {"pack": pack, "bytes": done, "of": total, "result": result})]))


def read_bundle(world, path, pack):
    """The bundle's bytes; None (and the refusal's trace line) when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        update_line(world, pack, 0, 0, "refused: cannot read %s: %s" % (path, e.strerror))
        return None


def installer_secrets(world):
    """Each pack's installer secret; the packs commissioned with the bench's
    secrets first (tools.gateway.commission, once per world)."""
    from tools.gateway import BENCH_FACTORY_KEY, bench_serial, commission
    if not getattr(world, "commissioned", False):
        commission(world)
        world.commissioned = True
    with open(BENCH_FACTORY_KEY, "rb") as f:
        key = f.read()
    return [authkit.derive_secret(key, bench_serial(k), authkit.INSTALLER) for k in range(len(world.packs))]


class _Clock:
    """The time module as can-isotp's timers see it: the world's clock."""

    def __init__(self, world):
        self.world = world

    def perf_counter_ns(self):
        return self.world.runner.now_ms * 1000000

    def perf_counter(self):
        return self.world.runner.now_ms / 1000.0

    def __getattr__(self, name):
        return getattr(time, name)


class _Closed(Exception):
    pass


class TpConnection(BaseConnection):
    """udsoncan's connection on can-isotp's transport layer logic (self.tp,
    made by the subclass); the subclass waits for the answer in its own time."""

    def __init__(self, name, tp):
        BaseConnection.__init__(self, name)
        self.tp = tp
        self.opened = False

    def open(self):
        self.opened = True
        return self

    def close(self):
        self.opened = False

    def is_open(self):
        return self.opened

    def empty_rxqueue(self):
        while self.tp.available():
            self.tp.recv()

    def specific_send(self, payload, timeout=None):
        self.tp.send(payload)
        self.tp.process()  # the first frame goes out now


class Conn(TpConnection):
    """The connection for one unit: on the tester's port, waiting in virtual
    time (the job's turn)."""

    def __init__(self, tester, unit):
        self.tester = tester
        self.job = None
        tx, rx = U.uds_ids(unit)
        self.rx_id = rx
        self.inbox = []
        TpConnection.__init__(self, "bench-unit-%d" % unit, isotp.TransportLayerLogic(
            rxfn=self._rx, txfn=lambda m: tester.txq.append((m.arbitration_id, bytes(m.data))),
            address=isotp.Address(isotp.AddressingMode.Normal_29bits, txid=tx, rxid=rx),
            params={"tx_padding": 0xCC}))

    def _rx(self, timeout=0):
        if self.inbox:
            return isotp.CanMessage(arbitration_id=self.rx_id, data=self.inbox.pop(0), extended_id=True)
        return None

    def specific_wait_frame(self, timeout=None):
        w = self.tester.world
        due = w.runner.now_ms + int((timeout or 2) * 1000)
        while True:
            if self.tp.available():
                return bytes(self.tp.recv())
            if w.runner.now_ms >= due:
                raise TimeoutException("no answer within %s s of simulated time" % timeout)
            self.job.wait(due)


class Job:
    """One unit's session in a thread that runs only in its turn."""

    def __init__(self, tester, unit, body, kind=UPDATE):
        self.tester = tester
        self.unit = unit
        self.kind = kind  # SCAN, PREPARE (the download opened for a broadcast), BEHIND (asked after one), UPDATE
        self.sent = 0  # bundle bytes the pack has taken
        self.total = 0
        self.pack = tester.index(unit)  # the bench's number of the pack (its address changes at a restart)
        self.start_ms = tester.world.t_ms()
        self.conn = Conn(tester, unit)
        self.conn.job = self
        self.body = body
        self.due_ms = 0  # run at the first tick
        self.done = False
        self.result = None
        self._go = threading.Semaphore(0)
        self._back = threading.Semaphore(0)
        self.thread = threading.Thread(target=self._run, name="bench-update-%d" % unit, daemon=True)
        self.thread.start()

    def _run(self):
        self._go.acquire()
        try:
            if self.tester.closed:
                raise _Closed()
            self.result = self.body(self)
        except BaseException as e:  # noqa: reported as the unit's result
            self.result = e
        self.done = True
        self._back.release()

    def wait(self, due_ms):
        """In the job's thread: give the turn back until a frame or due_ms."""
        self.due_ms = due_ms
        self._back.release()
        self._go.acquire()
        if self.tester.closed:
            raise TimeoutException("the scenario ended")

    def ready(self, now_ms):
        return not self.done and (now_ms >= self.due_ms or self.conn.tp.available())

    def turn(self):
        """In the world's thread: run the job until it waits or ends."""
        self._go.release()
        self._back.acquire()


class Tester:
    name = "update-tester"
    period_ms = TICK_MS

    def __init__(self, world, parallel=U.PARALLEL):
        self.world = world
        self.parallel = parallel
        self.port = world.can.attach("tester", -1)
        self.port.set_filters([(U.uds_ids(0)[1] & ~0xFF, 0x1FFFFF00, FLAG_EXT_ID)])  # 0x18DAF1xx: replies to us
        self.txq = []
        self.t0_ms = world.runner.now_ms
        self.bits0 = world.can.bits
        self.jobs = []  # running, unit order
        self.waiting = []  # (unit, body, kind) not started yet (the parallel limit)
        self.closed = False
        self.clock = _Clock(world)
        self.secrets = installer_secrets(world)
        self.results = {}  # unit -> (result line, identification or None)
        self.times = {}  # unit -> (start, end) of its session, ms since the scenario's start
        self.scanned = None  # the units that answered the last --all scan
        self._after_scan = None
        self.broadcast = BROADCAST
        self.rate = RATE  # broadcast frames/s, None: the bus budget
        self.prepared = []  # units ready for the broadcast
        self._bundle = None  # the bundle of the prepare / broadcast under way
        self._bc = None  # the broadcast's frames still to send
        self._bc_sent = 0
        self._bc_t0 = 0  # the rate's time origin (moved on by each pause)
        self._bc_start_ms = 0
        self._bc_pause_ms = 0  # the end of a pause (the header's check, an erase)
        self._bc_step = 0  # the last 10 % step of the broadcast traced
        self._keep_ms = 0
        self._first = {}  # unit -> start of its first session (prepare or update)
        self.passes = []  # (start, end) of each pass of the last broadcast
        self._standing = {}  # unit -> U.behind() after a pass

    # -- the scenario's side ---------------------------------------------------------
    def start(self, path, pack):
        """bmsctl update FILE --unit (pack k's link address), or --all (pack -1)."""
        data = read_bundle(self.world, path, pack)
        if data is None:
            return
        if pack >= 0:
            unit = self.world.packs[pack].app.state.link_address or 1
            self.waiting.append((unit, self._update_body(data), UPDATE))
            return
        found = {}

        def scan(unit):
            def body(job):
                v = U.answers(self._client(job, SCAN_TIMEOUT_S))
                if v is not None:
                    found[unit] = v
                return None
            return body
        for unit in range(FIRST_UNIT, LAST_UNIT + 1):  # one request each, all at once
            self.jobs.append(Job(self, unit, scan(unit), SCAN))
        self._after_scan = (found, data)

    def _client(self, job, request_timeout=None):
        cfg = U.client_config(self.secrets[job.pack] if job.pack >= 0 else bytes(32), quiet=True)  # results: the trace
        if request_timeout is not None:
            cfg["request_timeout"] = request_timeout
        c = Client(job.conn, config=cfg)
        c.open()
        return c

    def _prepare_body(self, data):
        def body(job):
            job.total = len(data)
            return U.prepare_pack(self._client(job), data)
        return body

    def _behind_body(self, data):
        return lambda job: U.behind(self._client(job), data)

    def _update_body(self, data):
        def body(job):
            job.total = len(data)

            def progress(done, total):
                if done * 10 // total != job.sent * 10 // total:
                    self._line(job.pack, done, total, None)
                job.sent = done
            r = U.run_pack(self._client(job), data, progress)
            if r[0] == "ok":
                job.sent = job.total  # the broadcast may have brought the last bytes: no progress() then
            return r
        return body

    def index(self, unit):
        for p in self.world.packs:
            if p.app.state.link_address == unit:
                return p.index
        return -1

    def _line(self, pack, done, total, result):
        update_line(self.world, pack, done, total, result)

    # -- the world's side ----------------------------------------------------------
    def tick(self, now_ms):
        saved = isotp.tools.time
        isotp.tools.time = self.clock
        try:
            self._tick(now_ms)
        finally:
            isotp.tools.time = saved

    def _tick(self, now_ms):
        port = self.port
        by_id = {j.conn.rx_id: j.conn for j in self.jobs}
        while port.any():
            fr = port.recv()
            c = by_id.get(fr[0])
            if c is not None:
                c.inbox.append(bytes(fr[1]))
        for j in self.jobs:  # can-isotp's timers are checked at least every TIMER_MS
            tp = j.conn.tp
            if j.conn.inbox or (tp.is_tx_transmitting_cf() and len(self.txq) < TXQ) or now_ms % TIMER_MS == 0:
                tp.process()
        self._send(now_ms)
        self._broadcast(now_ms)
        self._send(now_ms)
        for j in list(self.jobs):
            if j.ready(now_ms):
                j.turn()
                if j.done:
                    self._finish(j)
                self._send(now_ms)
        while self.waiting and len(self.jobs) < self.parallel:
            unit, body, kind = self.waiting.pop(0)
            j = Job(self, unit, body, kind)
            self._first.setdefault(unit, j.start_ms)
            self.jobs.append(j)
            j.turn()
            if j.done:
                self._finish(j)
            self._send(now_ms)

    def _broadcast(self, now_ms):
        """The prepare phase's keepalive, then the broadcast's frames into the
        transmit queue (the bus budget of _send paces them; self.rate too)."""
        if self._bundle is None:
            return
        if self._bc is None:
            if now_ms - self._keep_ms >= KEEPALIVE_MS and len(self.txq) < TXQ:
                self._keep_ms = now_ms
                self.txq.append((U.broadcast_id(), U.announce(self._bundle)))
            return
        data = self._bundle
        while len(self.txq) < TXQ and now_ms >= self._bc_pause_ms and (
                self.rate is None or self._bc_sent < (now_ms - self._bc_t0) * self.rate // 1000):
            got = next(self._bc, None)
            if got is None:
                self._end_broadcast()
                return
            pos, fr = got
            if not isinstance(fr, bytes):  # bmsctl's pause: the signature check, a flash erase
                self._bc_pause_ms = now_ms + int(fr * 1000)
                self._bc_t0 += int(fr * 1000)
                continue
            self._bc_sent += 1
            self.txq.append((U.broadcast_id(), fr))
            step = pos * 10 // len(data)
            if step != self._bc_step:
                self._bc_step = step
                for u in self.prepared:
                    self._line(self.index(u), pos, len(data), None)

    def _end_broadcast(self):
        self.passes.append((self._bc_start_ms, self.world.runner.now_ms))
        self._bc = None
        if len(self.prepared) > 1 and len(self.passes) < U.PASSES:
            self._standing = {}
            for u in self.prepared:  # where does each stand: another pass?
                self.waiting.append((u, self._behind_body(self._bundle), BEHIND))
            return
        self._updates()

    def _updates(self):
        data = self._bundle
        self._bundle = None
        for u in self.prepared:
            self.waiting.append((u, self._update_body(data), UPDATE))
        self.prepared = []

    def _prepared(self, start=0):
        """Every pack's download is open: a broadcast pass from start (more
        than one pack), else each pack's update."""
        data = self._bundle
        self._bc = iter(()) if len(self.prepared) < 2 else U.broadcast_frames(data, start)
        self._bc_sent = 0
        self._bc_step = 0
        self._bc_t0 = self._bc_start_ms = self.world.runner.now_ms
        self._bc_pause_ms = 0

    def _send(self, now_ms):
        bus = self.port.bus
        q = self.txq
        if not q:  # idle: no credit saved up for a burst beyond the bit rate later (after a pause)
            self.t0_ms = now_ms
            self.bits0 = bus.bits
            return
        allowed = self.bits0 + (now_ms - self.t0_ms + TICK_MS) * BITRATE // 1000
        while q and bus.bits + frame_bits(True, len(q[0][1])) <= allowed:
            id_, data = q.pop(0)
            self.port.send(id_, data, FLAG_EXT_ID)

    def _finish(self, j):
        self.jobs.remove(j)
        r = j.result
        if isinstance(r, _Closed):
            return
        if j.kind == PREPARE and not isinstance(r, BaseException) and r is None:
            self.prepared.append(j.unit)
        elif j.kind == BEHIND:
            self._standing[j.unit] = None if isinstance(r, BaseException) else r
        elif j.kind != SCAN:
            if isinstance(r, BaseException):
                r = ("refused: %s" % r, None)
            self.results[j.unit] = r
            self.times[j.unit] = (self._first.pop(j.unit, j.start_ms), self.world.t_ms())
            self._line(j.pack, j.sent, j.total, r[0])
        if j.kind in (PREPARE, BEHIND) and not self._running(j.kind):
            if j.kind == PREPARE:
                self._prepared()
            else:
                start = U.next_pass(self._standing)
                if start is None:
                    self._updates()
                else:
                    self._prepared(start)
        scan = self._after_scan
        if scan is not None and not self._running(SCAN):
            found, data = scan
            self._after_scan = None
            self.scanned = sorted(found)
            prep = self.broadcast and len(found) > 1
            if prep:
                self._bundle = data
                self._keep_ms = self.world.runner.now_ms
                self.passes = []
            for unit in self.scanned:
                self.waiting.append((unit, (self._prepare_body if prep else self._update_body)(data),
                                     PREPARE if prep else UPDATE))

    def _running(self, kind):
        """Jobs of kind still running or waiting."""
        return any(x.kind == kind for x in self.jobs) or any(w[2] == kind for w in self.waiting)

    def close(self):
        """The scenario ended: every session still waiting ends (timeout)."""
        self.closed = True
        for j in self.jobs:
            if not j.done:
                j.turn()
        self.jobs = []
