# Owns the bench's PC port for host tools (issue 13, "Try it without
# hardware"): the simulated master's Link IN, seen from the PC end of its
# cable (world.links[0].a), offered as
# - a Modbus TCP server on loopback acting as a Modbus gateway to that RTU
#   port: each MBAP request is framed as RTU for its unit id (unit 1 = the
#   system/master, each pack at its own unit id, relayed by the master), the
#   RTU reply goes back under the request's transaction id; no reply within
#   REPLY_TIMEOUT_MS of simulated time (more for a deep pack on a bench without
#   CAN: reply_timeout_ms) is the gateway exception 0x0B (target device failed
#   to respond, Modbus Application Protocol v1.1b3 7);
# - and/or the raw RTU port as a pseudo-terminal (path printed), for RTU
#   clients that open a serial device;
# - and/or the simulated CAN bus bridged to a python-can bus (udp_multicast on
#   loopback, or a vcan where the kernel has one): every frame on the bench's
#   bus goes out there, every frame from there goes onto the bench's bus at
#   the inverter end of the chain.
# Framing on the PC side is pymodbus's (FramerSocket, FramerRTU): an
# implementation independent of the board's. With either, the bench paces
# itself to real time (pace()). Host-side only; allocates freely.
# Bench commissioning (commission()): the bench stands in for the installer at
# the pack (jumper fitted, button held: bms.auth.provision's physical presence)
# and gives each simulated pack its own secrets, derived by tools.authkit from
# the bench's published factory key (tools/keys/bench-factory.key) and a bench
# serial per pack (bench_serial); a real pack still needs the presence.
import os
import queue
import socket
import socketserver
import threading
import time

from pymodbus.framer import FramerRTU, FramerSocket

from tools.bmsctl.mbpdu import decoder

BENCH_FACTORY_KEY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keys", "bench-factory.key")
PERIOD_MS = 5
REPLY_TIMEOUT_MS = 1000
GATEWAY_NO_RESPONSE = 0x0B
_WALL_TIMEOUT_S = 10.0
_RX_CHUNK = 4096


class GatewayError(Exception):
    pass


class RtuMaster:
    """A runner service: one request at a time on the PC end of the master's
    Link IN. submit(unit, pdu) -> reply pdu bytes (the exception 0x0B when the
    pack does not answer); called from any thread, it blocks until the
    simulated world has answered or REPLY_TIMEOUT_MS simulated ms passed."""
    name = "pc-rtu"
    period_ms = PERIOD_MS

    def __init__(self, end, wait_ms=None):
        """end: the PC end of the master's Link IN; wait_ms(unit): how long
        to wait for a unit's reply (default REPLY_TIMEOUT_MS)."""
        self.end = end
        self.wait_ms = wait_ms or (lambda unit: REPLY_TIMEOUT_MS)
        self._q = queue.Queue()
        self._job = None  # [unit, pdu, deadline_ms, event, reply]
        self._rx = bytearray()
        self._framer = FramerRTU(decoder())
        self.requests = 0
        self.timeouts = 0
        self.bad_replies = 0
        self.pty = None  # Pty: raw bytes to and from a pseudo-terminal

    def submit(self, unit, pdu):
        job = [unit, bytes(pdu), None, threading.Event(), None]
        self._q.put(job)
        if not job[3].wait(_WALL_TIMEOUT_S):
            return bytes((pdu[0] | 0x80, GATEWAY_NO_RESPONSE))
        return job[4]

    def tick(self, now_ms):
        end = self.end
        if self.pty is not None:
            data = self.pty.read()
            if data:
                end.write(data)
        if end.any():
            data = end.read()
            if self.pty is not None:
                self.pty.write(data)
            self._rx.extend(data)
        job = self._job
        if job is None:
            self._rx.clear()
            try:
                job = self._q.get_nowait()
            except queue.Empty:
                return
            self._job = job
            job[2] = now_ms + self.wait_ms(job[0])
            self.requests += 1
            end.write(self._framer.encode(job[1], job[0], 0))
            return
        if self._rx:
            used, unit, _tid, pdu = self._framer.decode(bytes(self._rx))
            if used and pdu and unit == job[0]:
                self._finish(pdu)
                return
            if used:
                self.bad_replies += 1
                del self._rx[:used]
        if now_ms >= job[2]:
            self.timeouts += 1
            self._finish(bytes((job[1][0] | 0x80, GATEWAY_NO_RESPONSE)))

    def _finish(self, reply):
        job = self._job
        self._job = None
        self._rx.clear()
        job[4] = reply
        job[3].set()


class _TcpHandler(socketserver.BaseRequestHandler):
    def handle(self):
        rtu = self.server.rtu
        framer = FramerSocket(decoder(True))
        buf = b""
        while True:
            try:
                data = self.request.recv(_RX_CHUNK)
            except OSError:
                return
            if not data:
                return
            buf += data
            while True:
                used, unit, tid, pdu = framer.decode(buf)
                if not used:
                    break
                buf = buf[used:]
                if not pdu:
                    continue  # a malformed MBAP header: dropped, as a server does
                reply = rtu.submit(unit, pdu)
                try:
                    self.request.sendall(framer.encode(reply, unit, tid))
                except OSError:
                    return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def parse_address(text):
    """'HOST:PORT' -> (host, port); loopback only (the bench is no network service)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise GatewayError("--modbus-tcp wants HOST:PORT, got %r" % text)
    host = host or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise GatewayError("--modbus-tcp serves loopback only (127.0.0.1), not %r" % host)
    return host, int(port)


def serve_tcp(rtu, address):
    """Start the Modbus TCP gateway (a daemon thread); returns the server
    (server.server_address has the port when 0 was asked)."""
    try:
        srv = _Server(address, _TcpHandler)
    except OSError as e:
        raise GatewayError("cannot listen on %s:%d: %s" % (address[0], address[1], e))
    srv.rtu = rtu
    threading.Thread(target=srv.serve_forever, name="modbus-tcp", daemon=True).start()
    return srv


class Pty:
    """The raw RTU port as a pseudo-terminal: what a client writes to
    self.path reaches the master's Link IN, what the master answers comes back."""

    def __init__(self):
        import tty
        self.fd, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave  # kept open: the pty stays usable between clients
        os.set_blocking(self.fd, False)

    def read(self):
        try:
            return os.read(self.fd, _RX_CHUNK)
        except (BlockingIOError, OSError):
            return b""

    def write(self, data):
        try:
            os.write(self.fd, data)
        except OSError:
            pass  # nobody reading: the bytes are lost, as on an unplugged cable


class CanBridge:
    """A runner service: the bench's CAN bus <-> a python-can bus. A
    multicast bus hands a sender its own frames back whatever
    receive_own_messages says (python-can 4.6 udp_multicast on Linux): the
    bridge drops each echo of a frame it sent (matched in order, forgotten
    after ECHO_S)."""
    name = "pc-can"
    period_ms = 1
    ECHO_S = 1.0

    def __init__(self, world, bus):
        self.bus = bus
        self.port = world.can.attach("pc", -1)
        self._fr = [0, None, 0, 0]
        self._echo = []  # (wall s, id, ext, data) sent and not yet seen back
        self.out = 0
        self.into = 0

    def _is_echo(self, msg):
        now = time.monotonic()
        while self._echo and now - self._echo[0][0] > self.ECHO_S:
            self._echo.pop(0)
        key = (msg.arbitration_id, msg.is_extended_id, bytes(msg.data))
        for i in range(len(self._echo)):
            if self._echo[i][1:] == key:
                del self._echo[:i + 1]
                return True
        return False

    def tick(self, now_ms):
        import can
        port = self.port
        fr = self._fr
        while port.any():
            port.recv(fr)
            ext = bool(fr[2] & port.FLAG_EXT_ID)
            try:
                data = bytes(fr[1])
                self.bus.send(can.Message(arbitration_id=fr[0], data=data, is_extended_id=ext))
                self._echo.append((time.monotonic(), fr[0], ext, data))
                self.out += 1
            except can.CanError:
                pass  # a full or closed host bus: the frame is lost, as on a wire
        while True:
            msg = self.bus.recv(0)
            if msg is None:
                return
            if msg.is_error_frame or msg.is_remote_frame or self._is_echo(msg):
                continue
            port.send(msg.arbitration_id, bytes(msg.data), port.FLAG_EXT_ID if msg.is_extended_id else 0)
            self.into += 1


def open_can(spec):
    """'INTERFACE:CHANNEL' as python-can opens it."""
    from tools.canbus import open_bus
    iface, sep, chan = spec.partition(":")
    if not sep or not iface or not chan:
        raise GatewayError("--can wants INTERFACE:CHANNEL (e.g. udp_multicast:239.74.163.2), got %r" % spec)
    try:
        return open_bus(iface, chan)
    except Exception as e:  # python-can raises many kinds for a missing interface
        raise GatewayError("cannot open CAN %s: %s" % (spec, e))


def reply_timeout_ms(world, unit):
    """The gateway's wait for unit's reply: REPLY_TIMEOUT_MS, above the master
    relay's (app.relay.TIMEOUT_MS); on a bench without CAN the relay waits
    HOP_MS more per pack that may be between along the RS485 chain (the
    packs but the master and the target: addresses need not follow the
    chain), and so does the gateway."""
    if getattr(world, "with_can", True) or not 2 <= unit <= 32:
        return REPLY_TIMEOUT_MS
    from app import relay
    return REPLY_TIMEOUT_MS + max(0, len(world.packs) - 2) * relay.HOP_MS


def attach(world, modbus_tcp=None, pty=False, can_spec=None):
    """Put the PC port on world (a tools.simworld.World); returns (rtu or
    None, lines telling the user where to connect)."""
    rtu = None
    lines = []
    if modbus_tcp or pty:
        inv = getattr(world, "inverter", None)
        if inv is not None and getattr(inv, "end", None) is world.links[0].a:
            raise GatewayError("the scenario's RS485 inverter uses the master's Link IN; "
                               "run the PC port with a CAN inverter or none")
        rtu = RtuMaster(world.links[0].a, lambda unit: reply_timeout_ms(world, unit))
        world.runner.add(rtu)
    if modbus_tcp:
        srv = serve_tcp(rtu, parse_address(modbus_tcp))
        lines.append("bench: Modbus TCP gateway on %s:%d (unit 1 = the system, N = the pack at link address N)" %
                     srv.server_address[:2])
    if pty:
        rtu.pty = Pty()
        lines.append("bench: Modbus RTU port on %s" % rtu.pty.path)
    if can_spec:
        if getattr(world, "can", None) is None or not getattr(world, "with_can", False):
            raise GatewayError("--can: this bench has no CAN bus")
        world.runner.add(CanBridge(world, open_can(can_spec)))
        lines.append("bench: CAN bus bridged to %s" % can_spec)
    return rtu, lines


def bench_serial(k):
    """The name the bench derives pack k's secrets from (the bench's own
    scheme, by index: bmsctl --secret-pattern and the README's derive command
    name packs by it)."""
    return "bench-pack-%d" % k


def commission(world, secrets_dir=None, key_file=BENCH_FACTORY_KEY):
    """Provision every pack of world with its USER and INSTALLER secrets
    (authkit.derive_secret(key, bench_serial(k), level)), before pace() runs;
    secrets_dir: also write them there as DIR/pack<k>-<level>.key (hex), the
    files bmsctl --secret-file reads. Returns lines for the user."""
    from tools import authkit
    with open(key_file, "rb") as f:
        key = f.read()  # the file's bytes are the key, as `authkit derive` reads them
    if secrets_dir:
        os.makedirs(secrets_dir, exist_ok=True)
    for k, pack in enumerate(world.packs):
        port = getattr(pack.app, "host", None)  # app.hostport: its login, the host protocol not built
        if port is None:
            raise GatewayError("pack %d runs no host handler: nothing to commission" % k)
        auth = port.auth()
        for level, name in ((authkit.USER, "user"), (authkit.INSTALLER, "installer")):
            secret = authkit.derive_secret(key, bench_serial(k), level)
            if not auth.provision(level, secret, True):  # the bench is physically present
                raise GatewayError("pack %d: %s secret not provisioned (reason %d)" % (
                    k, name, auth.last_reason))
            if secrets_dir:
                path = os.path.join(secrets_dir, "pack%d-%s.key" % (k, name))
                with open(path, "w") as f:
                    f.write(secret.hex() + "\n")
    where = ("written to %s/pack<k>-<level>.key" % secrets_dir) if secrets_dir else (
        "python -m tools.authkit derive --factory-key-file %s --serial bench-pack-<k> --level 2" %
        os.path.relpath(key_file))
    return ["bench: packs 0..%d commissioned with bench-only secrets (%s)" % (len(world.packs) - 1, where)]


def pace(world, stop=None, step_ms=10, speed=1):
    """Run the world in real time (speed: simulated seconds per second; the
    tests run 8 packs at a few times real time) until its scenario ends or stop
    (an Event) is set; Ctrl-C ends it too. The gateway waits in simulated
    time; a PC client's timeouts (bmsctl, can-isotp) and the time a clock sync
    sends are wall time, so a speed above 1 is for tests that allow for it."""
    t0 = time.monotonic()
    end_ms = world.sc.duration_ms
    try:
        while stop is None or not stop.is_set():
            sim = int((time.monotonic() - t0) * 1000 * speed)
            if sim >= end_ms:
                world.run_until(end_ms)
                return
            world.run_until(sim)
            time.sleep(step_ms / 1000)
    except KeyboardInterrupt:
        return


def local_port():
    """A free TCP port on loopback (tests)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
