# ESP32 board: ESP32-DevKitC class (WROOM-32, 4 MB flash, no PSRAM) with the
# BQ76952 AFE (I2C, CRC on), an MCP2515 CAN controller (8 MHz crystal, SPI),
# two RS485 transceivers (Link IN bus 1, Link OUT bus 2), a PCA9555 I/O
# expander for the DIP switch and the secondary outputs, and the panel.
#
# Pin map (GPIO numbers). Never used: 6-11 (SPI flash), 1/3 (UART0: USB REPL,
# mpremote). Strapping pins 0, 2, 5, 12, 15 carry no outputs; 2, 5, 15 are
# inputs whose boot level is harmless (see each); 0 (BOOT button) and 12
# (flash voltage: must be low at reset, no pull-up!) stay free. 34-39 are
# input-only without pull-ups: external resistors as noted.
#   I2C0   SDA 21, SCL 22 (4.7 kOhm pull-ups to 3.3 V), 400 kHz:
#            BQ76952 0x08 (CRC on), PCA9555 0x20 (A2..A0 = 0)
#   SPI2   SCK 18, MOSI 23, MISO 19, 8 MHz; MCP2515 CS 4 (out, idle high),
#            INT 5 (in; strapping: INT idles high at reset = the default strap)
#   UART1  Link IN  (bus 1): TX 17, RX 34 (transceiver RO drives it), DE 26
#   UART2  Link OUT (bus 2): TX 16, RX 35, DE 27 (DE: 10 kOhm pull-downs, so
#            both transceivers listen while the MCU resets)
#   LED    RUN 32, ALM 33 (through 1 kOhm to GND)
#   BUZ    13: PWM 2.7 kHz into a passive buzzer (transistor driver)
#   PCHG   25: pre-charge MOSFET gate driver (10 kOhm pull-down: off in reset)
#   BTN    15: reset/wake button to GND (internal pull-up; pressed at reset it
#            only silences the ROM log); RTC GPIO: wakes deep sleep (ext1)
#   JMP    2: forced-update jumper to GND (internal pull-up; low at reset is a
#            normal boot while GPIO0 is high)
#   CHG    39: charger-detect/wake (comparator/opto, active high, 100 kOhm
#            pull-down); RTC GPIO: wakes deep sleep (ext0)
#   NTC    36 (ADC1_CH0, 11 dB): board/ambient NTC 10 kOhm B3435 to GND,
#            10 kOhm pull-up to 3.3 V
#   PCA9555 port 0: P00-P06 DIP 1-7 to GND (the expander's own pull-ups),
#            P07 spare input; port 1: P10-P13 SOC1-4, P14 M/S LEDs, P15/P16
#            dry contacts 1/2 (relay drivers), P17 spare
#   Free:  0 (BOOT button), 12 (strap), 14
NAME = "esp32_bq"  # the board a bundle is made for (bmsctl bundle --board; app.uds checks it)
ARCH = "xtensawin"

import time
import machine
from machine import Pin, ADC
import sys

import esp32

from drivers.inputs import DIP7, DIP4
from bq_board import woke

# the DIP layout of this board: DIP7 (`000` 3.3.3.3) or DIP4 (address switches, `003` 4.3)
DIP_LAYOUT = DIP7
CAN_BITRATE = 500000
CAN_OSC_HZ = 8000000
WDT_TIMEOUT_MS = 8000  # the firmware feeds every 1 s while all services tick
BUZZER_HZ = 2700

# name -> GPIO (the outputs among them: bq_build.build_bq_board)
PINS = {
    "i2c_sda": 21, "i2c_scl": 22,
    "spi_sck": 18, "spi_mosi": 23, "spi_miso": 19, "can_cs": 4, "can_int": 5,
    "link_in_tx": 17, "link_in_rx": 34, "link_in_de": 26,
    "link_out_tx": 16, "link_out_rx": 35, "link_out_de": 27,
    "led_run": 32, "led_alm": 33, "buzzer": 13, "pchg": 25,
    "button": 15, "jumper": 2, "charger": 39, "ntc": 36,
}
I2C_ID = 0
SPI_ID = 2
UART_IN = 1
UART_OUT = 2
# the chip's GPIO facts this map is checked against (valid, flash, strapping,
# input-only, RTC pins) are in host_tests/test_boards.py: not on the board's heap


def arm_wake(board, deep, charger_handler=None):
    """The wake sources of board (bq_board.BqBoard): the charger-detect input
    going high, the button pressed (low). Deep sleep: ext0 (one RTC pin, a
    level) and ext1 (RTC pins, all low); light sleep: GPIO interrupts with
    wake=SLEEP."""
    charger = board.charger.pin
    if deep:
        esp32.wake_on_ext0(charger, esp32.WAKEUP_ANY_HIGH)
        esp32.wake_on_ext1((board.button,), esp32.WAKEUP_ALL_LOW)
    else:
        charger.irq(handler=charger_handler or woke, trigger=Pin.IRQ_RISING, wake=machine.SLEEP)
        board.button.irq(handler=woke, trigger=Pin.IRQ_FALLING, wake=machine.SLEEP)


def build(configure=True):
    """The board with every chip set up (bq_build.build_bq_board; the builder
    is dropped after it)."""
    from bq_build import build_bq_board, drop
    charger = Pin(PINS["charger"], Pin.IN)  # input-only: external pull-down
    try:
        return build_bq_board(machine, sys.modules[__name__], charger,
                              ADC(Pin(PINS["ntc"]), atten=ADC.ATTN_11DB), time.ticks_us, configure)
    finally:
        drop()


__all__ = ("build", "PINS", "DIP_LAYOUT", "DIP4")
