# Owns the bench command: the firmware on the host against the mock AFE.
# With a terminal it shows the live panel; without one (CI, a pipe) or with
# --headless it runs the scenario to its end and prints a summary. The trace
# contract is in the README.
import argparse
import os
import sys

from tools import paths
from sim import scenario as scn
from sim.mock_afe import FAULTS

DEMO = os.path.join(paths.ROOT, "tools", "scenarios", "demo.json")
LIVE_DEFAULT = ('{"comment": "live bench: one pack, solar days from 08:00, 31 days", "packs": 1, '
                '"duration_s": 2678400, "seed": 1, "profile": "solar", "start_h": 8, "initial": {"soc_pct": 50}}')


class BenchError(Exception):
    pass


def load_scenario(path):
    """Read and check a scenario file; any problem is one BenchError line."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise BenchError("scenario file not found: %s" % path)
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError("cannot read scenario %s: %s" % (path, e))
    try:
        return text, scn.parse(text, FAULTS)
    except scn.ScenarioError as e:
        raise BenchError("scenario %s: %s" % (path, e))


def run_cpython(sc, emit):
    import simworld
    simworld.World(sc, emit).run()


def run_micropython(text, emit):
    from tools import mpy_wasm
    code = "import simworld\nsimworld.run_text(%r, print)\n" % text
    proc = mpy_wasm.popen(code)
    for line in proc.stdout:
        emit(line.rstrip("\n"))
    err = proc.stderr.read()
    if proc.wait() != 0:
        last = [ln for ln in err.strip().splitlines() if ln.strip()]
        raise BenchError("MicroPython run failed: %s" % (last[-1] if last else "exit %d" % proc.returncode))


def run_pc_port(sc, args):
    """The bench in real time with the master's PC port open to host tools
    (tools.gateway); ends with the scenario or Ctrl-C."""
    if args.runtime != "cpython":
        raise BenchError("the PC port runs on cpython")
    import simworld
    from tools import gateway
    out = open(args.trace, "w", encoding="utf-8") if args.trace else None
    try:
        world = simworld.World(sc, (lambda line: out.write(line + "\n")) if out else (lambda line: None),
                               can=not args.no_can)
        try:
            _rtu, lines = gateway.attach(world, args.modbus_tcp, args.pty, args.can)
            lines += gateway.commission(world, args.secrets_dir)
        except gateway.GatewayError as e:
            raise BenchError(str(e))
        for ln in lines:
            print(ln, flush=True)
        print("bench: running in real time for %.1f h (Ctrl-C ends)" % (sc.duration_ms / 3.6e6), flush=True)
        gateway.pace(world)
    finally:
        if out:
            out.close()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    ap.add_argument("--scenario", help="scenario JSON (default: the solar-day demo)")
    ap.add_argument("--trace", help="write the trace (JSON lines) here")
    ap.add_argument("--headless", action="store_true", help="no live panel, run to the end and summarise")
    ap.add_argument("--runtime", choices=("cpython", "micropython"), default="cpython")
    ap.add_argument("--speed", type=float, default=60.0, help="live panel: simulated seconds per second")
    ap.add_argument("--modbus-tcp", metavar="HOST:PORT",
                    help="the master's PC port as a Modbus TCP gateway on loopback (runs in real time)")
    ap.add_argument("--can", metavar="INTERFACE:CHANNEL",
                    help="bridge the bench's CAN bus to python-can, e.g. udp_multicast:239.74.163.2 (real time)")
    ap.add_argument("--pty", action="store_true",
                    help="the master's PC port as a pseudo-terminal for RTU clients (runs in real time)")
    ap.add_argument("--no-can", action="store_true",
                    help="with the PC port: boards without CAN (the link and the relay run along the RS485 chain)")
    ap.add_argument("--secrets-dir", metavar="DIR",
                    help="with the PC port: write each pack's bench-only secrets to DIR/pack<k>-<level>.key")
    args = ap.parse_args(argv)
    headless = args.headless or not (sys.stdin.isatty() and sys.stdout.isatty())
    try:
        if args.scenario:
            text, sc = load_scenario(args.scenario)
        elif headless:
            text, sc = load_scenario(DEMO)
        else:
            text, sc = LIVE_DEFAULT, scn.parse(LIVE_DEFAULT, FAULTS)
        if args.modbus_tcp or args.pty or args.can:
            return run_pc_port(sc, args)
        if not headless:
            if args.runtime != "cpython":
                raise BenchError("the live panel runs on cpython; use --headless for --runtime micropython")
            from tools import panel
            return panel.run(sc, args.speed, args.trace)
        out = open(args.trace, "w", encoding="utf-8") if args.trace else None
        lines = []

        def emit(line):
            lines.append(line)
            if out:
                out.write(line + "\n")
        if args.runtime == "micropython" and sc.inverter is not None:
            raise BenchError("the inverter emulators run on the host only: use --runtime cpython "
                             "for a scenario with \"inverter\"")
        if args.runtime == "micropython" and any(e.action == "update" for e in sc.events):
            raise BenchError("the installer's update tool (udsoncan, can-isotp) runs on the host only: use "
                             "--runtime cpython for a scenario with \"update\" events")
        print("bench: simulating %.1f h of %d pack(s) on %s..." % (sc.duration_ms / 3.6e6, sc.packs, args.runtime),
              file=sys.stderr, flush=True)
        try:
            if args.runtime == "micropython":
                run_micropython(text, emit)
            else:
                run_cpython(sc, emit)
        finally:
            if out:
                out.close()
    except BenchError as e:
        print("bench: error: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:
        print("bench: error: %s" % e, file=sys.stderr)
        return 2
    from tools.summary import summarize
    print("bench: %s, %d trace lines%s" % (args.runtime, len(lines), (" -> " + args.trace) if args.trace else ""))
    for ln in summarize(lines):
        print(ln)
    return 0


if __name__ == "__main__":
    sys.exit(main())
