# Owns the self-test confirm of a new firmware image (issue 15): when the boot
# part (update.boot) runs the image under trial, this service confirms it
# (update.slots.confirm, saved in the slot record, store.slotstore) once the
# pack has run well for CONFIRM_AFTER_MS without a break: AFE readings good
# and plausible, no latched fault (protections armed: the AFE's were
# programmed at start, app.compose, and bms.protect runs without a fault),
# the FETs still commandable, the parallel link settled (a role, no link
# failure, not cut off from the master) and the inverter, once heard, not
# lost. Any bad tick restarts the count. Not confirmed before the next reset
# means a failed try: two of them and the boot part goes back to the old
# image by itself. Lives in the app, not in the boot part, because only the
# running image can judge itself; the boot part only counts its starts.
# app.compose.confirm builds it (and imports this module) only for an image
# under trial.
from app.service import Service
from bms import parallel
from defs.ticks import ticks_diff
from update import slots

CONFIRM_AFTER_MS = 60000  # as long as the boot-loop guard's good start (app.persist START_OK_MS)
PERIOD_MS = 1000


def healthy(s):
    """The pack state passes the self-test (see the header)."""
    return s.snap.ok and s.snap.plausible and s.afe_errors == 0 and s.faults == 0 \
        and s.fet_errors == 0 and not s.fet_off_failed \
        and s.link_role != parallel.NONE and not s.link_failure and not s.link_orphan \
        and not s.inverter_lost


class Confirm(Service):
    name = "confirm"
    period_ms = PERIOD_MS

    def __init__(self, state, slot_store, rec, slot, after_ms=CONFIRM_AFTER_MS):
        self.state = state
        self.slot_store = slot_store
        self.rec = rec
        self.slot = slot
        self.after_ms = after_ms
        self.since_ms = None  # start of the current good run
        self.done = False
        self.save_errors = 0

    def tick(self, now_ms):
        if self.done:
            return
        if not healthy(self.state):
            self.since_ms = None
            return
        if self.since_ms is None:
            self.since_ms = now_ms
            return
        if ticks_diff(now_ms, self.since_ms) < self.after_ms:
            return
        try:  # once: the only allocation of this service
            self.slot_store.save(slots.confirm(self.rec, self.slot))
        except OSError:
            self.save_errors += 1  # tried again next tick
            return
        self.done = True
        print("confirm: slot %s passed its self-test: confirmed" % "AB"[self.slot])

