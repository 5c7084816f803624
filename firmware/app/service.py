# Owns the service model: a service has a name, a period and tick(now_ms);
# a service that listens on a bus also has on_frame(bus, frame). Runners
# (app.runner on the board, sim.vtime on the host) call nothing else.
# Also the two helpers services share: a build at first use (built) and a
# reply written from a buffer's head without a new view each time (head_view).
from defs.const import const

_VIEWS = const(24)  # lengths whose memoryview is kept (a reply is one of a few lengths)


class Service:
    name = "service"
    period_ms = 100

    def tick(self, now_ms):
        raise NotImplementedError

    def on_frame(self, bus, frame):
        pass


class Cycle(Service):
    """Stages run in order every period: data flows one way each cycle
    (AFE -> snapshot -> protection -> mode -> outputs, estimation)."""

    def __init__(self, name, period_ms, stages):
        self.name = name
        self.period_ms = period_ms
        self.stages = stages

    def tick(self, now_ms):
        for stage in self.stages:
            stage.tick(now_ms)


def head_view(views, buf, n):
    """buf[:n] as a memoryview, made once per length: views is the caller's
    {length: view} of buf (the first _VIEWS lengths kept)."""
    v = views.get(n)
    if v is None:
        v = memoryview(buf)[:n]
        if len(views) < _VIEWS:
            views[n] = v
    return v


def built(owner, make):
    """make() for what is built at its first use (issue 12: app.hostport's
    host protocol, app.inverter's RS485 server); None when the heap cannot
    hold it, counted in owner.failed: the caller drops the request that
    needed it and the next one tries again."""
    try:
        return make()
    except MemoryError:
        owner.failed += 1
        return None
