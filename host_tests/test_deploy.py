# tools/deploy: the plan (files, mpy-cross and mpremote commands) for a board,
# on a project tree made in tmp_path; the board-side preparation code run in
# the real MicroPython; errors as one line.
import json
import os
import subprocess
import sys

import pytest

from tools import deploy

TREE = {
    "firmware/boot.py": "SLOT = 0\n",
    "firmware/main.py": "import app\n",
    "firmware/app/__init__.py": "",
    "firmware/app/svc.py": "import sys\nprint(sys.platform)\n",  # nothing to compact: compiled as it is
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
    cmds = {c[c.index("-o") + 1]: c for c in p.compile_cmds}
    assert len(cmds) == len(p.files)
    # the mpy store loads the bytecode into the heap: -O3 leaves out the line-number tables;
    # the source name a traceback shows is the import name (a qstr the import interns anyway)
    assert cmds["build/esp32_dev/app/svc.mpy"] == [
        "mpy-cross", "-march=xtensawin", "-O3", "-s", "app.svc", "-o", "build/esp32_dev/app/svc.mpy",
        "firmware/app/svc.py"]
    # PINS, named by this module alone, is compacted (tools/qstrnames.py): compiled from the copy
    assert cmds["build/esp32_dev/board.mpy"][3:5] == ["-s", "board"]
    assert cmds["build/esp32_dev/board.mpy"][-1] == "build/esp32_dev/src/board.py"
    # root scripts: compiled only as a check, deployed as source
    assert cmds["build/esp32_dev/.check/boot.mpy"][-1] == "firmware/boot.py"
    # from ROMFS the bytecode stays in flash: the line numbers are kept (tracebacks name the line)
    rom = deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0", mpy_cross="mpy-cross", store="romfs")
    assert all(not a.startswith("-O") for c in rom.compile_cmds for a in c)


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


@pytest.fixture
def mpremote_run(monkeypatch, capsys):
    """Runs command lines through mpremote's own parser, its handlers recording
    (name, args) instead of talking to a board; returns the record."""
    import mpremote.main as mm

    calls = []

    def recorder(name):
        def handler(state, args):
            state.did_action()
            calls.append((name, vars(args)))
        return handler

    monkeypatch.setattr(mm, "_COMMANDS", {k: (recorder(k), parser) for k, (_, parser) in mm._COMMANDS.items()})
    monkeypatch.setattr(mm, "do_disconnect", lambda state: None)

    def run(cmds):
        for cmd in cmds:
            monkeypatch.setattr(sys, "argv", cmd)
            assert mm.main() == 0, capsys.readouterr().err
        return calls
    return run


def test_mpremote_parses_the_chain(tree, mpremote_run):
    """The chained command goes through mpremote's own parser (handlers
    recorded instead of talking to a board)."""
    p = deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0", mpremote="mpremote")
    calls = mpremote_run(p.mpremote_cmds[:1])
    names = [n for n, _ in calls]
    # mpremote's `reset` is its own shortcut for an exec of machine.reset()
    assert names == ["connect", "exec"] + ["fs"] * 7 + ["exec"]
    assert "machine.reset()" in calls[-1][1]["expr"][0]
    assert calls[0][1]["device"] == ["/dev/ttyUSB0"]
    assert calls[1][1]["expr"] == [deploy.prep_code(p.files)]
    cps = [(a["command"], a["path"]) for n, a in calls if n == "fs"]
    assert (["cp"], ["app/__init__.mpy", "app/svc.mpy", ":app/"]) in cps


# Lists a board filesystem the way a board shows it (directories that end up
# empty as "dir/"), leaving out the unix port's own folders.
_LISTING = (
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


def _board_files_after(mpy, tmp_path, dirs, files, code):
    """Runs code on real MicroPython over a fresh board filesystem holding dirs
    and files (each file 'x'); returns the sorted listing left behind."""
    board = tmp_path / "board"
    board.mkdir()
    setup = (
        "import os\n"
        "os.chdir('/')\n"
        "for d in %r:\n"
        "    os.mkdir(d)\n"
        "for f in %r:\n"
        "    open(f, 'w').write('x')\n" % (tuple(dirs), tuple(files)))
    r = mpy.run(setup + code + _LISTING, timeout_s=30, root=str(board))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_prep_code_on_real_micropython(mpy, tree, tmp_path):
    """The board-side preparation: makes the directories, removes stale files
    where deploy owns them, leaves the rest (data, other packages) alone."""
    p = deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0")
    left = _board_files_after(
        mpy, tmp_path, ("app", "app/gone", "lib/bms", "lib/other"),
        ("app/svc.mpy", "app/svc.py", "app/old.mpy", "app/gone/x.mpy", "lib/bms/params.mpy",
         "lib/bms/stale.mpy", "lib/other/keep.py", "params.bin", "board.py", "board.mpy"),
        deploy.prep_code(p.files))
    assert left == [
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
    rc = deploy.main(["--board", "esp32_dev", "--port", "/dev/ttyUSB0", "--dry-run", "--store", "mpy",
                      "--frozen", "none"], root=tree)
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[0] == "cd " + tree
    assert any(line.endswith("-march=xtensawin -O3 -s app.svc -o build/esp32_dev/app/svc.mpy firmware/app/svc.py")
               for line in out)
    # the note on the compiled copies, one compile per file, then the build dir
    assert out[1].startswith("# tools/deploy.py writes ") and " their own names compacted " in out[1]
    assert out[len(p_files(tree)) + 2] == "cd " + os.path.join(tree, "build", "esp32_dev")
    # the exec code spans lines inside its quotes: still one shell command
    assert out[len(p_files(tree)) + 3].endswith(" connect /dev/ttyUSB0 exec 'import os")
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


# ---- the ROMFS store ---------------------------------------------------------------

def test_romfs_plan_files(tree):
    p = deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0", store="romfs")
    got = {(f.src and os.path.relpath(f.src, tree), f.build, f.dest) for f in p.files}
    assert got == {
        ("firmware/boot.py", "boot.py", "boot.py"),
        (None, "main.py", "main.py"),  # the stub
        ("firmware/main.py", "rom/bms_main.mpy", "/rom/bms_main.mpy"),
        ("firmware/app/__init__.py", "rom/app/__init__.mpy", "/rom/app/__init__.mpy"),
        ("firmware/app/svc.py", "rom/app/svc.mpy", "/rom/app/svc.mpy"),
        ("firmware/app/sub/__init__.py", "rom/app/sub/__init__.mpy", "/rom/app/sub/__init__.mpy"),
        ("firmware/app/sub/deep.py", "rom/app/sub/deep.mpy", "/rom/app/sub/deep.mpy"),
        ("lib/bms/__init__.py", "rom/lib/bms/__init__.mpy", "/rom/lib/bms/__init__.mpy"),
        ("lib/bms/params.py", "rom/lib/bms/params.mpy", "/rom/lib/bms/params.mpy"),
        ("lib/top.py", "rom/lib/top.mpy", "/rom/lib/top.mpy"),
        ("boards/esp32_dev.py", "rom/board.mpy", "/rom/board.mpy"),
    }
    assert p.image == os.path.join(tree, "build", "esp32_dev", "esp32_dev.romfs")


def test_romfs_plan_commands_parse_in_mpremote(tree, mpremote_run):
    """The image build and the chained deploy go through mpremote's own
    parser: romfs build from rom/ without recompiling, then on the board the
    preparation, `romfs deploy` of the image, the two littlefs scripts, reset."""
    p = deploy.plan(tree, "rp2_pico", "/dev/ttyACM0", mpremote="mpremote", store="romfs")
    calls = mpremote_run(p.romfs_cmds + p.mpremote_cmds)
    names = [n for n, _ in calls]
    assert names == ["romfs", "connect", "exec", "romfs", "fs", "fs", "exec"]
    build, dep = calls[0][1], calls[3][1]
    assert build["command"] == ["build"] and build["path"] == "rom" and build["mpy"] is False
    assert build["output"] == "rp2_pico.romfs"
    assert dep["command"] == ["deploy"] and dep["path"] == "rp2_pico.romfs" and dep["partition"] == 0
    assert [a["path"] for n, a in calls if n == "fs"] == [["boot.py", ":boot.py"], ["main.py", ":main.py"]]


def test_romfs_build_makes_the_image(tree):
    p = deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0", mpremote=deploy.find_mpremote(),
                    mpy_cross=deploy.mpy_cross_exe(), store="romfs")
    deploy.build(p)
    with open(p.image, "rb") as f:
        img = f.read()
    assert img[:3] == b"\xd2\xcd\x31"  # the VfsRom header (mpremote/romfs.py)
    for name in (b"bms_main.mpy", b"board.mpy", b"svc.mpy", b"params.mpy", b"deep.mpy"):
        assert name in img
    # file records are <name length><name>: no boot.py / main.py in the image
    assert b"\x07boot.py" not in img and b"\x07main.py" not in img
    with open(os.path.join(p.build_dir, "main.py")) as f:
        assert f.read() == deploy.MAIN_STUB
    with open(os.path.join(p.build_dir, "boot.py")) as f:
        assert f.read() == TREE["firmware/boot.py"]


def test_prep_code_for_romfs_clears_what_would_shadow_rom(mpy, tree, tmp_path):
    """On littlefs '' and /lib come before /rom on sys.path: deploy's own
    .mpy files there, and its empty package dirs, must go; data and other
    packages stay."""
    p = deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0", store="romfs")
    left = _board_files_after(
        mpy, tmp_path, ("app", "app/sub", "lib/bms", "lib/other", "data"),
        ("app/svc.mpy", "app/sub/deep.mpy", "lib/bms/params.mpy", "lib/other/keep.py",
         "lib/top.mpy", "params.bin", "board.py", "board.mpy", "main.py", "boot.py",
         "data/slots.bin", "data/slots.bin.bak", "data/params.bin", "data/cred.bin"),
        deploy.prep_code(p.files))
    # the slot record goes too (the image is written to slot A: the next start is the
    # factory install, not a slot B an update confirmed); the pack's other data stays
    assert left == ["boot.py", "data/cred.bin", "data/params.bin", "lib/other/keep.py", "main.py", "params.bin"]


@pytest.mark.parametrize("output,size", [
    ("ROMFS is not enabled on this device\n", None),
    ("No ROMFS partitions available\n", None),
    ("ROMFS0 partition has size 524288 bytes (128 blocks of 4096 bytes each)\n"
     "  Raw contents: d2:cd:31 ...\n", 524288),
])
def test_romfs_query_output(output, size):
    """The lines mpremote 1.27's `romfs query` prints (mpremote/commands.py)."""
    assert deploy.romfs_size(output) == size


@pytest.mark.parametrize("output,image,store,words", [
    ("ROMFS is not enabled on this device\n", 1000, "mpy", ["no ROMFS partition", "heap"]),
    ("ROMFS0 partition has size 4096 bytes (1 blocks of 4096 bytes each)\n", 5000, "mpy",
     ["does not fit", "5000", "4096"]),
    ("ROMFS0 partition has size 524288 bytes (128 blocks of 4096 bytes each)\n", 5000, "romfs", ["524288"]),
])
def test_auto_store_asks_the_board(output, image, store, words):
    seen = []

    def run(cmd, **kw):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, output, "")

    got, why = deploy.choose_store("mpremote", "/dev/ttyUSB0", image, run=run)
    assert seen == [["mpremote", "connect", "/dev/ttyUSB0", "romfs", "query"]]
    assert got == store
    for w in words:
        assert w in why


def test_cli_dry_run_auto_prints_the_query_and_the_romfs_plan(tree, capsys):
    assert deploy.main(["--board", "esp32_dev", "--port", "/dev/ttyUSB0", "--dry-run"], root=tree) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# --frozen auto")
    assert " connect /dev/ttyUSB0 exec " in out[1]
    q = [i for i, line in enumerate(out) if line.startswith("# --store auto")]
    assert q and out[q[0] + 1].endswith("connect /dev/ttyUSB0 romfs query")
    assert any(line.endswith("romfs --no-mpy -o esp32_dev.romfs build rom") for line in out)
    assert out[-1].endswith("+ romfs deploy esp32_dev.romfs + fs cp boot.py :boot.py + fs cp main.py :main.py + reset")


def test_board_definitions_are_not_app_code():
    """boards/micropython/ (the MicroPython board definitions) is neither a
    board nor deployed."""
    root = deploy.REPO_ROOT
    assert os.path.isdir(os.path.join(root, "boards", "micropython"))
    assert not any(n.startswith("micropython") for n in deploy.board_names(os.path.join(root, "boards")))
    for store in ("mpy", "romfs"):
        p = deploy.plan(root, "esp32_bq", "/dev/ttyX", store=store)
        assert not any("micropython" in f.src for f in p.files if f.src), store


# ---- the MicroPython board definitions (boards/micropython/) and make firmware -----

DEFS = os.path.join(deploy.REPO_ROOT, "boards", "micropython")


@pytest.fixture(scope="module")
def image_bytes(tmp_path_factory):
    """The largest real board's ROMFS image, built as deploy builds it."""
    sizes = []
    for board in ("esp32_bq", "rp2040_bq"):
        p = deploy.plan(deploy.REPO_ROOT, board, "-", build_dir=str(tmp_path_factory.mktemp(board)),
                        mpremote=deploy.find_mpremote(), mpy_cross=deploy.mpy_cross_exe(), store="romfs")
        deploy.build(p)
        sizes.append(os.path.getsize(p.image))
    return max(sizes)


def esp32_partitions():
    rows = []
    with open(os.path.join(DEFS, "BMS_ESP32_ROMFS", "partitions-4MiB-romfs-ab.csv")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, typ, sub, off, size = [c.strip() for c in line.split(",")[:5]]
                rows.append((name, typ, sub, int(off, 16), int(size, 16)))
    return rows


def test_esp32_partition_table_fits_4_mib_with_room_for_two_images(image_bytes):
    rows = esp32_partitions()
    by = {r[0]: r for r in rows}
    # what ports/esp32/esp32_partition.c and modules/flashbdev.py look up (v1.27.0)
    assert by["romfs"][1:3] == ("data", "0x8f") and by["vfs"][1] == "data"
    assert by["factory"][1] == "app" and by["factory"][3] % 0x10000 == 0  # app partitions: 64 KiB aligned
    assert by["factory"][4] >= 0x1D0000  # as large as upstream partitions-4MiB-romfs.csv's
    for prev, nxt in zip(rows, rows[1:]):
        assert prev[3] + prev[4] <= nxt[3], (prev, nxt)  # no overlap
    assert all(r[3] % 0x1000 == 0 and r[4] % 0x1000 == 0 for r in rows)
    assert rows[-1][3] + rows[-1][4] <= 4 * 1024 * 1024  # a 4 MiB WROOM-32
    assert by["romfs"][4] >= 2 * image_bytes  # A and B
    assert by["vfs"][4] >= 1024 * 1024  # parameters, counters and history keep room


def test_esp32_board_uses_that_table_and_enables_romfs():
    d = os.path.join(DEFS, "BMS_ESP32_ROMFS")
    with open(os.path.join(d, "mpconfigboard.cmake")) as f:
        cmake = f.read()
    assert 'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\\"${MICROPY_BOARD_DIR}/partitions-4MiB-romfs-ab.csv\\"' in cmake
    # the fragment comes after sdkconfig.base, whose partition table it overrides
    assert cmake.index("boards/sdkconfig.base") < cmake.index("sdkconfig.bms_partitions")
    with open(os.path.join(d, "mpconfigboard.h")) as f:
        assert "#define MICROPY_VFS_ROM (1)" in f.read()


def test_rp2040_board_gives_romfs_room_for_two_images(image_bytes):
    import re
    with open(os.path.join(DEFS, "BMS_RP2040_ROMFS", "mpconfigboard.h")) as f:
        h = f.read()
    val = {k: int(a) * int(b) for k, a, b in re.findall(r"#define (\w+)\s+\((\d+) \* (\d+)\)", h)}
    rom, fs = val["MICROPY_HW_ROMFS_BYTES"], val["MICROPY_HW_FLASH_STORAGE_BYTES"]
    assert rom % 4096 == 0 and fs % 4096 == 0  # static_asserts of ports/rp2/rp2_flash.c
    assert rom >= 2 * image_bytes
    # the code space stays RPI_PICO's: 2 MiB minus its 1408 KiB filesystem
    assert 2048 * 1024 - fs - rom == 2048 * 1024 - 1408 * 1024


@pytest.mark.parametrize("board,defn,port,image", [
    ("esp32_bq", "BMS_ESP32_ROMFS", "esp32", "firmware.bin"),
    ("BMS_RP2040_ROMFS", "BMS_RP2040_ROMFS", "rp2", "firmware.uf2"),
])
def test_make_firmware_commands(board, defn, port, image, tmp_path):
    from tools import flash
    d, port_dir, cmds, img, _ = flash.firmware_plan(deploy.REPO_ROOT, board, str(tmp_path))
    assert d == os.path.join(DEFS, defn)
    assert port_dir == os.path.join(str(tmp_path), "ports", port)
    assert cmds == [["make", "-C", os.path.join(str(tmp_path), "mpy-cross")],
                    ["make", "-C", port_dir, "BOARD_DIR=" + d, "submodules"],
                    ["make", "-C", port_dir, "BOARD_DIR=" + d]]
    assert img == os.path.join(port_dir, "build-" + defn, image)


def test_make_firmware_without_toolchain_prints_the_commands(tmp_path, capsys, monkeypatch):
    from tools import flash
    monkeypatch.setattr(flash.shutil, "which", lambda name: None)
    assert flash.main(["build", "--board", "BMS_ESP32_ROMFS", "--micropython", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "BOARD_DIR=" + os.path.join(DEFS, "BMS_ESP32_ROMFS") in out
    assert err.startswith("firmware: idf.py not found") and len(err.strip().splitlines()) == 1
    monkeypatch.delenv("MICROPYTHON_DIR", raising=False)
    assert flash.main(["build", "--board", "BMS_ESP32_ROMFS"]) == 1
    assert "MICROPYTHON_DIR" in capsys.readouterr().err


def test_make_firmware_builds_the_owners_update_key_in(tmp_path, capsys, monkeypatch):
    from tools import flash, frozen
    from tools.bmsctl import bundle as tool
    pub = tool.new_keys(str(tmp_path / "owner"))
    monkeypatch.setattr(flash.shutil, "which", lambda name: None)
    assert flash.main(["build", "--board", "BMS_ESP32_ROMFS", "--micropython", str(tmp_path),
                       "--owner-key", str(tmp_path / "owner.pub"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "update key built in: " + pub in out and "BMS_OWNER_KEY=" + str(tmp_path / "owner.pub") + " make" in out
    assert flash.main(["build", "--board", "BMS_ESP32_ROMFS", "--micropython", str(tmp_path), "--dry-run"]) == 0
    assert "trusts no update key" in capsys.readouterr().out
    (tmp_path / "bad.pub").write_text("zz")
    assert flash.main(["build", "--board", "BMS_ESP32_ROMFS", "--micropython", str(tmp_path),
                       "--owner-key", str(tmp_path / "bad.pub"), "--dry-run"]) == 1
    assert "not a 32-byte Ed25519 public key" in capsys.readouterr().err
    # what the board's manifest.py stages with BMS_OWNER_KEY: the frozen trust.py holds the key
    frozen.stage("esp32_bq", "lower", str(tmp_path / "fz"), owner_key=str(tmp_path / "owner.pub"))
    ns = {}
    exec((tmp_path / "fz" / "src" / "update" / "trust.py").read_text(), ns)
    assert ns["PUBLIC_KEY"] == bytes.fromhex(pub)
    frozen.stage("esp32_bq", "lower", str(tmp_path / "fz2"))
    ns = {}
    exec((tmp_path / "fz2" / "src" / "update" / "trust.py").read_text(), ns)
    assert ns["PUBLIC_KEY"] is None


# ---- the lower layers frozen into a BMS firmware (--frozen) ------------------------

def test_frozen_layers_are_not_shipped_and_still_inlined():
    """On a firmware that holds FROZEN_LOWER frozen, the image has no copy of
    them (they would never run), and the app's copies are the same as in the
    full plan: their constants inlined as in the frozen copies."""
    full = deploy.plan(deploy.REPO_ROOT, "esp32_bq", "-", build_dir="/nonexistent/b", store="romfs")
    part = deploy.plan(deploy.REPO_ROOT, "esp32_bq", "-", build_dir="/nonexistent/b", store="romfs",
                       frozen=deploy.FROZEN_LOWER)
    lower = ["/rom/lib/%s/" % p for p in deploy.FROZEN_LOWER]
    gone = {f.dest for f in full.files} - {f.dest for f in part.files}
    assert gone and all(d.startswith(tuple(lower)) for d in gone)
    assert not any(f.dest.startswith(tuple(lower)) for f in part.files)
    assert any(f.dest.startswith("/rom/lib/bms/") for f in part.files)
    assert len(part.compile_cmds) == len(full.compile_cmds) - len(gone)
    kept = dict(part.rewrites)
    assert kept and all(full_text == kept[path] for path, full_text in full.rewrites if path in kept)
    assert not any("/lib/%s/" % p in path for path, _ in part.rewrites for p in deploy.FROZEN_LOWER)
    with pytest.raises(deploy.DeployError, match="bms"):
        deploy.plan(deploy.REPO_ROOT, "esp32_bq", "-", store="romfs", frozen=("bms",))


def test_frozen_layers_old_copies_are_removed(mpy, tree, tmp_path):
    """Their copies on littlefs from an earlier deploy go (shadowed by the
    frozen ones); other packages stay."""
    p = deploy.plan(tree, "esp32_dev", "/dev/ttyUSB0", store="romfs")
    left = _board_files_after(
        mpy, tmp_path, ("lib/defs", "lib/store", "lib/other"),
        ("lib/defs/codes.mpy", "lib/store/fs.mpy", "lib/other/keep.py", "params.bin"),
        deploy.prep_code(p.files, ("defs", "store")))
    assert left == ["lib/other/keep.py", "params.bin"]


@pytest.mark.parametrize("output,frozen", [
    ("", ()),
    ("defs\nproto\ndrivers\nstore\nupdate\nrecovery\n", deploy.FROZEN_LOWER),
    ("store\ndefs\n", ("defs", "store")),
])
def test_auto_frozen_asks_the_board(output, frozen):
    seen = []

    def run(cmd, **kw):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, output, "")

    assert deploy.ask_frozen("mpremote", "/dev/ttyUSB0", run=run) == frozen
    assert seen == [["mpremote", "connect", "/dev/ttyUSB0", "exec", deploy.FROZEN_PROBE]]


def test_frozen_probe_on_real_micropython(mpy32):
    """FROZEN_PROBE in the 32-bit MicroPython: the lower layers from the
    filesystem are not frozen; asyncio, frozen into that interpreter, is."""
    board_path = "import sys\nsys.path.insert(0, '.frozen')\n"  # '.frozen' first, as on a board
    r = mpy32(board_path + deploy.FROZEN_PROBE)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    r = mpy32(board_path + deploy.FROZEN_PROBE.replace(repr(deploy.FROZEN_LOWER), repr(("asyncio", "defs", "nothing_here"))))
    assert r.returncode == 0 and r.stdout.split() == ["asyncio"], r.stderr
