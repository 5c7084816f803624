# Owns the host runner: a deterministic virtual-time loop that calls the same
# service ticks as the board runner. Services due at the same instant run in
# the order they were added, so a run is reproducible on CPython and on
# MicroPython. Time only moves when the loop says so: an hour takes as long as
# its ticks take to compute.
import heapq
from defs.ticks import TICKS_MASK

# one heap operation per tick instead of a pop and a push where the heapq has
# it (MicroPython's has not); the keys are unique, so the order is the same
def _pop_push(heap, item):
    heapq.heappop(heap)
    heapq.heappush(heap, item)


_replace = getattr(heapq, "heapreplace", _pop_push)


class VirtualRunner:
    def __init__(self, start_ms=0):
        self.now_ms = start_ms  # absolute simulated time; services see it wrapped
        self._heap = []  # (due_ms, order)
        self._svc = []  # by order; None once removed
        self._on_error = []
        self._cpu = []  # by order: what stalls the service's MCU (stall_ms), or None

    def add(self, svc, phase_ms=0, on_error=None, cpu=None):
        """Schedule svc every svc.period_ms from now + phase_ms. on_error(svc,
        exc) is called if its tick raises; the service is then dropped. cpu:
        an object whose stall_ms a tick may raise (sim.romfs.Partition: a
        flash erase holds the MCU): every service of that cpu then waits
        until the stall is over, as on one board's loop."""
        order = len(self._svc)
        self._svc.append(svc)
        self._on_error.append(on_error)
        self._cpu.append(cpu)
        heapq.heappush(self._heap, (self.now_ms + phase_ms, order))

    def _stall(self, cpu, until_ms):
        heap = self._heap
        for i in range(len(heap)):
            t, order = heap[i]
            if t < until_ms and self._cpu[order] is cpu:
                heap[i] = (until_ms, order)
        heapq.heapify(heap)

    def remove(self, svc):
        for i in range(len(self._svc)):
            if self._svc[i] is svc:
                self._svc[i] = None

    def run_until(self, end_ms):
        """Run every tick due before end_ms, then set the clock to end_ms."""
        heap = self._heap
        svcs = self._svc
        while heap and heap[0][0] < end_ms:
            t, order = heap[0]
            svc = svcs[order]
            if svc is None:
                heapq.heappop(heap)
                continue
            self.now_ms = t
            _replace(heap, (t + svc.period_ms, order))
            try:
                svc.tick(t & TICKS_MASK)
            except Exception as e:
                handler = self._on_error[order]
                self._svc[order] = None
                if handler is None:
                    raise
                handler(svc, e)
            cpu = self._cpu[order]
            if cpu is not None and cpu.stall_ms:
                self._stall(cpu, t + cpu.stall_ms)
                cpu.stall_ms = 0
        if end_ms > self.now_ms:
            self.now_ms = end_ms
