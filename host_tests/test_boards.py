# The real boards (boards/esp32_bq.py, boards/rp2040_bq.py) on CPython with a
# fake `machine` (host_tests/fake_machine.py) whose buses are the chip models:
# the pin maps (no pin twice, no strapping/flash/input-only pin driven on the
# ESP32, peripheral pins from the RP2040's function table), the deploy plan,
# the board contract (the firmware reads the simulated BQ76952, CAN goes
# through the simulated MCP2515), pre-charge, the DIP through the expander,
# sleep, and main.py's wiring of the watchdog.
import importlib
import os
import sys
import time
import types

import pytest

import fake_machine as fm
import sim_mcp2515 as simcan
from sim_bq76952 import SimBQ76952
from tools import deploy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = ("esp32_bq", "rp2040_bq")


def load(name, monkeypatch):
    fm.reset_fakes()
    monkeypatch.setitem(sys.modules, "machine", fm)
    esp = types.ModuleType("esp32")
    exec(fm.FAKE_ESP32, esp.__dict__)
    monkeypatch.setitem(sys.modules, "esp32", esp)
    monkeypatch.setattr(time, "ticks_us", lambda: int(time.monotonic() * 1e6) & 0x3FFFFFFF, raising=False)
    sys.modules.pop(name, None)
    mod = importlib.import_module(name)
    monkeypatch.setitem(sys.modules, "board", mod)
    return mod


class Rig:
    """The chips behind the fake machine of a board module."""

    def __init__(self, mod, crc=True, dip_on=()):
        self.bq = SimBQ76952(crc=crc)
        self.bq.cell_mv = [3300 + i for i in range(16)]
        self.bq.render()
        self.exp = fm.Pca9555Model()
        for sw in dip_on:  # switch n ON pulls P0(n-1) low
            self.exp.levels &= ~(1 << (sw - 1))
        fm.I2C_DEVICES[0x08] = self.bq
        fm.I2C_DEVICES[0x20] = self.exp
        self.bus = simcan.Bus(500000)
        self.can = self.bus.attach(simcan.Mcp2515(8000000, name="board"))
        self.peer_chip = self.bus.attach(simcan.Mcp2515(8000000, name="peer", seed=3))
        from drivers.mcp2515 import MCP2515
        self.peer = MCP2515(self.peer_chip.spi, self.peer_chip.cs, 500000, osc_hz=8000000,
                            int_pin=self.peer_chip.int_pin)
        self.peer.set_filters(None)
        fm.SPI_DEVICE = self.can.spi
        fm.WIRES[mod.PINS["can_cs"]] = self.can.cs
        fm.WIRES[mod.PINS["can_int"]] = self.can.int_pin


# ---- pin maps -------------------------------------------------------------------

# the PINS names the MCU drives on every BQ board (bq_build.build_bq_board)
OUTPUTS = ("i2c_sda", "i2c_scl", "spi_sck", "spi_mosi", "can_cs", "link_in_tx", "link_in_de",
           "link_out_tx", "link_out_de", "led_run", "led_alm", "buzzer", "pchg")
# ESP32 (WROOM-32) GPIOs: 0-39 exist, 20/24/28-31 do not; 6-11 flash; 34-39 input only
ESP32_VALID_GPIO = tuple(n for n in range(40) if n not in (20, 24, 28, 29, 30, 31))
ESP32_INPUT_ONLY = (34, 35, 36, 37, 38, 39)
ESP32_FLASH = (6, 7, 8, 9, 10, 11)
ESP32_STRAPPING = (0, 2, 5, 12, 15)
ESP32_RESERVED = (1, 3)  # UART0: the REPL
ESP32_RTC_GPIO = (0, 2, 4, 12, 13, 14, 15, 25, 26, 27, 32, 33, 34, 35, 36, 37, 38, 39)
RP2040_VALID_GPIO = tuple(range(23)) + (26, 27, 28)  # on the Pico's header
RP2040_ADC_GPIO = (26, 27, 28)
# RP2040 function table (datasheet 1.4.3): pins each peripheral can use
RP2040_FUNCTION_PINS = {
    "uart0_tx": (0, 12, 16), "uart0_rx": (1, 13, 17),
    "uart1_tx": (4, 8), "uart1_rx": (5, 9),
    "i2c1_sda": (2, 6, 10, 14, 18, 26), "i2c1_scl": (3, 7, 11, 15, 19, 27),
    "spi1_sck": (10, 14), "spi1_tx": (11, 15), "spi1_rx": (8, 12),
}
VALID_GPIO = {"esp32_bq": ESP32_VALID_GPIO, "rp2040_bq": RP2040_VALID_GPIO}


@pytest.mark.parametrize("name", BOARDS)
def test_pin_map_has_no_pin_twice(name, monkeypatch):
    mod = load(name, monkeypatch)
    pins = list(mod.PINS.values())
    assert len(pins) == len(set(pins)), sorted(pins)
    assert all(n in VALID_GPIO[name] for n in pins)
    assert set(OUTPUTS) <= set(mod.PINS)


def test_esp32_pins_avoid_flash_strapping_and_input_only_for_outputs(monkeypatch):
    mod = load("esp32_bq", monkeypatch)
    p = mod.PINS
    for name, n in p.items():
        assert n not in ESP32_FLASH and n not in ESP32_RESERVED, name
    for name in OUTPUTS:
        assert p[name] not in ESP32_STRAPPING, name
        assert p[name] not in ESP32_INPUT_ONLY, name
    # inputs needing the MCU's pull-up are not on 34-39 (no pull-ups there)
    for name in ("button", "jumper", "spi_miso"):
        assert p[name] not in ESP32_INPUT_ONLY, name
    # deep-sleep wake (ext0/ext1) needs RTC GPIOs; ADC1 (usable with Wi-Fi) is 32-39
    assert p["button"] in ESP32_RTC_GPIO and p["charger"] in ESP32_RTC_GPIO
    assert 32 <= p["ntc"] <= 39


def test_rp2040_pins_follow_the_function_table(monkeypatch):
    mod = load("rp2040_bq", monkeypatch)
    p, f = mod.PINS, RP2040_FUNCTION_PINS
    assert mod.UART_IN == 0 and p["link_in_tx"] in f["uart0_tx"] and p["link_in_rx"] in f["uart0_rx"]
    assert mod.UART_OUT == 1 and p["link_out_tx"] in f["uart1_tx"] and p["link_out_rx"] in f["uart1_rx"]
    assert mod.I2C_ID == 1 and p["i2c_sda"] in f["i2c1_sda"] and p["i2c_scl"] in f["i2c1_scl"]
    assert mod.SPI_ID == 1 and p["spi_sck"] in f["spi1_sck"] and p["spi_mosi"] in f["spi1_tx"] \
        and p["spi_miso"] in f["spi1_rx"]
    assert p["ntc"] in RP2040_ADC_GPIO


@pytest.mark.parametrize("name", BOARDS)
def test_expander_bits_do_not_overlap(name, monkeypatch):
    mod = load(name, monkeypatch)
    Rig(mod)
    b = mod.build()
    bits = [pin.bit for pin in b.led_pins[2:]] + [pin.bit for pin in b.contact_pins]
    dip = list(range(7))
    assert len(set(bits + dip)) == len(bits) + len(dip)
    assert all(8 <= x < 16 for x in bits)  # outputs on port 1, DIP on port 0


# ---- deploy -----------------------------------------------------------------------

@pytest.mark.parametrize("name,arch", [("esp32_bq", "xtensawin"), ("rp2040_bq", "armv6m")])
def test_deploy_plan(name, arch):
    p = deploy.plan(ROOT, name, "/dev/ttyX")
    assert p.arch == arch
    by_dest = {f.dest: f for f in p.files}
    assert by_dest["board.mpy"].src == os.path.join(ROOT, "boards", name + ".py")
    for dest in ("main.py", "boot.py", "bq_board.mpy", "bq_build.mpy", "lib/drivers/bq76952.mpy",
                 "lib/drivers/bq76952cfg.mpy", "lib/drivers/mcp2515.mpy", "lib/drivers/mcp2515cfg.mpy", "lib/drivers/rs485.mpy", "lib/drivers/watchdog.mpy",
                 "app/app.mpy"):
        assert dest in by_dest, dest
    assert all("-march=" + arch in " ".join(c) for c in p.compile_cmds)


# ---- the board contract -------------------------------------------------------------

def run_app(mod, ms):
    from app.compose import pack
    from sim.vtime import VirtualRunner
    b = mod.build()
    app = pack(b)
    r = VirtualRunner()
    for s in app.services:
        r.add(s)
    r.run_until(ms)
    return b, app, r


@pytest.mark.parametrize("name", BOARDS)
def test_firmware_reads_the_afe_and_sends_can(name, monkeypatch):
    mod = load(name, monkeypatch)
    rig = Rig(mod)
    b, app, _ = run_app(mod, 3000)  # past the listen-only start on a silent bus (bms.canrate)
    assert app.state.can_kbps == 500 and not app.state.can_followed
    assert rig.bq.crc and not rig.bq.cfg_update and rig.bq.fet_en()  # configured
    assert rig.bq.dm_get(0x9261, "<B") == 0xBC  # protections programmed by App
    snap = app.state.snap
    assert snap.reads >= 19 and list(snap.cell_mv) == [3300 + i for i in range(16)]
    assert b.afe.comm_errors == 0
    # CAN: a frame out through the MCP2515 model, acknowledged by a peer
    assert b.can.send(0x351, b"\x01\x02\x03\x04", 0) is not None
    rig.bus.step()
    slot = [0, memoryview(bytearray(8)), 0, 0]
    got = rig.peer.recv(slot)
    assert got is not None and got[0] == 0x351 and bytes(got[1]) == b"\x01\x02\x03\x04"
    assert any(s.name == "can" and s.period_ms <= 10 for s in app.services)
    # the LEDs: RUN/ALM on MCU pins, SOC and M/S through the expander
    assert b.exp.errors == 0 and rig.exp.writes > 1


@pytest.mark.parametrize("name", BOARDS)
def test_pre_charge_is_an_mcu_pin_and_opens_in_the_safe_state(name, monkeypatch):
    mod = load(name, monkeypatch)
    Rig(mod)
    b = mod.build()
    pin = mod.PINS["pchg"]
    b.afe.set_fets(False, False, True)
    assert fm.LOG[-1] == (pin, 1)
    from app.app import App
    app = App(b)
    app.safe_state("test")
    assert fm.LOG[-1] == (pin, 0) or (pin, 0) in fm.LOG
    assert b.afe.pchg_pin.value() == 0


@pytest.mark.parametrize("name", BOARDS)
def test_dip_through_the_expander(name, monkeypatch):
    mod = load(name, monkeypatch)
    Rig(mod, dip_on=(1, 7))
    b = mod.build()
    assert b.dip.baud == 115200 and b.dip.protocol_id == 2 and b.pack_address == 0
    assert b.link_in.baud == 115200 and b.link_out.baud == 115200
    assert b.link_in.uart.baudrate == 115200


def test_dip4_address_layout_and_a_silent_expander(monkeypatch):
    mod = load("esp32_bq", monkeypatch)
    monkeypatch.setattr(mod, "DIP_LAYOUT", mod.DIP4)
    Rig(mod, dip_on=(1, 3))
    assert mod.build().pack_address == 5
    rig = Rig(mod, dip_on=(1,))
    rig.exp.levels = 0  # every switch ON, but the chip does not answer:
    rig.exp.silent = True
    with pytest.raises(OSError):  # the expander set-up fails loudly at build
        mod.build()


def test_a_missing_mcp2515_does_not_stop_the_board(monkeypatch):
    mod = load("rp2040_bq", monkeypatch)
    rig = Rig(mod)
    rig.can.dead = True
    b, app, _ = run_app(mod, 1000)
    assert app.state.snap.reads >= 9
    assert b.can.spi_errors > 0


def test_a_missing_afe_fails_the_build(monkeypatch):
    mod = load("esp32_bq", monkeypatch)
    Rig(mod)
    del fm.I2C_DEVICES[0x08]
    with pytest.raises(OSError):
        mod.build()


@pytest.mark.parametrize("name", BOARDS)
def test_board_temperature_ntc(name, monkeypatch):
    mod = load(name, monkeypatch)
    Rig(mod)
    fm.ADC_VALUES[mod.PINS["ntc"]] = 32768  # 10 k / 10 k: 25 degC
    monkeypatch.delitem(sys.modules, "drivers.ntc", raising=False)
    b = mod.build()
    # the firmware does not read it: no conversion table on the heap until asked
    assert b.ntc is None and "drivers.ntc" not in sys.modules
    assert abs(b.board_temp_dc() - 250) <= 2 and b.ntc is not None
    assert b.board_temp_dc() == b.board_temp_dc()  # built once


def light_slept(name, monkeypatch, ms):
    """Board name built on the rig after a b.sleep(ms), which must be one
    machine.lightsleep(ms): (board module, board)."""
    mod = load(name, monkeypatch)
    Rig(mod)
    b = mod.build()
    b.sleep(ms)
    assert fm.CALLS == [("lightsleep", ms)]
    return mod, b


def test_sleep_arms_the_wake_sources_esp32(monkeypatch):
    mod, b = light_slept("esp32_bq", monkeypatch, 500)
    assert b.charger.pin.wake == fm.SLEEP and b.button.wake == fm.SLEEP
    b.afe.set_fets(False, False, True)
    with pytest.raises(fm.DeepSleep):
        b.deep_sleep(0)
    esp32 = sys.modules["esp32"]
    assert ("ext0", mod.PINS["charger"], True) in esp32.WAKE
    assert ("ext1", (mod.PINS["button"],), False) in esp32.WAKE
    assert b.afe.pchg_pin.value() == 0  # outputs quiet before sleeping


def test_sleep_rp2040(monkeypatch):
    _, b = light_slept("rp2040_bq", monkeypatch, 250)
    assert b.charger.pin.handler is not None and b.button.trigger == fm.Pin.IRQ_FALLING
    with pytest.raises(fm.DeepSleep):
        b.deep_sleep(60000)
    assert fm.CALLS[-1] == ("deepsleep", 60000)


# ---- main.py: the watchdog ------------------------------------------------------------

@pytest.mark.parametrize("name", BOARDS)
def test_main_feeds_the_watchdog_only_while_every_service_ticks(name, monkeypatch):
    mod = load(name, monkeypatch)
    Rig(mod)
    sys.modules.pop("main", None)
    import main
    from sim.vtime import VirtualRunner
    app, sup = main.start(mod.build())
    assert len(fm.WDTS) == 1 and fm.WDTS[0].timeout == mod.WDT_TIMEOUT_MS <= 8388
    wdt = fm.WDTS[0]
    names = [s.name for s in app.services]
    assert names[-1] == "watchdog" and "can" in names and "cycle" in names
    r = VirtualRunner()
    for s in app.services:
        r.add(s)
    r.run_until(5000)
    assert wdt.feeds == 5 and sup.missed == 0
    # the cycle hangs: its task stops ticking; feeding stops once it is late
    # by twice its period plus one watchdog period (1.2 s)
    cycle = next(s for s in app.services if s.name == "cycle")
    r.remove(cycle)
    r.run_until(15000)
    assert sup.missed >= 8
    assert wdt.feeds <= 7
    assert "cycle" in sup.missing_names() or sup.last_missing
    # the WDT (8 s) would now reset the board: no feed for longer than its timeout
    assert 15000 - 5000 > mod.WDT_TIMEOUT_MS


def test_main_without_a_watchdog_on_bench_boards(monkeypatch):
    mod = load("esp32_bench", monkeypatch)
    sys.modules.pop("main", None)
    import main
    app, sup = main.start(mod.build())
    assert sup is None and fm.WDTS == []


@pytest.mark.parametrize("name", BOARDS)
def test_inverter_and_link_frames_reach_the_firmware_through_the_mcp2515(name, monkeypatch):
    # The MCP2515 delivers nothing until its acceptance filters are set: the
    # firmware must open them for the inverter's 11-bit 0x305 (PROTOCOLS 1) and
    # the 29-bit link ids, and for nothing else.
    mod = load(name, monkeypatch)
    rig = Rig(mod)
    b, app, r = run_app(mod, 3000)  # normal mode once the bus was silent for the listen time
    heard = app.state.inverter_frames
    rig.peer.send(0x305, b"\x00" * 8, 0)  # inverter heartbeat
    rig.peer.send(0x1A020001, bytes(8), rig.peer.FLAG_EXT_ID)  # a link HELLO from address 1
    rig.peer.send(0x1A305, bytes(8), rig.peer.FLAG_EXT_ID)  # 29-bit, neither link nor inverter
    rig.peer.send(0x123, bytes(8), 0)  # a foreign 11-bit frame
    for _ in range(8):
        rig.bus.step()
    r.run_until(3500)
    assert app.state.inverter_frames == heard + 1
    assert b.can.rx_frames == 2  # the other two were filtered by the chip
    assert not b.can.any()  # and the link frame was read (by the link service, the CAN reader)


def test_a_watched_service_that_shortens_its_period_runs_at_it_and_stays_alive():
    # app.hostcan / app.relay tick every 10 ms while busy, every 100 ms idle
    from defs.ticks import ticks_diff
    from drivers.watchdog import Watchdog, watch
    from sim.vtime import VirtualRunner

    class Wdt:
        feeds = 0

        def feed(self):
            self.feeds += 1

    class Svc:
        name = "busy-then-idle"
        period_ms = 100
        ticks = 0

        def tick(self, now_ms):
            self.ticks += 1
            self.period_ms = 10 if now_ms < 1000 else 100
    svc = Svc()
    wdt = Wdt()
    watched, sup = watch([svc], Watchdog(wdt, 1000), ticks_diff)
    r = VirtualRunner()
    for s in watched + [sup]:
        r.add(s)
    r.run_until(3000)
    assert 100 <= svc.ticks <= 120  # ~100 ticks at 10 ms in the first second, then ~20 at 100 ms
    assert wdt.feeds == 3 and sup.missed == 0


@pytest.mark.parametrize("name", BOARDS)
def test_board_listens_first_and_joins_a_bus_at_the_other_rate(name, monkeypatch):
    # can_bitrate_count stored 0 (500 kbit/s) but the bus runs at 250 kbit/s (two
    # nodes talking): the MCP2515 starts listen-only (no ACK, no error flag), sees
    # only errors at 500 kbit/s, listens at 250, hears a valid frame and only then
    # goes normal there; nothing is sent at 500 kbit/s and no error frame is raised.
    mod = load(name, monkeypatch)
    rig = Rig(mod)
    from drivers.mcp2515 import MCP2515
    rig.peer.init(250000)
    other = rig.bus.attach(simcan.Mcp2515(8000000, name="other", seed=5))
    acker = MCP2515(other.spi, other.cs, 250000, osc_hz=8000000, int_pin=other.int_pin)
    acker.set_filters(None)
    b = mod.build()
    assert rig.can.mode() == simcan.MODE_LISTEN  # the board's own init: listen-only
    from app.compose import pack
    from sim.vtime import VirtualRunner
    app = pack(b)
    r = VirtualRunner()
    for s in app.services:
        r.add(s)
    t = 0
    rates = set()
    while t < 6000:
        if t % 100 == 0:
            rig.peer.send(0x305, bytes(8), 0)  # an inverter heartbeat, every 100 ms here
        rig.bus.step(2500)  # 10 ms at 250 kbit/s
        t += 10
        r.run_until(t)
        if rig.can.mode() == simcan.MODE_NORMAL:
            rates.add(rig.can.rate())
        while acker.recv() is not None:
            pass
    assert rates == {250000}
    assert app.state.can_kbps == 250 and app.state.can_followed
    assert rig.bus.error_frames == 0 and rig.peer_chip.tec == 0 and other.rec == 0
    assert app.state.inverter_frames > 0  # the heartbeats reach the firmware at 250 kbit/s
    assert any(who == "board" for who, _fr in rig.bus.log)  # and the pack speaks there
    assert rig.can.rejected == []


@pytest.mark.parametrize("name", BOARDS)
def test_each_pack_reports_its_own_serial_from_the_mcus_unique_id(name, monkeypatch):
    # fake_machine.unique_id() is 01 02 03 04 05 06 (an ESP32's factory MAC is 6 bytes)
    from pymodbus.pdu.register_message import ReadHoldingRegistersRequest
    import struct
    mod = load(name, monkeypatch)
    Rig(mod)
    b, app, _ = run_app(mod, 200)
    assert b.serial == b"BMS-010203040506"
    req = ReadHoldingRegistersRequest(address=5, count=8)  # INFO 5..12: the serial, 16 ASCII bytes
    pdu = bytearray(bytes([req.function_code]) + req.encode())
    out = bytearray(260)
    k = app.host.build()[0].pdu(1, memoryview(pdu), len(pdu), memoryview(out), 1)
    assert out[0] == 3 and out[1] == 16 and struct.pack(">8H", *struct.unpack(">8H", bytes(out[2:18]))) \
        == b"BMS-010203040506" and k == 18


@pytest.mark.parametrize("name", BOARDS)
def test_the_set_up_code_is_off_sys_modules_once_the_board_runs(name, monkeypatch):
    # bq_build and the drivers' set-up modules run only while the board is
    # built and configured: nothing keeps them imported after the boot (the
    # MicroPython side, that their bytes go: test_bq76952 / test_mcp2515,
    # tools.ram), and a rebuild imports them again
    import drivers
    setup = ("bq_build", "drivers.bq76952cfg", "drivers.mcp2515cfg")
    for m in setup:
        monkeypatch.delitem(sys.modules, m, raising=False)
    monkeypatch.delattr(drivers, "bq76952cfg", raising=False)
    monkeypatch.delattr(drivers, "mcp2515cfg", raising=False)
    mod = load(name, monkeypatch)
    Rig(mod)
    b, app, _ = run_app(mod, 200)
    assert [m for m in setup if m in sys.modules] == []
    assert not hasattr(drivers, "bq76952cfg") and not hasattr(drivers, "mcp2515cfg")
    assert mod.build().afe is not b.afe and "bq_build" not in sys.modules
