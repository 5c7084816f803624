"""defs.codes.names: the names of the set bits, lowest first, every table of
the manuals' codes; it stops at the highest bit set and ignores bits beyond
the table, as the loop over the whole table did."""
from hypothesis import given, strategies as stt

from defs import codes


@given(stt.sampled_from((codes.ALARMS, codes.PROTECTIONS, codes.FAULTS, codes.FC_NAMES)),
       stt.integers(0, (1 << 29) - 1) | stt.integers(0, 255))
def test_names_of_the_set_bits(table, mask):
    assert codes.names(table, mask) == [table[i] for i in range(len(table)) if mask >> i & 1]
