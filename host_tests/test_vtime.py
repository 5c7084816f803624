"""The virtual-time runner: periods, tie order, wrap, error handling."""
from defs.ticks import TICKS_MASK
from sim.vtime import VirtualRunner


class Rec:
    def __init__(self, name, period_ms, log):
        self.name, self.period_ms, self.log = name, period_ms, log

    def tick(self, now_ms):
        self.log.append((self.name, now_ms))


def test_periods_and_tie_order_are_deterministic():
    log = []
    r = VirtualRunner()
    r.add(Rec("a", 100, log))
    r.add(Rec("b", 50, log))
    r.run_until(200)
    assert log == [("a", 0), ("b", 0), ("b", 50), ("a", 100), ("b", 100), ("b", 150)]
    assert r.now_ms == 200


def test_services_see_wrapped_ticks():
    log = []
    r = VirtualRunner(start_ms=TICKS_MASK - 99)
    r.add(Rec("a", 100, log))
    r.run_until(TICKS_MASK - 99 + 300)
    assert [t for _, t in log] == [TICKS_MASK - 99, 0, 100]


def test_failing_service_is_dropped_and_reported():
    log, errs = [], []

    class Boom:
        name, period_ms = "boom", 100

        def tick(self, now_ms):
            if now_ms == 200:
                raise RuntimeError("x")
            log.append(now_ms)

    r = VirtualRunner()
    r.add(Boom(), 0, lambda svc, e: errs.append((svc.name, str(e), r.now_ms)))
    r.run_until(1000)
    assert log == [0, 100] and errs == [("boom", "x", 200)]


def test_a_flash_erase_holds_every_service_of_its_pack_and_its_frames():
    # sim.romfs.Partition adds ERASE_MS (45 ms, W25Q32JV tSE typical) per 4 KiB erase to stall_ms
    from sim import romfs
    from sim.bus import CanBus
    log = []
    r = VirtualRunner()
    part = romfs.Partition(b"\xff" * (2 * romfs.BLOCK))
    bus = CanBus("can", lambda: r.now_ms)
    mine, other = bus.attach("pack0", 0), bus.attach("tester", -1)
    mine.cpu = part

    class Eraser(Rec):
        def tick(self, now_ms):
            Rec.tick(self, now_ms)
            if now_ms == 10:
                part.ioctl(6, 1)  # the slot writer reaches a new block
                mine.send(0x18DAF103, b"\x02\x74\x20", 2)  # the reply of the same tick

    r.add(Eraser("writer", 10, log), cpu=part)
    r.add(Rec("link", 10, log), cpu=part)
    r.add(Rec("other pack", 10, log))
    r.run_until(30)
    assert not other.any()  # the reply waits for the erase, as the MCU sends it after
    r.run_until(80)
    assert [t for n, t in log if n == "writer"] == [0, 10, 55, 65, 75]
    assert [t for n, t in log if n == "link"] == [0, 55, 65, 75]  # its 20 ms tick waited too
    assert [t for n, t in log if n == "other pack"] == [0, 10, 20, 30, 40, 50, 60, 70]
    assert part.stall_ms == 0 and part.erases == 1
    got = other.recv()  # due at 55
    assert got is not None and got[0] == 0x18DAF103 and bytes(got[1]) == b"\x02\x74\x20"
