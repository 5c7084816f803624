# Owns the daily load/charge profile of a residential solar system for one
# 100 Ah pack (+ = charge): PV by day minus the house load, an evening peak,
# a small night load; a clear day about balances one pack's day (~-4 Ah net).
# Integer maths so every runtime gives the same current.
_DAY_MS = 24 * 3600 * 1000
_H = 3600 * 1000
_NOON_MS = 13 * _H  # solar noon with daylight saving
_HALF_DAY_MS = 6 * _H  # PV from 07:00 to 19:00
_PV_PEAK_MA = 16000  # ~0.8 kW into one pack at noon: ~128 Ah of PV a day
_BASE_LOAD_MA = 4000  # ~200 W fridge, router, standby loads
_EVENING_LOAD_MA = 15000  # ~0.8 kW cooking and lights, 18:00-22:00
_NIGHT_LOAD_MA = 2000  # 00:00-06:00


def solar_request_ma(t_ms):
    """Current asked of one pack at t_ms of simulated time (day starts 00:00)."""
    tod = t_ms % _DAY_MS
    x = tod - _NOON_MS
    pv = 0
    if -_HALF_DAY_MS < x < _HALF_DAY_MS:
        hs = _HALF_DAY_MS // 1000
        xs = x // 1000
        pv = _PV_PEAK_MA * (hs * hs - xs * xs) // (hs * hs)
    if tod < 6 * _H:
        load = _NIGHT_LOAD_MA
    elif 18 * _H <= tod < 22 * _H:
        load = _EVENING_LOAD_MA
    else:
        load = _BASE_LOAD_MA
    return pv - load
