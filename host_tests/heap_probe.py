# Owns the heap-lock probe the MicroPython allocation tests share: source text
# that a test puts into its script (the script runs in the real MicroPython,
# where any allocation under micropython.heap_lock() is a MemoryError).
#   locked(fn, *args)  fn(*args) with the heap locked: what fn returns, or
#                      "allocates" when it tried to allocate
#   lock_works()       the probe can fail: an allocating call is caught
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
