"""The forced-update / recovery mode (issue 15; recovery.mode): entered by the
forced-update jumper with the button held at boot, or when the boot part
found no valid image slot; it switches every FET off, blinks RUN and ALM
together (the maintenance pattern) and, from the very copies tools/frozen.py
freezes into the custom firmware (staged here, then imported), serves the UDS
update session: udsoncan's client on can-isotp over the simulated MCP2515 bus
updates slot B of a real esp32_bq board (fake machine, chip models) that
never loaded the app's modules for it."""
import sys

import isotp
import pytest
from udsoncan.client import Client
from udsoncan.connections import BaseConnection

import fake_machine as fm
from simflash import SimFlash, SimPartition
from test_boards import load, Rig
from test_maintenance import Level
from test_uds_update import SimConnection
from tools import frozen
from tools.bmsctl import bundle as tool
from tools.bmsctl import update as U
from store import cred as C
from store.slotstore import SlotStore
from update import boot as B
from update import slots as S

SECRET = bytes(range(32))
DEV_PUB = tool.DEV_KEY[:-len(".pem")] + ".pub"
IMAGE = b"\xd2\xcd\x31" + bytes((i * 5) & 0xFF for i in range(3000))
FILES = {"app/app.mpy": b"\x4d\x06app"}


def _board(monkeypatch, jumper=False, button=False):
    mod = load("esp32_bq", monkeypatch)
    rig = Rig(mod)
    fm.WIRES[mod.PINS["jumper"]] = Level(jumper)
    fm.WIRES[mod.PINS["button"]] = Level(button)
    return mod, rig


def _main(mod, running=0):
    """recovery.mode.main as the ROMFS stub runs it; (what ran, the reason)."""
    from recovery import mode, serve
    ran = []
    real = serve.run
    serve.run = lambda reason, m=None: ran.append(("recovery", reason))
    try:
        mode.main(lambda: ran.append(("firmware", None)), running)
    finally:
        serve.run = real
    return ran


@pytest.mark.parametrize("jumper,button,running,expect", [
    (True, True, 0, ("recovery", "the forced-update jumper fitted and the button held at boot")),
    (False, False, S.RECOVERY, ("recovery", "no valid image slot")),
    (True, False, 0, ("firmware", None)),  # the jumper alone: maintenance mode is the firmware's
    (False, True, 0, ("firmware", None)),  # the button alone: a normal boot
])
def test_recovery_is_entered_by_jumper_and_button_or_by_no_valid_slot(monkeypatch, jumper, button, running, expect):
    mod, rig = _board(monkeypatch, jumper, button)
    assert _main(mod, running) == [expect]


def _run(b, svcs, ms):
    from sim.vtime import VirtualRunner
    r = VirtualRunner()
    for s in svcs:
        r.add(s)
    led = {0: [], 1: [], 2: []}
    for t in range(0, ms, 50):
        r.run_until(t)
        for i in led:
            led[i].append(b.led_pins[i].value())
    return r, led


def test_recovery_switches_every_fet_off_and_blinks_run_and_alm(monkeypatch, capsys):
    mod, rig = _board(monkeypatch, True, True)
    from recovery import mode, serve
    mod.build().afe.set_fets(True, True, False)  # what the AFE held before an MCU-only reset
    assert rig.bq.fets() != 0
    b = mod.build(configure=False)  # recovery's board: the chip keeps its configuration and FETs
    assert rig.bq.fets() != 0
    svcs = serve.services(b, None, None, mode.JUMPER_AND_BUTTON)
    assert rig.bq.fets() == 0 and rig.bq.fet_off_all  # ALL_FETS_OFF, then FET_CONTROL
    out = capsys.readouterr().out
    assert "recovery (the forced-update jumper" in out and "FETs off" in out
    assert "no update session" in out  # not the frozen copies: lib/recovery alone
    r, led = _run(b, svcs, 3000)
    assert led[0] == led[1] and 0 in led[0][-30:] and 1 in led[0][-30:]
    edges = [i for i in range(1, len(led[0])) if led[0][i] != led[0][i - 1]]
    assert len(edges) >= 4 and all(b - a == 10 for a, b in zip(edges, edges[1:]))  # 0.5 s on, 0.5 s off
    assert set(led[2]) == {0}  # the SOC LEDs stay dark
    assert rig.bq.fets() == 0


def test_the_board_loop_gives_the_repl_on_ctrl_c_with_the_fets_off(monkeypatch, capsys):
    mod, rig = _board(monkeypatch, True, True)
    import time
    from recovery import mode, serve
    n = []

    def sleep_ms(ms):
        n.append(ms)
        if len(n) == 20:
            raise KeyboardInterrupt
    monkeypatch.setattr(time, "sleep_ms", sleep_ms, raising=False)
    monkeypatch.setattr(time, "ticks_ms", lambda: 5 * len(n), raising=False)
    monkeypatch.setattr(serve, "_fs", lambda: None)
    serve.run(mode.JUMPER_AND_BUTTON, mod)
    assert "recovery stopped (FETs off)" in capsys.readouterr().out
    assert rig.bq.fets() == 0 and fm.WDTS == []


def test_a_recovery_without_a_board_says_so_and_returns(monkeypatch, capsys):
    from recovery import mode, serve

    class Broken:
        @staticmethod
        def build(configure=True):
            raise OSError("no I2C")
    monkeypatch.setitem(sys.modules, "machine", fm)
    serve.run(mode.NO_SLOT, Broken)
    assert "the board failed to start: no I2C" in capsys.readouterr().out


# ---- the frozen copies: the UDS session in recovery --------------------------------

@pytest.fixture
def frozen_recovery(tmp_path, monkeypatch):
    """The lower part as the custom firmware freezes it (tools/frozen.py; an
    owner's build with the development key as its update key), first on
    sys.path: recovery, recovery.board, recovery.app.uds, ... are the staged
    copies."""
    frozen.stage("esp32_bq", "lower", str(tmp_path / "lower"), owner_key=DEV_PUB)
    built = {}
    exec((tmp_path / "lower" / "src" / "update" / "trust.py").read_text(), built)
    assert built["PUBLIC_KEY"] == bytes.fromhex(open(DEV_PUB).read().strip())
    import update.trust
    monkeypatch.setattr(update.trust, "PUBLIC_KEY", built["PUBLIC_KEY"])  # the frozen copy's value
    only = tmp_path / "path"  # the recovery package alone: lib's own modules stay what the host tests import
    only.mkdir()
    (only / "recovery").symlink_to(tmp_path / "lower" / "src" / "recovery")
    for m in [m for m in sys.modules if m == "recovery" or m.startswith("recovery.")]:
        monkeypatch.delitem(sys.modules, m)
    monkeypatch.syspath_prepend(str(only))
    yield only
    for m in [m for m in sys.modules if m == "recovery" or m.startswith("recovery.")]:
        del sys.modules[m]


class PeerConnection(SimConnection):
    """test_uds_update's connection, over the peer MCP2515 of the simulated
    bus instead, running the recovery's services in virtual time while it waits."""

    def __init__(self, rig, runner, address):
        BaseConnection.__init__(self, "peer")
        self.rig = rig
        self.r = runner
        tx, rx = U.uds_ids(address)
        self.tp = isotp.TransportLayerLogic(
            rxfn=self._rx, txfn=lambda m: self.txq.append((m.arbitration_id, bytes(m.data))),
            address=isotp.Address(isotp.AddressingMode.Normal_29bits, txid=tx, rxid=rx),
            params={"tx_padding": 0x55, "override_receiver_stmin": 0})
        self.txq = []
        self.opened = False

    def _rx(self, timeout=0):
        fr = self.rig.peer.recv()
        if fr is None:
            return None
        return isotp.CanMessage(arbitration_id=fr[0], data=bytes(fr[1]), extended_id=True)

    def step(self, ms=10):
        p = self.rig.peer
        for _ in range(4):
            self.tp.process()
            while self.txq and p.send(self.txq[0][0], self.txq[0][1], p.FLAG_EXT_ID) is not None:
                self.txq.pop(0)  # the peer's 3 transmit buffers: a tester's driver waits for one
            self.rig.bus.step()
            self.r.run_until(self.r.now_ms + ms // 4)
        self.tp.process()


def test_a_uds_session_in_recovery_updates_slot_b_from_the_frozen_copies(monkeypatch, frozen_recovery, capsys):
    mod, rig = _board(monkeypatch, True, True)
    from recovery import mode, serve
    from recovery import board as rboard  # the frozen copy of esp32_bq, not the image's board module
    assert serve.__file__.startswith(str(frozen_recovery)) and rboard.__file__.startswith(str(frozen_recovery))
    assert "from recovery.bq_board import" in open(rboard.__file__).read()
    fs = SimFlash()
    C.CredStore(fs).save({2: SECRET})
    rec = B.factory()
    rec[S.COUNTER0] = rec[S.FLOOR] = 3
    SlotStore(fs).save(rec)
    b = rboard.build(configure=False)
    b.rom = SimPartition(fs, 2 * B.SLOT_BYTES)
    resets = []
    svcs = serve.services(b, fs, lambda: (lambda: resets.append(1)), mode.NO_SLOT)
    out = capsys.readouterr().out
    address = b.pack_address or serve.DEFAULT_ADDRESS
    assert "UDS update session on CAN at address %d" % address in out
    uds = svcs[-1]
    assert type(uds).__module__ == "recovery.app.uds"
    from sim.vtime import VirtualRunner
    r = VirtualRunner()
    for s in svcs:
        r.add(s)
    conn = PeerConnection(rig, r, address)
    c = Client(conn, config=U.client_config(SECRET))
    c.open()
    key = tool.load_key(tool.DEV_KEY)  # the key the build put into the frozen update.trust
    data = tool.pack(tool.manifest("esp32_bq", "2.1.0", 4, IMAGE, FILES), IMAGE, key)
    ident = U.update(c, data)
    assert ident["slots"]["pending"] == "B" and ident["version"].startswith("R")
    assert bytes(b.rom.buf[B.SLOT_BYTES:B.SLOT_BYTES + len(IMAGE)]) == IMAGE
    got = SlotStore(fs.remount()).load()[0]
    assert got[S.PENDING] == 1 and got[S.COUNTER1] == 4
    for _ in range(20):
        conn.step()
    assert resets == [1]  # activate: the reset into the staged image
    assert rig.bq.fets() == 0



def test_recovery_without_a_built_in_key_trusts_only_a_commissioned_one(monkeypatch, tmp_path, capsys):
    # a firmware built without OWNER_KEY: the frozen update.trust holds no key
    frozen.stage("esp32_bq", "lower", str(tmp_path / "lower"))
    trust_src = (tmp_path / "lower" / "src" / "update" / "trust.py").read_text()
    assert "PUBLIC_KEY = None" in trust_src
    import update.trust as T
    assert T.PUBLIC_KEY is None  # lib's own copy, as shipped
    key = tool.load_key(tool.DEV_KEY)
    data = tool.pack(tool.manifest("esp32_bq", "2.1.0", 4, IMAGE, FILES), IMAGE, key)
    from update.updater import for_board, R_NO_KEY
    fs = SimFlash()
    rec = B.factory()
    SlotStore(fs).save(rec)
    b = type("B", (), {"name": "esp32_bq", "rom": SimPartition(fs, 2 * B.SLOT_BYTES)})()
    u = for_board(b, SlotStore(fs))
    assert u.begin(len(data), 0) == R_NO_KEY and u.reason == R_NO_KEY
    assert SlotStore(fs.remount()).load()[0] == rec  # nothing written: the record is as it was
    pub = bytes.fromhex(open(DEV_PUB).read().strip())
    u = for_board(b, SlotStore(fs), pub)  # the key commissioned (bms.auth.update_key)
    assert u.begin(len(data), 0) == 0
    assert u.feed(data) == 0 and u.end() == 0
