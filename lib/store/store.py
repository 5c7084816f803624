# Owns one pack's storage: the parameter file, the counters file and the event
# history on one filesystem (store.fs.OsFs on the board, store.memfs.MemFs on the bench).
from store.paramstore import ParamStore
from store.counters import CounterStore
from store.eventlog import EventLog


class Store:
    def __init__(self, fs, segments=8, per_seg=256):
        self.fs = fs
        self.params = ParamStore(fs)
        self.counters = CounterStore(fs)
        self.log = EventLog(fs, segments, per_seg)
        self.mounted = False

    def mount(self):
        if not self.mounted:
            self.log.mount()
            self.mounted = True
        return self
