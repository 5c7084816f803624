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


def solar_request_ma(t_ms, pv_pct=100, load_pct=100):
    """Current asked of one pack at t_ms of simulated time (day starts 00:00);
    pv_pct scales the PV (a cloudy day), load_pct the house load."""
    tod = t_ms % _DAY_MS
    x = tod - _NOON_MS
    pv = 0
    if -_HALF_DAY_MS < x < _HALF_DAY_MS:
        hs = _HALF_DAY_MS // 1000
        xs = x // 1000
        pv = _PV_PEAK_MA * (hs * hs - xs * xs) // (hs * hs) * pv_pct // 100
    if tod < 6 * _H:
        load = _NIGHT_LOAD_MA
    elif 18 * _H <= tod < 22 * _H:
        load = _EVENING_LOAD_MA
    else:
        load = _BASE_LOAD_MA
    return pv - load * load_pct // 100


def weather(seed, days, sunny_pct=110, cloudy_lo_pct=30, cloudy_hi_pct=65, cloudy_in=40):
    """A seeded run of days: each day's PV in % of the clear-day profile; a day
    is cloudy with probability cloudy_in %, then its PV is drawn in
    cloudy_lo_pct..cloudy_hi_pct. Host-side (allocates)."""
    from sim.rng import Rng
    rng = Rng(seed)
    out = []
    for _ in range(days):
        if rng.randint(0, 99) < cloudy_in:
            out.append(rng.randint(cloudy_lo_pct, cloudy_hi_pct))
        else:
            out.append(sunny_pct)
    return out


def week_request_ma(t_ms, pv_pct_by_day, load_pct=100):
    """solar_request_ma with each day's PV from pv_pct_by_day (the last day
    repeats)."""
    d = t_ms // _DAY_MS
    if d >= len(pv_pct_by_day):
        d = len(pv_pct_by_day) - 1
    return solar_request_ma(t_ms, pv_pct_by_day[d], load_pct)
