# Owns what the real boards (boards/esp32_bq.py, boards/rp2040_bq.py) share:
# the board object handed to the firmware (the board contract of
# firmware/app/app.py), the polling service of a driver (MCP2515.poll), the
# board builder that makes every chip from the port's machine module, and what
# the board needs of a port (BqPort). Nothing here imports
# `machine`: the board module passes its machine module in, so this file is
# the same on both ports and on CPython.
#
# Why an expander: a BQ76952 + MCP2515 + 2 x RS485 board with the full panel
# needs ~35 signals; a DevKitC has 24 usable GPIOs (6-11 flash, 1/3 the REPL
# UART, 0/2/5/12/15 strapping) and a Pico 26. The PCA9555 (NXP, I2C 0x20, on
# the AFE's bus) takes the 7-position DIP and the spare jumper input on port 0
# (its inputs have 100 kOhm pull-ups; ON pulls to GND), and SOC1-4, M/S and
# the two dry contacts on port 1. RUN, ALM, the buzzer, the pre-charge FET,
# the CAN chip select and the RS485 driver enables stay on MCU pins: the
# alarm and the safety outputs do not depend on the I2C bus.
from drivers.inputs import Dip, ChargerDetect, UpdateJumper, DIP7
from drivers.outputs import Leds, Buzzer
from drivers.pca9555 import Pca9555
from drivers.pins import PwmPin, Rs485Uart, OffPin


class Poll:
    """A service calling obj.poll() every period_ms (MCP2515: errors, bus-off,
    overflow, re-init)."""

    def __init__(self, name, obj, period_ms):
        self.name = name
        self.obj = obj
        self.period_ms = period_ms

    def tick(self, now_ms):
        self.obj.poll()


def woke(pin):
    """The IRQ handler of a wake pin: the wake itself is what counts."""


class BqPort:
    """What BqBoard needs of the port: its machine module (WDT, lightsleep,
    deepsleep: both ports call them the same way) and the wake pins; a board
    module's Port subclasses it and adds arm_wake(deep, charger_handler)."""

    def __init__(self, machine, button, charger):
        self.machine = machine
        self.button = button
        self.charger = charger


# ---- the board object -------------------------------------------------------------

class BqBoard:
    """The firmware's view of a real board (app.App's board contract): afe,
    leds, buzzer, button, contacts, ticks_us, services, pack_address; and
    for the links and main.py: can, link_in, link_out, dip, charger,
    jumper, exp, wdt_timeout_ms, make_wdt(), sleep(ms), deep_sleep(ms),
    board_temp_dc(). Built by a board module from machine objects; `port`
    is the board module's BqPort (machine: WDT, lightsleep, deepsleep;
    arm_wake())."""
    name = None  # the board module's NAME: the board an update bundle must be made for (app.uds)
    serial: object = None  # the pack's serial number (serial_of: the MCU's unique id; app.compose.serial)

    def __init__(self, port, afe, exp, run_pin, alm_pin, buzzer_pin, button_pin,
                 charger_pin, jumper_pin, can, link_in, link_out, ticks_us,
                 dip_bits=(0, 1, 2, 3, 4, 5, 6), exp_leds=(8, 9, 10, 11, 12),
                 exp_contacts=(13, 14), dip_layout=DIP7, ntc=None, ntc_adc=None,
                 wdt_timeout_ms=8000, can_poll_ms=5):
        self.port = port
        self.afe = afe
        self.exp = exp
        self.ticks_us = ticks_us
        # LEDs in bms.indicate order: RUN, ALM (MCU pins), SOC1-4, M/S (expander)
        self.led_pins = [run_pin, alm_pin] + [exp.pin(b) for b in exp_leds]
        self.leds = Leds(self.led_pins)
        self.buzzer = Buzzer(buzzer_pin)
        self.button = button_pin           # bms.button reads value(): pressed = 0
        self.contact_pins = [exp.pin(b) for b in exp_contacts]
        self.contacts = Leds(self.contact_pins)
        self.charger = ChargerDetect(charger_pin)
        self.jumper = UpdateJumper(jumper_pin)
        n = dip_layout
        try:
            self.dip = Dip([exp.pin(b) for b in dip_bits[:n]], n)
        except OSError as e:  # expander silent: all OFF (automatic, 9600, protocol 0)
            print("board: PCA9555:", e)
            self.dip = Dip([OffPin() for _ in range(n)], n)
        self.pack_address = self.dip.address
        self.can = can
        self.link_in = link_in
        self.link_out = link_out
        self.ntc = ntc
        self.ntc_adc = ntc_adc
        self.wdt_timeout_ms = wdt_timeout_ms
        self.services = [Poll("can", can, can_poll_ms)] if can is not None else []

    def make_wdt(self):
        """The machine.WDT: once made it cannot be stopped (main.py makes it
        after the firmware has started)."""
        return self.port.machine.WDT(timeout=self.wdt_timeout_ms)

    def board_temp_dc(self):
        """Board/ambient NTC in deci-degC (NTC_OPEN_DC/NTC_SHORT_DC on a fault),
        or None without one."""
        if self.ntc is None or self.ntc_adc is None:
            return None
        return self.ntc.read_dc(self.ntc_adc)

    def quiet(self):
        """Outputs to their resting state before the MCU sleeps: pre-charge
        and FETs off, contacts open, LEDs and buzzer off."""
        try:
            self.afe.set_fets(False, False, False)
        finally:
            self.buzzer.set(False)
            for i in range(len(self.led_pins)):
                self.leds.set(i, 0)
            for i in range(len(self.contact_pins)):
                self.contacts.set(i, 0)

    def sleep(self, ms):
        """MCU light sleep for up to ms; the button and the charger-detect
        input wake it earlier (their IRQs are armed with wake)."""
        self.port.arm_wake(False, self.charger._handler)
        self.port.machine.lightsleep(ms)

    def deep_sleep(self, ms=0):
        """MCU deep sleep (ESP32: a wake is a reset; RP2040: lightsleep then
        reset, the port's deepsleep). The button and the charger-detect
        input wake it; ms = 0: only they do. Does not return."""
        self.quiet()
        p = self.port
        p.arm_wake(True, None)
        if ms:
            p.machine.deepsleep(ms)
        p.machine.deepsleep()


def serial_of(machine):
    """The pack's serial number, 16 ASCII bytes: BMS- and the last 6 bytes of
    the MCU's unique id in hex (ESP32: its 6-byte factory MAC; RP2040: the
    flash chip's 8-byte id), None on a port without machine.unique_id."""
    uid = getattr(machine, "unique_id", None)
    if uid is None:
        return None
    from binascii import hexlify
    return b"BMS-" + hexlify(bytes(uid())[-6:]).upper()


def build_bq_board(machine, cfg, make_port, charger, ntc_adc, ticks_us, configure=True):
    """The BQ76952 + MCP2515 + 2 x RS485 board both real boards share, from the
    port's machine module, the board module cfg (PINS, I2C_ID, SPI_ID,
    UART_IN, UART_OUT, CAN_OSC_HZ, CAN_BITRATE, BUZZER_HZ, DIP_LAYOUT,
    WDT_TIMEOUT_MS), make_port(machine, button, charger) (a BqPort) for the
    port-specific calls and the port-specific charger input and NTC ADC.
    configure: program the
    BQ76952 (raises Bq76952Error if it does not answer). A missing MCP2515
    does not stop the board: can.poll() keeps retrying its init. The MCP2515
    starts listen-only at cfg.CAN_BITRATE: the firmware chooses the rate it
    sends at (app.canrate)."""
    from drivers.bq76952 import BQ76952
    from drivers.mcp2515 import MCP2515
    from drivers.ntc import Ntc
    from drivers.rs485 import RS485, LINK_IN, LINK_OUT
    Pin = machine.Pin
    p = cfg.PINS

    def out(n, v=0):
        return Pin(n, Pin.OUT, value=v)

    i2c = machine.I2C(cfg.I2C_ID, scl=Pin(p["i2c_scl"]), sda=Pin(p["i2c_sda"]), freq=400000)
    afe = BQ76952(i2c, crc=True, pchg_pin=out(p["pchg"]))
    if configure:
        afe.configure()
    exp = Pca9555(i2c)
    spi = machine.SPI(cfg.SPI_ID, baudrate=8000000, polarity=0, phase=0,
                      sck=Pin(p["spi_sck"]), mosi=Pin(p["spi_mosi"]), miso=Pin(p["spi_miso"]))
    can = MCP2515(spi, out(p["can_cs"], 1), osc_hz=cfg.CAN_OSC_HZ,
                  int_pin=Pin(p["can_int"], Pin.IN, Pin.PULL_UP))
    try:  # listen-only: off the bus until app.canrate has heard its rate (can_bitrate_count)
        can.init(cfg.CAN_BITRATE, can.MODE_SILENT)
    except OSError as e:
        print("board: MCP2515:", e)
    button = Pin(p["button"], Pin.IN, Pin.PULL_UP)
    jumper = Pin(p["jumper"], Pin.IN, Pin.PULL_UP)
    board = BqBoard(
        make_port(machine, button, charger), afe, exp, out(p["led_run"]), out(p["led_alm"]),
        PwmPin(machine.PWM(Pin(p["buzzer"]), freq=cfg.BUZZER_HZ, duty_u16=0)),
        button, charger, jumper, can, None, None, ticks_us,
        dip_layout=cfg.DIP_LAYOUT, ntc=Ntc(), ntc_adc=ntc_adc, wdt_timeout_ms=cfg.WDT_TIMEOUT_MS)
    board.name = getattr(cfg, "NAME", None)  # update bundles name it (app.uds)
    board.serial = serial_of(machine)
    baud = board.dip.baud
    # the services read bytes (Rs485Uart), never the driver's idle-gap frames: no frame buffer
    board.link_in = Rs485Uart(RS485(machine.UART(cfg.UART_IN, baud, tx=Pin(p["link_in_tx"]), rx=Pin(p["link_in_rx"])),
                                    out(p["link_in_de"]), baud, LINK_IN, 0))
    board.link_out = Rs485Uart(RS485(machine.UART(cfg.UART_OUT, baud, tx=Pin(p["link_out_tx"]),
                                                  rx=Pin(p["link_out_rx"])), out(p["link_out_de"]), baud, LINK_OUT, 0))
    return board
