# Owns the update session's place on the CAN port until a tester asks for it
# (issue 15): the UDS server (app.uds, its ISO-TP buffers and its imports:
# ~9 KB of RAM from ROMFS, ~22 KB from .mpy) is built at the first frame on
# this pack's UDS id (0x18DA_TA_SA, proto.uds), and from then on gets every
# frame and tick; before that this costs one object. A server that cannot be
# built (no memory) is counted and tried again at the next frame.
from defs.const import const
from app.service import Service

_PREFIX = const(0x18DA)  # priority 6, data page 0, PF 0xDA: proto.uds.BASE >> 16


class UdsPort(Service):
    name = "uds"
    period_ms = 100

    def __init__(self, address, make):
        """address(): this pack's link address; make() -> the app.uds server."""
        self.address = address
        self.make = make
        self.server = None
        self.now_ms = 0
        self.failed = 0

    def on_frame(self, bus, fr):
        s = self.server
        if s is None:
            id_ = fr[0]
            if id_ >> 16 != _PREFIX or (id_ >> 8) & 0xFF != self.address():
                return
            try:
                s = self.make()
            except MemoryError:
                self.failed += 1
                return
            s.now_ms = self.now_ms
            self.server = s
        s.on_frame(bus, fr)
        self.period_ms = s.period_ms

    def tick(self, now_ms):
        self.now_ms = now_ms
        s = self.server
        if s is not None:
            s.tick(now_ms)
            self.period_ms = s.period_ms
