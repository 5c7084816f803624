# The host board: one simulated pack as the firmware sees it. The mock AFE on
# a physical pack model takes the BQ76952's place; LEDs and the button are
# simulated pins, and so are the buzzer and the dry contacts. Used by the bench and the tests, never deployed.
from bms import indicate
from drivers.outputs import Buzzer, Leds
from sim.pins import SimPin

HOST_ONLY = True


class Board:
    name = "host_sim"  # the board a bundle is made for (app.uds)
    rom = None  # a ROMFS partition object for update sessions (tests set one; the board's is vfs.rom_ioctl(2, 0))
    # the bench boots each pack itself (tools/simworld.py; app.compose reads these):
    running = None  # the slot its boot part mounted (None: update.boot.RUNNING)
    fw_version = None  # the version of the image in that slot (None: app.host.VERSION)
    serial = None  # the pack's serial number (None: app.inverter.SERIAL; the bench numbers its packs)
    trust_key = None  # the update key the pack was provisioned with (None: as a board, update.updater.for_board)
    file_digest = None  # file_digest(slot, name) of the check routine (None: through vfs.VfsRom)
    urandom = None  # urandom(n) for the login's nonces (None: os.urandom)

    def __init__(self, afe, clock_ms, log_edges=False):
        self.afe = afe
        self.led_pins = [SimPin(clock_ms, 0, log_edges) for _ in range(indicate.N_LEDS)]
        self.leds = Leds(self.led_pins)
        self.buzzer_pin = SimPin(clock_ms, 0, log_edges)
        self.buzzer = Buzzer(self.buzzer_pin)
        self.button = SimPin(clock_ms, 1)  # pulled up; a press pulls it low
        self.contact_pins = [SimPin(clock_ms, 0, log_edges) for _ in range(2)]
        self.contacts = Leds(self.contact_pins)  # dry contacts 1 and 2: same kind of outputs
        self._clock_ms = clock_ms
        self.services = []  # the bench world schedules the physics itself
        self.can = None  # the bench world wires the CAN port and the two RS485 ends
        self.link_in = None
        self.link_out = None

    def ticks_us(self):
        return (self._clock_ms() * 1000) & 0x3FFFFFFF
