"""The CAN bit rate at start (bms.canrate, app.canrate, parameter
can_bitrate_count): the decision on every branch (a frame heard, errors then
frames at the other rate, silence, errors at both rates, counter wrap), and
the service driving a port: listen-only until a rate is confirmed, the state
and the event log the PC tool reads."""
import pytest

from bms import canrate as R
from bms.params import CAN_BITRATE_COUNT, Params, index_of
from bms.state import PackState
from store.eventlog import C_CAN_FOLLOWED


def test_parameter_row_and_rates():
    p = Params()
    assert index_of("can_bitrate_count") == CAN_BITRATE_COUNT == 229  # id 230
    assert p.v[CAN_BITRATE_COUNT] == 0 and R.RATES_KBPS == (500, 250)  # 500 kbit/s: the inverter manuals'
    p.set(CAN_BITRATE_COUNT, 1)
    with pytest.raises(ValueError):
        p.set(CAN_BITRATE_COUNT, 2)
    assert p.v[CAN_BITRATE_COUNT] == 1 and R.bps_of(1) == 250000


def run(stored, script, frames=0, errors=0):
    """script: [(now_ms, frames, errors)] after a start with those counters; the
    decisions and the final choice."""
    c = R.Choice(stored, frames, errors)
    out = [c.step(t, f, e) for t, f, e in script]
    return out, c


def test_a_frame_heard_at_the_stored_rate_confirms_it():
    out, c = run(0, [(0, 0, 0), (100, 0, 0), (200, 1, 0), (300, 5, 0)])
    assert out == [R.ACT_NONE, R.ACT_NONE, R.ACT_RUN, R.ACT_NONE]
    assert c.state == R.STATE_RUN and c.rate == 0 and not c.followed


def test_a_valid_frame_wins_over_a_few_errors():
    # a power-up in the middle of a frame gives an error; the next frame is valid
    out, c = run(1, [(0, 10, 7), (10, 10, 8), (20, 11, 9)], 10, 7)
    assert out == [R.ACT_NONE, R.ACT_NONE, R.ACT_RUN] and c.rate == 1 and not c.followed


def test_a_frame_read_before_the_first_step_counts():
    # the CAN reader runs before the decision in the first tick: a request heard
    # then confirms the rate at once (the reply can go out in the same tick)
    out, c = run(0, [(0, 6, 3)], 5, 3)
    assert out == [R.ACT_RUN] and c.state == R.STATE_RUN


def test_errors_then_frames_at_the_other_rate_follow_the_bus():
    script = [(0, 0, 0), (10, 0, 2), (20, 0, R.ERRORS_SWITCH),  # the bus is at the other rate
              (30, 0, R.ERRORS_SWITCH), (40, 1, R.ERRORS_SWITCH)]  # heard there
    out, c = run(0, script)
    assert out == [R.ACT_NONE, R.ACT_NONE, R.ACT_LISTEN, R.ACT_NONE, R.ACT_RUN]
    assert c.rate == 1 and c.followed and c.state == R.STATE_RUN and c.windows == 2


def test_silence_for_the_listen_time_runs_at_the_stored_rate():
    t = R.LISTEN_MS
    out, c = run(1, [(0, 0, 0), (t - 1, 0, 0), (t, 0, 0)])
    assert out == [R.ACT_NONE, R.ACT_NONE, R.ACT_RUN] and c.rate == 1 and not c.followed


def test_one_error_in_a_window_is_not_silence():
    # sparse traffic at another rate (one burst a second): fewer errors than
    # ERRORS_SWITCH by the end of the window still move the pack off its rate
    t = R.LISTEN_MS
    out, c = run(0, [(0, 0, 0), (500, 0, 1), (t, 0, 1), (t + 100, 3, 1)])
    assert out == [R.ACT_NONE, R.ACT_NONE, R.ACT_LISTEN, R.ACT_RUN] and c.rate == 1 and c.followed


def test_silence_at_the_other_rate_goes_back_to_the_stored_one():
    t = R.LISTEN_MS
    script = [(0, 0, 0), (10, 0, R.ERRORS_SWITCH),  # errors: try the other rate
              (10 + t, 0, R.ERRORS_SWITCH),  # silent there: back to the stored rate
              (10 + 2 * t, 0, R.ERRORS_SWITCH)]  # silent there too: the first node
    out, c = run(0, script)
    assert out == [R.ACT_NONE, R.ACT_LISTEN, R.ACT_LISTEN, R.ACT_RUN]
    assert c.rate == 0 and not c.followed and c.windows == 3


def test_errors_at_both_rates_never_send():
    # a bus at neither rate (or a broken one): the pack keeps listening, alternating
    c = R.Choice(0)
    e = 0
    acts = []
    for k in range(40):
        e += 1
        acts.append(c.step(k * 10, 0, e))
    assert R.ACT_RUN not in acts and c.state == R.STATE_LISTEN
    assert acts.count(R.ACT_LISTEN) >= 8  # every ERRORS_SWITCH errors the other rate


def test_counters_that_wrap_count_their_change():
    top = 0x3FFFFFFF
    out, c = run(0, [(0, 5, top - 1), (10, 5, (top - 1 + R.ERRORS_SWITCH) & top)], 5, top - 1)
    assert out == [R.ACT_NONE, R.ACT_LISTEN]


def test_run_is_final():
    out, c = run(0, [(0, 0, 0), (10, 1, 0), (20, 1, 100), (R.LISTEN_MS * 3, 1, 200)])
    assert out == [R.ACT_NONE, R.ACT_RUN, R.ACT_NONE, R.ACT_NONE] and c.state == R.STATE_RUN


# ---- the service -----------------------------------------------------------------

class Port:
    """A CAN port: init(bitrate, mode) recorded, msg_errors, send refused listen-only."""
    MODE_NORMAL = 0
    MODE_SILENT = 3

    def __init__(self):
        self.inits = []
        self.msg_errors = 0

    def init(self, bitrate, mode=0):
        self.inits.append((bitrate, mode))


class Rx:
    frames = 0


def service(stored=0, log=None):
    from app.canrate import CanRate
    p = Params()
    p.set(CAN_BITRATE_COUNT, stored)
    st = PackState()
    port, rx = Port(), Rx()
    return CanRate(st, p, port, rx, log), st, port, rx


def test_service_listens_at_the_stored_rate_and_follows_the_bus():
    logged = []
    svc, st, port, rx = service(0, lambda code, value: logged.append((code, value)))
    assert port.inits == [(500000, Port.MODE_SILENT)] and st.can_kbps == 0
    svc.tick(0)
    port.msg_errors = R.ERRORS_SWITCH
    svc.tick(10)
    assert port.inits[-1] == (250000, Port.MODE_SILENT) and st.can_kbps == 0
    rx.frames = 1
    svc.tick(20)
    assert port.inits[-1] == (250000, Port.MODE_NORMAL)
    assert st.can_kbps == 250 and st.can_followed
    assert logged == [(C_CAN_FOLLOWED, 250)]
    assert svc.period_ms >= 1000  # nothing left to decide
    svc.tick(30)
    assert len(port.inits) == 3


def test_service_first_node_runs_at_the_stored_rate_without_an_event():
    logged = []
    svc, st, port, rx = service(1, lambda code, value: logged.append((code, value)))
    svc.tick(0)
    svc.tick(R.LISTEN_MS)
    assert port.inits == [(250000, Port.MODE_SILENT), (250000, Port.MODE_NORMAL)]
    assert st.can_kbps == 250 and not st.can_followed and logged == []


def test_service_survives_a_chip_that_refuses_init_and_a_failing_log():
    def bad_log(code, value):
        raise OSError(5)
    svc, st, port, rx = service(0, bad_log)

    def refuse(bitrate, mode=0):
        raise OSError(19)
    port.init = refuse
    svc.tick(0)
    port.msg_errors = R.ERRORS_SWITCH
    svc.tick(10)
    rx.frames = 2
    svc.tick(20)
    assert svc.init_errors == 2 and svc.log_errors == 1 and st.can_kbps == 250


# ---- the bench: three packs and an inverter change rate, a fourth joins later -------

def _bench():
    import json
    from sim import scenario as scn
    from sim.mock_afe import FAULTS
    from tools import simworld
    doc = {"packs": 4, "duration_s": 120, "inverter": "victron",
           "events": [{"t_s": 0, "power": "off", "pack": 3}]}  # the fourth pack stays off for now
    return simworld.World(scn.parse(json.dumps(doc), FAULTS), lambda line: None)


def _rates(w, packs):
    return [(w.packs[k].app.state.can_kbps, w.packs[k].app.state.can_followed) for k in packs]


def test_bench_system_changes_to_250_and_a_late_pack_stored_at_500_joins_without_disturbing():
    from store.eventlog import KIND_STORE
    w = _bench()
    inv = w.inverter
    w.run_until(15000)
    master = w.packs[0].app.state
    assert _rates(w, range(3)) == [(500, False)] * 3 and master.link_online == 3
    assert inv.limits_seen and not inv.alarm and w.can.error_frames == 0
    # the change: can_bitrate_count = 1 stored on every pack (as the host's
    # parameter write saves it), the installer sets the inverter to 250 kbit/s,
    # then the packs restart
    for k in range(3):
        p = w.packs[k]
        p.app.params.set(CAN_BITRATE_COUNT, 1)
        p.store.params.save(p.app.params)
    inv.port.init(250000)
    for k in range(3):
        w.power_cycle(k)
    rx0 = inv.rx
    w.run_until(35000)
    master = w.packs[0].app.state
    assert _rates(w, range(3)) == [(250, False)] * 3  # the stored rate, heard or first on the bus
    assert master.link_online == 3 and master.link_failure is False
    assert inv.rx > rx0 + 10 and not inv.alarm and inv.cvl_mv > 0  # 0x351 decoded by the DBC (cantools)
    for k in range(3):
        modes = w.packs[k].board.can.inits[-2:]
        assert modes[-1] == (250000, 0) and (500000, 0) not in w.packs[k].board.can.inits[2:]
    # the fourth pack was off during the change: its flash still says 500 kbit/s
    late = w.packs[3]
    assert late.app.params.v[CAN_BITRATE_COUNT] == 0
    errors0, rx1 = w.can.error_frames, inv.rx
    n0 = len(late.board.can.inits)
    w.power(3, True)
    w.run_until(55000)
    assert late.board.can.inits[n0:] == [(500000, 3), (250000, 3), (250000, 0)]  # listened, then joined
    assert late.app.state.can_kbps == 250 and late.app.state.can_followed
    assert late.board.can.msg_errors > 0  # what it heard at 500 kbit/s: errors, nothing valid
    assert w.can.error_frames == errors0  # it never flagged a frame: nobody was disturbed
    assert w.packs[0].app.state.link_online == 4 and inv.rx > rx1 + 10 and not inv.alarm
    recs = late.store.log.read(0, 1000)
    assert [(r[4], r[5], r[7]) for r in recs if r[4] == KIND_STORE and r[5] == C_CAN_FOLLOWED] == \
        [(KIND_STORE, C_CAN_FOLLOWED, 250)]
    # what the listen-only start prevents: the same pack in normal mode at 500 kbit/s
    late.board.can.init(500000)
    w.run_until(57000)
    assert w.can.error_frames > errors0


# ---- the board: 32-bit MicroPython, the tick allocates nothing ------------------------

HEAP_LOCK_TICK = """
import micropython
from app.canrate import CanRate
from bms import canrate as R
from bms.params import Params, CAN_BITRATE_COUNT
from bms.state import PackState

class Port:
    MODE_NORMAL = 0
    MODE_SILENT = 3
    def __init__(self):
        self.msg_errors = 0
        self.bitrate = 0
        self.mode = -1
        self.inits = 0
    def init(self, bitrate, mode=0):
        self.bitrate = bitrate
        self.mode = mode
        self.inits += 1

class Rx:
    frames = 0

logged = [0, 0]
def log(code, value):
    logged[0] = code
    logged[1] = value

def tick(svc, t):  # a direct call: in the unix port fn(*args) builds a tuple
    micropython.heap_lock()
    try:
        svc.tick(t)
    except MemoryError:
        return "allocates"
    finally:
        micropython.heap_unlock()

def lock_works():
    micropython.heap_lock()
    try:
        [1]
    except MemoryError:
        return True
    finally:
        micropython.heap_unlock()
    return False

def probe():
    if not lock_works():
        return "heap_lock does not catch allocation"
    st = PackState()
    port = Port()
    rx = Rx()
    svc = CanRate(st, Params(), port, rx, log)
    t = 0
    for k in range(50):  # listening at 500: silence, then errors below the switch count
        if k == 10:
            port.msg_errors = R.ERRORS_SWITCH - 1
        if tick(svc, t) == "allocates":
            return "listen tick allocates"
        t += 10
    port.msg_errors += 1  # the switch to 250, listen-only
    if tick(svc, t) == "allocates":
        return "switch allocates"
    if (port.bitrate, port.mode) != (250000, 3):
        return "not listening at 250: %r" % ((port.bitrate, port.mode),)
    rx.frames = 3
    if tick(svc, t + 10) == "allocates":
        return "run allocates"
    for k in range(20):
        if tick(svc, t + 20 + 1000 * k) == "allocates":
            return "run tick allocates"
    if (port.bitrate, port.mode, st.can_kbps, st.can_followed, logged[1]) != (250000, 0, 250, True, 250):
        return "wrong end state"
    return "ok"

print(probe())
"""


def test_tick_allocates_nothing_in_32_bit_micropython(mpy32):
    # every path of the service's tick: listening, the switch, the confirmation, running
    # (the MCP2515's own init() allocates: at most a few per start, not per tick)
    r = mpy32(HEAP_LOCK_TICK, heap="256K")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok", r.stdout
