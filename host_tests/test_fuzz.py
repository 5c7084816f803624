"""The CI slice of the fuzzing campaign (tools/fuzz.py, `make fuzz`): a few
thousand structure-aware inputs per receive path with a fresh seed each run
(printed on failure: replay with `make fuzz SEED=...`), and checks that the
harness's properties can fail."""
import random

import pytest

from tools import fuzz

N = 2000


@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
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
    from bms.parallel import Table
    take = Table.take

    def bad_take(self, now_ms, typ, src, d):  # a planted bug: any frame marks pack 5 online
        self.online[5] = 1
        return take(self, now_ms, typ, src, d)
    monkeypatch.setattr(Table, "take", bad_take)
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
