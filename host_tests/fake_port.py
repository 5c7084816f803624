# Owns the host tests' fake byte ports: rx holds what the test gives the port
# to receive, tx collects what the code under test writes. Uart has
# machine.UART's readinto; Stream has only read(), as a port without
# readinto (app.inverter reads such a port through read()).
class _Port:
    def __init__(self):
        self.rx = bytearray()
        self.tx = bytearray()

    def any(self):
        return len(self.rx)

    def write(self, data):
        self.tx.extend(data)
        return len(data)


class Uart(_Port):
    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        del self.rx[:n]
        return n or None


class Stream(_Port):
    def read(self, n=-1):
        """Everything waiting (n, what any() said, is always all of it)."""
        d = bytes(self.rx)
        self.rx.clear()
        return d
