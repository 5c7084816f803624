# RP2040 bench board: a Raspberry Pi Pico class board with no AFE attached runs
# the real firmware against the mock AFE. Pin map (LEDs through 1 kOhm to GND):
#   RUN GP2, ALM GP3, SOC1..4 GP4..GP7, M/S GP8.
ARCH = "armv6m"

import time
from machine import Pin
from sim.benchboard import BenchBoard

LED_PINS = (2, 3, 4, 5, 6, 7, 8)  # bms.indicate order: RUN, ALM, SOC0..3, MS


def build():
    return BenchBoard(lambda n: Pin(n, Pin.OUT, value=0), LED_PINS, time.ticks_us)
