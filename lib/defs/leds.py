# Owns the numbers of the panel: the indication patterns (an LED's or the
# buzzer's on/off rhythm; bms.indicate says what each looks like and when it
# is shown) and the LED positions on the panel and in PackState.leds.
from defs.const import const
OFF = 0
ON = 1
FLASH1 = const(2)  # 0.25 s on / 3.75 s off
FLASH2 = const(3)  # 0.5 s on / 0.5 s off
FLASH3 = const(4)  # 0.5 s on / 1.5 s off
BEEP1 = const(5)  # buzzer, fault: 0.25 s every 1 s
BEEP2 = const(6)  # buzzer, protection: 0.25 s every 2 s
BEEP3 = const(7)  # buzzer, alarm: 0.25 s every 3 s
NAMES = ("off", "on", "flash1", "flash2", "flash3", "beep1", "beep2", "beep3")

# LED positions on the panel and in PackState.leds.
RUN = 0
ALM = 1
SOC0 = 2
N_SOC = 4
MS = SOC0 + N_SOC
N_LEDS = MS + 1
