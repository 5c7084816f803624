# Owns the filesystem interface the store uses: open(path, mode), rename(a, b),
# remove(path), size(path) (-1 when missing). OsFs is the board's
# (os + open under one directory); store.memfs.MemFs, the same in memory, is
# apart so that a board never imports it.
import os


class OsFs:
    def __init__(self, root="/data"):
        self.root = root.rstrip("/")
        try:
            os.mkdir(self.root)
        except OSError:
            pass  # already there

    def _p(self, name):
        return self.root + "/" + name

    def open(self, name, mode):
        return open(self._p(name), mode)

    def rename(self, a, b):
        try:  # FAT refuses to rename over a file; littlefs replaces it atomically
            os.rename(self._p(a), self._p(b))
        except OSError:
            os.remove(self._p(b))
            os.rename(self._p(a), self._p(b))

    def remove(self, name):
        os.remove(self._p(name))

    def size(self, name):
        try:
            return os.stat(self._p(name))[6]
        except OSError:
            return -1
