# "Set a pack's address" end to end (issue 13 device control, SPEC 6's address
# DIP as the parameter link_fixed_address_count): bmsctl, run as a user runs it,
# through the bench's Modbus TCP gateway on the master's Link IN (the packs
# commissioned as the bench does it: per-pack installer secrets), on 3 packs
# with CAN and without (the RS485 chain). The effects are asserted on the packs'
# own state, parameters and event logs, not on bmsctl's words alone.
import contextlib
import csv
import io
import json
import threading

import pytest

from bms.params import index_of

from tools import paths  # noqa: F401
import simworld
from sim import scenario as scn
from sim.mock_afe import FAULTS
from tools import gateway
from tools.bmsctl.cli import main as bmsctl
from test_pc_tool_8packs import wait_for

N = 3
SPEED = 4
FIXED = index_of("link_fixed_address_count")


class Bench:
    def __init__(self, w, port, keys):
        self.w = w
        self.port = port
        self.keys = keys

    def ctl(self, *argv):
        """(exit code, stdout, stderr) of one bmsctl run through the TCP gateway."""
        out = io.StringIO()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = bmsctl(["--via", "tcp:127.0.0.1:%d" % self.port] + list(argv), out=out)
        return rc, out.getvalue(), err.getvalue()

    def key(self, k):
        return str(self.keys / ("pack%d-installer.key" % k))

    def login(self, k):
        return ("--login", "installer", "--secret-file", self.key(k))

    def addresses(self):
        return [p.app.link.roles.address for p in self.w.packs]

    def table(self):
        """(online, lost) addresses of the master's table."""
        t = self.w.packs[0].app.link.table
        return ([a for a in range(1, 33) if t.online[a]], [a for a in range(1, 33) if t.seen[a] and not t.online[a]])


@pytest.fixture(params=["can", "rs485"])
def bench(request, tmp_path):
    can = request.param == "can"
    sc = scn.parse(json.dumps({"packs": N, "duration_s": 7200, "seed": 4, "initial": {"soc_pct": [50, 55, 60]}}),
                   FAULTS)
    w = simworld.World(sc, lambda line: None, can=can)
    port = gateway.local_port()
    gateway.attach(w, "127.0.0.1:%d" % port)
    gateway.commission(w, str(tmp_path))
    stop = threading.Event()
    t = threading.Thread(target=gateway.pace, args=(w, stop), kwargs={"speed": SPEED}, daemon=True)
    t.start()
    b = Bench(w, port, tmp_path)
    assert wait_for(lambda: w.packs[0].app.state.link_online == N, 20.0), "the system did not form"
    assert b.addresses() == [1, 2, 3]
    yield b
    stop.set()
    t.join(5)


def _param_rows(b, k, name):
    """(raised, value) of pack k's event log records of parameter `name`, as history pull shows them."""
    rc, out, err = b.ctl("--unit", str(b.addresses()[k]), "history", "pull", "--csv")
    assert rc == 0, err
    return [(r["raised"], r["value"]) for r in csv.DictReader(io.StringIO(out)) if r["name"] == name]


def test_a_pack_set_to_a_fixed_address_with_restart_and_back_to_automatic(bench):
    b = bench
    w = b.w
    pack = w.packs[2]
    master = w.packs[0].app
    rc, out, err = b.ctl(*b.login(2), "control", "address", "--pack", "3", "--to", "7", "--restart",
                         "--master-secret-file", b.key(0))
    assert rc == 0, err
    assert "link_fixed_address_count 0 -> 7" in out and "takes effect after a restart" in out
    assert "back at address 7 (fixed)" in out and "address 3 removed" in out
    assert "system: packs online at 1, 2, 7\n" in out
    # the pack restarted with the parameter from its store: a fixed slave at 7
    assert pack.app.params.v[FIXED] == 7 and pack.app.state.link_fixed
    assert b.addresses() == [1, 2, 7] and pack.app.state.link_role == 3  # parallel.SLAVE
    online, lost = b.table()
    assert online == [1, 2, 7] and lost == []
    assert master.state.link_online == N and not master.state.link_failure
    assert not master.system.view.parallel_failure and master.system.view.packs_offline == 0
    # the write is in its event log (old, new), and the master's log has the removal
    assert _param_rows(b, 2, "link_fixed_address_count") == [("False", "0"), ("True", "7")]
    rc, out, err = b.ctl("history", "pull", "--csv")
    assert rc == 0, err
    rm = [(r["raised"], r["value"]) for r in csv.DictReader(io.StringIO(out)) if r["name"] == "remove_pack"]
    assert rm == [("False", "1"), ("True", "3")]
    # the tool shows the mode where it shows the address
    rc, out, err = b.ctl("scan", "--last", "8")
    assert rc == 0, err
    lines = out.splitlines()
    assert [ln.split()[1] for ln in lines] == ["1", "2", "7"]
    assert lines[2].endswith("address fixed") and lines[1].endswith("address automatic")
    rc, out, err = b.ctl("control", "address", "--pack", "7")
    assert rc == 0 and "unit 7: address 7, fixed (link_fixed_address_count 7: fixed at 7 after a restart)" in out

    # and back: automatic, after the restart the chain hands it 3 again
    rc, out, err = b.ctl(*b.login(2), "control", "address", "--pack", "7", "--to", "auto", "--restart",
                         "--master-secret-file", b.key(0))
    assert rc == 0, err
    assert "link_fixed_address_count 7 -> 0" in out and "back at address 3 (automatic)" in out, out
    assert "address 7 removed" in out and "system: packs online at 1, 2, 3\n" in out
    assert b.addresses() == [1, 2, 3] and pack.app.params.v[FIXED] == 0 and not pack.app.state.link_fixed
    assert b.table() == ([1, 2, 3], []) and not master.state.link_failure


def test_refusals_write_nothing(bench):
    b = bench
    w = b.w
    apps = [p.app for p in w.packs]
    logs = [a.host.build()[0].journal.history.next_seq for a in apps]

    def refused(*argv, says):
        rc, out, err = b.ctl(*argv)
        assert rc == 1 and out == "" and "Traceback" not in err and len(err.strip().splitlines()) == 1, (out, err)
        assert says in err and "nothing written" in err, err
        assert [a.params.v[FIXED] for a in apps] == [0, 0, 0]

    refused(*b.login(2), "control", "address", "--pack", "3", "--to", "2", says="address 2 is in use")
    refused(*b.login(2), "control", "address", "--pack", "3", "--to", "33", says="outside 1..32")
    refused(*b.login(2), "control", "address", "--pack", "3", "--to", "0x7", says="a number 1..32 or auto")
    refused(*b.login(2), "control", "address", "--pack", "3", "--to", "1", says="a second master")
    refused(*b.login(0), "control", "address", "--pack", "1", "--to", "5", says="unit 1 is the master")
    refused(*b.login(2), "control", "address", "--pack", "3", "--to", "7", "--restart",
            says="--master-secret-file")
    refused("control", "address", "--pack", "9", "--to", "7", says="unit 9 is not a pack online")
    # without a session: the pack refuses the write (and counts it)
    auth = apps[2].host.auth()
    n = auth.refused
    rc, out, err = b.ctl("control", "address", "--pack", "3", "--to", "7")
    assert rc == 1 and "no installer session" in err and len(err.strip().splitlines()) == 1
    assert auth.refused == n + 1 and apps[2].params.v[FIXED] == 0
    # nothing journalled, no address moved
    assert [a.host.build()[0].journal.history.next_seq for a in apps] == logs
    assert b.addresses() == [1, 2, 3] and b.table() == ([1, 2, 3], [])
    # a fixed address without --restart: written, the pack keeps its address until it restarts
    rc, out, err = b.ctl(*b.login(1), "control", "address", "--pack", "2", "--to", "2")
    assert rc == 0 and "takes effect after a restart" in out, err
    assert apps[1].params.v[FIXED] == 2 and not apps[1].state.link_fixed and b.addresses() == [1, 2, 3]



@pytest.mark.parametrize("bench", ["rs485"], indirect=True)
def test_an_address_conflict_made_behind_the_tools_back_is_shown_in_words(bench):
    """`params set` writes the parameter unchecked: pack 3 fixed at 2, restarted,
    is a second pack at address 2. On the chain pack 2 hears pack 3's reports
    from its own address: its PARALLEL alarm names the conflict in `live`, `scan`
    shows it, the master's system has the alarm (test_link: it ends 3.5 s after
    the last such frame)."""
    b = bench
    w = b.w
    rc, out, err = b.ctl("--unit", "3", *b.login(2), "params", "set", "link_fixed_address_count=2")
    assert rc == 0, err
    rc, out, err = b.ctl("--unit", "3", *b.login(2), "control", "set", "restart=1")
    assert rc == 0, err
    assert wait_for(lambda: w.packs[1].app.state.link_conflict == 2, 20.0)
    assert b.addresses() == [1, 2, 2] and w.packs[1].app.state.link_failure
    rc, out, err = b.ctl("live", "--pack", "2", "--count", "1", "--json")
    assert rc == 0, err
    assert "alarm: parallel system failure, address conflict: another pack also uses address 2" in \
        json.loads(out)["alarms"]
    rc, out, err = b.ctl("scan", "--last", "3", "--json")
    assert rc == 0, err
    rows = {r["unit"]: r for r in json.loads(out)}
    assert rows[2]["address_conflict"] == 2 and rows[2]["address_mode"] == "automatic"
    assert "address conflict: another pack also uses address 2" in rows[2]["address"]
    rc, out, _ = b.ctl("live", "--pack", "1", "--count", "1", "--json")
    assert rc == 0 and any("parallel system failure" in a for a in json.loads(out)["alarms"])
