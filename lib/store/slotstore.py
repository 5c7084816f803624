# Owns the slot record file of the boot part (issue 15): the A/B record of
# update.slots (a list of small ints, FIELDS in its layout order) in the
# store.atomic layout (magic BMSS; id = field index + 1, tag of the field's
# name), written to .tmp and renamed, so a power cut at any write reads back
# the old record or the new one, never a third. This file does not judge the
# record (store may not import update): the boot part checks it with
# slots.valid and treats anything else as blank. A save that would not
# change the record writes nothing (the boot part saves at every start).
from defs.const import const
from store import atomic

MAGIC = b"BMSS"
SCHEMA = const(1)
FILE = "slots.bin"
# update.slots' record layout, in order (FIELDS.split(); its RECORD_FIELDS =
# N_FIELDS); _TAGS holds each name's atomic.name_hash ('<H'; test_slotstore
# checks it), so the board keeps no table of them
FIELDS = "confirmed_slot pending_slot tries floor_counter slot0_counter slot1_counter rollbacks"
N_FIELDS = const(7)
_TAGS = const(b"\xdf\xc7\x21\x8d\xce\x96\xb4\x1e\xe3\x5a\xa0\x4e\x82\xf7")

# load notes (event codes of kind store.eventlog.KIND_STORE; 1..8 paramstore,
# 20.. eventlog, 40.. cred)
N_SLOTS_NONE = const(50)  # no slot record (0): never installed through the boot part
N_SLOTS_CORRUPT = const(51)  # no valid copy (source): blank record
N_SLOTS_BACKUP = const(52)  # current copy bad, the previous one used (seq)
N_SLOTS_PARTIAL = const(53)  # a field missing or mistagged (its id): blank record


class SlotStore:
    def __init__(self, fs, name=FILE):
        self.file = atomic.AtomicFile(fs, name, MAGIC)
        self.last = None  # the record last read or written
        self.found = True  # after load(): some copy of the file exists (False: never written)

    def load(self):
        """(record or None when there is no usable one, notes)."""
        try:
            src, schema, recs = self.file.read()
        except OSError as e:  # the flash failed: as good as corrupt
            return None, [(N_SLOTS_CORRUPT, e.args[0] if e.args else 0)]
        if src == atomic.NONE:
            self.found = False
            return None, [(N_SLOTS_NONE, 0)]
        if src == atomic.CORRUPT:
            return None, [(N_SLOTS_CORRUPT, src)]
        notes = [(N_SLOTS_BACKUP, self.file.seq)] if src == atomic.BAK else []
        got = {}
        for rid, h, v in recs:
            got[rid] = (h, v)
        rec = []
        for i in range(N_FIELDS):
            hv = got.get(i + 1)
            if hv is None or hv[0] != atomic.tag(_TAGS, i):
                return None, notes + [(N_SLOTS_PARTIAL, i + 1)]
            rec.append(hv[1])
        self.last = rec
        return list(rec), notes

    def save(self, rec):
        """Write rec (N_FIELDS ints) unless it is the record already
        stored. Returns the bytes written (0: nothing to do)."""
        if len(rec) != N_FIELDS:
            raise ValueError("slot record must have %d fields" % N_FIELDS)
        if self.last is not None and list(rec) == self.last:
            return 0
        n = self.file.write(SCHEMA, atomic.Tagged(_TAGS, rec, N_FIELDS))
        self.last = list(rec)
        return n
