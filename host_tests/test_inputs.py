# Panel inputs (lib/drivers/inputs.py) and the watchdog wrapper
# (lib/drivers/watchdog.py): both DIP layouts decode as the manuals' tables
# say (`000` 3.3.3.3, `003` 4.3), switch ON = pin low; the watchdog is fed only
# when every service has checked in.
import pytest

from drivers import inputs
from drivers.watchdog import Watchdog


class Pin:
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, level=1):
        self.level = level
        self.irq_args = None

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v

    def irq(self, handler=None, trigger=0):
        self.irq_args = (handler, trigger)


def pins(on_switches, n):
    """Pins of an n-position DIP with the given switches (1-based) ON."""
    return [Pin(0 if (i + 1) in on_switches else 1) for i in range(n)]


# `000` 3.3.3.3: "ON 1 2 3 4 5 6 7  X000000 / X000010 / X000001" (X = switch 1)
@pytest.mark.parametrize("on,baud,proto", [
    ((), 9600, 0), ((1,), 115200, 0),
    ((6,), 9600, 1), ((1, 6), 115200, 1),
    ((7,), 9600, 2), ((6, 7), 9600, 3),
    ((2, 3, 4, 5), 9600, 0),  # reserved switches change nothing
])
def test_dip7_baud_and_protocol_id(on, baud, proto):
    d = inputs.Dip(pins(on, 7), inputs.DIP7)
    assert (d.baud, d.protocol_id) == (baud, proto)
    assert d.automatic and d.address == 0
    assert d.protocol_reserved == (proto == 3)


# `003` 4.3 table: address = #1 + 2 #2 + 4 #3 + 8 #4
ADDRESS_TABLE = {
    0: (), 1: (1,), 2: (2,), 3: (1, 2), 4: (3,), 5: (1, 3), 6: (2, 3), 7: (1, 2, 3),
    8: (4,), 9: (1, 4), 10: (2, 4), 11: (1, 2, 4), 12: (3, 4), 13: (1, 3, 4),
    14: (2, 3, 4), 15: (1, 2, 3, 4)}


@pytest.mark.parametrize("address", sorted(ADDRESS_TABLE))
def test_dip4_address_per_the_manual_table(address):
    d = inputs.Dip(pins(ADDRESS_TABLE[address], 4), inputs.DIP4)
    assert d.address == address
    assert d.automatic == (address == 0)
    assert d.main == (address == 1)  # address 1 = main pack
    assert (d.baud, d.protocol_id) == (9600, 0)


def test_dip_read_once_and_layout_checked():
    ps = pins((1,), 7)
    d = inputs.Dip(ps, inputs.DIP7)
    ps[0].level = 1  # moved while running: takes effect after a restart
    assert d.baud == 115200
    with pytest.raises(ValueError):
        inputs.Dip(pins((), 4), inputs.DIP7)


def test_charger_and_jumper_levels():
    assert inputs.UpdateJumper(Pin(0)).fitted and not inputs.UpdateJumper(Pin(1)).fitted
    c = Pin(0)
    cd = inputs.ChargerDetect(c)
    assert not cd.present()
    c.level = 1
    assert cd.present()
    assert inputs.ChargerDetect(Pin(0), active_low=True).present()


def test_charger_wake_interrupt_only_sets_a_flag():
    c = Pin(0)
    cd = inputs.ChargerDetect(c)
    cd.enable_wake()
    handler, trig = c.irq_args
    assert trig == Pin.IRQ_RISING
    handler(c)
    assert cd.take_wake() and not cd.take_wake()


class Wdt:
    def __init__(self):
        self.fed = 0

    def feed(self):
        self.fed += 1


def test_watchdog_feeds_only_when_every_service_checked_in():
    wdt = Wdt()
    wd = Watchdog(wdt, period_ms=1000)
    a, b, c = wd.register("acquire"), wd.register("link"), wd.register("host")
    assert not wd.tick(0) and wdt.fed == 0  # nobody checked in yet
    wd.alive(a)
    wd.alive(b)
    assert not wd.tick(1000) and wd.missing_names() == ["host"]
    wd.alive(c)
    assert wd.tick(2000) and wdt.fed == 1
    # after a feed every service must check in again: a hung one starves it
    for t in range(3, 10):
        wd.alive(a)
        wd.alive(c)
        assert not wd.tick(t * 1000)
    assert wdt.fed == 1 and wd.missed == 9 and wd.last_missing == 1 << b
    wd.alive(b)
    assert wd.tick(10000) and wdt.fed == 2


def test_watchdog_service_limit():
    wd = Watchdog(Wdt())
    for i in range(30):
        wd.register("s%d" % i)
    with pytest.raises(ValueError):
        wd.register("one too many")
