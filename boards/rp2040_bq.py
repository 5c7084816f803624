# RP2040 board: Raspberry Pi Pico class (2 MB flash) with the BQ76952 AFE
# (I2C, CRC on), an MCP2515 CAN controller (8 MHz crystal, SPI), two RS485
# transceivers (Link IN bus 1, Link OUT bus 2), a PCA9555 I/O expander for the
# DIP switch and the secondary outputs, and the panel.
#
# Pin map (GPn). The Pico has no strapping pins (BOOTSEL is a button on the
# flash CS line); GP23-25 and GP29 are on-board (SMPS mode, VBUS sense, LED,
# VSYS/3) and not used. Each peripheral uses pins of its own function table.
#   UART0  Link IN  (bus 1): TX GP0, RX GP1, DE GP2
#   UART1  Link OUT (bus 2): TX GP4, RX GP5, DE GP3 (DE: 10 kOhm pull-downs)
#   I2C1   SDA GP6, SCL GP7 (4.7 kOhm pull-ups), 400 kHz:
#            BQ76952 0x08 (CRC on), PCA9555 0x20
#   SPI1   SCK GP10, MOSI GP11, MISO GP12, 8 MHz; MCP2515 CS GP13, INT GP14
#   LED    RUN GP16, ALM GP17 (through 1 kOhm to GND)
#   BUZ    GP18: PWM 2.7 kHz into a passive buzzer (transistor driver)
#   PCHG   GP19: pre-charge MOSFET gate driver (10 kOhm pull-down)
#   BTN    GP20: reset/wake button to GND (internal pull-up)
#   CHG    GP21: charger-detect/wake (active high, 100 kOhm pull-down)
#   JMP    GP22: forced-update jumper to GND (internal pull-up)
#   NTC    GP26 (ADC0): board/ambient NTC 10 kOhm B3435 to GND, 10 kOhm pull-up
#   PCA9555 as on the ESP32 board: P00-P06 DIP 1-7, P10-P13 SOC1-4, P14 M/S,
#            P15/P16 dry contacts 1/2
#   Free:  GP8, GP9, GP15, GP27, GP28
NAME = "rp2040_bq"  # the board a bundle is made for (bmsctl bundle --board; app.uds checks it)
ARCH = "armv6m"

import time
import machine
from machine import Pin, ADC
import sys

from drivers.inputs import DIP7, DIP4
from bq_board import woke

DIP_LAYOUT = DIP7  # or DIP4 (address switches, `003` 4.3)
CAN_BITRATE = 500000
CAN_OSC_HZ = 8000000
WDT_TIMEOUT_MS = 8000  # the RP2040's longest is 8388 ms
BUZZER_HZ = 2700

PINS = {
    "link_in_tx": 0, "link_in_rx": 1, "link_in_de": 2,
    "link_out_tx": 4, "link_out_rx": 5, "link_out_de": 3,
    "i2c_sda": 6, "i2c_scl": 7,
    "spi_sck": 10, "spi_mosi": 11, "spi_miso": 12, "can_cs": 13, "can_int": 14,
    "led_run": 16, "led_alm": 17, "buzzer": 18, "pchg": 19,
    "button": 20, "charger": 21, "jumper": 22, "ntc": 26,
}
I2C_ID = 1
SPI_ID = 1
UART_IN = 0
UART_OUT = 1
# the Pico's header pins and the RP2040 function table this map is checked
# against are in host_tests/test_boards.py: not on the board's heap


def arm_wake(board, deep, charger_handler=None):
    """The wake sources of board (bq_board.BqBoard): light sleep wakes on
    the armed pin interrupts; the port's deepsleep is a light sleep followed
    by a reset, so the same wake sources apply."""
    board.charger.pin.irq(handler=charger_handler or woke, trigger=Pin.IRQ_RISING)
    board.button.irq(handler=woke, trigger=Pin.IRQ_FALLING)


def build(configure=True):
    """As boards/esp32_bq.build()."""
    from bq_build import build_bq_board, drop
    charger = Pin(PINS["charger"], Pin.IN, Pin.PULL_DOWN)
    try:
        return build_bq_board(machine, sys.modules[__name__], charger, ADC(Pin(PINS["ntc"])),
                              time.ticks_us, configure)
    finally:
        drop()


__all__ = ("build", "PINS", "DIP_LAYOUT", "DIP4")
