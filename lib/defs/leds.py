# Owns the numbers of the panel: the indication patterns (an LED's or the
# buzzer's on/off rhythm, is_lit; the time to the next edge, lit_ms;
# bms.indicate says what each looks like and when it is shown) and the LED
# positions on the panel and in PackState.leds.
# Frozen with the lower layers: the recovery mode blinks from here.
from defs.const import const
OFF = 0
ON = 1
FLASH1 = const(2)  # 0.25 s on / 3.75 s off
FLASH2 = const(3)  # 0.5 s on / 0.5 s off
FLASH3 = const(4)  # 0.5 s on / 1.5 s off
BEEP1 = const(5)  # buzzer, fault: 0.25 s every 1 s
BEEP2 = const(6)  # buzzer, protection: 0.25 s every 2 s
BEEP3 = const(7)  # buzzer, alarm: 0.25 s every 3 s
# maintenance and forced-update (recovery) mode: RUN and ALM both show it, together
UPDATE_MODE = FLASH2
NAMES = ("off", "on", "flash1", "flash2", "flash3", "beep1", "beep2", "beep3")

# LED positions on the panel and in PackState.leds.
RUN = 0
ALM = 1
SOC0 = 2
N_SOC = 4
MS = SOC0 + N_SOC
N_LEDS = MS + 1

# (on_ms, period_ms) per pattern, `000` 3.3.3.4 / `003` 5.4 (LEDs), `003` 5.2 (buzzer).
_ON_MS = (0, 1, 250, 500, 500, 250, 250, 250)
_PERIOD_MS = (1, 1, 4000, 1000, 2000, 1000, 2000, 3000)


def is_lit(pattern, phase_ms):
    """Pin level of a pattern phase_ms after the pattern started."""
    if pattern == OFF:
        return False
    if pattern == ON:
        return True
    return phase_ms % _PERIOD_MS[pattern] < _ON_MS[pattern]


def lit_ms(pattern, phase_ms):
    """A flashing pattern (above ON) phase_ms after it started: the ms it
    stays lit (> 0), or dark (< 0, negated), from there."""
    period = _PERIOD_MS[pattern]
    ph = phase_ms % period
    on = _ON_MS[pattern]
    return on - ph if ph < on else ph - period
