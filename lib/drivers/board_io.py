# Owns what the real boards (boards/esp32_bq.py, boards/rp2040_bq.py) share:
# the PCA9555 I/O expander that carries the DIP switch and the secondary
# outputs, a PWM buzzer with a pin's face, the polling service of a driver
# (MCP2515.poll), the board object handed to the firmware (the board contract
# of firmware/app/app.py), and the service watch that lets the watchdog feed
# only while every service keeps ticking. Nothing here imports `machine`: the
# board module makes the machine objects (each port its own way) and passes
# them in, so this file is the same on both ports and on CPython.
#
# Why an expander: a BQ76952 + MCP2515 + 2 x RS485 board with the full panel
# needs ~35 signals; a DevKitC has 24 usable GPIOs (6-11 flash, 1/3 the REPL
# UART, 0/2/5/12/15 strapping) and a Pico 26. The PCA9555 (NXP, I2C 0x20, on
# the AFE's bus) takes the 7-position DIP and the spare jumper input on port 0
# (its inputs have 100 kOhm pull-ups; ON pulls to GND), and SOC1-4, M/S and
# the two dry contacts on port 1. RUN, ALM, the buzzer, the pre-charge FET,
# the CAN chip select and the RS485 driver enables stay on MCU pins: the
# alarm and the safety outputs do not depend on the I2C bus.
from drivers.inputs import Dip, ChargerDetect, UpdateJumper, DIP7, DIP4
from drivers.outputs import Leds, Buzzer

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[misc]
        return x

PCA9555_ADDR = const(0x20)
_IN0 = const(0)   # input port 0, 1
_OUT0 = const(2)  # output port 0, 1
_CFG0 = const(6)  # configuration port 0, 1: 1 = input (power-on default)


class Pca9555:
    """NXP PCA9555 16-bit I2C I/O expander (bits 0-7 port 0, 8-15 port 1).
    out_mask: the bits driven as outputs (all start low). Output writes keep
    a shadow and go out only on a change; a failed write is counted in
    `errors` and sent again with the next change or flush() (an LED or a
    contact never stops the pack). Reads raise OSError (the caller decides)."""

    def __init__(self, i2c, addr=PCA9555_ADDR, out_mask=0xFF00):
        self.i2c = i2c
        self.addr = addr
        self.out_mask = out_mask
        self.errors = 0
        self._out = 0
        self._dirty = True
        self._b2 = bytearray(2)
        self._r2 = bytearray(2)
        b = self._b2
        b[0] = 0
        b[1] = 0
        i2c.writeto_mem(addr, _OUT0, b)   # outputs low before they are driven
        b[0] = ~out_mask & 0xFF
        b[1] = (~out_mask >> 8) & 0xFF
        i2c.writeto_mem(addr, _CFG0, b)
        self._dirty = False

    def read(self):
        """Both input ports as 16 bits (raises OSError)."""
        r = self._r2
        self.i2c.readfrom_mem_into(self.addr, _IN0, r)
        return r[0] | r[1] << 8

    def set_bit(self, bit, v):
        m = 1 << bit
        new = (self._out | m) if v else (self._out & ~m)
        if new != self._out or self._dirty:
            self._out = new
            self.flush()

    def flush(self):
        b = self._b2
        b[0] = self._out & 0xFF
        b[1] = self._out >> 8
        try:
            self.i2c.writeto_mem(self.addr, _OUT0, b)
            self._dirty = False
        except OSError:
            self.errors += 1
            self._dirty = True

    def pin(self, bit):
        return ExpanderPin(self, bit)


class ExpanderPin:
    """One expander bit with machine.Pin's value(): an output writes, an
    input reads (an input read that fails raises OSError)."""

    def __init__(self, exp, bit):
        self.exp = exp
        self.bit = bit

    def value(self, v=None):
        if v is None:
            if self.exp.out_mask & (1 << self.bit):
                return (self.exp._out >> self.bit) & 1
            return (self.exp.read() >> self.bit) & 1
        self.exp.set_bit(self.bit, v)
        return None


class PwmPin:
    """A passive buzzer on a machine.PWM, with a pin's value(): 1 = tone
    (50 % duty at the PWM's frequency), 0 = silent."""

    def __init__(self, pwm, duty_u16=32768):
        self.pwm = pwm
        self.duty = duty_u16
        self.level = 0
        pwm.duty_u16(0)

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0
        self.pwm.duty_u16(self.duty if v else 0)
        return None


class Rs485Uart:
    """An RS485 port with machine.UART's shape (write, read, readinto, any), what the
    firmware's link and inverter services take as board.link_in/link_out:
    write() goes through drivers.rs485 (DE high, then low once the last
    byte is out); read()/any() are the UART's. The framing driver itself is
    `rs485` (its idle-gap read_frame() is for a port that reads frames, not
    bytes: use one or the other)."""

    def __init__(self, rs485):
        self.rs485 = rs485
        self.uart = rs485.uart

    def write(self, data):
        return self.rs485.write(data)

    def any(self):
        return self.uart.any()

    def read(self, n=-1):
        if n is None or n < 0:
            return self.uart.read()
        return self.uart.read(n)

    def readinto(self, buf):
        return self.uart.readinto(buf)  # app.link: no allocation per read


class _Off:
    """A switch that reads OFF (1): the DIP when the expander does not answer."""

    def value(self, v=None):
        return 1


class Poll:
    """A service calling obj.poll() every period_ms (MCP2515: errors, bus-off,
    overflow, re-init)."""

    def __init__(self, name, obj, period_ms):
        self.name = name
        self.obj = obj
        self.period_ms = period_ms

    def tick(self, now_ms):
        self.obj.poll()


# ---- the board object -------------------------------------------------------------

class BqBoard:
    """The firmware's view of a real board (app.App's board contract): afe,
    leds, buzzer, button, contacts, ticks_us, services, pack_address; and
    for the links and main.py: can, link_in, link_out, dip, charger,
    jumper, exp, wdt_timeout_ms, make_wdt(), sleep(ms), deep_sleep(ms),
    board_temp_dc(). Built by a board module from machine objects; `port`
    is the board module's object for the port-specific calls (wdt(ms),
    lightsleep(ms), deepsleep(ms), arm_wake())."""

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
        self.dip_error = None
        n = dip_layout
        try:
            self.dip = Dip([exp.pin(b) for b in dip_bits[:n]], n)
        except OSError as e:  # expander silent: all OFF (automatic, 9600, protocol 0)
            self.dip_error = e
            self.dip = Dip([_Off() for _ in range(n)], n)
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
        return self.port.wdt(self.wdt_timeout_ms)

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
        self.port.lightsleep(ms)

    def deep_sleep(self, ms=0):
        """MCU deep sleep (ESP32: a wake is a reset; RP2040: lightsleep then
        reset, the port's deepsleep). The button and the charger-detect
        input wake it; ms = 0: only they do. Does not return."""
        self.quiet()
        self.port.arm_wake(True, None)
        self.port.deepsleep(ms)


# ---- watchdog wiring (used by firmware/main.py) --------------------------------------

class Watched:
    """A service wrapped so the watchdog knows it is alive: tick() runs the
    service and records when it last ran."""

    def __init__(self, svc, wd, slack_ms):
        self.svc = svc
        self.name = svc.name
        self.period_ms = svc.period_ms
        self.last = None
        self.limit_ms = 2 * svc.period_ms + slack_ms
        self.index = wd.register(svc.name)

    def tick(self, now_ms):
        self.svc.tick(now_ms)
        self.last = now_ms


class Supervisor:
    """The watchdog service: every period_ms it marks alive each watched
    service that ran within its limit (twice its period plus slack), then
    the Watchdog feeds the WDT only if all are alive. A service that hangs
    (its task stops, or the loop is stuck in it) stops the feeding and the
    WDT resets the board."""

    name = "watchdog"

    def __init__(self, wd, watched, ticks_diff):
        self.wd = wd
        self.watched = watched
        self.period_ms = wd.period_ms
        self._diff = ticks_diff
        self.start = None

    def tick(self, now_ms):
        if self.start is None:
            self.start = now_ms
        for w in self.watched:
            t = w.last if w.last is not None else self.start
            if self._diff(now_ms, t) <= w.limit_ms:
                self.wd.alive(w.index)
        return self.wd.tick(now_ms)


def watch(services, wd, ticks_diff, slack_ms=None):
    """(watched services, the supervisor service): run these instead of
    `services`. slack_ms defaults to the watchdog's period."""
    slack = wd.period_ms if slack_ms is None else slack_ms
    watched = [Watched(s, wd, slack) for s in services]
    return watched, Supervisor(wd, watched, ticks_diff)


__all__ = ("Pca9555", "ExpanderPin", "PwmPin", "Rs485Uart", "Poll", "BqBoard", "Watched", "Supervisor",
           "watch", "DIP7", "DIP4")


def build_bq_board(machine, cfg, make_port, charger, ntc_adc, ticks_us, configure=True):
    """The BQ76952 + MCP2515 + 2 x RS485 board both real boards share, from the
    port's machine module, the board module cfg (PINS, I2C_ID, SPI_ID,
    UART_IN, UART_OUT, CAN_OSC_HZ, CAN_BITRATE, BUZZER_HZ, DIP_LAYOUT,
    WDT_TIMEOUT_MS), make_port(button, charger) for the port-specific calls
    and the port-specific charger input and NTC ADC. configure: program the
    BQ76952 (raises Bq76952Error if it does not answer). A missing MCP2515
    does not stop the board: can.poll() keeps retrying its init."""
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
    try:
        can.init(cfg.CAN_BITRATE)
    except OSError as e:
        print("board: MCP2515:", e)
    button = Pin(p["button"], Pin.IN, Pin.PULL_UP)
    jumper = Pin(p["jumper"], Pin.IN, Pin.PULL_UP)
    board = BqBoard(
        make_port(button, charger), afe, exp, out(p["led_run"]), out(p["led_alm"]),
        PwmPin(machine.PWM(Pin(p["buzzer"]), freq=cfg.BUZZER_HZ, duty_u16=0)),
        button, charger, jumper, can, None, None, ticks_us,
        dip_layout=cfg.DIP_LAYOUT, ntc=Ntc(), ntc_adc=ntc_adc, wdt_timeout_ms=cfg.WDT_TIMEOUT_MS)
    baud = board.dip.baud
    board.link_in = Rs485Uart(RS485(machine.UART(cfg.UART_IN, baud, tx=Pin(p["link_in_tx"]), rx=Pin(p["link_in_rx"])),
                                    out(p["link_in_de"]), baud, LINK_IN))
    board.link_out = Rs485Uart(RS485(machine.UART(cfg.UART_OUT, baud, tx=Pin(p["link_out_tx"]),
                                                  rx=Pin(p["link_out_rx"])), out(p["link_out_de"]), baud, LINK_OUT))
    return board
