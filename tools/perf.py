# Owns `make perf`: benchmarks that print figures (speed and memory targets
# live here, not in timed tests). Figures: how fast the bench simulates, what
# one periodic control step costs on CPython, and what it allocates in the
# real MicroPython interpreter.
import json
import sys
import time

from tools import paths  # noqa: F401  (puts lib/, firmware/, boards/ on sys.path)
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
        app.services[1].tick(now)
        now += 100
    return gc.mem_alloc() - before
print("alloc", step(100))
"""


def main():
    print("bench simulation speed (CPython, solar profile):")
    for packs, sim_s in ((1, 3600), (4, 600)):
        wall = sim_speed(packs, sim_s)
        print("  %2d pack(s): %5d s simulated in %6.2f s wall = %7.0fx real time" % (packs, sim_s, wall, sim_s / wall))
    print("control step (acquire + control + estimate), CPython: %.1f us" % control_step_us())
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
