# Issue 14 defect 6: failures at start. The boot-loop guard (app.app, counted
# by app.persist in the counters file), set_fets failing in the safe state,
# the FETs after a failed board build (firmware/main.py), and a flash that
# fails while App() loads the store (host_tests/simflash.py budgets).
import json

import pytest

from app import persist as PS
from app.control import FET_OFF_TRIES
from defs import codes
from simflash import SimFlash
from store import counters as C
from store.store import Store
from test_power_cycle_soc import _stored, _world


def _cycles(t0_s, n, every_s):
    ev = []
    for k in range(n):
        t = t0_s + k * every_s
        ev += [{"t_s": t, "power": "off", "pack": 0}, {"t_s": t + 1, "power": "on", "pack": 0}]
    return ev


def test_boot_loop_guard_holds_the_pack_safe_until_the_button():
    n = PS.MAX_FAILED_STARTS
    # the first start and n - 1 restarts each cut after 10 s (< START_OK_MS):
    # n failed starts in a row, the next start is held
    ev = _cycles(10, n, 10) + [{"t_s": 10 * n + 30, "press": "button", "pack": 0, "hold_s": 7}]
    w, lines = _world(ev, 10 * n + 200)
    pack = w.packs[0]
    w.run_until((10 * n - 5) * 1000)  # start n (the restart at 10 (n - 1) + 1 s)
    assert not pack.app.held and _stored(pack)[C.FAILED_STARTS] == n
    w.run_until((10 * n + 5) * 1000)  # start n + 1: held
    app = pack.app
    assert app.held and _stored(pack)[C.FAILED_STARTS] == n + 1
    w.run_until((10 * n + 25) * 1000)
    assert not pack.afe.model.chg_on() and not pack.afe.model.dsg_on()
    last = json.loads([ln for ln in lines if '"pack": 0' in ln and '"mode"' in ln][-1])
    assert not last["chg_fet"] and not last["dsg_fet"] and last["leds"]["alm"] == "on"
    assert not any('"error"' in ln for ln in lines)
    # a power cycle while held stays held (the count only grows)
    w.power(0, False)
    w.power(0, True)
    assert pack.app.held
    # the installer's reset press (6-10 s) releases it: the count is cleared;
    # the next start (app.restart: machine.reset on the board) runs the firmware
    restarted = []
    pack.app.restart = lambda: restarted.append(1)
    w.run_until((10 * n + 40) * 1000)
    assert restarted == [1] and _stored(pack)[C.FAILED_STARTS] == 0
    w.power(0, False)
    w.power(0, True)
    assert not pack.app.held and pack.app.cycle is not None


def test_a_start_that_ran_cleanly_resets_the_count():
    n = PS.MAX_FAILED_STARTS
    # n - 1 failed starts, then one that runs 70 s, then n quick ones: not held
    ev = _cycles(10, n - 1, 10)
    t = 10 * (n - 1) + PS.START_OK_MS // 1000 + 10
    ev += _cycles(t, n, 10)
    w, _ = _world(ev, t + 10 * n + 5)
    pack = w.packs[0]
    w.run_until((t - 1) * 1000)
    assert _stored(pack)[C.FAILED_STARTS] == 0
    w.run_until((t + 10 * n + 3) * 1000)
    assert not pack.app.held and _stored(pack)[C.FAILED_STARTS] == n


def _failing_set_fets(pack, fail_n):
    calls = []
    real = pack.afe.set_fets

    def set_fets(chg, dsg, pchg):
        calls.append((chg, dsg, pchg))
        if len(calls) <= fail_n:
            return False  # the I2C transfer failed (drivers.bq76952 contract)
        real(chg, dsg, pchg)
        return True
    pack.afe.set_fets = set_fets
    return calls


def test_safe_state_retries_set_fets_and_counts():
    w, _ = _world([{"t_s": 1, "set": "current_a", "value": -20}], 30)
    w.run_until(5000)
    pack = w.packs[0]
    calls = _failing_set_fets(pack, 2)
    pack.app.safe_state("test")
    st = pack.app.state
    assert calls == [(False, False, False)] * 3 and st.fet_errors == 2
    assert not st.faults and not pack.afe.model.dsg_on()


def test_safe_state_faults_the_afe_when_set_fets_never_goes_through():
    w, lines = _world([{"t_s": 1, "set": "current_a", "value": -20}], 30)
    w.run_until(5000)
    pack = w.packs[0]
    calls = _failing_set_fets(pack, 10 ** 6)
    pack.app.safe_state("test")
    st = pack.app.state
    assert len(calls) == FET_OFF_TRIES and st.fet_errors == FET_OFF_TRIES
    assert st.faults & codes.bit(codes.FAULTS, "AFE")  # through protect's latch
    events = [st.events.get(s) for s in range(st.events.first_seq(), st.events.next_seq)]
    assert (codes.KIND_FAULT, codes.FAULTS.index("AFE"), 1) in [e[:3] for e in events]
    w.run_until(6000)
    assert "AFE" in json.loads([ln for ln in lines if '"faults"' in ln][-1])["faults"]


@pytest.mark.parametrize("budget", [0, 50, 200])
def test_flash_failing_while_the_store_loads_runs_without_it_and_faults(budget):
    w, lines = _world([], 60)
    w.run_until(3000)
    pack = w.packs[0]
    # a new, empty flash (first start) that dies after `budget` write units
    pack.store = Store(SimFlash(budget=budget))
    w.power(0, False)
    w.power(0, True)  # App() loads the store: the flash fails in there
    app = pack.app
    assert app.persist is None and app.store is None and app.cycle is not None
    w.run_until(5000)
    st = app.state
    assert st.faults == codes.bit(codes.FAULTS, "STORE")
    assert not st.chg_fet and not st.dsg_fet
    assert not any('"error"' in ln for ln in lines)
    assert "STORE" in json.loads([ln for ln in lines if '"faults"' in ln][-1])["faults"]
    # the button reset acknowledges it: the pack runs without its store
    st.protect_reset_req += 1
    w.run_until(8000)
    assert not st.faults


def test_failed_board_build_switches_the_fets_off(monkeypatch, capsys):
    # the MCU reset (WDT) while the BQ76952 kept its FETs on, and now the
    # board's build fails in configure(): main.py commands ALL_FETS_OFF
    import sys
    import fake_machine as fm
    from test_boards import load, Rig
    from drivers import bq76952, bq76952cfg
    mod = load("esp32_bq", monkeypatch)
    rig = Rig(mod)
    b = mod.build()
    bq76952cfg.enable_fet_control(b.afe)
    b.afe.set_fets(True, True, False)
    assert rig.bq.fets() & 0x05 == 0x05  # CHG and DSG on

    def broken(self, limits=None):
        raise bq76952.Bq76952Error("config not taken")
    monkeypatch.setattr(bq76952.BQ76952, "configure", broken)
    sys.modules.pop("main", None)
    import main
    retried = []
    monkeypatch.setattr(main, "_retry_later", lambda: retried.append(1))
    monkeypatch.setattr(sys, "print_exception", lambda e: print(repr(e)), raising=False)  # MicroPython's
    main.main()
    assert retried == [1] and "board failed" in capsys.readouterr().out
    assert rig.bq.fets() == 0 and fm.WDTS == []
