# The self-test confirm of a new image (firmware/app/confirm.py): the image
# under trial confirms itself only after CONFIRM_AFTER_MS of an unbroken good
# run (issue 15: AFE readings plausible, link up, protections armed, FETs
# commandable); any bad tick restarts the count; nothing is confirmed for a
# slot that is not under trial or when the boot part did not run a slot.
import pytest

from app import compose, confirm as C
from bms import parallel
from bms.state import PackState
from simflash import SimFlash
from store.slotstore import SlotStore
from update import boot as B
from update import slots as S


def _good():
    s = PackState()
    s.snap.ok = True
    s.snap.plausible = True
    s.link_role = parallel.SINGLE
    return s


def _trial(fs):
    r = B.factory()
    r = S.stage(r, 1, 4)
    slot, r = S.boot(r)
    st = SlotStore(fs)
    st.load()
    st.save(r)
    return slot, r


def _svc(state, fs):
    slot, rec = _trial(fs)
    st = SlotStore(fs)
    st.load()
    return C.Confirm(state, st, rec, slot)


def _stored(fs):
    return SlotStore(fs.remount()).load()[0]


def test_a_good_run_confirms_after_the_delay_and_only_then():
    fs = SimFlash()
    s = _good()
    svc = _svc(s, fs)
    t = 0
    while t < C.CONFIRM_AFTER_MS:
        svc.tick(t)
        t += C.PERIOD_MS
        assert _stored(fs)[S.PENDING] == 1
    svc.tick(t)
    rec = _stored(fs)
    assert rec[S.CONFIRMED] == 1 and rec[S.PENDING] == S.NONE and rec[S.FLOOR] == 4
    used = fs.used
    svc.tick(t + 1000)
    assert fs.used == used  # saved once


@pytest.mark.parametrize("spoil", [
    lambda s: setattr(s.snap, "plausible", False),
    lambda s: setattr(s.snap, "ok", False),
    lambda s: setattr(s, "afe_errors", 1),
    lambda s: setattr(s, "faults", 1),
    lambda s: setattr(s, "fet_off_failed", True),
    lambda s: setattr(s, "fet_errors", 2),
    lambda s: setattr(s, "link_role", parallel.NONE),
    lambda s: setattr(s, "link_failure", True),
    lambda s: setattr(s, "link_orphan", True),
    lambda s: setattr(s, "inverter_lost", True),
])
def test_one_bad_tick_restarts_the_good_run(spoil):
    fs = SimFlash()
    s = _good()
    svc = _svc(s, fs)
    svc.tick(0)
    svc.tick(C.CONFIRM_AFTER_MS - 1000)
    bad = _good()
    spoil(bad)
    assert not C.healthy(bad)
    svc.state = bad
    svc.tick(C.CONFIRM_AFTER_MS - 500)
    svc.state = s
    svc.tick(C.CONFIRM_AFTER_MS)  # the run starts again here
    svc.tick(2 * C.CONFIRM_AFTER_MS - 1000)
    assert _stored(fs)[S.PENDING] == 1
    svc.tick(2 * C.CONFIRM_AFTER_MS)
    assert _stored(fs)[S.CONFIRMED] == 1


class _App:
    def __init__(self, fs):
        self.state = _good()
        self.store = type("St", (), {"fs": fs})()


def test_the_service_exists_only_for_the_slot_under_trial():
    fs = SimFlash()
    slot, _ = _trial(fs)
    app = _App(fs)
    assert isinstance(compose.confirm(app, slot), C.Confirm)
    assert compose.confirm(app, 0) is None  # the confirmed slot runs: nothing to confirm
    assert compose.confirm(app, S.NONE) is None  # a port without ROMFS
    app.store = None
    assert compose.confirm(app, slot) is None


def test_the_running_slot_is_the_boot_parts_unless_the_board_names_it(monkeypatch):
    from app.compose import running_slot
    monkeypatch.setattr(B, "RUNNING", 1)
    assert running_slot(object()) == 1
    assert running_slot(type("Bd", (), {"running": 0})()) == 0  # a bench pack, booted by the bench


def test_a_failed_save_is_tried_again():
    fs = SimFlash()
    s = _good()
    svc = _svc(s, fs)

    class Failing:
        n = 0

        def save(self, rec):
            self.n += 1
            if self.n == 1:
                raise OSError(5)
            svc_store.save(rec)
    svc_store = svc.slot_store
    svc.slot_store = Failing()
    svc.tick(0)
    svc.tick(C.CONFIRM_AFTER_MS)
    assert svc.save_errors == 1 and not svc.done
    svc.tick(C.CONFIRM_AFTER_MS + 1000)
    assert svc.done and _stored(fs)[S.CONFIRMED] == 1
