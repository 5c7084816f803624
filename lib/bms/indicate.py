# Owns the indication patterns: the LED flash types of the manuals and which
# pattern each LED shows for a pack state (SPEC 4). Pure: callers pass the
# phase time; the indicate service turns patterns into pin levels.
from bms import modes

OFF = 0
ON = 1
FLASH1 = 2  # 0.25 s on / 3.75 s off
FLASH2 = 3  # 0.5 s on / 0.5 s off
FLASH3 = 4  # 0.5 s on / 1.5 s off
NAMES = ("off", "on", "flash1", "flash2", "flash3")

# (on_ms, period_ms) per pattern, `000` 3.3.3.4 / `003` 5.4.
_ON_MS = (0, 1, 250, 500, 500)
_PERIOD_MS = (1, 1, 4000, 1000, 2000)

# LED positions on the panel and in PackState.leds.
RUN = 0
ALM = 1
SOC0 = 2
N_SOC = 4
MS = SOC0 + N_SOC
N_LEDS = MS + 1


def is_lit(pattern, phase_ms):
    """Pin level of a pattern phase_ms after the pattern started."""
    if pattern == OFF:
        return False
    if pattern == ON:
        return True
    return phase_ms % _PERIOD_MS[pattern] < _ON_MS[pattern]


def run_pattern(mode):
    """RUN LED by mode: standby FLASH1, charging ON, discharging FLASH3."""
    if mode == modes.STANDBY:
        return FLASH1
    if mode == modes.CHARGE:
        return ON
    if mode == modes.DISCHARGE:
        return FLASH3
    return OFF


def soc_led_count(soc_pct):
    """SOC LEDs lit: one per started 25 % (`003` 5.4: 0-25 % one LED ... 75-100 % four)."""
    if soc_pct <= 0:
        return 0
    return (soc_pct + 24) // 25


def fill_soc_leds(leds, soc_pct, charging):
    """Write the SOC LED patterns into leds[SOC0:SOC0+N_SOC] in place; while
    charging the highest lit LED flashes FLASH2."""
    lit = soc_led_count(soc_pct)
    for k in range(N_SOC):
        if k < lit:
            leds[SOC0 + k] = FLASH2 if (charging and k == lit - 1) else ON
        else:
            leds[SOC0 + k] = OFF
