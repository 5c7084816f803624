# Owns `make perf`: benchmarks that print figures (speed and memory targets
# live here, not in timed tests). Figures: how fast the bench simulates, what
# one periodic control step costs on CPython and in the 32-bit MicroPython
# (also split by stage, the bench's share taken off: tools.mpstep), what it
# allocates in the real MicroPython interpreter, the SOC error over a simulated week (estimator vs
# plain coulomb counting) and the balancing result over a week (on vs off);
# the host protocol's telemetry refresh over RTU and over CAN (issue 13); the
# firmware update over RS485 and over CAN (issue 15).
import json
import os
import subprocess
import sys
import tempfile
import time

from tools import mpstep, paths  # paths puts lib/, firmware/, boards/ on sys.path
import simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS


def sim_speed(packs, sim_s):
    doc = {"packs": packs, "duration_s": sim_s, "profile": "solar"}
    world = simworld.World(scn.parse(json.dumps(doc), FAULTS), lambda line: None)
    t0 = time.perf_counter()
    world.run()
    return time.perf_counter() - t0


def control_step_us(n=20000):
    world = simworld.World(scn.parse('{"duration_s": 10}', FAULTS), lambda line: None)
    world.run_until(5000)
    app = world.packs[0].app
    now = world.runner.now_ms
    t0 = time.perf_counter()
    for _ in range(n):
        app.cycle.tick(now)
        now += app.cycle.period_ms
    return (time.perf_counter() - t0) / n * 1e6


# The control step (the cycle's stages, the bench AFE's read included) in the
# 32-bit unix MicroPython (tools.ram.interpreter): the best of 5 runs of 200
# steps, in microseconds per step, after one gc.collect() (a fresh process
# runs the cycle 2-3x slower until its first collection: tools/mpstep.py).
# ROOT is prepended by unix_step_us().
UNIX_STEP = """
import gc, sys
sys.path[:] = ["", ".frozen", ROOT + "/lib", ROOT + "/firmware", ROOT + "/boards", ROOT + "/tools"]
import time, simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS
w = simworld.World(scn.parse('{"duration_s": 10}', FAULTS), lambda line: None)
w.run_until(5000)
app = w.packs[0].app
now = w.runner.now_ms
gc.collect()
best = 1 << 30
for r in range(5):
    t0 = time.ticks_us()
    for _ in range(200):
        app.cycle.tick(now)
        now += 100
    d = time.ticks_diff(time.ticks_us(), t0)
    best = d if d < best else best
print(best / 200)
"""


def unix_step_us():
    """Control step in the 32-bit unix MicroPython (us), or None without it."""
    from tools import ram
    exe = ram.interpreter()
    if exe is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write("ROOT = %r\n" % paths.ROOT + UNIX_STEP)
    r = subprocess.run([exe, "-X", "heapsize=%d" % ram.BIG_HEAP, f.name], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, MICROPYPATH=""))
    os.unlink(f.name)
    if r.returncode != 0:
        raise RuntimeError((r.stderr or r.stdout).strip().splitlines()[-1:])
    return float(r.stdout.split()[-1])


def line_events(sim_s=10):
    """CPython line events (sys.settrace): per control cycle (the cycle's
    stages) and per simulated second of every firmware service as the bench
    runs them, on one pack; lines in the bench (lib/sim, tools) not counted."""
    world = simworld.World(scn.parse('{"duration_s": %d}' % (sim_s * 3), FAULTS), lambda line: None)
    world.run_until(10000)
    app = world.packs[0].app
    n = [0]
    skip = ("/lib/sim/", "/tools/")

    def line(frame, event, arg):
        if event == "line":
            n[0] += 1
        return line

    def call(frame, event, arg):
        return None if any(k in frame.f_code.co_filename for k in skip) else line

    now = world.runner.now_ms
    cycles = 50
    sys.settrace(call)
    for _ in range(cycles):
        app.cycle.tick(now)
        now += app.cycle.period_ms
    sys.settrace(None)
    per_cycle = n[0] / cycles
    n[0] = 0
    sys.settrace(call)
    world.run_until(world.runner.now_ms + sim_s * 1000)
    sys.settrace(None)
    return per_cycle, n[0] / sim_s


MPY_STEP = """
import gc, micropython, simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS
w = simworld.World(scn.parse('{"duration_s": 10}', FAULTS), lambda line: None)
w.run_until(5000)
app = w.packs[0].app
def step(n):
    now = w.runner.now_ms
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(n):
        app.cycle.tick(now)
        app.indicate.tick(now)
        now += 100
    return gc.mem_alloc() - before
print("alloc", step(100))
"""


# --- the SOC week and the balancing week (issue 4) ---------------------------
# One 100 Ah pack, firmware cycle every STEP_MS (the stages use the measured
# interval, so a longer step only thins the samples), the solar profile with
# seeded weather (sim.profile.weather: sunny days 110 % PV, cloudy 30-65 %),
# house load at 60 % of the profile's, and the sensor errors of issue 4.
WEEK_S = 7 * 24 * 3600
STEP_MS = 5000
WEATHER_SEED = 3
LOAD_PCT = 60
START_H = 5  # 05:00, 12 %: the first read is on the steep low end of the curve
START_SOC_PCT = 12
# Self-discharge spread of the balancing week: the model's default, +-50 % of
# 3 %/month (2.1..6.3 mA: up to ~100 mAh/day between the extremes), None = the
# model's default. The charge rule of bms.balance learns each cell's drift at
# the tops and bleeds it also on the cloudy days that never reach the top.
BAL_SD_SPREAD_PPM = None
SENSOR_ERRORS = {"cell_noise_mv": 2, "current_offset_ma": 300, "current_gain_ppm": 10000, "temp_error_dc": 10}


def _week_pack(seed, params_over=(), errors=SENSOR_ERRORS, spread=None):
    import host_sim
    from app.compose import pack
    from bms.params import Params, index_of
    from sim.mock_afe import MockAfe
    from sim.pack_model import PackModel
    from sim.rng import Rng
    rng = Rng(seed)
    model = PackModel(rng, soc_pct=START_SOC_PCT, **(spread or {}))
    afe = MockAfe(model, rng, **errors)
    clock = [0]
    params = Params()
    params.set_many([(index_of(k), v) for k, v in params_over])
    app = pack(host_sim.Board(afe, lambda: clock[0]), params)
    return model, afe, app, clock


def _run_week(model, afe, app, clock, each):
    from defs.ticks import TICKS_MASK
    from sim.physics import CHARGER_MV
    from sim.profile import weather, week_request_ma
    days = weather(WEATHER_SEED, 7)
    t0 = START_H * 3600 * 1000
    t = 0
    while t < WEEK_S * 1000:
        req = week_request_ma(t0 + t, days, LOAD_PCT)
        model.ext_mv = CHARGER_MV if req > 0 else 0
        afe.step(STEP_MS, req)
        t += STEP_MS
        clock[0] = t & TICKS_MASK
        app.cycle.tick(clock[0])
        each(t)
    return days


def soc_week(seed=7):
    """Max and RMS error (ppm) of the estimator and of plain coulomb counting
    started from the estimator's first value, against the model's true SOC."""
    from bms.params import Params
    from bms.soc import SocEstimator
    model, afe, app, clock = _week_pack(seed)
    st = app.state
    plain = SocEstimator(Params().v)  # its coulomb counter alone: set_ppm, count, ppm
    plain.capacity_mah = 100000
    r = {"est_max": 0, "est_sq": 0, "cc_max": 0, "cc_sq": 0, "n": 0, "shown_max": 0}

    def each(t):
        snap = st.snap
        if not st.soc_valid:
            return
        if r["n"] == 0:
            plain.set_ppm(st.soc_ppm)
        else:
            i = snap.current_ma
            plain.count(i if abs(i) >= 500 else 0, snap.dt_ms)
        true = model.pack_soc_ppm()
        e = st.soc_ppm - true
        c = plain.ppm() - true
        r["est_max"] = max(r["est_max"], abs(e))
        r["cc_max"] = max(r["cc_max"], abs(c))
        r["shown_max"] = max(r["shown_max"], abs(st.soc_pct * 10000 - true))
        r["est_sq"] += e * e
        r["cc_sq"] += c * c
        r["n"] += 1

    r["days"] = _run_week(model, afe, app, clock, each)
    r["offset_ma"] = st.i_offset_ma
    r["fcc_mah"] = st.fcc_mah
    r["cycles"] = st.cycles
    r["dsg_ah"] = st.dsg_ah
    return r


def balance_week(on, seed=7):
    """Cells 40 mV apart at the top of charge at the start (cells 3 and 10
    110 mAh fuller than the rest, which are top-aligned): for each day that
    reaches the top of charge, the true spread (max - min cell, mV) at the
    day's highest cell voltage."""
    over = () if on else (("bal_cells_count", 0),)
    spread = None if BAL_SD_SPREAD_PPM is None else {"self_discharge_spread_ppm": BAL_SD_SPREAD_PPM}
    model, afe, app, clock = _week_pack(seed, over, spread=spread)
    # top-aligned: every cell the same charge short of full (88 % of 100 Ah),
    # cells 3 and 10 110 mAh less short (the 40 mV at the top)
    for c in range(model.n_cells):
        short = 88000 - (110 if c in (3, 10) else 0)
        model._q[c] = model.capacity_nc(c) - short * 3600000000
    model.step(0, 0)
    tops = {}

    def each(t):
        d = t // 86400000
        hi = lo = model.cell_mv(0)
        for c in range(1, model.n_cells):
            v = model.cell_mv(c)
            hi = v if v > hi else hi
            lo = v if v < lo else lo
        if d not in tops or hi > tops[d][0]:
            tops[d] = [hi, hi - lo, hi - lo]
        elif model.current_ma == 0 and lo >= 3400:
            tops[d][2] = hi - lo  # still resting on the knee after the top

    _run_week(model, afe, app, clock, each)
    # the days that reached the top of charge (highest cell at the alarm level):
    # (spread when the charge stopped, spread at the end of the rest at the top)
    return [(tops[d][1], tops[d][2]) for d in sorted(tops) if tops[d][0] >= 3550]


def _pct(ppm):
    return "%.2f %%" % (ppm / 10000)


def week_figures():
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=2) as ex:
        f_soc = ex.submit(soc_week)
        f_on = ex.submit(balance_week, True)
        f_off = ex.submit(balance_week, False)
        r = f_soc.result()
        on = f_on.result()
        off = f_off.result()
    print("SOC week (1 pack, %d s steps, PV %% by day %s, load %d %%, start %02d:00 at %d %%;"
          % (STEP_MS // 1000, r["days"], LOAD_PCT, START_H, START_SOC_PCT))
    print("  sensor errors: current offset +0.3 A, gain +1 %, cell noise +-2 mV, temperatures +-1 C):")
    n = r["n"]
    print("  estimator      : max error %s, RMS %s (shown %%: max %s; target max <= 3 %%)"
          % (_pct(r["est_max"]), _pct((r["est_sq"] / n) ** 0.5), _pct(r["shown_max"])))
    print("  coulomb counter: max error %s, RMS %s (same start, no corrections)"
          % (_pct(r["cc_max"]), _pct((r["cc_sq"] / n) ** 0.5)))
    print("  learned current offset %d mA; capacity %s; %d Ah discharged, %d cycles"
          % (r["offset_ma"], ("%d mAh learned" % r["fcc_mah"]) if r["fcc_mah"] else "not learned (rated used)",
             r["dsg_ah"], r["cycles"]))
    print("balancing week (same days and errors, self-discharge spread %s; cells 3 and 10 start 110 mAh"
          % ("the model's default +-50 %" if BAL_SD_SPREAD_PPM is None else "+-%d %%" % (BAL_SD_SPREAD_PPM // 10000)))
    print("  fuller than the top-aligned rest: 40 mV at the top), true max - min cell")
    print("  at the top of each day that reaches full: (when the charge stops, after the rest at the top), mV:")
    print("  on : %s -> last %d / %d mV (target <= 10)" % (on, on[-1][0], on[-1][1]))
    print("  off: %s -> last %d / %d mV" % (off, off[-1][0], off[-1][1]))


def parallel_32(sim_s=60):
    """32 packs powered on together, charging at 0.5 A... 1000 A later:
    (formed_ms, link bus load at 500 kbit/s, simulated s per wall s)."""
    doc = {"packs": 32, "duration_s": sim_s, "events": [{"t_s": 15, "set": "current_a", "value": 800}]}
    world = simworld.World(scn.parse(json.dumps(doc), FAULTS), lambda line: None)
    t0 = time.perf_counter()
    world.run()
    wall = time.perf_counter() - t0
    return world.packs[0].app.link.roles.formed_ms, world.can.bits / sim_s / 500000, sim_s / wall


# --- the host protocol (issue 13): telemetry through the master ----------------------------
# What one `bmsctl live` refresh of a pack reads is asked of bmsctl itself
# (live_reads: pysunspec2's reads of the SunSpec models 802 and 805), then
# costed on the RTU wire and on the CAN bus.
RTU_BAUDS = (9600, 115200)
RTU_BITS_PER_CHAR = 11  # start, 8 data, parity (or a 2nd stop), stop (Serial Line 2.5.1)
CAN_BITRATE = 500000
PACKS = 32
SEQ_PACKS = 8  # packs asked one (or four) at a time, the time scaled to PACKS
REPLY_MS = 3000  # a tester gives a request up after this (the board's N_Bs is 1000 ms)


def live_reads():
    """(request PDUs, reply PDU lengths) of one refresh as bmsctl live does it (the
    battery and lithium-ion-module models read by pysunspec2), against the
    composed handler of a bench pack."""
    from tools.fuzz_host import Rig
    from tools.bmsctl import sunspec
    rig = Rig()
    log = []

    class Through:
        def exchange(self, unit, pdu):
            out = bytearray(256)
            k = rig.host.pdu(unit, bytearray(pdu), len(pdu), out, 5)
            log.append((bytes(pdu), k))
            return bytes(out[:k])

    dev = sunspec.scan(Through(), 1)
    del log[:]
    for group in dev.models.get("battery", []):
        group.read()
    for group in dev.models.get("lithium-ion-module", [])[:1]:
        group.read()
    return log


def t35_s(baud):
    """The inter-frame gap: 3.5 characters, fixed 1.75 ms above 19200 baud (Serial Line 2.5.1.1)."""
    return 1.75e-3 if baud > 19200 else 3.5 * RTU_BITS_PER_CHAR / baud


# The handler's own CPU time per RTU request in the 32-bit unix MicroPython:
# the request's bytes into on_rs485 (framer and CRC per byte), the PDU, the
# reply's CRC; best of 5 runs of 50, microseconds per request, per request kind.
UNIX_HOST = """
import sys
sys.path[:] = ["", ".frozen", ROOT + "/lib", ROOT + "/firmware", ROOT + "/boards"]
import time
from app.host import Host
from bms.params import Params
from bms.state import PackState
from bms.system import SystemView, from_pack
st = PackState()
params = Params()
view = SystemView()
from_pack(view, st, params)
class Port:
    def write(self, b):
        return len(b)
h = Host(st, params, view, Port(), None)
for f in FRAMES:
    f = bytearray(f)
    best = 1 << 30
    for r in range(5):
        t0 = time.ticks_us()
        for _ in range(50):
            h.on_rs485(f, len(f))
        d = time.ticks_diff(time.ticks_us(), t0)
        best = d if d < best else best
    print(best / 50)
"""


def unix_host_us(frames):
    """us per RTU request in the 32-bit unix MicroPython, per frame, or None without it."""
    from tools import ram
    exe = ram.interpreter()
    if exe is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write("ROOT = %r\nFRAMES = %r\n" % (paths.ROOT, [bytes(x) for x in frames]) + UNIX_HOST)
    r = subprocess.run([exe, "-X", "heapsize=%d" % ram.BIG_HEAP, f.name], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, MICROPYPATH=""))
    os.unlink(f.name)
    if r.returncode != 0:
        raise RuntimeError((r.stderr or r.stdout).strip().splitlines()[-1:])
    return [float(x) for x in r.stdout.split()]


def rtu_figures(reads):
    from tools.fuzz_host import adu
    frames = [adu(1, pdu) for pdu, _ in reads]
    req_b = [len(f) for f in frames]
    rep_b = [1 + k + 2 for _, k in reads]
    try:
        us = unix_host_us(frames)
    except Exception as e:  # a benchmark prints what it could not measure
        print("  handler CPU time: not measured (%s)" % e)
        us = None
    if us is None:
        from tools import ram
        print("  handler CPU time: not measured: " + ram.HOWTO)
        us = [0.0] * len(frames)
    print("host protocol, Modbus RTU (one `bmsctl live` refresh of a pack = %s):" % " + ".join(
        "FC03 %d x %d regs" % (int.from_bytes(p[1:3], "big"), int.from_bytes(p[3:5], "big")) for p, _ in reads))
    print("  bytes per request / reply: %s; handler (32-bit unix MicroPython 1.27, this machine): %s us"
          % (", ".join("%d / %d" % x for x in zip(req_b, rep_b)), ", ".join("%.0f" % u for u in us)))
    for baud in RTU_BAUDS:
        char_s = RTU_BITS_PER_CHAR / baud
        per = [(q + p) * char_s + 2 * t35_s(baud) + u / 1e6 for q, p, u in zip(req_b, rep_b, us)]
        pack_s = sum(per)
        print("  %6d baud: %s ms per request (wire + 2 x t3.5 %.2f ms + handler) -> %.1f requests/s, "
              "%.2f packs refreshed/s, %d packs every %.1f s"
              % (baud, " + ".join("%.1f" % (1e3 * x) for x in per), 1e3 * t35_s(baud), len(per) / pack_s,
                 1 / pack_s, PACKS, PACKS * pack_s))
    print("  (through the master: the relay's own time on the link for units 2..%d not included)" % PACKS)


def _rs485_bundle(d):
    """A host_sim bundle of ~25 KB (~100 blocks: the block rate settles; the
    whole host_sim image would take minutes of CPU at 9600 baud)."""
    from sim import romfs
    from tools.bmsctl import bundle as tool
    files = {"version": b"2.0.0", "app/a.mpy": bytes(range(256)) * 48,
             "lib/b.mpy": bytes(range(255, -1, -1)) * 48}
    img = romfs.image(files)
    data = tool.pack(tool.manifest("host_sim", "2.0.0", 1, img, files), img, tool.load_key(tool.DEV_KEY))
    path = os.path.join(d, "rs485.bmsu")
    with open(path, "wb") as f:
        f.write(data)
    return path, len(data)


def _rs485_world(path, baud, pack, can=True):
    """The bench world, the update event via rs485 at 10 s; its RTU tester after the run."""
    doc = {"packs": max(2, pack + 1), "duration_s": 400 if baud < 19200 else 90, "seed": 5,
           "params": {"inv_baud_high_count": 1 if baud > 19200 else 0},
           "events": [{"t_s": 10, "update": path, "pack": pack, "via": "rs485"}]}
    w = simworld.World(scn.parse(json.dumps(doc), FAULTS), lambda line: None, can=can, frames=False)
    w.run()
    return w.rtu_tester


def rs485_update_figures():
    """The firmware update over Modbus RTU in the bench (tools/benchrtu.py:
    bmsctl's session on the master's Link IN in virtual time, 11-bit
    characters at the port's baud, t3.5 after each frame): the bundle bytes/s
    of the blocks (first to last acknowledged) against the line rate after
    framing (baud / 11), before (FC 0x15, whose reply echoes the block, and
    Link IN read by the link service every 100 ms) and now (FC 0x41's 3-byte
    reply, the host reading Link IN every app.host.UPDATE_MS while update
    requests come), to the master and to a slave through it. The flash's erase
    and program times are the bench's (sim.romfs); the board's CPU per block
    (SHA-256 of 240 bytes, the Python around it) is not modelled."""
    from app import host
    from tools import benchrtu
    d = tempfile.mkdtemp()
    path, total = _rs485_bundle(d)
    print("firmware update over RS485 (Modbus RTU in the bench, bundle %d bytes, 240 per block; goal >= 80 %% of "
          "the line rate after framing):" % total)
    cases = (("before: FC 0x15 (echo), Link IN read every 100 ms", False, 0, 0, True),
             ("FC 0x15, Link IN read every %d ms" % host.UPDATE_MS, False, None, 0, True),
             ("now: FC 0x41, Link IN read every %d ms" % host.UPDATE_MS, True, None, 0, True),
             ("now, pack 1 through the master over CAN", True, None, 1, True),
             ("now, pack 1 through the master along the RS485 chain (no CAN; the cable between the packs is "
              "not timed in the bench)", True, None, 1, False))
    for baud in RTU_BAUDS:
        line = baud / RTU_BITS_PER_CHAR
        out = []
        for label, fast, hold, pack, can in cases:
            saved = benchrtu.FAST, host.UPDATE_HOLD_MS
            benchrtu.FAST = fast
            if hold is not None:
                host.UPDATE_HOLD_MS = hold
            try:
                t = _rs485_world(path, baud, pack, can)
            finally:
                benchrtu.FAST, host.UPDATE_HOLD_MS = saved
            rate = t.block_rate(pack)
            res = t.results.get(pack, "no result")
            a, b = t.times.get(pack, (0, 0))
            out.append("    %s: %s; blocks %s; the whole session (login .. activate) %.1f s" % (
                label, res, "%.0f B/s = %.0f %%" % (rate, 100 * rate / line) if rate else "-", (b - a) / 1000))
        print("  %6d baud (line %.0f B/s after framing):" % (baud, line))
        print("\n".join(out))


class Tester:
    """A PC tool on the simulated link bus speaking ISO-TP (ISO 15765-2) to the
    packs' host protocol on 0x18EF_TA_SA (app.hostcan): requests as single
    frames, replies reassembled under flow control CTS, block size 8, STmin 0
    (can-isotp's defaults, which bmsctl's transport keeps). Counts the frames
    of each kind both ways."""
    SA = 0xF1
    BS = 8

    def __init__(self, port):
        self.port = port
        self.kinds = {"SF": 0, "FF": 0, "CF": 0, "FC": 0}
        self.rx = {}  # ta -> [length, bytearray, CFs left in the block]

    def _send(self, ta, data, kind):
        self.port.send(0x18EF0000 | ta << 8 | self.SA, data + b"\xcc" * (8 - len(data)), 2)
        self.kinds[kind] += 1

    def ask(self, ta, pdu):
        self._send(ta, bytes((len(pdu),)) + pdu, "SF")

    def poll(self):
        """[(ta, reply PDU)] completed since the last poll."""
        done = []
        while self.port.any():
            id_, data, flags, _ = self.port.recv()
            if id_ & 0x1FFF0000 != 0x18EF0000 or (id_ >> 8) & 0xFF != self.SA:
                continue  # the link's own frames
            ta = id_ & 0xFF
            pci = data[0] >> 4
            if pci == 0:
                self.kinds["SF"] += 1
                done.append((ta, bytes(data[1:1 + (data[0] & 15)])))
            elif pci == 1:
                self.kinds["FF"] += 1
                self.rx[ta] = [(data[0] & 15) << 8 | data[1], bytearray(data[2:8]), self.BS]
                self._send(ta, bytes((0x30, self.BS, 0)), "FC")
            elif pci == 2 and ta in self.rx:
                self.kinds["CF"] += 1
                r = self.rx[ta]
                r[1] += data[1:8]
                r[2] -= 1
                if len(r[1]) >= r[0]:
                    done.append((ta, bytes(r[1][:r[0]])))
                    del self.rx[ta]
                elif r[2] == 0:
                    r[2] = self.BS
                    self._send(ta, bytes((0x30, self.BS, 0)), "FC")
        return done


def can_figures(reads, settle_ms=15000, step_ms=2, seq_packs=4):
    """32 packs on one link bus at 500 kbit/s: the link's own load over one
    simulated second, then the tester refreshing every pack (the reads of one
    `bmsctl live` refresh each), all packs at once and one pack after the
    other (seq_packs of them, scaled to 32), with the tester's flow control
    block size 8 (can-isotp's default) and 0 (one flow control per reply)."""
    from sim.bus import frame_bits
    doc = {"packs": PACKS, "duration_s": 600}
    world = simworld.World(scn.parse(json.dumps(doc), FAULTS), lambda line: None)
    world.run_until(settle_ms)
    bits0 = world.can.bits
    frames0 = sum(p.board.can.sent for p in world.packs)
    world.run_until(settle_ms + 1000)
    link_load = (world.can.bits - bits0) / CAN_BITRATE
    link_frames = sum(p.board.can.sent for p in world.packs) - frames0
    port = world.can.attach("tester", PACKS)
    port._push = lambda id_, data, flags: port._q.append((id_, data, flags))  # a PC's socket buffer: no loss
    tester = Tester(port)
    tas = [p.app.link.roles.address for p in world.packs]
    pdus = [p for p, _ in reads]

    def refresh(group, packs):
        """Sim ms for one refresh of every pack, group packs asked at the same
        time, the bus bits it took, and the requests that got no reply within
        REPLY_MS (frames lost in the packs' receive queues)."""
        t0 = world.runner.now_ms
        b0 = world.can.bits
        lost = 0
        for g in range(0, packs, group):
            step = {ta: [0, world.runner.now_ms] for ta in tas[g:min(g + group, packs)]}
            for ta in step:
                tester.ask(ta, pdus[0])
            while step:
                world.run_until(world.runner.now_ms - world.start_ms + step_ms)
                now = world.runner.now_ms
                for ta, reply in tester.poll():
                    if ta not in step or reply[0] != 3 or len(reply) != 2 + 2 * pdus[step[ta][0]][4]:
                        raise RuntimeError("pack %d answered %s" % (ta, reply[:2].hex()))
                    step[ta] = [step[ta][0] + 1, now]
                for ta in list(step):
                    if now - step[ta][1] > REPLY_MS:
                        lost += 1
                        tester.rx.pop(ta, None)
                        step[ta] = [step[ta][0] + 1, now]
                    if step[ta][1] == now:
                        if step[ta][0] == len(pdus):
                            del step[ta]
                        else:
                            tester.ask(ta, pdus[step[ta][0]])
        return world.runner.now_ms - t0, world.can.bits - b0, lost

    print("host protocol over CAN (ISO-TP on 29-bit ids, %d kbit/s, %d packs, the same reads; each pack "
          "answers for itself, app.hostcan):" % (CAN_BITRATE // 1000, PACKS))
    print("  the link's own traffic: %d frames/s, %.1f %% of the bus (measured over a simulated second)"
          % (link_frames, 100 * link_load))
    frame = frame_bits(True, 8)
    from app.hostcan import ACTIVE_MS
    for variant in ("the CAN port read at each %d ms host-can tick while host traffic is on the bus (app.hostcan)"
                    % ACTIVE_MS,):
        print("  " + variant + ":")
        for bs in (8, 0):
            tester.BS = bs
            refresh(1, 1)  # warm up
            for k in tester.kinds:
                tester.kinds[k] = 0
            refresh(1, 1)
            per_pack = list(tester.kinds.items())
            frames = sum(v for _, v in per_pack)
            host_bits = PACKS * frames * frame
            print("    tester block size %d: frames per pack refresh %s = %d, %d bits each (29-bit, 8 bytes, "
                  "worst-case stuffing); the bus alone (less the link's share) would allow %.1f Hz for %d packs"
                  % (bs, ", ".join("%s %d" % kv for kv in per_pack), frames, frame,
                     (1 - link_load) * CAN_BITRATE / host_bits, PACKS))
            bus_hz = (1 - link_load) * CAN_BITRATE / host_bits
            for group, packs in ((1, SEQ_PACKS), (4, SEQ_PACKS), (PACKS, PACKS)):
                ms, bits, lost = refresh(group, packs)
                ms = ms * PACKS / packs
                hz = min(1000.0 / ms, bus_hz)  # the simulated bus takes frames in no time: its capacity caps
                print("      %2d pack(s) asked at once: %5.0f ms per refresh of %d packs -> %.2f Hz%s%s (budget >= 1 Hz)"
                      % (group, ms, PACKS, hz, " (the bus's capacity)" if hz < 1000.0 / ms else "",
                         "; %d of %d requests unanswered within %d ms (frames lost)"
                         % (lost, len(pdus) * packs, REPLY_MS) if lost else ""))


# ---- firmware update over CAN (issue 15) ------------------------------------------

UNIX_UPDATE = """
import sys
sys.path[:] = ["", ".frozen", ROOT + "/lib", ROOT + "/firmware", ROOT + "/boards", ROOT + "/host_tests"]
import time
from app.uds import Uds
from app.canport import CanPort
from bms.state import PackState
from bms.params import Params
from bms.auth import Auth
from store.memfs import MemFs
from store.slotstore import SlotStore
from update import boot, bundle, slots, updater as W
import sim_mcp2515 as sim
from drivers.mcp2515 import MCP2515

def best_us(fn, n, reps=5):
    b = 1 << 30
    for _ in range(reps):
        t0 = time.ticks_us()
        for _ in range(n):
            fn()
        d = time.ticks_diff(time.ticks_us(), t0)
        b = d if d < b else b
    return b / n

class Port:  # the CAN port as app.canport reads it: one frame waiting
    FLAG_EXT_ID = 2
    def __init__(self, fr):
        self.fr = fr
        self.n = 0
    def any(self):
        return self.n > 0
    def recv(self, arg):
        self.n = 0
        arg[0] = self.fr[0]
        arg[1] = self.fr[1]
        arg[2] = 2
        return arg
    def send(self, i, d, f):
        return 0
    def set_filters(self, f):
        pass
# ISO-TP + UDS: a consecutive frame through app.canport into app.uds (its reassembly)
u = Uds(PackState(), Params(), Auth(None, Params(), None), Port(None), lambda: 3)
ff = [0x18DA03F1, bytearray(b"\\x11\\x02\\x36\\x01\\x00\\x00\\x00\\x00"), 2, 0]
u.on_frame("can", ff)
cf = memoryview(bytearray(b"\\x21\\x00\\x00\\x00\\x00\\x00\\x00\\x00"))
port = Port([0x18DA03F1, cf])
rx = CanPort(port)
rx.subscribe(u, (0x18000000, 0x1F000000, 2))
def one_cf():
    port.n = 1
    u.ch._rx_sn = 1  # the same CF again: reassembly goes on
    u.ch._rx_pos = 6
    rx.poll()
isotp_us = best_us(one_cf, 500)
# the broadcast: a data frame through app.canport into app.uds, its 6 bytes copied for the tick's feed
class Upd:
    received = 0
    total = 1 << 20
    digest = b"\\x01\\x02\\x03" + bytes(29)
bu = Uds(PackState(), Params(), Auth(None, Params(), None), Port(None), lambda: 3)
bu.hold.upd = Upd()
bu._dl = True
bu._bc_on = True
bu.tester = 0xF1
bport = Port([0x18FFB0F1, memoryview(bytearray(b"\\x00\\x00abcdef"))])
brx = CanPort(bport)
brx.subscribe(bu, (0x18000000, 0x1F000000, 2))
def one_bc():
    bport.n = 1
    bu._bc_fill = 0
    brx.poll()
bc_us = best_us(one_bc, 500)
# flash write + hash: a 256-byte block into the slot (update.updater.feed), per frame of the block
from sim.romfs import Partition
data = open(BUNDLE, "rb").read()
fs = MemFs()
SlotStore(fs).save(boot.factory())
upd = W.Updater(Partition(b"\\xff" * (2 * 262144)), SlotStore(fs), KEY, "host_sim", 1)
upd.begin(len(data), 0)
n = bundle.header_length(data[:bundle.HEAD])
t0 = time.ticks_us()
upd.feed(data, 0, n)
header_ms = time.ticks_diff(time.ticks_us(), t0) / 1000
import hashlib
from update import ed25519
digest = hashlib.sha256(data[bundle.HEAD:n - bundle.SIG_BYTES]).digest()
sig = data[n - bundle.SIG_BYTES:n]
t0 = time.ticks_us()
good = ed25519.verify(KEY, digest, sig)
verify_ms = time.ticks_diff(time.ticks_us(), t0) / 1000
blk = memoryview(data)
pos = [n]
def one_block():
    p = pos[0]
    if p + 256 > len(data):
        return
    upd.feed(blk, p, p + 256)
    pos[0] = p + 256
flash_us = best_us(one_block, 100, 1) / 37  # 37 consecutive frames carry a 256-byte block
# the MCP2515 driver's recv (drivers.mcp2515) on the SPI-level chip model of the tests
bus = sim.Bus(500000)
nodes = []
for x in "ab":
    chip = bus.attach(sim.Mcp2515(8000000, name=x))
    nodes.append(MCP2515(chip.spi, chip.cs, 500000, osc_hz=8000000, ticks_ms=lambda: 0, sleep_ms=lambda ms: None))
a, b = nodes
b.set_filters(None)
s = [0, memoryview(bytearray(8)), 0, 0]
def one_frame():
    a.send(0x18DA03F1, b"\\x21\\x00\\x00\\x00\\x00\\x00\\x00\\x00", MCP2515.FLAG_EXT_ID)
    bus.step()
def one_recv():
    one_frame()
    b.recv(s)
drv_us = best_us(one_recv, 200) - best_us(one_frame, 200)  # the receive side alone
print(isotp_us, flash_us, drv_us, verify_ms, header_ms, bc_us, good, upd.state, W.REASONS[upd.reason])
"""


def _update_world(packs, bundle_path, sim_s):
    """A bench world of packs updated by the scenario's update event at 10 s
    (one pack: pack 0; more: "all"); (world, CPU seconds)."""
    doc = {"packs": packs, "duration_s": sim_s, "seed": 5,
           "events": [{"t_s": 10, "update": bundle_path, "pack": 0 if packs == 1 else "all"}]}
    w = simworld.World(scn.parse(json.dumps(doc), FAULTS), lambda line: None, frames=False)
    t0 = time.process_time()
    w.run()
    return w, time.process_time() - t0


def update_figures(packs_all=32):
    """Firmware update over CAN in the bench (500 kbit/s, the tester at the
    inverter end): bytes/s of one pack alone (now, and with the poll of before:
    10 ms, STmin 2 ms), the time to update packs_all packs with the broadcast
    and without (--no-broadcast); the board side's
    cost per received frame and the Ed25519 verify in the 32-bit MicroPython."""
    from app import uds
    from tools.bmsctl import bundle as tool
    d = tempfile.mkdtemp()
    path = os.path.join(d, "fw.bmsu")
    total, image, files = tool.make("host_sim", "2.0.0", 1, tool.DEV_KEY, path, os.path.join(d, "build"))
    print("firmware update over CAN (UDS on ISO-TP, %d kbit/s simulated; bundle %d bytes = the host_sim "
          "image, %d files):" % (500, total, files))
    for label, period, stmin in (("now: polled every 1 ms while its download is open, STmin 0", None, None),
                                 ("before: polled every 10 ms, STmin 2 ms", 10, 2)):
        saved = uds.DOWNLOAD_MS, uds.STMIN_MS
        try:
            if period is not None:
                uds.DOWNLOAD_MS, uds.STMIN_MS = period, stmin
            w, cpu = _update_world(1, path, 10 + (30 if period is None else 200))
        finally:
            uds.DOWNLOAD_MS, uds.STMIN_MS = saved
        (res, _), = w.tester.results.values()
        (a, b), = w.tester.times.values()
        print("  1 pack, %s: %s in %.1f s = %.0f B/s (goal >= 15,000)" % (label, res, (b - a) / 1000,
                                                                       total * 1000 / (b - a)))
    from tools import benchupdate
    from tools.bmsctl import update as bu
    for broadcast, rate in ((True, None), (True, bu.RATE), (False, None)):
        saved = benchupdate.BROADCAST, benchupdate.RATE
        benchupdate.BROADCAST, benchupdate.RATE = broadcast, rate
        try:
            w, cpu = _update_world(packs_all, path, (120 if rate is None else 400) if broadcast else 600)
        finally:
            benchupdate.BROADCAST, benchupdate.RATE = saved
        t = w.tester
        ends = [b for a, b in t.times.values()]
        starts = [a for a, b in t.times.values()]
        ok = sum(1 for r, _ in t.results.values() if r == "ok")
        done = sum(1 for p in w.packs if p.fw() == ("2.0.0", "B", "confirmed"))
        how = ("one broadcast of the bundle, " + ("as fast as the bus allows" if rate is None else
                                                  "bmsctl's default --rate %d frames/s" % rate)) if broadcast \
            else "--no-broadcast: every block to every pack"
        extra = ""
        if broadcast and t.passes:
            a, b = t.passes[0][0], t.passes[-1][1]
            with open(path, "rb") as f:
                pauses = [x for _, x in bu.broadcast_frames(f.read()) if not isinstance(x, bytes)]
            extra = " (the broadcast %.1f s in %d pass(es), incl. its pauses: %.0f s after the header, %d erases " \
                    "of %.0f ms)" % ((b - a) / 1000, len(t.passes), bu.VERIFY_S, pauses.count(bu.ERASE_S),
                                    bu.ERASE_S * 1000)
        print("  %d packs (\"pack\": \"all\", %s, %d at a time): %d ok, all transfers in %.0f s%s (goal <= 300 s); "
              "at the end of the run (%.0f s) %d report 2.0.0 in slot B, confirmed; %.0f s CPU"
              % (packs_all, how, t.parallel, ok, (max(ends) - min(starts)) / 1000, extra, w.t_ms() / 1000, done,
                 cpu))
    board_side_figures(path, files)


def board_side_figures(path, files):
    """The board side's cost per received frame (ISO-TP and the broadcast)
    and the Ed25519 verify in the 32-bit MicroPython, for bundle path."""
    from tools import ram
    from tools.bmsctl import bundle as tool
    from tools.bmsctl import update as bu
    exe = ram.interpreter()
    if exe is None:
        print("  board side: not measured: " + ram.HOWTO)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        dev = bytes.fromhex(tool.public_hex(tool.load_key(tool.DEV_KEY)))
        f.write("ROOT = %r\nBUNDLE = %r\nKEY = %r\n" % (paths.ROOT, path, dev) + UNIX_UPDATE)
    r = subprocess.run([exe, "-X", "heapsize=%d" % ram.BIG_HEAP, f.name], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, MICROPYPATH=""))
    os.unlink(f.name)
    if r.returncode != 0:
        print("  board side: failed: %s" % (r.stderr or r.stdout).strip().splitlines()[-1:])
        return
    isotp_us, flash_us, drv_us, verify_ms, header_ms, bc_us = [float(x) for x in r.stdout.split()[:6]]
    per = isotp_us + flash_us + drv_us
    print("  board side per received frame, 32-bit unix MicroPython 1.27 (this machine): MCP2515 driver recv "
          "%.0f us (on the tests' SPI-level chip model: includes the model), app.canport + ISO-TP + app.uds "
          "%.0f us, flash write + SHA-256 (a 256-byte block / 37 frames, into the bench's partition) %.0f us: %.0f us = %.0f frames/s"
          % (drv_us, isotp_us, flash_us, per, 1e6 / per))
    print("  ESP32 at 240 MHz (30-60x slower): %.1f-%.1f ms per frame = %.0f-%.0f frames/s = %.1f-%.1f kB/s "
          "(7 bytes per frame); a real SPI read of a frame adds ~0.1-0.3 ms"
          % (per * 30 / 1000, per * 60 / 1000, 1e6 / (per * 60), 1e6 / (per * 30),
             7e3 / (per * 60), 7e3 / (per * 30)))
    bc = drv_us + bc_us + flash_us * 6 / 7  # flash_us is per frame of 7 bytes
    print("  broadcast frame (6 bundle bytes): driver recv %.0f us + app.canport + app.uds %.0f us + flash write "
          "+ SHA-256 %.0f us = %.0f us = %.0f frames/s here; ESP32 est. %.0f-%.0f frames/s = %.1f-%.1f kB/s "
          "(bmsctl's --rate default %d)"
          % (drv_us, bc_us, flash_us * 6 / 7, bc, 1e6 / bc, 1e6 / (bc * 60), 1e6 / (bc * 30), 6e3 / (bc * 60),
             6e3 / (bc * 30), bu.RATE))
    print("  Ed25519 verify of the manifest digest: %.0f ms (ESP32 est. %.1f-%.1f s); the whole header check "
          "(manifest JSON of %d files, its hash, the verify, the record): %.0f ms"
          % (verify_ms, verify_ms * 30 / 1000, verify_ms * 60 / 1000, files, header_ms))


def main():
    formed, load, speed = parallel_32()
    print("parallel packs, 32 packs (link): formed %.1f s after power-on (target <= 10 s); link bus load "
          "%.1f %% of 500 kbit/s, worst-case stuffing (target <= 30 %%); simulation %.1fx real time"
          % (formed / 1000, load * 100, speed))
    print("bench simulation speed (CPython, solar profile):")
    for packs, sim_s in ((1, 3600), (16, 300)):
        wall = sim_speed(packs, sim_s)
        print("  %2d pack(s): %5d s simulated in %6.2f s wall = %7.0fx real time" % (packs, sim_s, wall, sim_s / wall))
    print("control step (acquire, protect, control, estimate, balance, system), CPython: %.1f us" % control_step_us())
    cyc, per_s = line_events()
    print("CPython line events, 1 pack: %.0f per control cycle (target <= 1,000), %.0f per simulated second, "
          "all services (target <= 10,000)" % (cyc, per_s))
    try:
        from tools import ram
        us = unix_step_us()
        print("control step, 32-bit unix MicroPython 1.27: %s (best of 5 runs of 200 steps, the bench's mock AFE "
              "included; target <= 100 us on this machine)"
              % ("%.0f us" % us if us is not None else "not measured: " + ram.HOWTO))
        if us is not None:
            mpstep.figures()
    except Exception as e:  # a benchmark prints what it could not measure
        print("control step, 32-bit unix MicroPython: not measured (%s)" % e)
    try:
        from tools import mpy_wasm
        t0 = time.perf_counter()
        r = mpy_wasm.run(MPY_STEP, timeout_s=120)
        if r.returncode == 0:
            print("MicroPython (wasm): 100 control + indicate steps allocate %s bytes (target 0); run took %.1f s"
                  % (r.stdout.split()[-1], time.perf_counter() - t0))
        else:
            print("MicroPython (wasm): failed: %s" % r.stderr.strip().splitlines()[-1:])
    except Exception as e:  # a benchmark prints what it could not measure
        print("MicroPython (wasm): not measured (%s)" % e)
    from tools import ram
    ram.figures()
    reads = live_reads()
    rtu_figures(reads)
    rs485_update_figures()
    can_figures(reads)
    t0 = time.perf_counter()
    week_figures()
    print("(SOC and balancing weeks: %.0f s wall)" % (time.perf_counter() - t0))
    update_figures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
