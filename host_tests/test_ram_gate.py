# The RAM gate: the real boards (boards/esp32_bq.py, boards/rp2040_bq.py) on
# the fake machine pins and the chip models, in the 32-bit unix MicroPython
# 1.27 under a hard -X heapsize, run from the very artefacts `make deploy`
# installs (the ROMFS image, the .mpy tree; tools/deploy.py), through
# tools/ram.py: boot as main.py does, then a charge, a rest and a discharge
# with the inverter's heartbeat on CAN and the pack's frames drained.
#
# The caps of the issue (ESP32: 64,000 bytes from ROMFS; RP2040: 190 KB from
# .mpy; each plus the fakes' measured share and, for ROMFS, the image's own
# bytes, which sit on the heap in the unix port): the RP2040's holds since
# 2026-12-03; the ESP32's does not yet, an xfail(strict=True) with the
# measured figures, so it turns red the day the firmware fits and must be
# flipped. What holds today is tested
# at TODAY_KB, and the cap is shown to be real: 8 KiB below the live peak fails.
import pytest

from tools import ram

# the firmware's share of the heap (fakes, harness and image added on top)
# that the stretch runs in today (measured on main 2026-12-04, fourth session,
# the names compacted at deploy, the record files made and read a record at a
# time: the smallest working cap leaves the firmware 89 KiB from ROMFS, 142
# KiB from .mpy, a boot over its own files about 92 from ROMFS (107 before
# the record change); 107 and 164 on 2026-12-03, 151 and 241 on e3a0ebe)
TODAY_KB = {"romfs": 120, "mpy": 172}
STEP = 8 * 1024


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    exe = ram.interpreter()
    if exe is None:
        pytest.skip(ram.HOWTO)
    tmp = str(tmp_path_factory.mktemp("ram"))
    fakes = ram.build_fakes(tmp)
    apps, measured = {}, {}
    for board in ram.REAL_BOARDS:
        for store in ("romfs", "mpy"):
            _, path = ram.build_app(board, store, tmp)
            apps[(board, store)] = path
            measured[(board, store)] = ram.run_board(board, store, ram.BIG_HEAP, path, fakes, exe=exe)
    return {"exe": exe, "fakes": fakes, "apps": apps, "measured": measured, "tmp": tmp}


def share(m):
    """What the unix run holds beyond the firmware: the interpreter's own
    start, the fakes and harness, and the image bytes."""
    return m["base"] + m["fakes"] + m["harness"] + m["image"]


def run(rig, board, store, heap):
    return ram.run_board(board, store, heap, rig["apps"][(board, store)], rig["fakes"], exe=rig["exe"])


def check_ran(r):
    assert "error" not in r, r
    assert r["reads"] == 450  # 45 s of 100 ms cycles against the BQ76952 model
    # heartbeat heard each second, frames sent; a few more heard at start: while the
    # pack listens (app.canrate) nobody acknowledges, and each retry reaches it
    assert 45 <= r["inverter_heard"] <= 50 and r["frames"] > 100


def check_runs_in(rig, board, store, firmware_bytes):
    """The stretch runs with firmware_bytes of heap for the firmware (the
    measured share of the rest on top)."""
    m = rig["measured"][(board, store)]
    check_ran(run(rig, board, store, firmware_bytes + share(m)))


def test_the_budget_line_counts_the_boards_pools():
    # make perf's verdicts: against the board column (board_pools added), KiB
    q = [(100, 1072), (300, 2224), (700, 5168)]  # pools the fakes filled first
    pools = ram.board_pools({"qstr": q})
    assert pools == ram.pool_bytes(500) - ram.pool_bytes(100) - (5168 - 2224) > 0
    r = {"boot": 48 * 1024 - pools, "peak": 56 * 1024 - pools + 1, "qstr": q}
    line = ram.budget_line("esp32_bq", "romfs", r, 48, 56)
    assert "after boot 48.0 KB of 48 KB: met" in line and "peak 56.0 KB of 56 KB: over by 0.0 KB" in line
    r = {"boot": 150 * 1024 - pools + 2048, "peak": 0, "qstr": q}
    line = ram.budget_line("rp2040_bq", "mpy", r, 150, None)
    assert "of 150 KB: over by 2.0 KB;" in line
    # the board's pools hold the rig's start (100) and the firmware's 400: the
    # pools of 20, 40, 80, 160 hold 300, so 500 takes the one of 320 entries
    assert line.endswith("; 500 qstrs in the pools, 200 fewer would spare a pool of %.1f KB"
                         % ((24 + 7 * 320 + 15) // 16 * 16 / 1024))


def test_the_pool_step_is_the_last_pool_of_py_qstr_c():
    # py/qstr.c 1.27: dynamic pools of 20, 40, 80, ... entries (7 bytes each,
    # a 24-byte header, 16-byte heap blocks) hold 20, 60, 140, 300, 620, 1260, 2540
    assert ram.pool_step(1326) == (66, (24 + 7 * 1280 + 15) // 16 * 16)  # 8992 B for 66 qstrs
    assert ram.pool_step(1260) == (640, (24 + 7 * 640 + 15) // 16 * 16)  # full: the 640 pool goes only below 621
    assert ram.pool_step(21) == (1, (24 + 7 * 40 + 15) // 16 * 16)
    assert ram.pool_step(1) == (1, (24 + 7 * 20 + 15) // 16 * 16)


@pytest.mark.parametrize("board", ram.REAL_BOARDS)
@pytest.mark.parametrize("store", ["romfs", "mpy"])
def test_measured_uncapped(rig, board, store):
    m = rig["measured"][(board, store)]
    check_ran(m)
    print("%s %s: firmware after boot %d B, peak %d B; fakes %d B, image %d B"
          % (board, store, m["boot"], m["peak"], m["fakes"] + m["harness"], m["image"]))
    # the ROMFS image keeps the bytecode out of the heap: far less than .mpy
    if store == "romfs":
        assert m["boot"] < rig["measured"][(board, "mpy")]["boot"] - 40 * 1024


@pytest.mark.parametrize("board", ram.REAL_BOARDS)
@pytest.mark.parametrize("store", ["romfs", "mpy"])
def test_the_qstr_pool_model_is_the_interpreters(rig, board, store):
    """ram.pool_bytes (py/qstr.c's pool sizes) gives the pool bytes the
    interpreter reports at the start, after the fakes and after the boot, so
    board_pools (the firmware's pools without the fakes' before them) stands
    on it. The fakes fill the small pools first, so a board holds more,
    unless the fakes' qstrs pushed the rig over a pool the board's count
    stays under: then it holds a whole pool less."""
    m = rig["measured"][(board, store)]
    assert len(m["qstr"]) == 3 and m["qstr"][0][0] < m["qstr"][1][0] < m["qstr"][2][0]
    for n, pools in m["qstr"]:
        assert ram.pool_bytes(n) == pools, (n, pools)

    def n_pools(n):  # py/qstr.c: pools of 20, 40, 80, ... entries
        k, held = 0, 0
        while held < n:
            held, k = held + (20 << k), k + 1
        return k

    n_rig = m["qstr"][2][0]
    if n_pools(ram.board_qstrs(m)) == n_pools(n_rig):
        assert ram.board_pools(m) > 0
    else:
        assert n_pools(ram.board_qstrs(m)) < n_pools(n_rig) and ram.board_pools(m) < 0


# from ROMFS in the ESP32's heap, from .mpy in the RP2040's
TARGETS = [
    pytest.param("romfs", ram.ESP32_HEAP, id="romfs-in-esp32-heap", marks=pytest.mark.xfail(
        strict=True, reason="does not fit yet (measured on main 2026-12-04, fourth session): from ROMFS the firmware "
        "holds 69.4 KiB after boot in the rig (72.8 KiB with the qstr pools a board holds), 69.8 KiB peak, and "
        "needs an 89 KiB heap (92 over its own files), against the ESP32's 64,000 bytes")),
    # fits since 2026-12-03 (the drivers' set-up code dropped after boot, bms.prows per use)
    pytest.param("mpy", ram.RP2040_HEAP, id="mpy-in-rp2040-heap"),
]


@pytest.mark.parametrize("store,heap", TARGETS)
@pytest.mark.parametrize("board", ram.REAL_BOARDS)
def test_boots_in_the_target_heap(rig, board, store, heap):
    check_runs_in(rig, board, store, heap)


CASES = [("esp32_bq", "romfs"), ("rp2040_bq", "mpy")]


@pytest.mark.parametrize("board,store", CASES)
def test_runs_under_todays_cap(rig, board, store):
    check_runs_in(rig, board, store, TODAY_KB[store] * 1024)


@pytest.mark.parametrize("board,store", CASES)
def test_boots_again_over_its_own_files_under_todays_cap(rig, board, store, tmp_path):
    """Every boot but the first loads the parameter, counter and event files
    the last run left (store.paramload, the counters, the event ring's scan):
    the same stretch over them under today's cap, and the files were read
    (the boot count went on from the first run's)."""
    from store import counters as C
    m = rig["measured"][(board, store)]
    data = str(tmp_path / "flash")
    first = ram.run_board(board, store, ram.BIG_HEAP, rig["apps"][(board, store)], rig["fakes"], exe=rig["exe"],
                          data=data, stretch=[(20, -40000)])
    assert "error" not in first, first
    for f in ("params.bin", "counters.bin"):
        assert (tmp_path / "flash" / f).exists(), f
    again = ram.run_board(board, store, TODAY_KB[store] * 1024 + share(m), rig["apps"][(board, store)], rig["fakes"],
                          exe=rig["exe"], data=data)
    check_ran(again)
    assert first["counters"][C.BOOTS] >= 1 and again["counters"][C.BOOTS] == first["counters"][C.BOOTS] + 1


@pytest.mark.parametrize("board,store", CASES)
def test_the_cap_is_real(rig, board, store):
    """8 KiB below what the run holds live (its gc'd peak plus the share) is
    a MemoryError, while today's cap runs. The smallest working cap (to 2 KiB,
    by bisection) is printed, not asserted: whether a heap just above it
    runs depends on where the garbage falls, so it is not monotonic."""
    m = rig["measured"][(board, store)]
    live = share(m) + m["peak"]
    less = run(rig, board, store, live - STEP)
    assert less.get("error") == "MemoryError", less
    lo, hi = live - STEP, TODAY_KB[store] * 1024 + share(m)
    while hi - lo > 2048:
        mid = (lo + hi) // 2
        if "error" in run(rig, board, store, mid):
            lo = mid
        else:
            hi = mid
    print("%s %s: live %d B, smallest working cap found %d B (firmware %d B + the rest %d B)"
          % (board, store, live, hi, hi - share(m), share(m)))


def test_the_host_protocol_is_built_at_its_first_request_and_survives_a_build_out_of_memory(rig):
    """app.hostport on the real board: after the boot and the stretch none of
    the host protocol's modules is imported; its first RTU request, with the
    heap filled to 3,000 free bytes, finds no memory to build it: counted, no
    reply, the pack runs on; the next one (the heap freed) is answered, then an
    ISO-TP request on CAN. The replies are checked against Modbus over Serial
    Line 6.2.2's CRC and decoded by pymodbus."""
    from pymodbus.framer import FramerRTU
    from pymodbus.pdu import DecodePDU
    from test_hostport import _crc
    assert ram.HOST_RTU[6:] == _crc(ram.HOST_RTU[:6])
    board, store = "esp32_bq", "romfs"
    r = ram.run_board(board, store, ram.BIG_HEAP, rig["apps"][(board, store)], rig["fakes"], exe=rig["exe"],
                      host=dict(ram.HOST_SESSION, oom=3000))
    check_ran(r)
    assert r["host_mods"] == [] and not r["host_built"]
    assert r["oom_reply"] == "" and r["oom_failed"] == 1 and not r["oom_built"]
    rep = bytes.fromhex(r["rtu_reply"])
    assert len(rep) == 15 and rep[:3] == bytes((1, 3, 10)) and rep[13:] == _crc(rep[:13]), rep.hex()
    used, dev, _tid, pdu = FramerRTU(DecodePDU(False)).decode(rep)
    assert used == 15 and dev == 1
    info = DecodePDU(False).decode(pdu).registers
    assert info[0] == 1 and info[4] == 1  # map version 1; unit: link address 1 (a pack alone)
    assert len(r["can_reply"]) == 1
    sf = bytes.fromhex(r["can_reply"][0])
    assert sf[0] == 6  # an ISO-TP single frame of the 6-byte reply PDU
    assert DecodePDU(False).decode(sf[1:7]).registers == info[:2]
    assert r["failed"] == 1
    print("%s %s: firmware after boot %d B; after the PC tool's first requests %d B, peak %d B"
          % (board, store, r["boot"], r["host"], r["host_peak"]))
    assert r["boot"] + 8 * 1024 < r["host"]  # what is built at the first request is no longer at boot


# ---- the firmware frozen into the interpreter (tools/build_frozen_unix.sh) -----------
# Frozen bytecode keeps the raw code and the qstrs in the firmware's flash;
# what an import still builds in the heap is the module, its globals dict,
# the function and class objects. Measured (main 2026-12-03, third session,
# esp32_bq): after boot 50.3 KiB all frozen, 64.7 KiB with the lower part
# frozen, 78.2 KiB from ROMFS. All frozen, the stretch runs with a heap from
# 64.4 KiB on for the firmware.
FROZEN_TODAY_KB = 84

@pytest.fixture(scope="module")
def frozen_rig(rig):
    runs = {}
    for board in ram.REAL_BOARDS:
        for store in ram.FROZEN_STORES:
            exe = ram.frozen_interpreter(board, store)
            if exe is None:
                pytest.skip("no frozen interpreter: MICROPYTHON_DIR=<v1.27.0 source> tools/build_frozen_unix.sh")
            _, path = ram.build_app(board, store, str(rig["tmp"]))
            runs[(board, store)] = (exe, path, ram.run_board(board, store, ram.BIG_HEAP, path, rig["fakes"], exe=exe))
    return runs


def run_frozen(rig, frozen_rig, board, store, heap):
    exe, path, _ = frozen_rig[(board, store)]
    return ram.run_board(board, store, heap, path, rig["fakes"], exe=exe)


@pytest.mark.parametrize("board", ram.REAL_BOARDS)
@pytest.mark.parametrize("store,saved_kb", [("frozen", 24), ("frozen+romfs", 8)])
def test_frozen_runs_and_saves_heap(rig, frozen_rig, board, store, saved_kb):
    m = frozen_rig[(board, store)][2]
    check_ran(m)
    romfs = rig["measured"][(board, "romfs")]
    print("%s %s: firmware after boot %d B, peak %d B (romfs %d B, %d B)"
          % (board, store, m["boot"], m["peak"], romfs["boot"], romfs["peak"]))
    assert m["boot"] < romfs["boot"] - saved_kb * 1024
    if store == "frozen":
        assert m["image"] == 0  # nothing but the fakes mounted
        assert m["boot"] < frozen_rig[(board, "frozen+romfs")][2]["boot"]


@pytest.mark.xfail(strict=True, reason="does not fit yet (measured on main 2026-12-03, third session): all frozen "
                   "the firmware holds 50.3 KiB after boot, 50.7 KiB peak, and needs a 64.4 KiB heap, against the "
                   "ESP32's 64,000 bytes")
def test_frozen_boots_in_the_esp32_heap(rig, frozen_rig):
    m = frozen_rig[("esp32_bq", "frozen")][2]
    check_ran(run_frozen(rig, frozen_rig, "esp32_bq", "frozen", ram.ESP32_HEAP + share(m)))


def test_frozen_cap_is_real(rig, frozen_rig):
    """All frozen: the run passes with FROZEN_TODAY_KB for the firmware and
    fails 8 KiB below the live peak; the smallest working cap is printed."""
    m = frozen_rig[("esp32_bq", "frozen")][2]
    live = share(m) + m["peak"]
    assert run_frozen(rig, frozen_rig, "esp32_bq", "frozen", live - STEP).get("error") == "MemoryError"
    lo, hi = live - STEP, FROZEN_TODAY_KB * 1024 + share(m)
    check_ran(run_frozen(rig, frozen_rig, "esp32_bq", "frozen", hi))
    while hi - lo > 2048:
        mid = (lo + hi) // 2
        if "error" in run_frozen(rig, frozen_rig, "esp32_bq", "frozen", mid):
            lo = mid
        else:
            hi = mid
    print("esp32_bq frozen: live %d B, smallest working cap found %d B (firmware %d B + the rest %d B)"
          % (live, hi, hi - share(m), share(m)))


def test_board_manifests_freeze_the_lower_part(tmp_path):
    """boards/micropython/*/manifest.py, run by MicroPython's own manifest
    reader (tools/manifestfile.py of $MICROPYTHON_DIR) as the port build runs
    it, freezes the port's modules and exactly tools/frozen.py's lower part,
    from the const-inlined copies."""
    import os
    import sys
    from tools import deploy, frozen
    src = os.environ.get("MICROPYTHON_DIR")
    if not src or not os.path.isfile(os.path.join(src, "tools", "manifestfile.py")):
        pytest.skip("MICROPYTHON_DIR (a MicroPython v1.27.0 source tree) not set")
    sys.path.insert(0, os.path.join(src, "tools"))
    try:
        import manifestfile
    finally:
        sys.path.pop(0)
    port = str(tmp_path / "port")
    os.makedirs(os.path.join(port, "boards"))
    with open(os.path.join(port, "boards", "manifest.py"), "w") as f:
        f.write('include("$(MPY_DIR)/extmod/asyncio")\n')  # the port's own, without micropython-lib
    for defn, board in (("BMS_ESP32_ROMFS", "esp32_bq"), ("BMS_RP2040_ROMFS", "rp2040_bq")):
        d = os.path.join(deploy.REPO_ROOT, "boards", "micropython", defn)
        with open(os.path.join(d, "mpconfigboard.cmake")) as f:
            assert "set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)" in f.read()
        m = manifestfile.ManifestFile(manifestfile.MODE_FREEZE, {"MPY_DIR": src, "PORT_DIR": port,
                                                                 "BOARD_DIR": d, "MPY_LIB_DIR": port})
        m.execute(os.path.join(d, "manifest.py"))
        got = {f.target_path: f.full_path for f in m.files()}
        lower = {t: text for _, t, text in frozen.staged(board, "lower")}
        port_own = {t for t in got if t.startswith("asyncio/") or t == "uasyncio.py"}
        assert set(got) == set(lower) | port_own
        assert not any(t.startswith(("app/", "bms/", "sim/")) or "/" not in t for t in lower)
        inlined = [t for t, text in lower.items() if text is not None]
        assert inlined  # the drivers' constants, as deploy inlines them
        for t in inlined:
            with open(got[t], encoding="utf-8") as f:
                assert f.read() == lower[t], t
