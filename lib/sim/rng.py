# Owns the simulation's only source of randomness: a seeded xorshift32
# (Marsaglia 2003, shifts 13/17/5) that gives the same sequence on CPython and
# MicroPython. The 32-bit state is kept as two 16-bit halves so that every
# intermediate stays a small int on a 32-bit board: randint() and spread() on
# small arguments never allocate, so the mock AFE may draw noise under
# micropython.heap_lock(). next_u32() returns values above 2**30 and so
# allocates on the board; the simulation itself does not use it.

_M16 = 0xFFFF


class Rng:
    def __init__(self, seed):
        seed &= 0xFFFFFFFF
        if seed == 0:
            seed = 0x9E3779B9  # xorshift's state must never be 0
        self._hi = seed >> 16
        self._lo = seed & _M16
        # Discard the first outputs: nearby seeds start out visibly correlated.
        for _ in range(16):
            self._advance()

    def _advance(self):
        hi = self._hi
        lo = self._lo
        # x ^= x << 13
        hi ^= ((hi << 13) | (lo >> 3)) & _M16
        lo ^= (lo << 13) & _M16
        # x ^= x >> 17
        lo ^= hi >> 1
        # x ^= x << 5
        hi ^= ((hi << 5) | (lo >> 11)) & _M16
        lo ^= (lo << 5) & _M16
        self._hi = hi
        self._lo = lo

    def next_u32(self):
        self._advance()
        return (self._hi << 16) | self._lo

    def randint(self, lo, hi):
        """Uniform integer in lo..hi inclusive; hi - lo must be below 2**30."""
        self._advance()
        r30 = (self._hi << 14) | (self._lo >> 2)
        return lo + r30 % (hi - lo + 1)

    def fill(self, out, n, lo, hi):
        """out[0:n] = n draws of randint(lo, hi), in order (allocates nothing:
        the method is called, not bound)."""
        for k in range(n):
            out[k] = self.randint(lo, hi)

    def spread(self, value, ppm):
        """value varied uniformly by up to +-ppm parts per million of itself."""
        return value + value * self.randint(-ppm, ppm) // 1000000
