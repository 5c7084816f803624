# Owns the A/B decision of the boot part (issue 15): which image slot runs,
# when a new image is tried, when it has confirmed itself, and when the pack
# goes back to the old image by itself. Pure: the caller loads and saves the
# record (lib/store/slotstore.py, atomically) and mounts the slot.
#
# The record is a list of small ints (RECORD_FIELDS). The boot part calls
# boot(rec) once per start and saves what it returns BEFORE it runs that
# slot, so a power cut or a crash during a try counts as a failed try:
#   - a pending slot gets MAX_TRIES starts; a start that does not reach
#     confirm() (the new image's self-test) is a failed try; after MAX_TRIES
#     the pending image is dropped and the confirmed one runs again (rollback);
#   - confirm() makes the running pending slot the confirmed one and raises
#     the security-counter floor to its counter (anti-downgrade);
#   - stage(rec, slot, counter) marks a freshly written, verified image
#     pending: one atomic record write, the "one state change" of the issue;
#   - with no valid slot at all the boot part runs recovery (RECOVERY).
MAX_TRIES = 2
NONE = -1
RECOVERY = -2

# record layout (indices into the list)
CONFIRMED = 0  # slot 0/1 of the confirmed image, NONE before the first install
PENDING = 1  # slot of an image to try, NONE when nothing is pending
TRIES = 2  # starts of the pending image so far
FLOOR = 3  # lowest security counter accepted (the confirmed image's)
COUNTER0 = 4  # security counter of the image in slot 0 (NONE: slot empty/invalid)
COUNTER1 = 5
ROLLBACKS = 6  # times a pending image was given up
RECORD_FIELDS = 7


def blank():
    return [NONE, NONE, 0, 0, NONE, NONE, 0]


def valid(rec):
    """A record the boot part can act on (a corrupt one is treated as blank)."""
    if not isinstance(rec, list) or len(rec) != RECORD_FIELDS:
        return False
    for v in rec:
        if not isinstance(v, int):
            return False
    return rec[CONFIRMED] in (NONE, 0, 1) and rec[PENDING] in (NONE, 0, 1) and 0 <= rec[TRIES] <= MAX_TRIES \
        and rec[FLOOR] >= 0 and rec[ROLLBACKS] >= 0


def counter(rec, slot):
    return rec[COUNTER0 + slot]


def boot(rec):
    """(slot to run or RECOVERY, the record to save before running it)."""
    r = list(rec) if valid(rec) else blank()
    p = r[PENDING]
    if p != NONE:
        if r[TRIES] < MAX_TRIES and counter(r, p) >= r[FLOOR]:
            r[TRIES] += 1
            return p, r
        r[PENDING] = NONE  # tried MAX_TRIES times without confirming: back to the old image
        r[TRIES] = 0
        r[COUNTER0 + p] = NONE
        r[ROLLBACKS] += 1
    c = r[CONFIRMED]
    if c == NONE or counter(r, c) == NONE:
        return RECOVERY, r
    return c, r


def running_pending(rec, slot):
    """True when slot is the pending image under trial."""
    return rec[PENDING] == slot and rec[PENDING] != NONE


def confirm(rec, slot):
    """The record after the running image in slot passed its self-test;
    the same record when slot is not the one under trial."""
    if not running_pending(rec, slot):
        return list(rec)
    r = list(rec)
    old = r[CONFIRMED]
    r[CONFIRMED] = slot
    r[PENDING] = NONE
    r[TRIES] = 0
    if counter(r, slot) > r[FLOOR]:
        r[FLOOR] = counter(r, slot)
    if old != NONE and old != slot:
        r[COUNTER0 + old] = NONE  # the old image is now the slot the next update writes
    return r


def target(rec):
    """The slot an update writes: the one the confirmed image is not in."""
    c = rec[CONFIRMED] if valid(rec) else NONE
    return 1 if c == 0 else 0


def begin_write(rec, slot):
    """The record while slot is being written: slot holds nothing valid, and an
    earlier pending image there is no longer tried."""
    r = list(rec) if valid(rec) else blank()
    r[COUNTER0 + slot] = NONE
    if r[PENDING] == slot:
        r[PENDING] = NONE
        r[TRIES] = 0
    return r


def stage(rec, slot, sec_counter):
    """The record with the verified image in slot pending; None when its
    counter is below the floor (a downgrade) or slot holds the confirmed image."""
    if not valid(rec) or slot == rec[CONFIRMED] or slot not in (0, 1) or sec_counter < rec[FLOOR]:
        return None
    r = list(rec)
    r[COUNTER0 + slot] = sec_counter
    r[PENDING] = slot
    r[TRIES] = 0
    return r
