"""Parallel packs on the bench (SPEC 7): roles and addresses, M/S and RUN
LEDs, the master's system view against a recomputation from the pack lines,
limits no pack exceeds, cables unplugged, packs switched off/on, late and
mismatched joiners; 2, 8 and 32 packs."""
import json

import pytest

import simworld
from bms import indicate, parallel
from bms.params import index_of
from proto import link as lp
from sim import scenario as scn
from sim.mock_afe import FAULTS


def run(doc, log_edges=False, can=True):
    lines = []
    world = simworld.World(scn.parse(json.dumps(doc), FAULTS), lines.append, log_edges, can=can)
    world.run()
    return world, [json.loads(ln) for ln in lines if '"pack"' in ln]


def at(trace, t_s, pack):
    best = None
    for o in trace:
        if o["pack"] == pack and o["t_ms"] <= t_s * 1000:
            best = o
    return best


def test_two_packs_roles_addresses_leds_and_the_flicker():
    world, tr = run({"packs": 2, "duration_s": 14}, log_edges=True)
    m, s = at(tr, 10, 0), at(tr, 10, 1)
    assert (m["role"], m["address"], m["leds"]["ms"]) == ("master", 1, "on")
    assert (s["role"], s["address"], s["leds"]["ms"]) == ("slave", 2, "off")
    assert m["system"]["packs_online"] == 2 and "system" not in s
    for p in world.packs:
        assert p.app.link.roles.changes == 1  # decided once, stable
        assert p.app.indicate.seq == indicate.SEQ_PARALLEL
    formed = world.packs[0].app.link.roles.formed_ms
    assert 0 < formed <= 10000
    rises = [t for t, v in world.packs[1].board.led_pins[indicate.RUN].edges if v == 1 and formed <= t < formed + 3000]
    assert len(rises) >= 5
    # a single pack stays single, M/S off, and sends nothing on the link bus
    w1, tr1 = run({"packs": 1, "duration_s": 6})
    assert at(tr1, 6, 0)["role"] == "single" and at(tr1, 6, 0)["leds"]["ms"] == "off"
    assert w1.can.bits == 0


def _recompute(lines):
    """System totals from the pack lines (bms.system rule)."""
    n = len(lines)
    i_sum = sum(o["current_ma"] for o in lines)
    soc = sum(o["soc_pct"] for o in lines) / n
    out = {"packs_online": n, "current_ma": i_sum, "soc_pct": soc,
           "voltage_mv": sum(o["stack_mv"] for o in lines) / n,
           "cvl_mv": min(o["cvl_mv"] for o in lines)}
    for key, sign in (("ccl_ma", 1), ("dcl_ma", -1)):
        share_eq = 1 / n
        best = None
        for o in lines:
            share = share_eq
            if i_sum * sign >= n * 2000:
                share = max(share, o["current_ma"] / i_sum)
            v = o[key] / share
            best = v if best is None else min(best, v)
        out[key] = best
    return out


def test_eight_packs_system_view_matches_the_packs_and_limits_hold():
    world, tr = run({"packs": 8, "duration_s": 30, "initial": {"soc_pct": [60, 60, 61, 60, 62, 60, 60, 63]},
                     "events": [{"t_s": 12, "set": "current_a", "value": 160}]})
    for t in (10, 29):
        lines = [at(tr, t, k) for k in range(8)]
        assert [o["address"] for o in lines] == list(range(1, 9))
        assert [o["role"] for o in lines] == ["master"] + ["slave"] * 7
        assert [o["leds"]["ms"] for o in lines] == ["on"] + ["off"] * 7
        sysv = lines[0]["system"]
        want = _recompute(lines)
        assert sysv["packs_online"] == 8 and sysv["packs_offline"] == 0
        assert sysv["current_ma"] == pytest.approx(want["current_ma"], abs=8 * 300)
        assert sysv["voltage_mv"] == pytest.approx(want["voltage_mv"], abs=30)
        assert sysv["soc_pct"] == pytest.approx(want["soc_pct"], abs=1)
        assert sysv["cvl_mv"] == want["cvl_mv"]
        assert sysv["ccl_ma"] == pytest.approx(want["ccl_ma"], rel=0.03)
        assert sysv["dcl_ma"] == pytest.approx(want["dcl_ma"], rel=0.03)
    # charging: uneven shares (different SOC) and still no pack is asked for more than its CCL
    lines = [at(tr, 29, k) for k in range(8)]
    sysv = lines[0]["system"]
    total = sum(o["current_ma"] for o in lines)
    shares = [o["current_ma"] / total for o in lines]
    assert max(shares) > 1 / 8  # the sharing is physical, not equal
    for o, sh in zip(lines, shares):
        assert sh * sysv["ccl_ma"] <= o["ccl_ma"] * 1.02
    assert sysv["ccl_ma"] < 8 * min(o["ccl_ma"] for o in lines)


# 8 packs, the cable between packs 3 and 4 pulled at 12 s and put back at 25 s
UNPLUG_REPLUG = {"packs": 8, "duration_s": 40, "events": [
    {"t_s": 12, "link": "unplug", "between": [3, 4]},
    {"t_s": 25, "link": "plug", "between": [3, 4]}]}


def check_unplug_replug(tr):
    """At 22 s the master sees 4 packs online, 4 offline, a parallel failure,
    and the tail has formed no second master; at 40 s all 8 are back at
    addresses 1..8. Returns the packs' lines at 22 s."""
    mid = [at(tr, 22, k) for k in range(8)]
    sysv = mid[0]["system"]
    assert (sysv["packs_online"], sysv["packs_offline"], sysv["parallel_failure"]) == (4, 4, True)
    assert [o["role"] for o in mid] == ["master"] + ["slave"] * 7  # no second master in the tail
    end = [at(tr, 40, k) for k in range(8)]
    sysv = end[0]["system"]
    assert (sysv["packs_online"], sysv["packs_offline"], sysv["parallel_failure"]) == (8, 0, False)
    assert [o["address"] for o in end] == list(range(1, 9))
    return mid


def test_unplugged_cable_is_a_parallel_failure_and_the_tail_forms_no_system():
    world, tr = run(UNPLUG_REPLUG)
    mid = check_unplug_replug(tr)
    assert [o["address"] for o in mid] == list(range(1, 9))
    assert all("system" not in o for o in mid[1:])
    assert world.packs[0].app.link.roles.changes == 1  # the others were never restarted


def test_slave_off_and_on_and_a_late_joiner():
    world, tr = run({"packs": 3, "duration_s": 45, "events": [
        {"t_s": 0, "power": "off", "pack": 2},
        {"t_s": 12, "power": "on", "pack": 2},
        {"t_s": 25, "power": "off", "pack": 1},
        {"t_s": 32, "power": "on", "pack": 1}]})
    assert at(tr, 11, 0)["system"]["packs_online"] == 2
    assert at(tr, 11, 2) is None  # off: no lines
    s = at(tr, 22, 0)["system"]
    assert (s["packs_online"], s["packs_offline"]) == (3, 0)
    assert at(tr, 22, 2)["address"] == 3 and at(tr, 22, 2)["role"] == "slave"
    # pack 1 off: its Link ports are dead, pack 2 beyond it is cut off too
    s = at(tr, 31.9, 0)["system"]
    assert (s["packs_online"], s["packs_offline"], s["parallel_failure"]) == (1, 2, True)
    assert at(tr, 31.9, 2)["role"] == "slave"  # orphan: CAN still reaches it, no master upstream
    end = [at(tr, 45, k) for k in range(3)]
    assert [o["address"] for o in end] == [1, 2, 3]
    assert end[0]["system"]["packs_online"] == 3 and end[0]["system"]["packs_offline"] == 0
    assert world.packs[0].app.link.roles.changes == 1


def test_mismatched_voltage_joiner_keeps_its_fets_open():
    world, tr = run({"packs": 2, "duration_s": 15, "initial": {"soc_pct": [20, 100]},
                     "events": [{"t_s": 8, "set": "current_a", "value": -20}]})
    m, s = at(tr, 15, 0), at(tr, 15, 1)
    assert abs(m["stack_mv"] - s["stack_mv"]) > 1000
    assert s["role"] == "slave" and not s["chg_fet"] and not s["dsg_fet"]
    assert all(not o["chg_fet"] and not o["dsg_fet"] for o in tr if o["pack"] == 1)
    assert s["current_ma"] == 0
    sysv = m["system"]
    assert sysv["packs_online"] == 2 and sysv["packs_blocking_charge"] == 1
    assert sysv["dcl_ma"] == m["dcl_ma"] // 10 * 10  # the held pack adds nothing
    # a matched joiner closes
    _, tr2 = run({"packs": 2, "duration_s": 8, "initial": {"soc_pct": [60, 60]}})
    assert at(tr2, 8, 1)["chg_fet"] and at(tr2, 8, 1)["dsg_fet"]


def test_thirty_two_packs_form_within_ten_seconds():
    world, tr = run({"packs": 32, "duration_s": 11})
    lines = [at(tr, 11, k) for k in range(32)]
    assert [o["address"] for o in lines] == list(range(1, 33))
    assert [o["role"] for o in lines] == ["master"] + ["slave"] * 31
    assert [o["leds"]["ms"] for o in lines] == ["on"] + ["off"] * 31
    assert lines[0]["system"]["packs_online"] == 32
    formed = world.packs[0].app.link.roles.formed_ms
    assert 0 < formed <= 10000
    assert all(p.app.indicate.seq == indicate.SEQ_PARALLEL for p in world.packs)
    assert world.can.bits / 11 / 500000 < 0.30


def test_scenario_rejects_bad_link_and_power_events():
    for ev, msg in (({"t_s": 1, "link": "cut", "between": [0, 1]}, "unplug"),
                    ({"t_s": 1, "link": "unplug", "between": [0, 2]}, "neighbouring"),
                    ({"t_s": 1, "power": "off", "pack": 5}, "pack"),
                    ({"t_s": 1, "power": "maybe", "pack": 0}, "off")):
        with pytest.raises(scn.ScenarioError, match=msg):
            scn.parse(json.dumps({"packs": 3, "events": [ev]}), FAULTS)


class _UpstreamPack:
    """A pack powered on upstream of the master, on the same Link IN segment
    as the RS485 inverter: undecided (hands no address) from 3 s, the master
    of the chain (hands address 2 down) from 9 s."""
    name = "upstream"
    period_ms = 100

    def __init__(self, world):
        self.world = world
        self.sent = 0
        self.out = bytearray(lp.RS485_MAX)

    def tick(self, now_ms):
        t = self.world.t_ms()
        if t < 3000:
            return
        dst = 2 if t >= 9000 else 0
        n = lp.rs485_frame(self.out, lp.T_ADDR, 1 if dst else 0, dst,
                           bytes([lp.ADDR_MASTER_REACHED if dst else 0, 0]), 2)
        self.world.links[0].a.write(self.out[:n])
        self.sent += 1


def test_master_link_in_shared_by_an_rs485_inverter_and_a_pack_upstream():
    pytest.importorskip("cantools")
    lines = []
    doc = {"packs": 2, "duration_s": 14, "inverter": {"bus": "rs485", "emulator": "pylon"}}
    world = simworld.World(scn.parse(json.dumps(doc), FAULTS), lines.append)
    up = _UpstreamPack(world)
    world.runner.add(up, 50)
    world.run_until(8950)
    lk = world.packs[0].app.link
    # the master kept its role and heard every frame of the pack upstream ...
    assert world.packs[0].app.state.link_role == parallel.MASTER
    assert up.sent > 50 and lk.rx_frames == up.sent and lk.rx_in.parser.bad == 0
    # ... and the inverter lost no request: from 3 s to 8.9 s every one is answered
    rs = [json.loads(ln) for ln in lines if '"rs485"' in ln]
    msgs = [(o["t_ms"], bytes.fromhex(o["data"]).decode()) for o in rs]
    reqs = [t for t, m in msgs if 3000 <= t < 8800 and m[7:9] in ("92", "42")]
    replies = [t for t, m in msgs if 3000 <= t < 8950 and m[7:9] == "00"]
    assert len(reqs) >= 5 and len(replies) == len(reqs)
    assert world.inverter.rx >= 2
    # then the pack upstream hands address 2 down: the master hands over
    world.run()
    st0, st1 = world.packs[0].app.state, world.packs[1].app.state
    assert (st0.link_role, st0.link_address) == (parallel.SLAVE, 2)
    assert (st1.link_role, st1.link_address) == (parallel.SLAVE, 3)
    assert up.sent - 1 <= lk.rx_frames <= up.sent  # the last one may still be on the wire


@pytest.mark.parametrize("n", [2, 8])
def test_boards_without_can_carry_the_link_over_the_rs485_chain(n):
    soc = [60, 61, 60, 62, 60, 63, 60, 61][:n]
    world, tr = run({"packs": n, "duration_s": 25, "initial": {"soc_pct": soc},
                     "events": [{"t_s": 12, "set": "current_a", "value": 20 * n}]}, can=False)
    assert all(p.board.can is None for p in world.packs) and world.can.bits == 0
    for t in (10, 24):
        lines = [at(tr, t, k) for k in range(n)]
        assert [o["address"] for o in lines] == list(range(1, n + 1))
        assert [o["role"] for o in lines] == ["master"] + ["slave"] * (n - 1)
        assert [o["leds"]["ms"] for o in lines] == ["on"] + ["off"] * (n - 1)
        sysv = lines[0]["system"]
        want = _recompute(lines)
        assert (sysv["packs_online"], sysv["packs_offline"], sysv["parallel_failure"]) == (n, 0, False)
        assert sysv["current_ma"] == pytest.approx(want["current_ma"], abs=n * 300)
        assert sysv["voltage_mv"] == pytest.approx(want["voltage_mv"], abs=30)
        assert sysv["soc_pct"] == pytest.approx(want["soc_pct"], abs=1)
        assert sysv["cvl_mv"] == want["cvl_mv"]
        assert sysv["ccl_ma"] == pytest.approx(want["ccl_ma"], rel=0.03)
        assert sysv["dcl_ma"] == pytest.approx(want["dcl_ma"], rel=0.03)
    for p in world.packs:
        assert p.app.link.roles.changes == 1
        assert p.app.indicate.seq == indicate.SEQ_PARALLEL  # the HELLO's generation came down the chain
        assert all(o["chg_fet"] and o["dsg_fet"] for o in [at(tr, 24, p.index)])  # joined
    assert 0 < world.packs[0].app.link.roles.formed_ms <= 10000
    if n > 2:
        assert world.packs[1].app.link.relayed > 0


def test_boards_without_can_unplugged_cable_and_replug():
    _, tr = run(UNPLUG_REPLUG, can=False)
    check_unplug_replug(tr)


def test_parallel_failure_is_the_parallel_alarm_and_alm_warns():
    world, tr = run({"packs": 2, "duration_s": 40, "events": [
        {"t_s": 12, "link": "unplug", "between": [0, 1]},
        {"t_s": 25, "link": "plug", "between": [0, 1]}]})
    before = [at(tr, 11, k) for k in range(2)]
    assert all("PARALLEL" not in o["alarms"] and o["leds"]["alm"] == "off" for o in before)
    mid = [at(tr, 22, k) for k in range(2)]
    assert mid[0]["system"]["parallel_failure"] and mid[0]["system"]["packs_offline"] == 1
    for o in mid:  # the master lost its slave; the slave is cut off from its master
        assert o["alarms"] == ["PARALLEL"] and o["leds"]["alm"] == "flash3"
        assert o["protections"] == [] and o["chg_fet"] and o["dsg_fet"]  # a warning: the packs go on
    end = [at(tr, 40, k) for k in range(2)]
    assert not end[0]["system"]["parallel_failure"]
    assert all(o["alarms"] == [] and o["leds"]["alm"] == "off" for o in end)
    # raised once and cleared once, in the event ring (protect's own events untouched)
    from defs import codes
    ev = world.packs[0].app.state.events
    got = [(e[2], e[3]) for e in (ev.get(q) for q in range(ev.first_seq(), ev.next_seq))
           if e[0] == codes.KIND_ALARM and e[1] == codes.ALARMS.index("PARALLEL")]
    assert [r for r, _ in got] == [True, False] and 12000 < got[0][1] < 17000 and 25000 < got[1][1] < 30000


class _Asker:
    """Asks the master's RS485 server for pack 2's (ADR 3) analog values."""
    name = "asker"
    period_ms = 1000

    def __init__(self, world):
        self.world = world

    def tick(self, now_ms):
        from tools.emulators.inverters import request
        if self.world.t_ms() >= 9000:
            self.world.links[0].a.write(request(0x20, 3, 0x42, bytes([3])))


def test_master_answers_0x42_for_a_slave_with_its_cells_over_the_link():
    pytest.importorskip("cantools")
    from tools.emulators.inverters import decode
    lines = []
    doc = {"packs": 2, "duration_s": 14, "inverter": {"bus": "rs485", "emulator": "pylon"},
           "initial": {"soc_pct": [30, 90]}}
    world = simworld.World(scn.parse(json.dumps(doc), FAULTS), lines.append)
    world.runner.add(_Asker(world), 500)
    world.run()
    tr = [json.loads(ln) for ln in lines if '"pack"' in ln]
    got = []
    for o in (json.loads(ln) for ln in lines if '"rs485"' in ln):
        r = decode(bytes.fromhex(o["data"]))
        if r is not None and bytes.fromhex(o["data"])[3:5] == b"03":
            got.append((o["t_ms"], r))
    assert got and got[0][1]["rtn"] == 0x91  # the first ask: no cells held yet
    ok = [(t, r) for t, r in got if r["rtn"] == 0]
    assert len(ok) >= 3
    t, r = ok[-1]
    info = r["info"]
    n = info[2]
    cells = [int.from_bytes(info[3 + 2 * i:5 + 2 * i], "big") for i in range(n)]
    slave = at(tr, t / 1000, 1)
    assert n == 16 and all(abs(a - b) <= 5 for a, b in zip(cells, slave["cell_mv"]))
    assert min(abs(a - b) for a, b in zip(cells, at(tr, t / 1000, 0)["cell_mv"])) > 20  # not the master's


def _swap_positions(w, i, j):
    """Rewire the chain: packs i and j (both off) trade places, their Link IN /
    Link OUT cables and their place on the CAN bus."""
    bi, bj = w.packs[i].board, w.packs[j].board
    bi.link_in, bj.link_in = bj.link_in, bi.link_in
    bi.link_out, bj.link_out = bj.link_out, bi.link_out
    if bi.can is not None:
        bi.can.position, bj.can.position = bj.can.position, bi.can.position


@pytest.mark.parametrize("can", [True, False])
def test_a_fixed_address_stays_with_the_pack_when_it_moves_in_the_chain(can):
    """Pack 1 fixed at 9 (parameter link_fixed_address_count, read at start):
    it is a slave at 9 at once, the automatic pack after it follows (10); moved
    to the end of the chain it keeps 9, the pack now after the master gets 2,
    and the master's system has every pack online, no parallel failure."""
    world = simworld.World(scn.parse(json.dumps({"packs": 3, "duration_s": 60}), FAULTS), lambda line: None,
                           can=can)
    world.run_until(8000)
    apps = lambda: [p.app for p in world.packs]  # noqa: E731 (a restart makes a new app)
    assert [a.link.roles.address for a in apps()] == [1, 2, 3]
    fixed = index_of("link_fixed_address_count")
    a1 = apps()[1]
    a1.params.set(fixed, 9)
    world.packs[1].store.params.save(a1.params)
    assert a1.link.roles.address == 2  # read at start: no change before the restart
    world.power_cycle(1)
    world.run_until(16000)
    assert [a.link.roles.address for a in apps()] == [1, 9, 10]
    assert apps()[1].state.link_fixed and apps()[1].link.roles.changes == 1  # slave at 9 at once
    master = apps()[0]
    t = master.link.table
    for gone in (2, 3):
        master.link.remove(gone)
    world.run_until(17000)
    assert [a for a in range(1, 33) if t.seen[a]] == [1, 9, 10] and master.state.link_online == 3
    for k in (1, 2):
        world.power(k, False)
    _swap_positions(world, 1, 2)
    for k in (2, 1):
        world.power(k, True)
    world.run_until(30000)
    assert [a.link.roles.address for a in apps()] == [1, 9, 2]
    assert apps()[1].state.link_fixed and not apps()[2].state.link_fixed
    assert [a for a in range(1, 33) if t.online[a]] == [1, 2, 9]
    v = master.system.view
    assert v.packs_online == 3 and master.state.link_online == 3
    master.link.remove(10)  # the automatic pack's old address (the PC tool's remove_pack)
    world.run_until(31000)
    assert v.packs_offline == 0 and not v.parallel_failure and not master.state.link_failure
    # every pack is at its address and nobody heard another pack at its own
    assert all(a.state.link_conflict == 0 and a.link.table.conflicts == 0 for a in apps())


def _starve(world, pack, until_ms):
    """Pack's table cannot be built (MemoryError: a heap too full) before until_ms."""
    t = world.packs[pack].app.link.table
    for name in ("build", "build_series"):
        def fail(real=getattr(t, name)):
            if world.t_ms() < until_ms:
                raise MemoryError
            return real()
        setattr(t, name, fail)


@pytest.mark.parametrize("until_s", [None, 8])
def test_a_master_that_cannot_build_its_table_reports_only_its_own_pack(until_s):
    """The master's rows are built at the first peer report: while the heap
    cannot hold them the reports are dropped (counted in link.failed) and the
    master tells the inverter its own pack alone, never larger limits than
    its own; the slave, never told a system voltage, keeps its FETs open.
    Once the rows can be built, the next report builds them and the system
    forms."""
    lines = []
    doc = {"packs": 2, "duration_s": 16, "events": [{"t_s": 2, "set": "current_a", "value": 40}]}
    world = simworld.World(scn.parse(json.dumps(doc), FAULTS), lines.append)
    _starve(world, 0, (until_s or 99) * 1000)
    world.run()
    tr = [json.loads(ln) for ln in lines if '"pack"' in ln]
    m, s = at(tr, 7, 0), at(tr, 7, 1)
    sysv = m["system"]
    # the master alone shows as single (sim.trace: a master with no pack in parallel)
    assert world.packs[0].app.link.roles.role == parallel.MASTER and s["role"] == "slave"
    assert world.packs[0].app.link.failed > 0
    assert sysv["packs_online"] == 1 and sysv["current_ma"] == m["current_ma"] // 10 * 10
    assert sysv["ccl_ma"] <= m["ccl_ma"] and sysv["dcl_ma"] <= m["dcl_ma"]
    assert not s["chg_fet"] and not s["dsg_fet"]
    m, s = at(tr, 16, 0), at(tr, 16, 1)
    if until_s is None:
        assert m["system"]["packs_online"] == 1 and not s["chg_fet"]
    else:
        assert m["system"]["packs_online"] == 2 and s["chg_fet"] and s["dsg_fet"]
        assert m["system"]["ccl_ma"] > m["ccl_ma"]  # two packs share the charge
