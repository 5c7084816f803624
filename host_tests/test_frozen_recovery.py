# The recovery mode (issue 15) in the firmware that freezes the lower part
# (tools/frozen.py "lower", as boards/micropython/*/manifest.py does), run in
# the 32-bit unix MicroPython 1.27 built with that part frozen in
# (tools/build_frozen_unix.sh) with nothing else on the path but the fakes:
# no ROMFS image, the case recovery exists for. recovery.serve.uds falls back
# to no update session on any ImportError, so a recovery copy that does not
# import on MicroPython (or imports the app) would leave a pack with a broken
# image unreachable; host_tests/test_recovery.py runs the same copies in
# CPython only. Skipped where the frozen interpreter is not built.
import json
import os
import subprocess

import pytest

from tools import ram
from tools.bmsctl import update as U

# UDS TesterPresent (ISO 14229-1 0x3E, sub-function 0) as an ISO-TP single frame
TESTER_PRESENT = bytes((2, 0x3E, 0, 0x55, 0x55, 0x55, 0x55, 0x55))

SCRIPT = r"""
import os, sys, vfs, json, binascii
""" + ram.MOUNT + r"""
R = {}
mount(FAKES, "/fk")
sys.path[:] = [".frozen", "/fk"]
from bq_rig import Rig
from sim.vtime import VirtualRunner
rig = Rig()
from recovery import mode, serve
from store.fs import OsFs
mod = mode.board_module()
R["board"] = mod.__name__
rig.wire(mod)
b = serve.build(mod)
svcs = serve.services(b, OsFs(DATA), lambda: None, mode.NO_SLOT)
R["services"] = [type(s).__module__ for s in svcs]
R["address"] = b.pack_address or serve.DEFAULT_ADDRESS
r = VirtualRunner()
for s in svcs:
    r.add(s)
peer = rig.peer()
req, rep = IDS[R["address"]]
peer.send(req, REQUEST, peer.FLAG_EXT_ID)
slot = [0, memoryview(bytearray(8)), 0, 0]
R["replies"] = []
for ms in range(10, 1001, 10):
    r.run_until(ms)
    rig.bus.step()
    while peer.recv(slot) is not None:
        if slot[0] == rep:
            R["replies"].append(binascii.hexlify(bytes(slot[1])).decode())
R["fets"] = rig.bq.fets()
R["app_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in ("app", "bms", "board", "bq_board", "bq_build"))
print(json.dumps(R))
"""


@pytest.mark.parametrize("board", ram.REAL_BOARDS)
def test_recovery_serves_uds_from_the_frozen_lower_part_alone(tmp_path, board):
    exe = ram.frozen_interpreter(board, "frozen+romfs")
    if exe is None:
        pytest.skip("no frozen interpreter: MICROPYTHON_DIR=<v1.27.0 source> tools/build_frozen_unix.sh")
    fakes = ram.build_fakes(str(tmp_path))
    data = tmp_path / "data"
    data.mkdir()
    ids = {a: U.uds_ids(a) for a in range(1, 16)}
    path = tmp_path / "recovery_run.py"
    path.write_text("FAKES = %r\nDATA = %r\nIDS = %r\nREQUEST = %r\n" % (fakes, str(data), ids, TESTER_PRESENT)
                    + SCRIPT)
    r = subprocess.run([exe, "-X", "heapsize=%d" % ram.BIG_HEAP, str(path)], capture_output=True, text=True,
                       timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr + r.stdout
    out = r.stdout.strip().splitlines()
    assert "UDS update session on CAN at address" in "\n".join(out[:-1]), out
    got = json.loads(out[-1])
    assert got["board"] == "recovery.board"  # the frozen copy, not an image's board module
    assert got["services"][-1] == "recovery.app.uds"
    assert got["app_loaded"] == []  # nothing of the app: it comes from the image, absent here
    assert got["fets"] == 0
    # the positive response 0x7E to TesterPresent, as an ISO-TP single frame
    assert len(got["replies"]) == 1 and bytes.fromhex(got["replies"][0])[:3] == bytes((2, 0x7E, 0)), got
