# Owns the physics service of a simulated pack: every period it advances the
# mock AFE (and its pack model) by the period with the current the
# charger/load asks for. A charger that asks to push current holds its
# voltage on P+/P- even while the pack's FETs are open (what wakes a sleeping
# pack, SPEC 10). The host world and the bench boards schedule it before the
# firmware's own services.

CHARGER_MV = 56000  # absorption voltage the inverter charges at (SPEC 8, `000` 5.6)


class Physics:
    name = "physics"

    def __init__(self, afe, request_ma, period_ms=100):
        self.afe = afe
        self.request_ma = request_ma  # callable: () -> mA asked of this pack, + = charge
        self.period_ms = period_ms

    def tick(self, now_ms):
        req = self.request_ma()
        self.afe.model.ext_mv = CHARGER_MV if req > 0 else 0
        self.afe.step(self.period_ms, req)
