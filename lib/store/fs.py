# Owns the filesystem interface the store uses: open(path, mode), rename(a, b),
# remove(path), size(path) (-1 when missing), listdir(). OsFs is the board's
# (os + open under one directory); MemFs keeps files in a dict (the bench and
# the MicroPython gate use it; host_tests/simflash.py adds power cuts to it).
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

    def listdir(self):
        return os.listdir(self.root)


class _MemFile:
    def __init__(self, fs, name, data, pos):
        self.fs = fs
        self.name = name
        self.pos = pos
        self._data = data

    def read(self, n=-1):
        d = self.fs.files[self.name]
        if n < 0:
            n = len(d) - self.pos
        b = bytes(d[self.pos:self.pos + n])
        self.pos += len(b)
        return b

    def write(self, b):
        n = self.fs._write(self.name, self.pos, b)
        self.pos += n
        return n

    def seek(self, pos):
        self.pos = pos

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class MemFs:
    """Files as bytearrays in a dict; writes land at once (no cache), so a
    power cut keeps whatever was written: the harshest case for the store."""

    def __init__(self, files=None):
        self.files = files if files is not None else {}

    def _write(self, name, pos, b):
        d = self.files[name]
        end = pos + len(b)
        if end > len(d):
            d.extend(bytes(end - len(d)))
        d[pos:end] = b
        return len(b)

    def _truncate(self, name):
        self.files[name] = bytearray()

    def open(self, name, mode):
        if "w" in mode:
            self._truncate(name)
            return _MemFile(self, name, self.files[name], 0)
        if name not in self.files:
            if "a" in mode:
                self._truncate(name)
            else:
                raise OSError(2)  # ENOENT
        return _MemFile(self, name, self.files[name], len(self.files[name]) if "a" in mode else 0)

    def rename(self, a, b):
        if a not in self.files:
            raise OSError(2)
        self.files[b] = self.files.pop(a)

    def remove(self, name):
        if name not in self.files:
            raise OSError(2)
        del self.files[name]

    def size(self, name):
        d = self.files.get(name)
        return -1 if d is None else len(d)

    def listdir(self):
        return list(self.files)
