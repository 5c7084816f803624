# Owns the simulated world of the bench: N packs (pack model + mock AFE + host
# board + the real firmware app), the charger/load, the scenario's events and
# the trace, all driven by the virtual-time runner. Written for CPython and
# MicroPython alike: the MicroPython gate runs this same file and the two
# traces must be identical.
import host_sim
from app.compose import pack as firmware
from app.service import Service
from app.supervise import Failure
from bms.params import Params, index_of
from sim import scenario as scn
from sim import trace
from sim.mock_afe import MockAfe, FAULTS
from sim.pack_model import PackModel
from sim.physics import Physics
from sim.bus import CanBus, SerialLink
from sim.profile import solar_request_ma
from sim.rng import Rng
from sim.vtime import VirtualRunner
from sim import romfs
from store.memfs import MemFs
from store.slotstore import SlotStore
from store.store import Store
from update import boot as fw_boot
from update import slots as fw_slots

TRACE_MS = 50
R_PACK_MOHM = 30  # parallel sharing: cells + FETs + fuse + cables of one pack (sim approximation)


class Tracer(Service):
    name = "trace"
    period_ms = TRACE_MS

    def __init__(self, world, pack):
        self.world = world
        self.pack = pack
        self._last = None

    def tick(self, now_ms):
        t = self.world.t_ms()
        st = self.pack.app.state
        sig = trace.signature(st)
        fw = None
        if self.world.updates:  # update (issue 15): only in scenarios that update (older traces unchanged)
            fw = self.pack.fw()
            sig = (sig, fw)
        if sig != self._last or t % 1000 == 0:
            self._last = sig
            pairs = trace.pack_pairs(t, self.pack.index, st)
            if st.link_role == 2:  # link: the master's line carries the system it reports
                pairs.append(("system", trace.system_obj(self.pack.app.system.view)))
            refused = st.link_refused
            if refused:  # link: commands refused (only once there are any: older traces unchanged)
                pairs.append(("link_refused", refused))
            if st.link_fixed:  # link: a fixed address; an address conflict (likewise only when so)
                pairs.append(("address_fixed", True))
            if st.link_conflict:
                pairs.append(("address_conflict", st.link_conflict))
            if fw is not None:
                pairs.append(("fw", {"version": fw[0], "slot": fw[1], "state": fw[2]}))
            self.world.emit(trace.line(pairs))


class Pack:
    def __init__(self, world, index, rng, soc_pct, ambient_dc, params):
        self.index = index
        self.on = True
        self.model = PackModel(rng, soc_pct=soc_pct, ambient_dc=ambient_dc)
        self.afe = MockAfe(self.model, rng, **world.afe_errors)
        self.board = host_sim.Board(self.afe, world.clock_ms, world.log_edges)
        self.board.serial = b"BMS-MPY-%08d" % (index + 1)  # each pack its own (the first: app.inverter's)
        # the Link IN / Link OUT wiring (SPEC 7): one CAN bus through every
        # port, an RS485 segment per cable; Link IN of pack 0 faces the inverter
        # CAN-less boards (World(can=False)): the link messages go over the RS485 chain
        self.board.can = world.can.attach("pack%d" % index, index) if world.with_can else None
        self.board.link_in = world.links[index].b
        self.board.link_out = world.links[index + 1].a
        self.store = Store(MemFs())  # store: the pack's flash, in memory
        self.params = params
        self.fw_note = "running"  # update: what the last update did (fw())
        self.confirm = None
        self.world = world
        if world.updates:
            self.flash_rom(world.update_key)
        self.app = firmware(self.board, params, self.store)
        self.booted()
        self.button_release_ms = -1
        self.tracer = None

    # -- firmware update (issue 15) ------------------------------------------------
    def flash_rom(self, key):
        """The factory deploy: a ROMFS partition with this firmware's image in
        slot A (a ROMFS image whose `version` file names app.host's VERSION;
        the bench runs the repo's sources, not the image), the pack
        provisioned with key (the scenario's update_pubkey, else the repo's
        development key: the bench's packs trust it, no real pack does), then
        its boot part."""
        from app.host import VERSION
        b = self.board
        b.rom = romfs.Partition(b"\xff" * (2 * fw_boot.SLOT_BYTES))
        img = romfs.image({"version": VERSION})
        b.rom[:len(img)] = img
        b.trust_key = key
        if b.can is not None:
            b.can.cpu = b.rom  # what the pack sends in a tick its flash held leaves after it (sim.bus)
        b.file_digest = self.file_digest
        rng = Rng((self.world.sc.seed + 7919 * (self.index + 1)) & 0xFFFFFFFF)  # not the model's draws
        b.urandom = lambda n: bytes(rng.next_u32() & 0xFF for _ in range(n))  # seeded login nonces
        self.boot()

    def image(self, slot):
        return romfs.files(self.board.rom, slot * fw_boot.SLOT_BYTES)

    def file_digest(self, slot, name):
        import hashlib
        f = self.image(slot).get(name)
        return None if f is None else "".join("%02x" % c for c in hashlib.sha256(f).digest())

    def boot(self):
        """update.boot's start on the simulated partition: the slot record
        read, the slot chosen (update.boot.choose), the record saved before
        it runs; the image's version is what the pack then reports."""
        b = self.board
        st = SlotStore(self.store.fs)
        rec = st.load()[0]
        slot, save = fw_boot.choose(rec, not st.found,
                                    lambda s: romfs.size(b.rom, s * fw_boot.SLOT_BYTES) > 0)
        if save is not None:
            if rec is not None and save[fw_slots.ROLLBACKS] > rec[fw_slots.ROLLBACKS]:
                self.fw_note = "rolled_back"
            st.save(save)
        b.running = slot
        v = self.image(slot).get("version") if slot >= 0 else None
        b.fw_version = v

    def booted(self):
        """After a (re)start: the restart hook of app.uds and the self-test."""
        app = self.app
        self.confirm = None
        if self.board.rom is None:
            return
        app.restart = self.world.reboot_fn(self)
        for svc in app.services:
            if svc.name == "confirm":
                self.confirm = svc

    def fw(self):
        """(version, slot, state) of the trace's fw object."""
        b = self.board
        s = b.running
        if s == fw_slots.RECOVERY:
            return (None, None, "recovery")
        v = b.fw_version
        state = self.fw_note
        u = getattr(self.app, "uds", None)
        srv = u.server if u is not None else None
        hold = self.app.update  # the transfer both sessions share (app.updsess)
        upd = hold.upd if hold is not None else None
        if (srv is not None and srv.session == 2) or (hold is not None and hold.owner is not None) or (
                upd is not None and upd.state in (1, 2, 3)):
            state = "updating"  # a session holds the pack, or a transfer under way (update.updater states)
        elif upd is not None and upd.state == 4:
            state = "pending"  # staged: the next start runs it on trial
        elif self.confirm is not None:
            state = "confirmed" if self.confirm.done else "pending"
        return (v.decode() if v else None, "AB"[s] if s in (0, 1) else None, state)


class World:
    def __init__(self, sc, emit, log_edges=False, start_ms=0, afe_errors=None, can=True, frames=True):
        """afe_errors: MockAfe's sensor-error keywords (cell_noise_mv,
        current_offset_ma, current_gain_ppm, temp_error_dc) for every pack;
        none by default (tools/perf.py's SOC week uses them). can=False: the
        packs have no CAN port (board.can None; link: the RS485 transport).
        frames=False: no trace line per CAN frame (tools/perf.py's updates)."""
        self.sc = sc
        self.with_can = can
        self.afe_errors = afe_errors or {}
        self.emit = emit
        self.log_edges = log_edges
        self.runner = VirtualRunner(start_ms)
        self.updates = getattr(sc, "updates", False)
        self.update_key = None
        self.tester = None  # update: the installer's bmsctl update (tools.benchupdate), made at the first event
        self.rtu_tester = None  # the same over RS485 (tools.benchrtu), at the first "via": "rs485" event
        if self.updates:
            self.update_key = read_pubkey(sc.update_pubkey or dev_pubkey())
        self.start_ms = start_ms
        self.system_request_ma = 0
        self._events = sc.events
        self._next_event = 0
        self._share_ms = -1
        self._share_total = 0
        self._shares = [0] * sc.packs
        rng = Rng(sc.seed)
        self.can = CanBus("can", self.t_ms, self._frame if frames else None)
        # links[k] is the cable into pack k's Link IN (links[0]: from the
        # inverter); links[N] hangs off the last pack's Link OUT, unplugged
        self.links = [SerialLink() for _ in range(sc.packs + 1)]
        self.links[sc.packs].plugged = False
        self.packs = []
        for k in range(sc.packs):
            params = Params()
            params.set_many([(index_of(name), v) for name, v in sc.params])
            if getattr(sc, "inverter", None) is not None:
                params.set(index_of("inv_protocol_count"), sc.inverter[2])  # the master's DIP
            pack = Pack(self, k, Rng(rng.next_u32()), sc.soc_pct[k], sc.ambient_dc, params)
            self.packs.append(pack)
        # inverter: (issue 7) an emulated inverter on the CAN bus or on the RS485
        # segment into pack 0's Link IN; CPython only (tools/emulators, cantools)
        self.inverter = None
        inv = getattr(sc, "inverter", None)
        if inv is not None and inv[0] is not None:
            from tools.emulators import make
            self.inverter = make(inv[0], inv[1], self)
        for pack in self.packs:
            self._schedule(pack)
        if self.inverter is not None:
            self.runner.add(self.inverter)

    def clock_ms(self):
        return self.runner.now_ms

    def _frame(self, t_ms, bus, id_, ext, data):
        self.emit(trace.frame_line(t_ms, bus, id_, ext, data))

    def _schedule(self, pack):
        r = self.runner
        r.add(Physics(pack.afe, lambda: self.request_ma(pack)))
        self._run_app(pack)
        pack.tracer = Tracer(self, pack)
        r.add(pack.tracer)

    def _run_app(self, pack):
        """Schedule pack.app's services; one that raises stops them all in the
        safe state (app.supervise, as on the board) and is traced."""
        app = pack.app
        failure = Failure(app, lambda: self._stop_app(app))
        if app.restart is None:  # machine.reset on a board: here a fresh start on the pack's flash
            app.restart = lambda: self.power_cycle(pack.index)

        def on_error(svc, exc):
            failure.fail(svc.name, exc)
            self.emit(trace.line([("t_ms", self.t_ms()), ("pack", pack.index),
                                  ("error", svc.name + ": " + repr(exc))]))
        for svc in app.services:
            self.runner.add(svc, 0, on_error, pack.board.rom)  # a flash erase stalls the pack

    def _restart(self, pack):
        """A fresh firmware start on the pack's flash: the stored parameters
        replace the scenario's (pack.params) when the flash holds a good copy;
        with a ROMFS partition the boot part chooses the slot first."""
        if pack.board.rom is not None:
            pack.boot()
        pack.app = firmware(pack.board, pack.params, pack.store)
        pack.booted()
        self._run_app(pack)

    def reboot_fn(self, pack):
        """app.restart of a pack: the function app.uds calls after its answer
        to a reset or the activate routine (the MCU restarts)."""
        return lambda: self.power_cycle(pack.index)

    def _stop_app(self, app):
        for s in app.services:
            self.runner.remove(s)

    def power_cycle(self, k):
        """store: restart pack k's firmware on the same flash (a reset or a
        power cut of the BMS board): a new App loads what the old one stored."""
        pack = self.packs[k]
        self._stop_app(pack.app)
        self._restart(pack)

    def plug(self, k, on):
        """link: plug (on) or unplug the Link cable from pack k's Link OUT
        to pack k+1's Link IN: the RS485 segment and the CAN bus there."""
        self.links[k + 1].plugged = on
        if on:
            self.can.cuts.discard(k)
        else:
            self.can.cuts.add(k)

    def power(self, k, on):
        """link: switch pack k off (firmware stopped, ports unpowered, no
        current, no trace lines) or on (a fresh firmware start on its flash)."""
        pack = self.packs[k]
        if on == pack.on:
            return
        pack.on = on
        b = pack.board
        ports = (b.link_in, b.link_out) if b.can is None else (b.can, b.link_in, b.link_out)
        self._share_ms = -1
        if not on:
            self._stop_app(pack.app)
            self.runner.remove(pack.tracer)
            for port in ports:
                port.power_off()
            pack.afe.set_fets(False, False, False)
            return
        for port in ports:
            port.powered = True
        self._restart(pack)
        pack.tracer = Tracer(self, pack)
        self.runner.add(pack.tracer)

    def inject(self, ev):
        """A foreign node: a frame on the CAN bus (traced by the bus tap) or
        bytes arriving on pack ev.pack's Link IN from upstream (traced as
        {"t_ms", "bus": "rs485", "into", "data"})."""
        if ev.name == "can":
            self.can.inject(ev.index, ev.value, ev.on)
            return
        self.links[ev.pack].b.receive(ev.value)
        self.emit(trace.line([("t_ms", self.t_ms()), ("bus", "rs485"), ("into", ev.pack),
                              ("data", "".join("%02x" % b for b in ev.value))]))

    def request_ma(self, pack):
        """The charger/load's current share of one pack (+ = charge).
        Parallel packs share it like sources on one DC bus: each connected pack
        (on, both FETs conducting) is its open-circuit voltage behind the same
        resistance R_PACK_MOHM, so I_k = I/n + (mean OCV - OCV_k) / R (the
        voltage difference also drives a circulating current at I = 0). A
        pack off or with a FET open takes nothing; with no pack connected
        each gets I/N and its own FETs block it (the single-pack behaviour)."""
        if self.sc.profile == "solar":
            total = solar_request_ma(self.sc.start_ms + self.t_ms()) * len(self.packs)
        else:
            total = self.system_request_ma
        if self.inverter is not None:  # inverter: it lets through only what the BMS allows
            total = self.inverter.current_ma(total)
        if len(self.packs) == 1:
            return total
        now = self.runner.now_ms
        if self._share_ms != now or self._share_total != total:
            self._share_ms = now
            self._share_total = total
            self._share(total)
        return self._shares[pack.index]

    def _share(self, total):
        conn = []
        ocv_sum = 0
        for p in self.packs:
            m = p.model
            if p.on and m.chg_on() and m.dsg_on():
                ocv = sum(m._ocv)
                conn.append((p.index, ocv))
                ocv_sum += ocv
        n = len(conn)
        sh = self._shares
        for k in range(len(sh)):
            sh[k] = 0 if n else (total // len(self.packs) if self.packs[k].on else 0)
        if not n:
            return
        for k, ocv in conn:
            # mV / mOhm = A; * 1000 for mA; mean over n in the same integer
            sh[k] = total // n + (ocv_sum - n * ocv) * 1000 // (n * R_PACK_MOHM)

    def apply(self, ev):
        if ev.action == "set":
            if ev.name == "current_a":
                self.system_request_ma = ev.value
            else:
                for p in self.packs:
                    p.model.ambient_dc = ev.value
        elif ev.action == "sensor":
            self.packs[ev.pack].afe.override(ev.name, ev.index, ev.value)
        elif ev.action == "fault":
            self.packs[ev.pack].afe.set_fault(ev.name, ev.on, ev.index, ev.value)
        elif ev.action == "link":
            self.plug(ev.pack, ev.on)
        elif ev.action == "power":
            self.power(ev.pack, ev.on)
        elif ev.action == "inject":
            self.inject(ev)
        elif ev.action == "update":
            if ev.index == 1:  # "via": "rs485": bmsctl update --via rtu: on the master's Link IN
                if self.rtu_tester is None:
                    from tools.benchrtu import RtuTester  # pymodbus: CPython only
                    self.rtu_tester = RtuTester(self)
                    self.runner.add(self.rtu_tester)
                self.rtu_tester.start(ev.name, ev.pack)
                return
            if self.tester is None:
                from tools.benchupdate import Tester  # udsoncan and can-isotp: CPython only
                self.tester = Tester(self)
                self.runner.add(self.tester)
            self.tester.start(ev.name, ev.pack)
        else:
            pack = self.packs[ev.pack]
            pack.board.button.value(0)
            pack.button_release_ms = self.runner.now_ms + ev.value

    def t_ms(self):
        """Simulated time since the scenario started."""
        return self.runner.now_ms - self.start_ms

    def _next_action_ms(self):
        t = -1
        if self._next_event < len(self._events):
            t = self.start_ms + self._events[self._next_event].t_ms
        for p in self.packs:
            if p.button_release_ms >= 0 and (t < 0 or p.button_release_ms < t):
                t = p.button_release_ms
        return t

    def run_until(self, end_ms):
        """Advance to end_ms after the start; an event at t applies before the
        ticks due at t."""
        end_abs = self.start_ms + end_ms
        while True:
            t = self._next_action_ms()
            if t < 0 or t >= end_abs:
                self.runner.run_until(end_abs)
                return
            self.runner.run_until(t)
            while self._next_event < len(self._events) and self.start_ms + self._events[self._next_event].t_ms <= t:
                self.apply(self._events[self._next_event])
                self._next_event += 1
            for p in self.packs:
                if 0 <= p.button_release_ms <= t:
                    p.board.button.value(1)
                    p.button_release_ms = -1

    def run(self):
        self.run_until(self.sc.duration_ms)
        for t in (self.tester, self.rtu_tester):
            if t is not None:
                t.close()


def dev_pubkey():
    """The repo's development key (tools/keys): what the bench's packs trust
    unless the scenario names another (CPython only: the update scenarios)."""
    import os
    from tools import paths
    return os.path.join(paths.ROOT, "tools", "keys", "dev-ed25519.pub")


def read_pubkey(path):
    """The Ed25519 public key in a .pub file (hex, bmsctl keys new)."""
    from tools.bmsctl.bundle import BundleToolError, read_public
    try:
        return read_public(path)
    except BundleToolError as e:
        raise scn.ScenarioError("update_pubkey: %s" % e)


def run_text(text, emit, start_ms=0):
    """Parse a scenario and run it to the end; used by the MicroPython gate."""
    sc = scn.parse(text, FAULTS)
    World(sc, emit, False, start_ms).run()
