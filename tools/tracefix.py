"""Structure fixtures: the traces of a fixed set of scenarios
(host_tests/fixtures/structure/*.json), recorded before a change that must not
alter what a pack does and compared byte for byte after it.

    python -m tools.tracefix record [NAME ...]   # write NAME.jsonl.gz beside NAME.json
    python -m tools.tracefix check [NAME ...]    # exit 1 on the first differing line
"""
import gzip
import os
import sys

from tools import paths
from tools.bench import load_scenario
import simworld

DIR = os.path.join(paths.ROOT, "host_tests", "fixtures", "structure")


def names():
    return sorted(f[:-5] for f in os.listdir(DIR) if f.endswith(".json"))


def trace(name):
    lines = []
    simworld.World(load_scenario(os.path.join(DIR, name + ".json"))[1], lines.append).run()
    return lines


def recorded(name):
    with gzip.open(os.path.join(DIR, name + ".jsonl.gz"), "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def first_difference(old, new):
    """None when identical, else (line number from 1, old line, new line)."""
    for i in range(max(len(old), len(new))):
        a = old[i] if i < len(old) else "<end>"
        b = new[i] if i < len(new) else "<end>"
        if a != b:
            return i + 1, a, b
    return None


def record(name):
    # mtime=0: the file's bytes depend on the trace only
    with open(os.path.join(DIR, name + ".jsonl.gz"), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(("\n".join(trace(name)) + "\n").encode("utf-8"))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("record", "check"):
        print(__doc__)
        return 2
    bad = 0
    for name in argv[1:] or names():
        if argv[0] == "record":
            record(name)
            print("recorded", name)
            continue
        d = first_difference(recorded(name), trace(name))
        print(name, "identical" if d is None else "differs at line %d:\n  was: %s\n  now: %s" % d)
        bad += d is not None
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
