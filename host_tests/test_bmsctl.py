# bmsctl (tools/bmsctl) against the board's real host handler in-process: a
# transport whose exchange() hands the PDU to firmware/app/host.Host.pdu, on a
# PackState/Params built here, sessions by the real lib/bms/auth.Auth with a
# provisioned installer secret. Expected values come from bms.ptable's rows
# (defaults, ranges) and the handler's documented refusals (README "Host
# protocol (Modbus)"), not from bmsctl. The end-to-end run through the bench
# (tools/gateway) waits for the handler to be wired into the bench's master.
import json
import os

import pytest

from app.host import Host
from bms import auth as A
from bms import params as P
from bms.params import Params
from bms.system import SystemView, from_pack
from defs import codes
from tools.bmsctl.cli import main
from tools.bmsctl.transport import TransportError

SECRET = bytes(range(32))
PORT_ID = 3


class InProcess:
    """bmsctl's transport API over Host.pdu (one connection = one port id)."""

    def __init__(self, host):
        self.host = host
        self.out = bytearray(260)
        self.requests = []

    def exchange(self, unit, pdu):
        self.requests.append(bytes(pdu))
        k = self.host.pdu(unit, bytearray(pdu), len(pdu), self.out, PORT_ID)
        if not k:
            raise TransportError("no answer from unit %d" % unit)
        return bytes(self.out[:k])

    def close(self):
        pass


@pytest.fixture
def rig(tmp_path):
    from test_modbus import _state
    st = _state()  # test_modbus's pack: 16 cells 3300..3315 mV, SOC 62 %
    params = Params()
    view = SystemView()
    from_pack(view, st, params)
    auth = A.Auth(None, params, os.urandom)
    assert auth.provision(A.INSTALLER, SECRET, True)
    from test_modbus import Journal
    host = Host(st, params, view, None, auth, unit=1, journal=Journal())
    writes = host.journal.writes
    secret = tmp_path / "installer.key"
    secret.write_text(SECRET.hex() + "\n")
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(bytes(32))

    class Rig:
        pass
    r = Rig()
    r.st, r.params, r.view, r.auth, r.host, r.writes, r.tmp = st, params, view, auth, host, writes, tmp_path
    r.t = InProcess(host)
    r.key, r.wrong = str(secret), str(wrong)
    return r


def run(rig, capsys, *argv):
    """(exit code, stdout, stderr) of one bmsctl run (one connection)."""
    import io
    out = io.StringIO()
    rc = main(list(argv), out=out, transport=rig.t)
    err = capsys.readouterr().err
    return rc, out.getvalue(), err


def installer(rig):
    return ("--login", "installer", "--secret-file", rig.key)


def one_line(err):
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ---- refused without login, accepted with an installer session ------------------

def test_set_without_login_is_refused_in_one_line_naming_unit_register_and_reason(rig, capsys):
    i = P.CELL_OV_ALARM_MV
    rc, out, err = run(rig, capsys, "params", "set", "cell_ov_alarm_mv=3580")
    line = one_line(err)
    assert rc == 1 and rig.params.v[i] == 3550 and rig.writes == []
    assert line.startswith("bmsctl: unit 1: cell_ov_alarm_mv (register %d): exception 01" % (1000 + 2 * i))
    assert "no installer session" in line  # the handler's DIAG reason text
    assert rig.auth.refused == 1  # the refusal was counted on the board, for what it is
    assert rig.auth.by_reason[A.R_NO_SESSION] == 1 and rig.auth.by_reason[A.R_NO_CREDENTIAL] == 0


def test_a_user_session_writing_a_parameter_is_counted_as_level_too_low(rig, capsys):
    user = rig.tmp / "user.key"
    user.write_text(bytes(range(1, 33)).hex())
    assert rig.auth.provision(A.USER, bytes(range(1, 33)), True)
    rc, _, err = run(rig, capsys, "--login", "user", "--secret-file", str(user), "params", "set",
                     "cell_ov_alarm_mv=3580")
    assert rc == 1 and "exception 01" in one_line(err) and rig.params.v[P.CELL_OV_ALARM_MV] == 3550
    assert rig.auth.by_reason[A.R_LEVEL] == 1 and rig.auth.by_reason[A.R_NO_SESSION] == 0


# ---- passwd -------------------------------------------------------------------------

def test_passwd_changes_the_secret_old_fails_new_works(rig, capsys):
    new = rig.tmp / "new.key"
    new_secret = bytes(range(100, 132))
    new.write_text(new_secret.hex())
    rc, out, err = run(rig, capsys, *installer(rig), "passwd", "--level", "installer", "--new-secret-file", str(new))
    assert rc == 0, err
    assert "installer secret changed" in out
    # the new secret is never on the wire: no request carries it
    assert not any(new_secret in r for r in rig.t.requests)
    rc, _, err = run(rig, capsys, "login", "--level", "installer", "--secret-file", rig.key)
    assert rc == 1 and "login as installer" in one_line(err) and rig.auth.by_reason[A.R_BAD_MAC] == 1
    rc, out, err = run(rig, capsys, "--login", "installer", "--secret-file", str(new), "params", "set",
                       "cell_ov_alarm_mv=3580")
    assert rc == 0, err
    assert rig.params.v[P.CELL_OV_ALARM_MV] == 3580
    # journalled like every write: the level had a secret, the level set; never the secret
    from app.hostctl import J_SET_SECRET
    assert rig.host.journal.commands == [(J_SET_SECRET, 1, A.INSTALLER)]


def test_passwd_without_an_installer_session_is_refused_and_counted(rig, capsys):
    new = rig.tmp / "new.key"
    new.write_text(bytes(32).hex())
    # straight at the block, as a client without bmsctl's own check would
    from tools.bmsctl.client import Pack, load_map, regs_of, CtlError
    pack = Pack(rig.t, 1, load_map())
    blk = next(b for b in pack.map["blocks"] if b["name"] == "set_secret")
    assert blk["register"] == 230 and blk["regs"] == 33
    with pytest.raises(CtlError, match="exception 01"):
        pack.write(blk["register"], [A.INSTALLER] + regs_of(bytes(64)))
    assert rig.auth.by_reason[A.R_NO_SESSION] == 1
    assert rig.auth.has_secret(A.INSTALLER)
    rc, _, err = run(rig, capsys, "passwd", "--level", "installer", "--new-secret-file", str(new))
    assert rc == 1 and "needs an installer session" in one_line(err)


def test_calib_and_control_serve_the_fields_the_map_gained(rig, capsys):
    rc, out, err = run(rig, capsys, "calib", "get")
    assert rc == 0, err
    got = dict(ln.split(None, 1) for ln in out.splitlines())
    assert got["v_gain_ppm"] == "1000000" and got["i_gain_ppm"] == "1000000" and got["remove_pack"] == "0"
    rc, out, err = run(rig, capsys, *installer(rig), "calib", "set", "v_gain_ppm=990000", "i_gain_ppm=1010000")
    assert rc == 0, err
    assert "v_gain_ppm: wrote 990000, reads 990000" in out
    assert (rig.params.v[P.CAL_V_GAIN_PPM], rig.params.v[P.CAL_I_GAIN_PPM]) == (990000, 1010000)
    assert (P.CAL_V_GAIN_PPM + 1, 1000000, 990000) in rig.writes  # journalled as the parameter
    # the map's range, checked before anything is written
    rc, _, err = run(rig, capsys, *installer(rig), "calib", "set", "i_gain_ppm=2000000")
    assert rc == 1 and "outside 950000..1050000, nothing written" in one_line(err)
    # a pack that is not the master has no system to remove a pack from: the board says why
    rc, _, err = run(rig, capsys, *installer(rig), "control", "set", "remove_pack=3")
    assert rc == 1 and "exception 03" in one_line(err) and "not the master" in err
    # without a way to restart (this handler has none) the command is not served
    rc, _, err = run(rig, capsys, *installer(rig), "control", "set", "restart=1")
    assert rc == 1 and "exception 02" in one_line(err)
    restarted = []
    rig.host.restart = lambda: restarted.append(1)
    rc, out, err = run(rig, capsys, *installer(rig), "control", "set", "restart=1")
    assert rc == 0 and "control.restart: wrote 1" in out
    rig.host.tick(1000)
    assert restarted == [1]


def test_passwd_blob_with_a_wrong_tag_is_refused_and_the_old_secret_stays(rig, capsys):
    from tools.bmsctl.client import Pack, load_map, regs_of, CtlError
    from tools import authkit
    pack = Pack(rig.t, 1, load_map())
    pack.login(A.INSTALLER, SECRET)
    blob = bytearray(authkit.set_secret_blob(SECRET, pack.login_nonce, A.INSTALLER, bytes(32)))
    blob[40] ^= 1
    with pytest.raises(CtlError, match="exception 03"):
        pack.write(230, [A.INSTALLER] + regs_of(bytes(blob)))
    assert rig.auth.by_reason[A.R_BAD_BLOB] == 1
    pack.logout()
    assert run(rig, capsys, "login", "--level", "installer", "--secret-file", rig.key)[0] == 0


def test_set_with_installer_session_writes_reads_back_and_prints_old_to_new(rig, capsys):
    i = P.CELL_OV_ALARM_MV
    rc, out, err = run(rig, capsys, *installer(rig), "params", "set", "cell_ov_alarm_mv=3580")
    assert rc == 0 and err == ""
    assert rig.params.v[i] == 3580 and rig.writes == [(i + 1, 3550, 3580)]  # journalled by parameter id
    assert "cell_ov_alarm_mv: 3550 -> 3580 (3.58 V)" in out
    # read back: the last request before the end is a FC 03 of the parameter's two registers
    reg = 1000 + 2 * i
    assert rig.t.requests[-2] == bytes((3, reg >> 8, reg & 0xFF, 0, 2))
    # then the run logs out (FC 16 writing 0 to the login register): no session outlives it
    assert rig.t.requests[-1] == bytes((16, 0, 208, 0, 1, 2, 0, 0)) and rig.auth.level(PORT_ID, 0) == 0


def test_value_in_the_display_unit_is_converted(rig, capsys):
    rc, out, _ = run(rig, capsys, *installer(rig), "params", "set", "cell_ov_alarm_mv=3.575V")
    assert rc == 0 and rig.params.v[P.CELL_OV_ALARM_MV] == 3575


def test_wrong_secret_is_refused_in_one_line_and_counted(rig, capsys):
    rc, out, err = run(rig, capsys, "--login", "installer", "--secret-file", rig.wrong, "params", "set",
                       "cell_ov_alarm_mv=3580")
    line = one_line(err)
    assert rc == 1 and rig.params.v[P.CELL_OV_ALARM_MV] == 3550
    assert "unit 1" in line and "login as installer" in line and "exception 03" in line
    assert "login failed" in line
    assert rig.auth.by_reason[A.R_BAD_MAC] == 1


def test_login_command_opens_the_session_on_the_board(rig, capsys):
    rc, out, err = run(rig, capsys, "login", "--level", "installer", "--secret-file", rig.key)
    assert rc == 0 and "unit 1: logged in as installer" in out
    assert rig.auth.level(PORT_ID, 0) == A.INSTALLER
    rc, out, _ = run(rig, capsys, "logout")
    assert rc == 0 and rig.auth.level(PORT_ID, 0) == 0


def test_login_to_a_level_without_a_secret_is_refused_and_counted(rig, capsys):
    rc, _, err = run(rig, capsys, "login", "--level", "user", "--secret-file", rig.key)
    line = one_line(err)
    assert rc == 1 and "login as user" in line and "not commissioned" in line
    assert rig.auth.by_reason[A.R_NO_CREDENTIAL] == 1 and rig.auth.level(PORT_ID, 0) == 0


def test_out_of_range_is_refused_before_anything_is_written(rig, capsys):
    n = len(rig.t.requests)
    rc, out, err = run(rig, capsys, *installer(rig), "params", "set", "cell_ov_alarm_mv=3580",
                       "cell_ov_p1_mv=4200")
    line = one_line(err)
    assert rc == 1 and "nothing written" in line and "cell_ov_p1_mv: 4200 outside 3000..3900" in line
    assert rig.params.v[P.CELL_OV_ALARM_MV] == 3550 and rig.writes == []
    assert not any(r[0] in (6, 16) and r[1:3] != bytes((0, 208)) for r in rig.t.requests[n:])


def test_read_only_row_is_refused_locally(rig, capsys):
    rc, _, err = run(rig, capsys, *installer(rig), "params", "set", "cycle_ms=200")
    assert rc == 1 and "cycle_ms is read-only" in one_line(err) and rig.params.v[P.CYCLE_MS] == 100


def test_validate_refusal_names_the_boards_reason(rig, capsys):
    # release above the alarm threshold: in range, refused by validate() on the board
    rc, _, err = run(rig, capsys, *installer(rig), "params", "set", "cell_ov_alarm_rel_mv=3600")
    line = one_line(err)
    assert rc == 1 and rig.params.v[P.CELL_OV_ALARM_REL_MV] == 3450
    assert "cell_ov_alarm_rel_mv (register %d): exception 03" % (1000 + 2 * P.CELL_OV_ALARM_REL_MV) in line
    assert "release" in line and "3550" in line


def test_unknown_parameter_suggests_names(rig, capsys):
    rc, _, err = run(rig, capsys, "params", "get", "cell_ov_alarm")
    assert rc == 1 and "no parameter 'cell_ov_alarm'" in one_line(err) and "cell_ov_alarm_mv" in err


def test_dry_run_changes_nothing(rig, capsys):
    rc, out, _ = run(rig, capsys, *installer(rig), "params", "set", "cell_ov_alarm_mv=3580", "--dry-run")
    assert rc == 0 and "3550 -> 3580" in out and "dry run" in out
    assert rig.params.v[P.CELL_OV_ALARM_MV] == 3550 and rig.writes == []


# ---- get, diff, backup, restore, defaults ------------------------------------------

def test_get_json_is_every_row_as_the_table_holds_it(rig, capsys):
    from bms import ptable
    rig.params.set_many([(P.CELL_OV_ALARM_MV, 3580)])
    rc, out, _ = run(rig, capsys, "params", "get", "--json")
    got = json.loads(out)
    want = {name: default for _id, name, default, _lo, _hi, _acc in ptable.TABLE}
    want["cell_ov_alarm_mv"] = 3580
    assert rc == 0 and got == want


def test_get_table_shows_value_unit_and_range(rig, capsys):
    rc, out, _ = run(rig, capsys, "params", "get", "cell_ov_alarm_mv", "auth_idle_ms")
    assert rc == 0
    line = next(ln for ln in out.splitlines() if ln.split()[:1] == ["cell_ov_alarm_mv"])
    assert "3550" in line and "3.55 V" in line and "3000..3900" in line and "RW" in line
    assert "auth_idle_ms" in out and "cycle_ms" not in out


def test_diff_against_defaults_names_the_changed_rows(rig, capsys):
    rig.params.set_many([(P.CELL_OV_ALARM_MV, 3580), (P.AUTH_IDLE_MS, 120000)])
    rc, out, _ = run(rig, capsys, "params", "diff")
    lines = out.splitlines()
    assert rc == 0 and lines[-1] == "2 parameters differ from default"
    assert [ln.split()[:4] for ln in lines[:-1]] == [["cell_ov_alarm_mv", "3580", "default", "3550"],
                                                    ["auth_idle_ms", "120000", "default", "600000"]]


def test_backup_restore_round_trip(rig, capsys):
    backup = str(rig.tmp / "pack1.json")
    rig.params.set_many([(P.CELL_OV_ALARM_MV, 3580)])
    saved = list(rig.params.v)
    rc, out, _ = run(rig, capsys, "params", "backup", backup)
    assert rc == 0 and "saved to" in out
    with open(backup) as f:
        assert json.load(f)["params"]["cell_ov_alarm_mv"] == 3580
    rc, _, _ = run(rig, capsys, *installer(rig), "params", "set", "cell_ov_alarm_mv=3590", "auth_idle_ms=60000")
    assert rc == 0 and rig.params.v[P.CELL_OV_ALARM_MV] == 3590
    rc, out, _ = run(rig, capsys, "params", "diff", backup)
    assert "2 parameters differ from %s" % backup in out
    rc, out, _ = run(rig, capsys, *installer(rig), "params", "restore", backup, "--dry-run")
    assert rc == 0 and rig.params.v[P.CELL_OV_ALARM_MV] == 3590 and "3590 -> 3580" in out
    rc, out, err = run(rig, capsys, *installer(rig), "params", "restore", backup)
    assert rc == 0 and err == "" and "cell_ov_alarm_mv: 3590 -> 3580" in out
    assert list(rig.params.v) == saved
    rc, out, _ = run(rig, capsys, "params", "diff", backup)
    assert out.splitlines()[-1] == "0 parameters differ from %s" % backup


def test_restore_without_session_changes_nothing(rig, capsys):
    backup = rig.tmp / "b.json"
    assert run(rig, capsys, "params", "backup", str(backup))[0] == 0
    d = json.loads(backup.read_text())
    d["params"]["cell_ov_alarm_mv"] = 3580
    backup.write_text(json.dumps(d))
    rc, _, err = run(rig, capsys, "params", "restore", str(backup))
    assert rc == 1 and "no installer session" in one_line(err) and rig.params.v[P.CELL_OV_ALARM_MV] == 3550


def test_restore_rejects_a_file_that_is_not_a_backup(rig, capsys):
    bad = rig.tmp / "x.json"
    bad.write_text("{}")
    rc, _, err = run(rig, capsys, *installer(rig), "params", "restore", str(bad))
    assert rc == 1 and "not a bmsctl parameter backup" in one_line(err)


def test_defaults_orders_writes_that_validate_only_together(rig, capsys):
    # alarm 3590 / release 3560 away from the defaults 3550 / 3450: the alarm
    # (the earlier row) back to 3550 first would leave the release above it,
    # which validate() refuses; bmsctl must find an order that works
    rig.params.set_many([(P.CELL_OV_ALARM_MV, 3590), (P.CELL_OV_ALARM_REL_MV, 3560)])
    rc, out, err = run(rig, capsys, *installer(rig), "defaults")
    assert rc == 0, err
    assert rig.params.v[P.CELL_OV_ALARM_MV] == 3550 and rig.params.v[P.CELL_OV_ALARM_REL_MV] == 3450
    assert list(rig.params.v) == list(Params().v)


def test_defaults_keep_the_installation_and_a_restore_keeps_the_address(rig, capsys):
    rig.params.set_many([(P.INV_PROTOCOL_COUNT, 1), (P.LINK_FIXED_ADDRESS_COUNT, 5), (P.CELL_OV_ALARM_MV, 3580)])
    rc, out, err = run(rig, capsys, *installer(rig), "defaults")
    assert rc == 0, err
    assert "kept, the installation's:" in out and "link_fixed_address_count" in out
    assert rig.params.v[P.CELL_OV_ALARM_MV] == 3550
    assert rig.params.v[P.INV_PROTOCOL_COUNT] == 1 and rig.params.v[P.LINK_FIXED_ADDRESS_COUNT] == 5
    # a backup of another unit: everything but that unit's fixed address
    b = rig.tmp / "other.json"
    from bms.ptable import TABLE
    vals = {r[1]: r[2] for r in TABLE}
    vals.update(link_fixed_address_count=9, cell_ov_alarm_mv=3580)
    b.write_text(json.dumps({"format": "bmsctl-params-1", "map_version": 1, "unit": 4, "params": vals}))
    rc, out, err = run(rig, capsys, *installer(rig), "params", "restore", str(b))
    assert rc == 0, err
    assert "from unit 4's backup, kept" in out
    assert rig.params.v[P.LINK_FIXED_ADDRESS_COUNT] == 5 and rig.params.v[P.CELL_OV_ALARM_MV] == 3580


# ---- blocks, alarms ---------------------------------------------------------------

def test_info_block_read_from_the_map(rig, capsys):
    from bms import prows
    rc, out, _ = run(rig, capsys, "info")
    rows = dict(ln.split(None, 1) for ln in out.splitlines())
    assert rc == 0 and rows["map_version"] == "1" and rows["param_count"] == str(prows.N)
    assert rows["param_base"] == "1000" and rows["unit"] == "1"


def test_live_names_the_alarm_the_cell_and_the_threshold(rig, capsys):
    s = rig.st.snap
    s.cell_mv[6] = 3600
    s.max_cell_mv, s.max_cell = 3600, 6
    rig.st.alarms = codes.bit(codes.ALARMS, "OV")
    from_pack(rig.view, rig.st, rig.params)
    rc, out, err = run(rig, capsys, "live", "--pack", "1", "--count", "1")
    assert rc == 0, err
    assert "alarm: cell over-voltage, cell 7 of pack 1 at 3.6 V (cell_ov_alarm_mv 3.55 V)" in out


# ---- the TUI (textual's pilot, the same in-process transport) ------------------------

def test_tui_tiles_show_the_soc_and_enter_drills_into_16_cells(rig):
    import asyncio
    from textual.widgets import Static
    from tools.bmsctl.tui import PackApp, Tile, Detail
    rig.st.snap.cell_mv[9] = 3290  # the worst cell: 3.29 V, cell 10
    rig.st.snap.min_cell_mv, rig.st.snap.min_cell = 3290, 9
    from_pack(rig.view, rig.st, rig.params)

    async def go():
        app = PackApp(rig.t, [1, 2], period_s=0.2)  # unit 2 does not answer: no tile
        async with app.run_test() as pilot:
            tiles = list(app.query(Tile))
            assert [t.unit for t in tiles] == [1]
            text = str(tiles[0].render())
            assert "SoC 62 %" in text and "worst cell 3.29 V" in text and "[OK]" in text
            rig.st.soc_pct = 40  # refreshed at the period
            from_pack(rig.view, rig.st, rig.params)
            await pilot.pause(0.5)
            assert "SoC 40 %" in str(tiles[0].render())
            tiles[0].focus()
            await pilot.press("enter")
            await pilot.pause(0.1)
            assert isinstance(app.screen, Detail)
            body = str(app.screen.query_one("#detail", Static).render())
            cells = [ln for ln in body.splitlines() if ln.startswith("cell ")]
            assert len(cells) == 16
            assert cells[9].endswith("3.290 V min") and cells[15].endswith("3.315 V max")
            await pilot.press("escape")
            assert not isinstance(app.screen, Detail)
    asyncio.run(go())


def test_history_words_name_the_journalled_commands_and_the_secret_set(rig):
    from tools.bmsctl import words
    from tools.bmsctl.client import Pack, load_map
    from app import hostctl as H
    from store import eventlog as EV
    pack = Pack(rig.t, 1, load_map())
    hist = next(f for f in pack.map["files"] if f["name"] == "history")
    got = [words.record(dict(kind=EV.KIND_HOST, code=code, value=v, flags=EV.F_RAISED, pack=0), hist, pack)
           for code, v in ((H.J_SET_SECRET, 2), (H.H_REMOVE, 3), (H.H_RESTART, 1))]
    assert [g["name"] for g in got] == ["set_secret", "remove_pack", "restart"]
    assert got[0]["words"] == "host command set_secret value 2"


# ---- control can-bitrate (parameter can_bitrate_count) ----------------------------

class Units:
    """Several packs' handlers behind one transport, as through the master: unit
    u is Host u; a unit with no pack gets 0x0A (gateway path unavailable)."""

    def __init__(self, hosts):
        self.hosts = hosts
        self.out = bytearray(260)
        self.restarts = []  # units whose restart was accepted (their tick restarts them after the reply)
        for h in hosts.values():
            h.restart = lambda: None

    def exchange(self, unit, pdu):
        h = self.hosts.get(unit)
        if h is None:
            return bytes((pdu[0] | 0x80, 0x0A))
        k = h.pdu(unit, bytearray(pdu), len(pdu), self.out, PORT_ID)
        if h.restart_ms >= 0:
            self.restarts.append(unit)
            h.restart_ms = -1
        return bytes(self.out[:k])

    def close(self):
        pass


def _packs(n):
    from test_modbus import Journal, _state
    hosts = {}
    for u in range(1, n + 1):
        st, params, view = _state(), Params(), SystemView()
        from_pack(view, st, params)
        auth = A.Auth(None, params, os.urandom)
        assert auth.provision(A.INSTALLER, SECRET, True)
        hosts[u] = Host(st, params, view, None, auth, unit=u, journal=Journal())
    return Units(hosts)


def _table(monkeypatch, rows):
    """The master's table as bmsctl reads it (unit 1's 803 strings: tools.bmsctl.address.system)."""
    from tools.bmsctl import address
    monkeypatch.setattr(address, "system", lambda t: rows)


def test_can_bitrate_all_writes_every_pack_then_restarts_slaves_then_master(rig, capsys, monkeypatch):
    t = _packs(3)
    _table(monkeypatch, {1: "online", 2: "online", 3: "online", 4: "lost"})
    import io
    out = io.StringIO()
    rc = main(["--login", "installer", "--secret-file", rig.key, "control", "can-bitrate", "250", "--all"],
              out=out, transport=t)
    text, err = out.getvalue(), capsys.readouterr().err
    assert rc == 0, err
    assert [h.params.v[P.CAN_BITRATE_COUNT] for h in t.hosts.values()] == [1, 1, 1]  # 1 = 250 kbit/s (ptable)
    assert t.restarts == [2, 3, 1]  # the master relays the others: last
    for u in (1, 2, 3):
        assert "unit %d: can_bitrate_count 0 -> 1 (250 kbit/s), read back" % u in text
    assert "inverter" in text and "CAN adapter" in text and "250 kbit/s" in text
    assert "unit 4: lost" in text and "not written" in text
    rc = main(["--unit", "2", "--login", "installer", "--secret-file", rig.key, "control", "can-bitrate", "500",
               "--all"], out=io.StringIO(), transport=t)
    assert rc == 1 and "goes through the master" in capsys.readouterr().err
    assert t.hosts[2].params.v[P.CAN_BITRATE_COUNT] == 1


def test_can_bitrate_refuses_other_rates_and_needs_an_installer(rig, capsys):
    for bad in ("125", "1000", "fast"):
        rc, out, err = run(rig, capsys, *installer(rig), "control", "can-bitrate", bad, "--all")
        assert rc == 1 and one_line(err) and "250 or 500" in err and rig.params.v[P.CAN_BITRATE_COUNT] == 0
    rc, out, err = run(rig, capsys, "control", "can-bitrate", "250")
    assert rc == 1 and one_line(err) and "installer session" in err and rig.params.v[P.CAN_BITRATE_COUNT] == 0
    rc, out, err = run(rig, capsys, *installer(rig), "control", "can-bitrate", "250", "--all",
                       "--secret-pattern", "keys/pack.key")
    assert rc == 1 and one_line(err) and "{unit}" in err and rig.params.v[P.CAN_BITRATE_COUNT] == 0


def test_can_bitrate_one_pack_warns_it_follows_the_bus(rig, capsys):
    rc, out, err = run(rig, capsys, *installer(rig), "control", "can-bitrate", "250")
    assert rc == 0 and rig.params.v[P.CAN_BITRATE_COUNT] == 1
    assert "warning" in out and "follows the rate it hears" in out and "--all" in out
    rc, out, err = run(rig, capsys, *installer(rig), "control", "can-bitrate", "500k")
    assert rc == 0 and rig.params.v[P.CAN_BITRATE_COUNT] == 0


def test_info_shows_the_running_and_the_stored_can_rate(rig, capsys):
    rig.st.can_kbps = 0
    rc, out, _ = run(rig, capsys, "info")
    rows = dict(ln.split(None, 1) for ln in out.splitlines() if not ln.startswith("CAN:"))
    assert rows["can_kbps"].split()[0] == "0" and rows["can_stored_kbps"].split()[0] == "500"
    assert "still listening" in out
    rig.st.can_kbps = 250  # followed a bus at 250 kbit/s; stored 500
    rc, out, _ = run(rig, capsys, "info")
    assert "CAN: 250 kbit/s running, 500 kbit/s stored: follows the bus" in out
    rig.params.set(P.CAN_BITRATE_COUNT, 1)
    rc, out, _ = run(rig, capsys, "info")
    assert "runs at the stored rate" in out


def test_can_bitrate_all_no_restart_writes_only(rig, capsys, monkeypatch):
    t = _packs(2)
    _table(monkeypatch, {1: "online", 2: "online"})
    import io
    out = io.StringIO()
    rc = main(["--login", "installer", "--secret-file", rig.key, "control", "can-bitrate", "250", "--all",
               "--no-restart"], out=out, transport=t)
    assert rc == 0 and t.restarts == [] and "not restarted" in out.getvalue()
    assert [h.params.v[P.CAN_BITRATE_COUNT] for h in t.hosts.values()] == [1, 1]
