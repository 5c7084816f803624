# Owns persistent storage on the board's flash (issue 5): the parameter file,
# the counters file, the event history and the filesystem they go through.
#   fs.py        OsFs (the board: os + open)
#   memfs.py     MemFs (the same in memory: bench, tests)
#   crc.py       crc32 (binascii's where it exists, else crctable.py's)
#   atomic.py    one record file written to a temporary name and renamed
#   paramstore.py / counters.py   the parameter and counter files (id-keyed)
#   paramload.py the parameter file's load and restore-defaults (loaded per call)
#   eventlog.py  the append-only event history in a ring of segment files
#   evscan.py    its scan at mount, reads and clear (loaded per call)
#   store.py     Store: the three together for one pack
