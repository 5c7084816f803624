# The mock AFE's fast read path (lib/sim/mock_afe.py: the model's readings
# taken directly while nothing is injected, the cell noise drawn in one
# Rng.fill call) against its general path (_read_cells, _read_temps, per
# channel): the same snapshot and the same random sequence after, on random
# packs, noise, sensor errors and currents.
from hypothesis import given, settings, strategies as hs

from tools import paths  # noqa: F401  (lib/ on sys.path)
from defs.snapshot import Snapshot
from sim.mock_afe import MockAfe
from sim.pack_model import PackModel
from sim.rng import Rng


def _afe(seed, n_cells, soc, errors):  # n_cells >= 4: one per NTC group at least
    model = PackModel(Rng(seed), n_cells=n_cells, soc_pct=soc)
    afe = MockAfe(model, Rng(seed + 1), **errors)
    afe.set_fets(True, True, False)
    return afe


def _snap(s):
    return (list(s.cell_mv), list(s.temp_dc), s.stack_mv, s.pack_mv, s.current_ma)


@settings(max_examples=100, deadline=None)
@given(seed=hs.integers(1, 2 ** 31), n_cells=hs.integers(4, 16), soc=hs.integers(0, 100),
       noise=hs.sampled_from([0, 1, 2, 5, 40, 3000, 70000]),
       gain=hs.integers(-20000, 20000), offset=hs.integers(-500, 500), temp=hs.integers(0, 30),
       currents=hs.lists(hs.integers(-300000, 200000), min_size=1, max_size=8))
def test_fast_read_is_the_general_path(seed, n_cells, soc, noise, gain, offset, temp, currents):
    errors = {"cell_noise_mv": noise, "current_offset_ma": offset, "current_gain_ppm": gain,
              "temp_error_dc": temp,
              # a gain on a reading clamped at 65535 overflows the snapshot's 16 bits, on either path
              "voltage_gain_ppm": gain if noise < 60000 else 0}
    fast = _afe(seed, n_cells, soc, errors)
    general = _afe(seed, n_cells, soc, errors)
    general._plain_cells = general._plain_ntcs = False  # what read() does with something injected
    a, b = Snapshot(), Snapshot()
    for i in currents:
        fast.step(1000, i)
        general.step(1000, i)
        assert fast.read(a) and general.read(b)
        assert _snap(a) == _snap(b)
        assert fast._rng.randint(0, 1 << 29) == general._rng.randint(0, 1 << 29)


@given(seed=hs.integers(0, 2 ** 32 - 1), n=hs.integers(0, 16), lo=hs.integers(-5000, 0), width=hs.integers(0, 10000))
def test_fill_draws_what_randint_draws(seed, n, lo, width):
    a, b = Rng(seed), Rng(seed)
    out = [None] * n
    a.fill(out, n, lo, lo + width)
    assert out == [b.randint(lo, lo + width) for _ in range(n)]
    assert a.next_u32() == b.next_u32()
