# Owns the heap-lock probe the MicroPython allocation tests share: source text
# that a test puts into its script (the script runs in the real MicroPython,
# where any allocation under micropython.heap_lock() is a MemoryError).
#   locked(fn, *args)  fn(*args) with the heap locked: what fn returns, or
#                      "allocates" when it tried to allocate
#   lock_works()       the probe can fail: an allocating call is caught
# and, on the host, assert_prints_ok(mpy, code): the script ran and said "ok".
LOCKED = """
import micropython

def locked(fn, *args):
    micropython.heap_lock()
    try:
        return fn(*args)
    except MemoryError:
        return "allocates"
    finally:
        micropython.heap_unlock()

def lock_works():
    return locked(lambda: [1]) == "allocates"
"""


def assert_prints_ok(mpy, code, timeout_s=120):
    """Runs a probe script in the real MicroPython (the mpy fixture): it must
    exit cleanly and print "ok" alone (else what it printed is the failure)."""
    r = mpy.run(code, timeout_s=timeout_s)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok", r.stdout
