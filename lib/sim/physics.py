# Owns the physics service of a simulated pack: every period it advances the
# mock AFE (and its pack model) by the period with the current the
# charger/load asks for. The host world and the bench boards schedule it
# before the firmware's own services.


class Physics:
    name = "physics"

    def __init__(self, afe, request_ma, period_ms=100):
        self.afe = afe
        self.request_ma = request_ma  # callable: () -> mA asked of this pack, + = charge
        self.period_ms = period_ms

    def tick(self, now_ms):
        self.afe.step(self.period_ms, self.request_ma())
