# Owns the bench board: a real dev board with no AFE attached runs the real
# firmware against the mock AFE. Its LEDs are real pins; the simulated
# charger/load follows the solar day with the time of day sped up (the pack
# itself moves in real time, so its SOC changes slowly).
from drivers.outputs import Leds
from sim.mock_afe import MockAfe
from sim.pack_model import PackModel
from sim.physics import Physics
from sim.profile import solar_request_ma
from sim.rng import Rng


class BenchBoard:
    def __init__(self, make_out_pin, led_pin_ids, ticks_us, seed=1, day_speed=60):
        rng = Rng(seed)
        self.afe = MockAfe(PackModel(rng), rng)
        self.leds = Leds([make_out_pin(n) for n in led_pin_ids])
        self.ticks_us = ticks_us
        self._day_ms = 8 * 3600 * 1000  # start the day at 08:00
        self._day_step_ms = 100 * day_speed
        self.services = [Physics(self.afe, self._request_ma)]

    def _request_ma(self):
        self._day_ms += self._day_step_ms
        return solar_request_ma(self._day_ms)
