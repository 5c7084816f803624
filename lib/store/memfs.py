# Owns the store's filesystem in memory (store.fs's interface): MemFs keeps
# files in a dict (the bench and the MicroPython gates use it;
# host_tests/simflash.py adds power cuts to it). Never imported on a board.


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
