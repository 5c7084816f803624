# Owns what every fuzzing target shares (tools/fuzz.py, tools/fuzz_host.py):
# the Finding a broken property raises (its message names the input) and the
# byte values worth trying first.


class Finding(AssertionError):
    pass


INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF)
