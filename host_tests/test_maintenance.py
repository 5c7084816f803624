"""Maintenance mode (issue 13's commissioning, issue 15's idle pack): a real
board (boards/esp32_bq.py on the fake machine, the BQ76952 and MCP2515 chip
models) booted with the forced-update jumper fitted keeps both FETs open
while its cells would allow them, tells the inverter 0 A, blinks RUN and ALM
together, and takes a level's first secret only while its button is held;
the same request without the jumper, or without the button, is refused and
counted. With the button also held at boot the recovery mode runs instead
(host_tests/test_recovery.py)."""
import hashlib
import hmac
import sys

import pytest
from pymodbus.pdu.register_message import WriteMultipleRegistersRequest, ReadHoldingRegistersRequest

import fake_machine as fm
from test_boards import load, Rig
from tools import regmap

MAP = regmap.describe()
PROVISION = next(b for b in MAP["blocks"] if b["name"] == "provision")
LOGIN = next(b for b in MAP["blocks"] if b["name"] == "login")
CHALLENGE = next(b for b in MAP["blocks"] if b["name"] == "challenge")
SECRET = bytes(range(1, 33))
INSTALLER = 2


class Level:
    """A pulled-up input: 0 while fitted / held."""

    def __init__(self, low):
        self.low = low

    def value(self, v=None):
        return 0 if self.low else 1


def boot(monkeypatch, jumper, button=False):
    """esp32_bq with the jumper and the button as given, the firmware as
    main.py starts it (app.compose.start), run for 3 s of virtual time."""
    mod = load("esp32_bq", monkeypatch)
    rig = Rig(mod)
    rig.bq.cell_mv = [3300] * 16
    rig.bq.render()
    btn = Level(button)
    fm.WIRES[mod.PINS["jumper"]] = Level(jumper)
    fm.WIRES[mod.PINS["button"]] = btn
    from app.compose import start
    from sim.vtime import VirtualRunner
    b = mod.build()
    app, _ = start(b)
    r = VirtualRunner()
    for s in app.services:
        r.add(s)
    led = {0: [], 1: []}
    for t in range(0, 3000, 50):
        r.run_until(t)
        led[0].append(b.led_pins[0].value())
        led[1].append(b.led_pins[1].value())
    return rig, b, app, r, btn, led


def pdu(app, request):
    """request (a pymodbus PDU) to unit 1's handler; (function code byte, reply bytes)."""
    host = app.host.build()[0]
    req = bytearray(request.encode())
    req[0:0] = bytes([request.function_code])
    out = bytearray(260)
    k = host.pdu(1, memoryview(req), len(req), memoryview(out), 1)
    return out[0], bytes(out[1:k])


def provision(app, level, secret):
    regs = [level] + [secret[i] << 8 | secret[i + 1] for i in range(0, 32, 2)]
    assert len(regs) == PROVISION["regs"]
    return pdu(app, WriteMultipleRegistersRequest(address=PROVISION["register"], registers=regs))


def login(app, level, secret):
    fc, body = pdu(app, ReadHoldingRegistersRequest(address=CHALLENGE["register"], count=CHALLENGE["regs"]))
    assert fc == 3, body
    nonce = body[1:17]
    mac = hmac.new(secret, nonce + bytes([level]), hashlib.sha256).digest()
    regs = [level] + [mac[i] << 8 | mac[i + 1] for i in range(0, 32, 2)]
    fc, _ = pdu(app, WriteMultipleRegistersRequest(address=LOGIN["register"], registers=regs))
    return fc == 0x10


def test_without_the_jumper_the_pack_runs_and_refuses_commissioning(monkeypatch):
    rig, b, app, r, btn, led = boot(monkeypatch, jumper=False, button=False)
    st = app.state
    assert st.chg_fet and st.dsg_fet and rig.bq.fets() != 0  # healthy cells: the FETs close
    assert st.ccl_ma > 0 and st.dcl_ma > 0 and st.fets_held == 0
    btn.low = True  # the button held is not presence without the jumper
    from bms import auth as A
    auth = app.host.auth()
    before = auth.by_reason[A.R_NOT_PRESENT]
    fc, body = provision(app, INSTALLER, SECRET)
    assert fc == 0x90 and body == b"\x01"  # exception 01
    assert auth.by_reason[A.R_NOT_PRESENT] == before + 1
    assert not auth.has_secret(INSTALLER) and not login(app, INSTALLER, SECRET)


def test_maintenance_mode_holds_the_fets_open_tells_0_a_and_blinks_run_and_alm(monkeypatch):
    rig, b, app, r, btn, led = boot(monkeypatch, jumper=True)
    st = app.state
    assert not st.chg_fet and not st.dsg_fet and not st.pchg_fet and rig.bq.fets() == 0
    assert st.fets_held == 3 and st.ccl_ma == 0 and st.dcl_ma == 0
    assert not st.protections and not st.faults  # nothing tripped: it is the mode that holds them
    assert not any(s.name in ("button", "sleeper", "confirm") for s in app.services)
    # RUN and ALM blink together (0.5 s on / 0.5 s off): the same levels, both on and off
    assert led[0] == led[1] and 0 in led[0][-30:] and 1 in led[0][-30:]
    edges = [i for i in range(20, 60) if led[0][i] != led[0][i - 1]]
    assert len(edges) >= 3  # 0.5 s on / 0.5 s off: about 4 edges in these 2 s, not a steady light


def test_commissioning_needs_the_button_held_in_maintenance_mode(monkeypatch):
    rig, b, app, r, btn, led = boot(monkeypatch, jumper=True, button=False)
    from bms import auth as A
    auth = app.host.auth()
    fc, body = provision(app, INSTALLER, SECRET)
    assert fc == 0x90 and body == b"\x01" and auth.by_reason[A.R_NOT_PRESENT] == 1
    assert not auth.has_secret(INSTALLER)
    # DIAG names the reason
    diag = next(b for b in MAP["blocks"] if b["name"] == "diag")
    fc, body = pdu(app, ReadHoldingRegistersRequest(address=diag["register"], count=diag["regs"]))
    assert body[1:3] == bytes([0, diag["reasons"].index(
        "commissioning needs the jumper at boot and the button held")])
    assert b"button held" in body[9:]
    btn.low = True
    fc, body = provision(app, INSTALLER, SECRET)
    assert fc == 0x10, body
    btn.low = False
    assert auth.has_secret(INSTALLER)
    assert login(app, INSTALLER, SECRET)  # the secret given is the one a login answers
    assert not login(app, INSTALLER, bytes(32))


def test_a_malformed_commissioning_is_refused_and_changes_nothing(monkeypatch):
    rig, b, app, r, btn, led = boot(monkeypatch, jumper=True, button=True)
    auth = app.host.auth()
    fc, body = provision(app, 7, SECRET)  # no such level
    assert fc == 0x90 and body == b"\x03"
    assert not auth.has_secret(1) and not auth.has_secret(2)
    # 16 registers instead of 17: not the block
    regs = [INSTALLER] + [0] * 15
    fc, body = pdu(app, WriteMultipleRegistersRequest(address=PROVISION["register"], registers=regs))
    assert fc == 0x90 and body == b"\x02"
    assert not auth.has_secret(INSTALLER)


@pytest.mark.parametrize("jumper", [False, True])
def test_main_starts_maintenance_mode_with_the_jumper_alone(monkeypatch, capsys, jumper):
    mod = load("esp32_bq", monkeypatch)
    rig = Rig(mod)
    fm.WIRES[mod.PINS["jumper"]] = Level(jumper)
    sys.modules.pop("main", None)
    import main
    import asyncio
    apps = []
    real = main.start
    monkeypatch.setattr(main, "start", lambda b, **kw: apps.append(real(b, **kw)) or apps[-1])
    monkeypatch.setattr(asyncio, "run", lambda coro: coro.close())  # the loop: not run here
    monkeypatch.setattr(asyncio, "sleep_ms", lambda ms: None, raising=False)  # MicroPython's
    monkeypatch.setattr(main, "_store", lambda: None)  # not the host's /data
    main.main()
    app = apps[0][0]
    assert ("maintenance mode" in capsys.readouterr().out) == jumper
    assert app.control.maintenance == jumper


def test_bmsctl_commission_through_the_map(monkeypatch, tmp_path, capsys):
    import io
    from test_bmsctl import InProcess
    from tools.bmsctl.cli import main as bmsctl
    rig, b, app, r, btn, led = boot(monkeypatch, jumper=True)
    key = tmp_path / "pack.key"
    key.write_text(SECRET.hex())
    t = InProcess(app.host.build()[0])
    argv = ["commission", "--level", "installer", "--new-secret-file", str(key)]
    assert bmsctl(argv, out=io.StringIO(), transport=t) == 1  # button not held
    err = capsys.readouterr().err
    assert "exception 01" in err and "button held" in err and "Traceback" not in err
    btn.low = True
    out = io.StringIO()
    assert bmsctl(argv, out=out, transport=t) == 0
    assert "installer secret commissioned" in capsys.readouterr().out + out.getvalue()
    assert login(app, INSTALLER, SECRET)


def test_bmsctl_commission_of_the_owners_update_key(monkeypatch, tmp_path, capsys):
    import io
    from test_bmsctl import InProcess
    from tools.bmsctl.cli import main as bmsctl
    from tools.bmsctl import bundle as tool
    rig, b, app, r, btn, led = boot(monkeypatch, jumper=True)
    auth = app.host.auth()
    t = InProcess(app.host.build()[0])
    prefix = str(tmp_path / "owner")
    tool.new_keys(prefix)
    pub = bytes.fromhex(open(prefix + ".pub").read().strip())
    argv = ["commission", "--update-key", prefix + ".pub"]
    assert bmsctl(argv, out=io.StringIO(), transport=t) == 1  # button not held
    assert "button held" in capsys.readouterr().err and auth.update_key() is None
    bad = tmp_path / "bad.pub"
    bad.write_text("12ab")
    assert bmsctl(["commission", "--update-key", str(bad)], out=io.StringIO(), transport=t) == 1
    err = capsys.readouterr().err
    assert "not a 32-byte Ed25519 public key" in err and len(err.strip().splitlines()) == 1
    assert bmsctl(["commission", "--update-key", prefix + ".pub", "--level", "installer"],
                  out=io.StringIO(), transport=t) == 1  # one thing at a time
    btn.low = True
    out = io.StringIO()
    assert bmsctl(argv, out=out, transport=t) == 0
    assert "update key %s commissioned" % pub.hex() in out.getvalue()
    assert auth.update_key() == pub
    assert not login(app, 3, pub)  # not a login level


def test_the_update_session_trusts_the_commissioned_key_before_the_built_in_one(monkeypatch):
    from app import hostbuild
    from bms.auth import Auth, UPDATE_KEY
    from store.cred import CredStore
    from store.memfs import MemFs
    from update import trust
    from bms.params import Params
    fs = MemFs()
    auth = Auth(CredStore(fs), Params(), None)

    class App:
        pass
    app = App()
    app.state = None
    app.update = None  # as app.app.App starts: the session is built at its first use
    app.store = type("S", (), {"fs": fs})()
    app.host = type("H", (), {"auth": lambda self: auth})()  # app.hostport's login
    board = type("B", (), {"name": "esp32_bq", "rom": None})()
    sess = hostbuild.update_session(app, board)
    assert sess.make_updater().key is None  # shipped: no key built in, none commissioned
    monkeypatch.setattr(trust, "PUBLIC_KEY", b"\x01" * 32)  # an owner's build
    assert sess.make_updater().key == b"\x01" * 32
    assert auth.provision(UPDATE_KEY, b"\x02" * 32, True)
    assert sess.make_updater().key == b"\x02" * 32  # commissioned: a key rotation needs no new build
