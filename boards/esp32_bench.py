# ESP32 bench board: an ESP32-DevKitC class board (4 MB flash, no PSRAM) with
# no AFE attached runs the real firmware against the mock AFE. Pin map (LEDs
# through 1 kOhm to GND; strapping pins 0, 2, 5, 12, 15 avoided):
#   RUN GPIO25, ALM GPIO26, SOC1..4 GPIO27/14/32/33, M/S GPIO4.
ARCH = "xtensawin"

import time
from machine import Pin
from sim.benchboard import BenchBoard

LED_PINS = (25, 26, 27, 14, 32, 33, 4)  # bms.indicate order: RUN, ALM, SOC0..3, MS


def build():
    return BenchBoard(lambda n: Pin(n, Pin.OUT, value=0), LED_PINS, time.ticks_us)
