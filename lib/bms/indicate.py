# Owns the indication patterns: the LED flash types of the manuals, the LED
# table (which pattern each LED shows for a pack state, SPEC 4 / `000`
# 3.3.3.4), the LED sequences (wake-up, reset, power-off, parallel formed) and
# the buzzer patterns (SPEC 5 / `003` 5.2). Pure: callers pass the state and
# the phase time; the indicate service (app.indicate) turns patterns into pin
# levels. Nothing here allocates: it runs every 50 ms under heap_lock.
from defs.const import const
from defs import codes, modes
# the pattern numbers and LED positions (defs.leds), also read as indicate.X
from defs.leds import OFF, ON, FLASH1, FLASH2, FLASH3, BEEP1, BEEP2, BEEP3, NAMES
from defs.leds import RUN, ALM, SOC0, N_SOC, MS, N_LEDS
from defs.leds import is_lit, lit_ms, UPDATE_MODE  # noqa: F401 (is_lit, lit_ms re-exported: app.indicate)


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


# --- the LED table (SPEC 4, `000` 3.3.3.4) -------------------------------------
# Bit masks looked up by name once at import, so codes appended to defs.codes
# later do not move anything here.
_OV_PROT = codes.bit(codes.PROTECTIONS, "COVP") | codes.bit(codes.PROTECTIONS, "POVP")
_UV_PROT = codes.bit(codes.PROTECTIONS, "CUVP") | codes.bit(codes.PROTECTIONS, "PUVP")
_COCP = codes.bit(codes.PROTECTIONS, "COCP")
_DOCP = codes.bit(codes.PROTECTIONS, "DOCP")
_SCP = codes.bit(codes.PROTECTIONS, "SCP")
# The table's temperature row names CHTP/DHTP/CLTP/DLTP; the MOSFET and
# environment temperature protections stop charge and discharge the same way
# (SPEC 2), so they show the same row.
_TEMP_PROT = (codes.bit(codes.PROTECTIONS, "CHTP") | codes.bit(codes.PROTECTIONS, "DHTP")
              | codes.bit(codes.PROTECTIONS, "CLTP") | codes.bit(codes.PROTECTIONS, "DLTP")
              | codes.bit(codes.PROTECTIONS, "MOS OT") | codes.bit(codes.PROTECTIONS, "EOTP")
              | codes.bit(codes.PROTECTIONS, "EUTP"))
# Over-voltage alarms are not a "warning": `000`'s note lists cell imbalance,
# low voltage, high current, high/low temperature, and `003` 5.4 says the
# over-charge alarm does not flash ALM. Every other alarm bit (also ones
# appended later) is a warning.
_OV_ALARM = codes.bit(codes.ALARMS, "OV") | codes.bit(codes.ALARMS, "TOV")
_WARN_ALARMS = ((1 << len(codes.ALARMS)) - 1) & ~_OV_ALARM
# Protections with a row of their own; COVP/POVP have none (`003` 5.4: over
# charge protection shows as charge normal, or as standby without mains): the
# pack shows its activity. A protection appended later without a row shows as
# a warning so it is never invisible.
_ROW_PROT = _UV_PROT | _COCP | _DOCP | _SCP | _TEMP_PROT | _OV_PROT

# Rows of the table, in the order of SPEC 4.
ROW_POWER_OFF = const(0)
ROW_STANDBY = const(1)
ROW_STANDBY_WARN = const(2)
ROW_CHARGE = const(3)
ROW_CHARGE_WARN = const(4)
ROW_COCP = const(5)
ROW_DISCHARGE = const(6)
ROW_DISCHARGE_WARN = const(7)
ROW_UVP = const(8)  # discharge CUVP/PUVP
ROW_DOCP = const(9)
ROW_TEMP = const(10)  # CHTP/DHTP/CLTP/DLTP (and MOS/environment temperature)
ROW_FAILURE = const(11)  # cell/NTC/sensor/MOS failure, reversed polarity, SCP

_SOC_OFF = const(0)  # all SOC LEDs off
_SOC_BY = const(1)  # by SOC
_SOC_CHG = const(2)  # by SOC, highest lit LED FLASH2
# (RUN, ALM, SOC LEDs) per row; bytes from lists (a tuple of constants would
# also be kept as the compiler's constant)
_RUN = bytes([OFF, FLASH1, FLASH1, ON, ON, FLASH1, FLASH3, FLASH3, OFF, OFF, OFF, OFF])
_ALM = bytes([OFF, OFF, FLASH3, OFF, FLASH3, OFF, OFF, FLASH3, FLASH3, ON, ON, ON])
_SOC = bytes([_SOC_OFF, _SOC_BY, _SOC_BY, _SOC_CHG, _SOC_CHG, _SOC_BY, _SOC_BY, _SOC_BY,
              _SOC_OFF, _SOC_OFF, _SOC_OFF, _SOC_OFF])


def row(mode, alarms, protections, faults, current_ma):
    """The table row for a pack state, the most severe first. The activity
    (standby/charge/discharge) is the mode; in the protection and failure
    modes it is the sign of the measured current (after the dead band)."""
    if mode == modes.POWER_OFF or mode == modes.SLEEP:
        return ROW_POWER_OFF
    if faults or mode == modes.FAILURE:
        return ROW_FAILURE
    warn = alarms & _WARN_ALARMS
    if protections:
        if protections & _SCP:
            return ROW_FAILURE
        if protections & _TEMP_PROT:
            return ROW_TEMP
        if protections & _DOCP:
            return ROW_DOCP
        if protections & _UV_PROT:
            return ROW_UVP
        if protections & _COCP:
            return ROW_COCP
        warn = warn or (protections & ~_ROW_PROT)
    if mode == modes.CHARGE or (mode == modes.PROTECTION and current_ma > 0):
        return ROW_CHARGE_WARN if warn else ROW_CHARGE
    if mode == modes.DISCHARGE or (mode == modes.PROTECTION and current_ma < 0):
        return ROW_DISCHARGE_WARN if warn else ROW_DISCHARGE
    return ROW_STANDBY_WARN if warn else ROW_STANDBY


def fill_row(leds, r, soc_pct):
    """Write row r's patterns into leds in place (soc_pct: 0 when unknown).
    M/S is off: a single pack (`000` F: single mode OFF); the parallel-packs
    issue sets it (ON on the master) after this call."""
    leds[RUN] = _RUN[r]
    leds[ALM] = _ALM[r]
    s = _SOC[r]
    if s == _SOC_OFF:
        for k in range(N_SOC):
            leds[SOC0 + k] = OFF
    else:
        fill_soc_leds(leds, soc_pct, s == _SOC_CHG)
    leds[MS] = OFF


LAST_N = const(8)  # fill_leds' last: what it wrote, then the inputs it wrote it from


def fill_leds(leds, st, last=None):
    """The LED table for PackState st (mode, alarms, protections, faults,
    soc_pct/soc_valid, current_ma, link_parallel) into leds in place; returns
    the row. last: None, or the service's array of LAST_N ints that holds what
    its previous call wrote (last[0]; -1: leds were written by something else)
    and the inputs it came from: with the same inputs again nothing is
    evaluated; leds is left alone when the row, the SOC and M/S are the same."""
    soc = st.soc_pct if st.soc_valid else 0
    par = getattr(st, "link_parallel", False)
    if last is not None:
        if last[0] >= 0 and last[1] == st.mode and last[2] == st.alarms and last[3] == st.protections \
                and last[4] == st.faults and last[5] == st.current_ma and last[6] == soc and last[7] == par:
            return last[0] >> 1 & 15
        last[1] = st.mode
        last[2] = st.alarms
        last[3] = st.protections
        last[4] = st.faults
        last[5] = st.current_ma
        last[6] = soc
        last[7] = par
    r = row(st.mode, st.alarms, st.protections, st.faults, st.current_ma)
    ms = r != ROW_POWER_OFF and par  # `000` F: parallel mode, the master
    if last is not None:
        key = soc << 5 | r << 1 | (1 if ms else 0)
        if key == last[0]:
            return r
        last[0] = key
    fill_row(leds, r, soc)
    if ms:
        leds[MS] = ON
    return r


def fill_maintenance(leds):
    """Maintenance / firmware-update mode (SPEC 4: "firmware-update mode blinks
    a dedicated LED", `002` 8.2; the panel has none to spare): RUN and ALM
    blink together, 0.5 s on / 0.5 s off, a pattern no pack state shows; the
    rest off."""
    for k in range(N_LEDS):
        leds[k] = OFF
    leds[RUN] = UPDATE_MODE
    leds[ALM] = UPDATE_MODE


# --- sequences (PackState.seq, started at PackState.seq_start_ms) ---------------
SEQ_NONE = const(0)
SEQ_WAKE = const(1)  # LEDs lit one after another from RUN, 0.5 s each (`003` 5.3)
SEQ_RESET = const(2)  # all LEDs on for 1.5 s (`003` 5.3)
SEQ_POWER_OFF = const(3)  # SOC LEDs flicker 3 times (`004` 2: "five LED lights flicker for three times")
SEQ_PARALLEL = const(4)  # RUN flickers 5 times: parallel connection formed (`004` 6.1)

WAKE_STEP_MS = const(500)
WAKE_LEDS = MS  # RUN, ALM, SOC1..4: M/S tells master/slave, it is not part of the sweep
RESET_MS = const(1500)
# The manuals give no flicker timing. 250 ms on / 250 ms off: the shortest
# on-time the panel already uses (FLASH1), twice as fast as FLASH2 so a
# flicker never reads as a flash type, and 3 flickers last 1.5 s, as long as
# the reset sequence.
FLICKER_ON_MS = const(250)
FLICKER_MS = const(500)
POWER_OFF_FLICKERS = const(3)
PARALLEL_FLICKERS = const(5)


def seq_duration_ms(seq):
    if seq == SEQ_WAKE:
        return WAKE_LEDS * WAKE_STEP_MS
    if seq == SEQ_RESET:
        return RESET_MS
    if seq == SEQ_POWER_OFF:
        return POWER_OFF_FLICKERS * FLICKER_MS
    if seq == SEQ_PARALLEL:
        return PARALLEL_FLICKERS * FLICKER_MS
    return 0


def fill_seq(leds, seq, elapsed_ms):
    """Write the LEDs of sequence seq elapsed_ms after its start (ON/OFF only,
    every LED the sequence does not name is off). Returns False, leaving leds
    alone, when there is no such sequence or it is over."""
    if elapsed_ms < 0:
        elapsed_ms = 0
    if elapsed_ms >= seq_duration_ms(seq):
        return False
    if seq == SEQ_WAKE:
        step = elapsed_ms // WAKE_STEP_MS
        for i in range(N_LEDS):
            leds[i] = ON if i == step else OFF
    elif seq == SEQ_RESET:
        for i in range(N_LEDS):
            leds[i] = ON
    else:
        lit = ON if elapsed_ms % FLICKER_MS < FLICKER_ON_MS else OFF
        for i in range(N_LEDS):
            leds[i] = OFF
        if seq == SEQ_PARALLEL:
            leds[RUN] = lit
        else:
            for k in range(N_SOC):
                leds[SOC0 + k] = lit
    return True


# --- buzzer (SPEC 5, `003` 5.2) ----------------------------------------------------
# Over-voltage protections and alarms do not beep (`003` 5.2: "except over voltage").
_BEEP_PROT = ~_OV_PROT


def buzzer_pattern(mode, alarms, protections, faults, enabled):
    """Fault BEEP1, protection BEEP2, alarm BEEP3, the most severe wins; OFF
    when disabled (the default, `003` 5.2) or the pack is off or asleep."""
    if not enabled or mode == modes.POWER_OFF or mode == modes.SLEEP:
        return OFF
    if faults or mode == modes.FAILURE:
        return BEEP1
    if protections & _BEEP_PROT:
        return BEEP2
    if alarms & ~_OV_ALARM:
        return BEEP3
    return OFF
