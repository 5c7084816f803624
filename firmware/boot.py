# Runs first at every start. Slot choice, rollback and the forced-update mode
# arrive with the firmware-update issue; for now it only reserves the buffer
# MicroPython needs to report an exception raised inside an interrupt handler.
import micropython

micropython.alloc_emergency_exception_buf(100)
