# Owns building the board both real boards share (boards/esp32_bq.py,
# boards/rp2040_bq.py): every chip made from the port's machine module and
# configured, and the BqBoard (bq_board) filled in. It runs once at boot: the
# board module imports it for build() and takes it off sys.modules when the
# board is built (drop), so its bytecode leaves the heap (README "RAM and CPU
# on the board"). Nothing here imports `machine`.
from defs import drop as drop_module
from drivers.inputs import Dip, ChargerDetect, UpdateJumper, DIP7
from drivers.outputs import Leds, Buzzer, PwmPin
from drivers.pca9555 import Pca9555
from bq_board import BqBoard, Poll


class OffPin:
    """A switch that reads OFF (1): the DIP when the expander does not answer."""

    def value(self, v=None):
        return 1


def _fill(self, port, afe, exp, run_pin, alm_pin, buzzer_pin, button_pin,
         charger_pin, jumper_pin, can, link_in, link_out, ticks_us,
         dip_bits=(0, 1, 2, 3, 4, 5, 6), exp_leds=(8, 9, 10, 11, 12),
         exp_contacts=(13, 14), dip_layout=DIP7, ntc_adc=None,
         wdt_timeout_ms=8000, can_poll_ms=5):
    """The BqBoard self from its chips and pins."""
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
    self.ntc = None  # its conversion table: at the first board_temp_dc()
    self.ntc_adc = ntc_adc
    self.wdt_timeout_ms = wdt_timeout_ms
    self.services = [Poll("can", can, can_poll_ms)] if can is not None else []


def serial_of(machine):
    """The pack's serial number, 16 ASCII bytes: BMS- and the last 6 bytes of
    the MCU's unique id in hex (ESP32: its 6-byte factory MAC; RP2040: the
    flash chip's 8-byte id), None on a port without machine.unique_id."""
    uid = getattr(machine, "unique_id", None)
    if uid is None:
        return None
    from binascii import hexlify
    return b"BMS-" + hexlify(bytes(uid())[-6:]).upper()


def build_bq_board(machine, cfg, charger, ntc_adc, ticks_us, configure=True):
    """The BQ76952 + MCP2515 + 2 x RS485 board both real boards share, from the
    port's machine module, the board module cfg (PINS, I2C_ID, SPI_ID,
    UART_IN, UART_OUT, CAN_OSC_HZ, CAN_BITRATE, BUZZER_HZ, DIP_LAYOUT,
    WDT_TIMEOUT_MS; machine and arm_wake for the port-specific calls: the
    board's `port`) and the port-specific charger input and NTC ADC.
    configure: program the
    BQ76952 (raises Bq76952Error if it does not answer). A missing MCP2515
    does not stop the board: can.poll() keeps retrying its init. The MCP2515
    starts listen-only at cfg.CAN_BITRATE: the firmware chooses the rate it
    sends at (app.canrate)."""
    from drivers.bq76952 import BQ76952
    from drivers.mcp2515 import MCP2515
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
    board = BqBoard()
    _fill(
        board, cfg, afe, exp, out(p["led_run"]), out(p["led_alm"]),
        PwmPin(machine.PWM(Pin(p["buzzer"]), freq=cfg.BUZZER_HZ, duty_u16=0)),
        button, charger, jumper, can, None, None, ticks_us,
        dip_layout=cfg.DIP_LAYOUT, ntc_adc=ntc_adc, wdt_timeout_ms=cfg.WDT_TIMEOUT_MS)
    board.name = getattr(cfg, "NAME", None)  # update bundles name it (app.uds)
    board.serial = serial_of(machine)
    baud = board.dip.baud
    board.link_in = RS485(machine.UART(cfg.UART_IN, baud, tx=Pin(p["link_in_tx"]), rx=Pin(p["link_in_rx"])),
                          out(p["link_in_de"]), baud, LINK_IN)
    board.link_out = RS485(machine.UART(cfg.UART_OUT, baud, tx=Pin(p["link_out_tx"]), rx=Pin(p["link_out_rx"])),
                           out(p["link_out_de"]), baud, LINK_OUT)
    return board


def drop():
    """This module off sys.modules (the recovery's copy is recovery.bq_build)
    once the board is built; nothing keeps a function of it."""
    drop_module(__name__)
