# The boot part's A/B decision (lib/update/slots.py), as the update issue
# describes it: a new image is tried at most MAX_TRIES starts, confirms itself
# or is given up for the old one by itself; the confirmed image's security
# counter is the floor from then on; a corrupt record never leaves the pack
# without a decision.
from hypothesis import given, settings, strategies as hs

from tools import paths  # noqa: F401
from update import slots as S


def installed(slot=0, counter=3):
    r = S.blank()
    r[S.CONFIRMED] = slot
    r[S.COUNTER0 + slot] = counter
    r[S.FLOOR] = counter
    return r


def test_a_blank_pack_runs_recovery():
    assert S.boot(S.blank())[0] == S.RECOVERY


def test_the_confirmed_image_runs_and_the_record_stays():
    r = installed(0)
    slot, saved = S.boot(r)
    assert slot == 0 and saved == r


def test_an_update_is_tried_and_confirms_itself():
    r = installed(0, 3)
    t = S.target(r)
    assert t == 1
    r = S.begin_write(r, t)
    r = S.stage(r, t, 4)
    slot, r = S.boot(r)  # saved before the new image runs
    assert slot == 1 and r[S.TRIES] == 1
    r = S.confirm(r, 1)
    assert r[S.CONFIRMED] == 1 and r[S.PENDING] == S.NONE and r[S.FLOOR] == 4
    assert S.boot(r)[0] == 1
    assert S.target(r) == 0


def test_two_failed_tries_go_back_to_the_old_image_by_themselves():
    r = S.stage(installed(0, 3), 1, 4)
    slot, r = S.boot(r)
    assert slot == 1  # try 1: crashes, a power cut, or the self-test fails: no confirm
    slot, r = S.boot(r)
    assert slot == 1 and r[S.TRIES] == 2  # try 2
    slot, r = S.boot(r)
    assert slot == 0  # given up
    assert r[S.PENDING] == S.NONE and r[S.ROLLBACKS] == 1 and r[S.COUNTER1] == S.NONE and r[S.FLOOR] == 3
    assert S.boot(r) == (0, r)


def test_a_confirm_from_a_slot_not_under_trial_changes_nothing():
    r = installed(0, 3)
    assert S.confirm(r, 0) == r
    p = S.stage(r, 1, 4)
    assert S.confirm(p, 0) == p


def test_anti_downgrade():
    r = installed(0, 5)
    assert S.stage(r, 1, 4) is None
    assert S.stage(r, 1, 5) is not None  # the same counter (a rebuild) is accepted
    # a pending image whose counter fell below the floor (record edited) is not tried
    bad = S.stage(r, 1, 5)
    bad[S.FLOOR] = 6
    assert S.boot(bad)[0] == 0


def test_the_confirmed_slot_is_never_overwritten_or_staged():
    r = installed(1, 3)
    assert S.target(r) == 0
    assert S.stage(r, 1, 9) is None


def test_rewriting_a_pending_slot_stops_its_trial():
    r = S.stage(installed(0, 3), 1, 4)
    r = S.begin_write(r, 1)
    assert r[S.PENDING] == S.NONE and S.boot(r)[0] == 0


@settings(max_examples=500, deadline=None)
@given(hs.lists(hs.integers(-5, 10), min_size=0, max_size=9))
def test_any_record_gets_a_decision(rec):
    slot, saved = S.boot(rec)
    assert slot in (0, 1, S.RECOVERY)
    assert S.valid(saved)
    if slot != S.RECOVERY:
        assert S.counter(saved, slot) >= 0
