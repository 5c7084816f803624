# Owns the start of the persist service (app.persist.Persist): the store
# mounted, the parameters and the counters loaded, this start counted and
# saved; then, once the stages exist, the counters and lock-out states
# restored into them and the boot and the store's notes logged. It runs once
# per start: Persist loads it for each of the two calls (defs.transient), so
# it is not in RAM after boot.
from array import array
from bms.clock import Clock
from store import atomic
from store import counters as C
from store.eventlog import C_BOOT, C_COUNTERS_BACKUP, C_COUNTERS_CORRUPT


def start(ps, app, store, clock, pack):
    """app.persist.Persist.__init__ (see there)."""
    ps.app = app
    ps.store = store.mount()
    ps.clock = clock if clock is not None else Clock()
    ps.pack = pack
    st = app.state
    ps.state = st
    ps._owners = ()  # the stages that save and restore their counters
    ps.saved = array("i", [0] * C.N)  # what the file holds
    ps.now = array("i", [0] * C.N)  # this tick's values
    ps.saves = 0  # counter saves since start
    ps._since_save = 0  # ms since the last counter save
    ps._up_ms = 0  # ms run since the start, up to START_OK_MS
    ps._last_ms = None
    ps._mode = st.mode
    ps._ev_next = st.events.next_seq
    found, notes = store.params.load(app.params)
    if not found:
        store.params.save(app.params)
    src = store.counters.load(ps.now)
    if src == atomic.CORRUPT:
        notes.append((C_COUNTERS_CORRUPT, 0))
    elif src == atomic.BAK:
        notes.append((C_COUNTERS_BACKUP, store.counters.file.seq))
    ps._notes = notes
    ps._restored = src not in (atomic.NONE, atomic.CORRUPT)
    if not ps._restored:  # the start values (all 0), the SOC unknown
        for i in range(C.N):
            ps.now[i] = 0
        ps.now[C.SOC_PPM] = -1
    ps.now[C.BOOTS] += 1
    ps.now[C.FAILED_STARTS] += 1
    ps.failed_starts = ps.now[C.FAILED_STARTS]  # this one included
    st.boots = ps.now[C.BOOTS]
    ps._save()


def attach(ps):
    """app.persist.Persist.attach (see there)."""
    app = ps.app
    ps._owners = (app.estimate, app.protect, app.control)
    if ps._restored:  # each owner takes its fields back
        v = ps.now
        for owner in ps._owners:
            owner.restore(v)
    ps.log(C_BOOT, ps.now[C.BOOTS])
    for code, value in ps._notes:
        ps.log(code, value)
    ps._notes = ()
