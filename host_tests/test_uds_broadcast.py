# The bundle broadcast of the firmware update (issue 15's fan-out): one
# tester's raw frames (0x18FFB0_SA: seq u16 + 6 bundle bytes, an announce
# 0xFFFF + total u24 + the manifest digest's first 3 bytes) reach every pack at
# once, and a pack takes them only inside its own authenticated, open download,
# after its header is in and checked, after an announce naming that download,
# and only the frame that carries its next byte. The frames here are built by
# hand from that layout (not by bmsctl's encoder, which is checked against
# them, and with the link DBC); the board side is app.uds with the real
# updater (test_uds_update's Pack), the tester's session udsoncan on can-isotp.
# Also: where a later pass starts (bmsctl's behind() / next_pass()), and the
# CAN filter a programming session puts on the chip (the MCP2515 model).
import struct

import pytest
import udsoncan

from tools.bmsctl import update as U
from update import bundle as fmt
from update import slots as S
import test_uds_update as T

BID = 0x18FFB0F1


def frame(seq, data, at=None):
    at = seq * 6 if at is None else at
    return struct.pack(">H", seq) + data[at:at + 6].ljust(6, b"\xff")


def announce(data, total=None, tag=None):
    digest, _ = U.manifest_digest(data)
    return b"\xff\xff" + (total if total is not None else len(data)).to_bytes(3, "big") + (tag or digest[:3])


def send(pack, conn, payload, id_=BID):
    pack.svc.on_frame("can", [id_, memoryview(bytes(payload)), 2, 0])
    conn.step(1)


def header_len(data):
    return fmt.header_length(data[:fmt.HEAD])


def opened(pack, data, header=False):
    """A pack in its programming session, security access granted, the
    download open (bmsctl's prepare()) and (header) the header sent over UDS
    in whole blocks: (client, conn, bytes in)."""
    c, conn = T.client(pack)
    pos = U.prepare(c, data)
    if header:
        pos = U._blocks(c, data, pos, header_len(data), 256)
    return c, conn, pos


def body(frames):
    return [f for _, f in frames if isinstance(f, bytes)]


def received(pack):
    return pack.svc.upd.received if pack.svc.upd is not None else 0


def test_bmsctl_frames_have_the_documented_layout():
    data = T.bundle()
    n = header_len(data)
    frames = list(U.broadcast_frames(data, 0, announce_every=100))
    assert frames[0][1] == announce(data)
    sent = [f for f in body(frames) if f[:2] != b"\xff\xff"]
    assert sent == [frame(k, data) for k in range((len(data) + 5) // 6)]
    assert sum(1 for f in body(frames) if f[:2] == b"\xff\xff") == (len(sent) + 99) // 100
    assert all(len(f) == 8 for f in body(frames)) and U.broadcast_id() == BID
    # the pauses: right after the frame that ends the header (the packs check the signature),
    # and after each frame that completes the first page of a slot block (the packs erase it)
    k = [i for i, (_, f) in enumerate(frames) if not isinstance(f, bytes)]
    assert [frames[i] for i in k] == [(n, U.VERIFY_S), (n + 4096 + 256, U.ERASE_S)]
    assert frames[k[0] - 1][1] == frame((n - 1) // 6, data) and frames[k[1] - 1][1] == frame((n + 4096 + 255) // 6, data)
    assert body(U.broadcast_frames(data, 600))[1] == frame(100, data)


def test_a_later_pass_pauses_at_its_own_erases_and_starts_where_the_furthest_behind_is():
    data = T.bundle(image=b"\xd2\xcd\x31" + bytes(20000), files={})
    n = header_len(data)
    start = n + 2 * 4096 + 1000
    frames = list(U.broadcast_frames(data, start))
    assert frames[1][1] == frame(start // 6, data)
    assert [p for p in frames if not isinstance(p[1], bytes)] == [(n + k * 4096 + 256, U.ERASE_S) for k in (3, 4)]
    assert U.next_pass({1: None, 2: 5000, 3: 700}) == 700
    assert U.next_pass({1: None, 2: 5000, 3: None}) is None  # one pack behind: the rest over UDS


def test_the_link_dbc_decodes_the_broadcast_and_documents_the_uds_ids():
    import os
    import cantools
    from tools import paths
    from app import hostport
    db = cantools.database.load_file(os.path.join(paths.ROOT, "tools", "dbc", "bms_link.dbc"))
    m = db.get_message_by_name("UPDATE_BROADCAST")
    assert m.is_extended_frame and m.frame_id == U.broadcast_id()
    ident, mask, _ = hostport.SELECTION
    assert m.frame_id & mask == ident & mask  # inside the CAN port's selection: no chip filter changes
    data = T.bundle()
    got = bytearray()
    for f in body(U.broadcast_frames(data)):
        v = m.decode(f, decode_choices=False)
        if v["seq"] == 0xFFFF:
            assert v["payload"] >> 24 == len(data) and v["payload"] & 0xFFFFFF == int.from_bytes(
                U.manifest_digest(data)[0][:3], "big")
        else:
            assert v["seq"] * 6 == len(got)
            got += v["payload"].to_bytes(6, "big")
    assert bytes(got[:len(data)]) == data and set(got[len(data):]) <= {0xFF}
    req, rsp = db.get_message_by_name("UDS_REQUEST"), db.get_message_by_name("UDS_REPLY")
    assert (req.frame_id, rsp.frame_id) == U.uds_ids(1)


def test_a_broadcast_brings_the_image_and_the_pack_stages_it():
    pack = T.Pack()
    data = T.bundle()
    c, conn, pos = opened(pack, data)
    assert pos == 0 and pack.svc.upd.state == 1  # the download open, nothing in
    for f in body(U.broadcast_frames(data, pos)):
        send(pack, conn, f)
        if pack.svc.upd.received == 0:
            assert pack.svc.upd.state == 1
    assert received(pack) == len(data) and pack.svc.upd.state == 2  # the header came and was checked
    seen = []
    U.update(c, data, lambda done, total: seen.append(done), activate=False)
    assert seen == []  # nothing left to send over UDS
    assert pack.record()[S.PENDING] == 1
    assert bytes(pack.part.buf[T.SLOT:T.SLOT + len(T.IMAGE)]) == T.IMAGE
    taken, ignored = pack.svc.bc_taken, pack.svc.bc_ignored
    assert (taken, ignored) == ((len(data) + 5) // 6 - pos // 6, 0)
    r = c.read_data_by_identifier([U.DID_BROADCAST]).service_data.values[U.DID_BROADCAST]
    assert r == {"taken": taken, "ignored": ignored}


def test_ignored_without_an_open_download_or_before_the_header_is_checked():
    data = T.bundle()
    pack = T.Pack()
    c, conn = T.client(pack)
    c.read_data_by_identifier([U.DID_VERSION])  # the server is there, no session
    send(pack, conn, announce(data))
    send(pack, conn, frame(100, data))
    c.change_session(2)
    c.unlock_security_access(1)  # authenticated, but no download open
    send(pack, conn, announce(data))
    send(pack, conn, frame(100, data))
    assert pack.svc.bc_taken == 0 and pack.svc.bc_ignored == 4  # announces too
    # a download open, but no announce yet: nothing
    c.request_download(udsoncan.MemoryLocation(0, len(data), 32, 32))
    for seq in range(4):
        send(pack, conn, frame(seq, data))
    assert received(pack) == 0 and pack.svc.bc_taken == 0
    # the transfer ended (0x10 01): the same frames are nothing again
    c2, conn2, pos = opened(T.Pack(), data, header=True)
    c2.change_session(1)
    p2 = conn2.pack
    send(p2, conn2, announce(data))
    send(p2, conn2, frame(pos // 6, data))
    assert received(p2) == pos and p2.svc.bc_taken == 0


def test_out_of_order_repeated_other_tester_and_short_frames_are_ignored():
    pack = T.Pack()
    data = T.bundle()
    c, conn, pos = opened(pack, data, header=True)
    first = pos // 6
    send(pack, conn, announce(data))
    send(pack, conn, frame(first + 1, data))  # one ahead
    send(pack, conn, frame(first - 3, data))  # behind
    assert received(pack) == pos
    send(pack, conn, frame(first, data))
    send(pack, conn, frame(first, data))  # repeated
    send(pack, conn, frame(first + 1, data), id_=BID & ~0xFF | 0xF2)  # another tester's
    send(pack, conn, frame(first + 1, data)[:7])  # a short frame
    assert received(pack) == (first + 1) * 6
    send(pack, conn, frame(first + 1, data))
    assert received(pack) == (first + 2) * 6
    assert pack.svc.bc_taken == 2 and pack.svc.bc_ignored == 5
    # the rest over UDS from where the pack stands, then verified and staged
    U.update(c, data, activate=False)
    assert pack.record()[S.PENDING] == 1


def test_frames_of_a_download_of_another_size_or_bundle_are_ignored():
    data = T.bundle()
    for ann in (announce(data, total=len(data) + 6), announce(data, tag=b"\x00\x00\x00")):
        pack = T.Pack()
        c, conn, pos = opened(pack, data, header=True)
        send(pack, conn, ann)
        for seq in range(pos // 6, pos // 6 + 10):
            send(pack, conn, frame(seq, data))
        assert received(pack) == pos and pack.svc.bc_taken == 0 and pack.svc.bc_ignored == 10
        send(pack, conn, announce(data))  # the right announce arms it: the next frame goes in
        send(pack, conn, frame(pos // 6, data))
        assert received(pack) == pos // 6 * 6 + 6


def test_an_announce_of_another_bundle_of_the_same_size_stops_at_the_checked_header():
    pack = T.Pack()
    data = T.bundle()
    c, conn, pos = opened(pack, data)
    n = header_len(data)
    frames = [announce(data, tag=b"\x00\x00\x00")] + [frame(k, data) for k in range((len(data) + 5) // 6)]
    for f in frames:
        send(pack, conn, f)
    # the header went in (until then no digest to compare), then the digest differs: no image byte
    assert pack.svc.upd.state == 2 and n <= received(pack) < n + 6  # (the frame that ends the header)


def forge(data, at, frames_from=0):
    forged = bytearray(data)
    forged[at] ^= 0x40
    return body(U.broadcast_frames(bytes(forged), frames_from))


def test_a_forged_image_frame_in_sequence_ends_in_the_hash_refusal():
    pack = T.Pack()
    data = T.bundle()
    c, conn, pos = opened(pack, data)
    for f in forge(data, len(data) - 50):
        send(pack, conn, f)
    assert received(pack) == len(data)
    r = U.run_pack(c, data, activate=False)
    assert r[0].startswith("refused: RoutineControl refused: NRC 0x72") and r[0].endswith("(hash)")
    T._staged_nothing(pack)


def test_a_forged_header_frame_costs_the_pack_a_resend_over_uds():
    pack = T.Pack()
    data = T.bundle()
    c, conn, pos = opened(pack, data)
    for f in forge(data, header_len(data) - 10):  # in the signature
        send(pack, conn, f)
    assert pack.svc.upd.state == 5 and pack.svc.upd.reason == 2  # failed: signature, nothing written after
    assert not pack.svc._dl and pack.svc.bc_ignored > 800
    seen = []
    assert U.run_pack(c, data, lambda done, total: seen.append(done), activate=False)[0] == "ok"
    assert seen[0] == 256 and pack.record()[S.PENDING] == 1  # from the start, over UDS


def test_behind_reads_where_the_pack_stands_until_it_has_all():
    pack = T.Pack()
    data = T.bundle()
    c, conn, pos = opened(pack, data)
    frames = body(U.broadcast_frames(data, pos))
    assert U.behind(c, data) == 0
    for f in frames[:200]:
        send(pack, conn, f)
    assert U.behind(c, data) == received(pack) > 0
    assert U.behind(c, data + b"x") is None  # another bundle's length
    for f in frames[200:]:
        send(pack, conn, f)
    assert U.behind(c, data) is None and received(pack) == len(data)


def test_an_interrupted_broadcast_resumes_over_uds_in_a_new_session():
    pack = T.Pack()
    data = T.bundle()
    c, conn, pos = opened(pack, data)
    for f in body(U.broadcast_frames(data, pos))[:300]:
        send(pack, conn, f)
    mid = received(pack)
    for _ in range(600):  # the broadcast stopped, the tester went away: S3
        conn.step()
    assert pack.svc.session == 1 and mid > pos
    c2, _ = T.client(pack)
    seen = []
    U.update(c2, data, lambda done, total: seen.append(done), activate=False)
    assert seen[0] == mid + 256 and pack.record()[S.PENDING] == 1


MPY_FRAMES = """
import micropython
from app.uds import Uds
from bms.state import PackState
from bms.params import Params
from bms.auth import Auth
class Can:
    FLAG_EXT_ID = 2
    def send(self, i, d, f):
        return 0
class Upd:  # the updater as app.uds reads it during a broadcast
    received = 0
    total = 100000
    digest = b"\\x01\\x02\\x03" + bytes(29)
u = Uds(PackState(), Params(), Auth(None, Params(), None), Can(), lambda: 3)
u.hold.upd = Upd()
u._dl = True
u.tester = 0xF1
ann = [0x18FFB0F1, memoryview(bytearray(b"\\xff\\xff\\x01\\x86\\xa0\\x01\\x02\\x03")), 2, 0]
d = bytearray(b"\\x00\\x00abcdef")
fr = [0x18FFB0F1, memoryview(d), 2, 0]
bad = [0x18FFB0F2, memoryview(d), 2, 0]
def frames():
    micropython.heap_lock()
    try:
        u.on_frame("can", ann)
        for k in range(200):
            u._bc_fill = 0  # as the tick's feed leaves it
            u.on_frame("can", fr)
            u.on_frame("can", bad)
        d[1] = 7
        u.on_frame("can", fr)  # out of order
        r = None
    except MemoryError:
        r = "allocates"
    micropython.heap_unlock()
    return r or (u.bc_taken, u.bc_ignored, u._bc_fill, bytes(u._bc[:6]))
print(frames())
"""


def test_the_broadcast_frame_path_allocates_nothing_in_32_bit_micropython(mpy32):
    r = mpy32(MPY_FRAMES, heap="256K")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(200, 201, 6, b'abcdef')"


def test_the_session_filters_fit_an_mcp2515_and_take_only_this_packs_frames():
    from app import hostport
    from app.uds import session_filters
    from proto import link, pylon_can
    from test_hostcan import through_mcp2515
    ext = 2
    mine = [(U.uds_ids(3)[0], ext), (BID, ext), (link.can_id(link.T_HELLO, 1, 0xFF), ext),
            (link.can_id(link.T_REQ, 1, 3), ext), (0x18EF03F1, ext), (0x305, 0)]
    others = [(U.uds_ids(4)[0], ext), (U.uds_ids(4)[1], ext), (link.can_id(link.T_STATUS, 2, 1), ext),
              (0x18EF05F1, ext), (0x351, 0), (0x0CF00400, ext)]
    filters = session_filters(3, (link.CAN_FILTER, pylon_can.CAN_FILTER, hostport.SELECTION))
    assert through_mcp2515(filters, mine + others) == [i for i, _ in mine]
    from drivers.mcp2515 import MCP2515
    chip = MCP2515.__new__(MCP2515)  # set_filters before start only computes the layout
    chip._started = False
    chip.set_filters(filters)
    assert (chip.rx_depth(True), chip.rx_depth(False)) == (1, 2)  # four 29-bit items: RXB1 alone


class _Chip:
    """The CAN chip of a pack's UDS server: records the filters it is given
    (or raises `fails` when set), holds two frames, one beside an 11-bit
    item while the session is narrowed (as drivers.mcp2515 gives it)."""
    FLAG_EXT_ID = 2

    def __init__(self, pack, fails=None):
        self.pack = pack
        self.fails = fails
        self.filters = []

    def any(self):
        return False

    def set_filters(self, items):
        if self.fails is not None:
            raise self.fails
        self.filters.append(list(items))

    def rx_depth(self, ext):
        return 1 if self.pack.svc.narrowed else 2

    def send(self, id_, data, flags):
        return self.pack.can.send(id_, data, flags)


def _pack_on_chip(fails=None):
    """(pack, chip, CAN reader): a pack whose UDS server sees the CAN chip
    through its reader, with the inverter's and the host's selections."""
    from app import hostport
    from app.canport import CanPort
    from proto import pylon_can
    pack = T.Pack()
    chip = _Chip(pack, fails)
    rx = CanPort(chip)
    rx.subscribe(object(), pylon_can.CAN_FILTER)
    rx.subscribe(pack.svc, hostport.SELECTION)
    pack.svc.can_rx = rx
    pack.svc.can = chip
    return pack, chip, rx


def test_the_programming_session_narrows_the_chip_filters_and_its_end_restores_them():
    from app.uds import session_filters
    pack, chip, rx = _pack_on_chip()
    c, conn = T.client(pack)
    c.read_data_by_identifier([U.DID_VERSION])
    assert chip.filters == []  # the default session changes nothing
    c.change_session(2)
    assert chip.filters == [session_filters(T.ADDR, rx.selections())] and pack.svc.narrowed
    assert pack.svc.ch.block_size == 1  # one frame per block: the chip holds one
    c.change_session(2)  # again: no second write
    c.change_session(1)
    assert chip.filters[1:] == [list(rx.selections())] and not pack.svc.narrowed
    assert pack.svc.ch.block_size == 2
    c.change_session(2)
    for _ in range(600):  # S3 ends it too
        conn.step()
    assert len(chip.filters) == 4 and chip.filters[-1] == list(rx.selections())


@pytest.mark.parametrize("depth, bs", [(None, 2), (0, 2), (1, 1), (2, 2), (64, 8)])
def test_the_flow_control_block_is_what_the_port_holds(depth, bs):
    # ISO 15765-2 BS: the receiver's buffer; an MCP2515 two frames (or one), a FIFO port up to MAX_BS
    from app.uds import MAX_BS

    class Port:
        FLAG_EXT_ID = 2

        def send(self, id_, data, flags):
            return 0
    pack = T.Pack()
    port = Port()
    if depth is not None:
        port.rx_depth = lambda ext: depth
    pack.svc.can = port
    pack.svc._block_size()
    assert pack.svc.ch.block_size == bs and MAX_BS == 8


def test_a_filter_change_out_of_memory_is_counted_and_the_session_goes_on():
    # the MCP2515's set_filters imports its set-up module for the call
    # (drivers.once): with no heap for it the chip keeps its filters, the
    # count says so, and the programming session still answers
    pack, _, _ = _pack_on_chip(fails=MemoryError)
    c, conn = T.client(pack)
    c.change_session(2)
    assert pack.svc.filter_errors == 1 and not pack.svc.narrowed
    assert c.read_data_by_identifier([U.DID_VERSION]).positive
    c.change_session(1)  # never narrowed: nothing to restore
    assert pack.svc.filter_errors == 1 and not pack.svc.narrowed
