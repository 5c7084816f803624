# Owns what the real boards (boards/esp32_bq.py, boards/rp2040_bq.py) share
# while they run: the board object handed to the firmware (the board contract
# of firmware/app/app.py) and the polling service of a driver (MCP2515.poll);
# what differs between the ports is the board module's (its machine module,
# arm_wake). The builder that makes every chip
# from the port's machine module and fills the board in is boards/bq_build.py
# (imported for the build, dropped after it). Nothing here imports
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


TYPE_CHECKING = False
if TYPE_CHECKING:  # the type checker's names only; never runs on a board
    from typing import Any

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


# ---- the board object -------------------------------------------------------------

class BqBoard:
    """The firmware's view of a real board (app.App's board contract): afe,
    leds, buzzer, button, contacts, ticks_us, services, pack_address; and
    for the links and main.py: can, link_in, link_out, dip, charger,
    jumper, exp, wdt_timeout_ms, make_wdt(), sleep(ms), deep_sleep(ms),
    board_temp_dc(). Built by a board module from machine objects; `port`
    is the board module itself: its machine module (WDT, lightsleep,
    deepsleep: both ports call them the same way) and arm_wake(board, deep,
    charger_handler), the port's wake sources. Filled in by
    bq_build.build_bq_board."""

    # set by bq_build._fill (declared for the type checker, host_tests/test_typecheck.py;
    # MicroPython ignores annotations)
    afe: "Any"
    button: "Any"
    buzzer: "Any"
    can: "Any"
    charger: "Any"
    contact_pins: "Any"
    contacts: "Any"
    dip: "Any"
    exp: "Any"
    jumper: "Any"
    led_pins: "Any"
    leds: "Any"
    link_in: "Any"
    link_out: "Any"
    ntc: "Any"
    ntc_adc: "Any"
    pack_address: "Any"
    port: "Any"
    services: "Any"
    ticks_us: "Any"
    wdt_timeout_ms: "Any"
    name = None  # the board module's NAME: the board an update bundle must be made for (app.uds)
    serial: object = None  # the pack's serial number (serial_of: the MCU's unique id; app.compose.serial)

    def make_wdt(self):
        """The machine.WDT: once made it cannot be stopped (main.py makes it
        after the firmware has started)."""
        return self.port.machine.WDT(timeout=self.wdt_timeout_ms)

    def board_temp_dc(self):
        """Board/ambient NTC in deci-degC (NTC_OPEN_DC/NTC_SHORT_DC on a fault),
        or None without one. The firmware does not read it: the conversion
        table (drivers.ntc) is built at the first call, not at boot."""
        if self.ntc_adc is None:
            return None
        if self.ntc is None:
            from drivers.ntc import Ntc
            self.ntc = Ntc()
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
        self.port.arm_wake(self, False, self.charger._handler)
        self.port.machine.lightsleep(ms)

    def deep_sleep(self, ms=0):
        """MCU deep sleep (ESP32: a wake is a reset; RP2040: lightsleep then
        reset, the port's deepsleep). The button and the charger-detect
        input wake it; ms = 0: only they do. Does not return."""
        self.quiet()
        p = self.port
        p.arm_wake(self, True, None)
        if ms:
            p.machine.deepsleep(ms)
        p.machine.deepsleep()
