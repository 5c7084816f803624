# Owns the panel inputs: the DIP switch (both layouts of SPEC 6), the
# charger-detect / wake input and the forced-update jumper (the button is a
# plain pin: bms.button reads its value()). Pins are passed
# in (machine.Pin-like value(), irq() where a wake edge is wanted). Wiring: every
# switch, the button and the jumper pull their input to GND against a pull-up,
# so ON / pressed / fitted reads 0. The DIP is read once, at start (a changed
# DIP takes effect after a restart, `000` 3.3.3.3).
#
# Layouts:
#   DIP7 (`000` 3.3.3.3): switch 1 = RS485 baud (ON 115200, OFF 9600); 2-5
#     reserved; 6-7 = inverter protocol ID: 6 OFF 7 OFF -> 0, 6 ON -> 1,
#     7 ON -> 2, both ON -> 3 (reserved). Addressing is automatic.
#   DIP4 (`003` 4.3): switches #1..#4 are the address bits 1, 2, 4, 8:
#     1-15 (1 = main pack), 0 = not set (automatic addressing).

from defs.const import const

DIP7 = const(7)
DIP4 = const(4)
PROTOCOL_RESERVED = const(3)
BAUD_ON = const(115200)
BAUD_OFF = const(9600)


class Dip:
    """The DIP switch of a board, read once. Attributes: layout, mask (bit i =
    switch i+1 ON), baud, protocol_id, address (0 = not set), automatic
    (address assigned by the packs themselves), main (address 1). The
    4-position layout has no baud or protocol switches: 9600 baud (the
    Pylontech RS485 default) and protocol 0."""

    def __init__(self, pins, layout):
        if layout not in (DIP7, DIP4) or len(pins) != layout:
            raise ValueError("DIP layout")
        self.layout = layout
        mask = 0  # bit i: switch i+1 ON (its pin reads 0)
        for i in range(layout):
            if pins[i].value() == 0:
                mask |= 1 << i
        self.mask = mask
        if layout == DIP7:
            self.baud = BAUD_ON if mask & 0x01 else BAUD_OFF
            self.protocol_id = (1 if mask & 0x20 else 0) | (2 if mask & 0x40 else 0)
            self.address = 0
        else:  # #1 = 1 ... #4 = 8
            self.baud, self.protocol_id = BAUD_OFF, 0
            self.address = mask & 0x0F
        self.automatic = self.address == 0
        self.main = self.address == 1
        self.protocol_reserved = self.protocol_id == PROTOCOL_RESERVED


class ChargerDetect:
    """Charger-detect / wake input (a comparator or opto on P+/P-): present()
    while a charger is connected. active_low per the board's circuit."""

    def __init__(self, pin, active_low=False):
        self.pin = pin
        self._active = 0 if active_low else 1
        self.woke = False  # set by the interrupt handler, cleared by take_wake()
        self._handler = self._irq

    def present(self):
        return self.pin.value() == self._active

    def _irq(self, pin):
        self.woke = True  # an interrupt handler only sets a flag

    def enable_wake(self):
        """Interrupt on the edge into the active level (the board's light
        sleep wakes on it as well)."""
        p = self.pin
        trig = p.IRQ_FALLING if self._active == 0 else p.IRQ_RISING
        p.irq(handler=self._handler, trigger=trig)

    def take_wake(self):
        w = self.woke
        self.woke = False
        return w


class UpdateJumper:
    """Forced-update jumper: pulled up, fitted = 0; read once at boot (the
    update path then waits for a firmware image instead of starting the
    application)."""

    def __init__(self, pin):
        self.fitted = pin.value() == 0
