# Owns simulated pins: a level with value() like machine.Pin, plus a log of
# edges (simulated time, level) so tests can time what a pin really did.


class SimPin:
    def __init__(self, clock, level=0, log_edges=False):
        self._clock = clock  # callable returning simulated ms
        self.level = level
        self.edges = [] if log_edges else None

    def value(self, v=None):
        if v is None:
            return self.level
        v = 1 if v else 0
        if v != self.level:
            self.level = v
            if self.edges is not None:
                self.edges.append((self._clock(), v))
        return None
