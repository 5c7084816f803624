"""The CI slice of the fuzzing campaign (tools/fuzz.py, `make fuzz`): a few
thousand structure-aware inputs per receive path with a fresh seed each run
(printed on failure: replay with `make fuzz SEED=...`), and checks that the
harness's properties can fail."""
import random

import pytest

from tools import fuzz

N = 2000


@pytest.mark.parametrize("target", sorted(set(fuzz.TARGETS) - set(fuzz.HOST_TARGETS)))
def test_fuzz_slice(target):
    seed = random.SystemRandom().randrange(1 << 32)  # not derandomized: every run explores anew
    try:
        assert fuzz.run(target, N, seed) == N
    except fuzz.Finding as e:
        pytest.fail("%s\nreplay: make fuzz SEED=%d FUZZ_ARGS='--target %s'" % (e, seed, target))


def test_generators_make_well_formed_and_malformed_inputs():
    # the independent checkers agree with the kinds, and every target gets both kinds
    rng = random.Random(7)
    for target, (gen, _) in fuzz.TARGETS.items():
        if target in fuzz.HOST_TARGETS:
            continue
        kinds = [gen(rng)[2] for _ in range(500)]
        assert kinds.count(fuzz.GOOD) > 100 and kinds.count(fuzz.BAD) > 30, target
    for _ in range(300):
        where, frame, kind = fuzz.gen_pylon(rng)
        if kind != fuzz.MIXED:
            assert fuzz._pylon_ok(frame) == (kind == fuzz.GOOD)
    # the PROTOCOLS 2 example request is well-formed for the checker
    assert fuzz._pylon_ok(bytearray(b"~20024642E00202FD33\r"))
    assert not fuzz._pylon_ok(bytearray(b"~20024642E00202FD34\r"))


def test_a_service_that_touches_protected_state_is_found(monkeypatch):
    from app.inverter import Inverter
    hear = Inverter._hear

    def bad_hear(self, bus):  # a planted bug: hearing the inverter opens the charge FET
        hear(self, bus)
        self.st.chg_fet = False
    monkeypatch.setattr(Inverter, "_hear", bad_hear)
    with pytest.raises(fuzz.Finding, match="chg_fet True -> False"):
        fuzz.run("inverter", N, 1)


def test_a_malformed_frame_that_changes_the_table_is_found(monkeypatch):
    from bms import linkrows
    take = linkrows.take

    def bad_take(t, now_ms, typ, src, d):  # a planted bug: any frame marks pack 5 online
        t.online[5] = 1
        return take(t, now_ms, typ, src, d)
    monkeypatch.setattr(linkrows, "take", bad_take)
    p = fuzz.Pack(True)
    look = fuzz.Look(p)
    for _ in range(30):
        p.now_ms += 100
        p.tick()
    before = look.everything()
    # a STATUS report from pack 5 with the CAN length of a command: malformed
    p.deliver("can", (fuzz.PREFIX << 24 | 0x10 << 16 | 1 << 8 | 5, bytes(2), fuzz.EXT))
    p.tick()
    assert look.everything() == before  # the length check runs before take: nothing changed
    p.deliver("can", (fuzz.PREFIX << 24 | 0x10 << 16 | 1 << 8 | 5, bytes(8), fuzz.EXT))
    p.tick()
    assert look.everything() != before and "master's table" in look.diff(before, look.everything())


def test_growth_is_found(monkeypatch):
    from app.link import Link
    tick = Link.tick

    def leaky(self, now_ms):  # a planted bug: a list that grows per tick
        tick(self, now_ms)
        self.__dict__.setdefault("leak", []).append(now_ms)
    monkeypatch.setattr(Link, "tick", leaky)
    with pytest.raises(fuzz.Finding, match="containers grew"):
        fuzz.run("link", N, 1)


def test_extended_frame_with_an_inverter_id_is_not_an_inverter():
    # PROTOCOLS 1: the inverters' 0x305/0x306/0x307 are 11-bit; found by this fuzzer
    p = fuzz.Pack(False)
    for _ in range(30):
        p.now_ms += 100
        p.tick()
    p.deliver("can", (0x305, bytes(8), fuzz.EXT))
    p.tick()
    assert p.st.inverter_frames == 0
    p.deliver("can", (0x305, bytes(8), 0))
    p.tick()
    assert p.st.inverter_frames == 1


def test_make_fuzz_prints_count_rate_and_measured_branch_coverage(capsys):
    pytest.importorskip("coverage")
    assert fuzz.main(["--n", "300", "--seed", "3", "--target", "pylon"]) == 0
    out = capsys.readouterr().out
    line = [ln for ln in out.splitlines() if ln.startswith("fuzz: pylon")][0]
    assert "300 inputs" in line and "inputs/s" in line
    got, total = line.split("lib/proto/pylon_rs485.py ")[1].split(" branches")[0].split("/")
    assert 0 < int(got) <= int(total)


# ---- the host protocol (tools/fuzz_host.py) -------------------------------------------

HOST_N = {"modbus-rtu": 6000, "modbus-pdu": 9000, "isotp": 4000}  # ~1-2 s each


@pytest.fixture(scope="module")
def host_rig():
    from tools import fuzz_host
    return fuzz_host.Rig()


@pytest.mark.parametrize("target", sorted(fuzz.HOST_TARGETS))
def test_host_fuzz_slice(target, host_rig):
    from tools import fuzz_host
    seed = random.SystemRandom().randrange(1 << 32)
    try:
        assert fuzz_host.RUNS[target](HOST_N[target], seed, host_rig) == HOST_N[target]
    except fuzz.Finding as e:
        pytest.fail("%s\nreplay: make fuzz SEED=%d FUZZ_ARGS='--target %s'" % (e, seed, target))
    assert host_rig.host.errors == 0


def _rtu(rig, pdu, unit=1):
    from tools import fuzz_host
    frame = fuzz_host.adu(unit, pdu)
    rig.host.on_rs485(bytearray(frame), len(frame))
    rig.tick(10)
    rig.tick(10)
    (reply,) = rig.out
    rig.out.clear()
    assert fuzz_host.crc_ok(reply)
    return reply[1:-2]


def test_an_installer_logs_in_over_rtu_on_the_composed_pack():
    # found by modbus-rtu: the RTU path handed auth the port object as the
    # session's port (auth keeps ports in an int array): every challenge was
    # answered 04 and nobody could log in over RS485
    import hashlib
    import hmac
    import struct
    from tools import fuzz_host
    rig = fuzz_host.Rig()
    got = _rtu(rig, struct.pack(">BHH", 3, 200, 8))
    assert got[:2] == bytes((3, 16)) and rig.host.errors == 0, got.hex()
    mac = hmac.new(fuzz_host.SECRETS[2], got[2:18] + b"\x02", hashlib.sha256).digest()
    got = _rtu(rig, struct.pack(">BHHBH", 0x10, 208, 17, 34, 2) + mac)
    assert got == struct.pack(">BHH", 0x10, 208, 17)
    assert _rtu(rig, struct.pack(">BHH", 3, 208, 1)) == bytes((3, 2, 0, 2))  # installer level


def test_a_refused_write_that_changes_state_is_found(host_rig, monkeypatch):
    from app.host import Host
    from tools import fuzz_host
    refuse = Host._refuse

    def bad_refuse(self, *a, **k):  # a planted bug: a refusal bumps the cycle count
        self.st.cycles += 1
        return refuse(self, *a, **k)
    monkeypatch.setattr(Host, "_refuse", bad_refuse)
    with pytest.raises(fuzz.Finding, match="changed the state: PackState"):
        fuzz_host.run_pdu(3000, 1, host_rig)


@pytest.mark.parametrize("run", ["run_pdu", "run_rtu"])
def test_a_refused_update_block_that_changes_state_is_found(host_rig, monkeypatch, run):
    # the fuzz reaches FC 0x41's checks (PDUs and RTU frames): a planted bug in the refusal is found
    from app.hostupd import HostUpdate
    from tools import fuzz_host
    block = HostUpdate._block

    def bad_block(self, *a):
        self.h.st.cycles += 1
        return block(self, *a)
    monkeypatch.setattr(HostUpdate, "_block", bad_block)
    with pytest.raises(fuzz.Finding, match="changed the state: PackState"):
        getattr(fuzz_host, run)(6000, 7, host_rig)


def test_an_accepted_write_to_other_rows_is_found(host_rig, monkeypatch):
    from app.host import Host
    from tools import fuzz_host
    commit = Host.commit

    def bad_commit(self, pairs, port, reg):  # a planted bug: the neighbour row is written too
        i = pairs[0][0]
        j = i + 1 if i + 1 < len(self.params.v) else i - 1
        return commit(self, list(pairs) + [(j, self.params.v[j] ^ 1)], port, reg) if j != 0 else commit(
            self, pairs, port, reg)
    monkeypatch.setattr(Host, "commit", bad_commit)
    monkeypatch.setattr("bms.params.Params.set_many", lambda self, pairs: [self.v.__setitem__(i, x) for i, x in pairs])
    with pytest.raises(fuzz.Finding, match="changed rows"):
        fuzz_host.run_pdu(20000, 2, host_rig)


def test_an_internal_error_is_found(host_rig, monkeypatch):
    from app import hostfile
    from tools import fuzz_host
    monkeypatch.setattr(hostfile, "read", lambda h, req, r, out: out[999])  # a planted IndexError
    with pytest.raises(fuzz.Finding, match="internal error"):
        fuzz_host.run_pdu(3000, 3, host_rig)
    host_rig.host.errors = 0


def test_a_malformed_board_frame_is_found(host_rig, monkeypatch):
    from proto import isotp
    from tools import fuzz_host
    pad = isotp.Channel._pad

    def bad_pad(self, i):  # a planted bug: single frames claim one byte more
        pad(self, i)
        if self.frame[0] >> 4 == 0:
            self.frame[0] += 1 if self.frame[0] < 7 else -7
    monkeypatch.setattr(isotp.Channel, "_pad", bad_pad)
    with pytest.raises(fuzz.Finding):
        fuzz_host.run_isotp(3000, 4, host_rig)


def test_the_host_generators_reach_every_served_function_code_and_accepted_writes(host_rig):
    from tools import fuzz_host
    rng = random.Random(5)
    fcs = {}
    for _ in range(3000):
        p = fuzz_host.gen_pdu(rng, host_rig)
        if p:
            fcs[p[0]] = fcs.get(p[0], 0) + 1
    for fc in (3, 4, 6, 0x10, 0x14, 0x15, 0x2B, 0x41):  # served
        assert fcs.get(fc, 0) > 40, (fc, fcs)
    for fc in (1, 5, 8, 0x17):  # not served
        assert fcs.get(fc, 0) > 2, (fc, fcs)
    seeds = fuzz_host.pymodbus_seeds(host_rig, rng, 200)
    assert {s[1] for s in seeds} >= {3, 4, 6, 0x10, 0x14, 0x15, 0x2B, 0x41, 1, 2, 5, 15}
    # with an installer session some writes are accepted (the write paths are reached)
    host = host_rig.host
    host_rig.hold(0x7003, 2)
    out = bytearray(256)
    accepted = 0
    for _ in range(2000):
        req = bytearray(fuzz_host.gen_pdu(rng, host_rig))
        k = host.pdu(1, req, len(req), out, 0x7003)
        if k and req and req[0] in (6, 0x10) and out[0] == req[0]:
            accepted += 1
        host_rig.hold(0x7003, 2)
    assert accepted > 50
