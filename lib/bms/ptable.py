# Owns the rows of the parameter table: every setting with a stable numeric id,
# its name with unit, default, range and who may change it, with the source of
# each value in the comments. Ids are stable forever (the PC tool and the store
# use them); rows are only appended, id = row index + 1 with no gaps. Only rows
# live here: bms.params has the index constants (checked against these rows by
# host_tests/test_params.py), the running values, the lookups and validate.
# Host side: the board imports the compact bms.prows and bms.pnames that
# tools/prows.py generates from these rows (test_prows.py checks they match).

USER = 0  # anyone with the PC tool
ADMIN = 1  # after the administrator password (SPEC 11)
FACTORY = 2  # production and calibration only

# (id, name, default, minimum, maximum, access)
TABLE = (
    # Acquire-and-protect cycle (issue 2: 100 ms).
    (1, "cycle_ms", 100, 20, 1000, FACTORY),
    # Current dead band: |I| below this is reported as 0 (SPEC 1: 0.5 A, `000` Q4).
    (2, "current_deadband_ma", 500, 0, 5000, ADMIN),
    # Rated capacity of a 51.2 V 100 Ah pack (`000` 3.3.2).
    (3, "rated_capacity_mah", 100000, 10000, 400000, FACTORY),
    # Second channel: the AFE's hardware protections sit beyond the firmware's
    # levels so they only act when the firmware does not. LiFePO4 cells are
    # damaged above ~3.8 V and below ~2.0 V (typical cell maker datasheets:
    # charge cut-off 3.65 V, discharge cut-off 2.5 V, absolute 2.0-3.8 V).
    # The hw_* ranges are what the BQ76952 can hold with the 250 uOhm shunt every
    # board has (drivers.bq76952, TRM SLUUBY2 13.6): OCC at least 2 x 2 mV = 16 A;
    # COV/CUV delays at most (2047 + 2) x 3.3 ms = 6.76 s, OCC/OCD1 (127 + 2) x
    # 3.3 ms = 425.7 ms, SCD (31 - 1) x 15 us = 450 us. Inside them every value is
    # programmed within one chip step, on the safe side.
    (4, "hw_cov_mv", 3750, 3600, 3900, FACTORY),
    (5, "hw_cov_delay_ms", 2000, 100, 6700, FACTORY),
    (6, "hw_cuv_mv", 2300, 2000, 2800, FACTORY),
    (7, "hw_cuv_delay_ms", 2000, 100, 6700, FACTORY),
    # Max charge 70 A and peak discharge 120-200 A for 15 s (`000` 3.3.2): the
    # hardware trips only beyond those.
    (8, "hw_occ_ma", 90000, 16000, 200000, FACTORY),
    (9, "hw_occ_delay_ms", 425, 10, 425, FACTORY),
    (10, "hw_ocd_ma", 220000, 50000, 300000, FACTORY),
    (11, "hw_ocd_delay_ms", 100, 10, 425, FACTORY),
    (12, "hw_scd_ma", 400000, 200000, 1000000, FACTORY),
    (13, "hw_scd_delay_us", 200, 15, 450, FACTORY),
    # Cell over voltage (COVP, alarm OV). Charge 56.0 V = 3.50 V/cell (`000` 3.3.2);
    # LiFePO4 cell makers: charge cut-off 3.65 V (EVE LF100 / CATL datasheets), so
    # P2 = 3.65 V, P1 = 3.60 V, alarm 3.55 V; release at 3.40 V (rested full cell).
    (14, "cell_ov_alarm_mv", 3550, 3000, 3900, ADMIN),
    (15, "cell_ov_alarm_rel_mv", 3450, 3000, 3900, ADMIN),
    (16, "cell_ov_alarm_delay_ms", 2000, 0, 600000, ADMIN),
    (17, "cell_ov_p1_mv", 3600, 3000, 3900, ADMIN),
    (18, "cell_ov_p1_rel_mv", 3400, 3000, 3900, ADMIN),
    (19, "cell_ov_p1_delay_ms", 1000, 0, 600000, ADMIN),
    (20, "cell_ov_p2_mv", 3650, 3000, 3900, ADMIN),
    (21, "cell_ov_p2_rel_mv", 3400, 3000, 3900, ADMIN),
    (22, "cell_ov_p2_delay_ms", 500, 0, 600000, ADMIN),
    # Cell under voltage (CUVP, alarm UV). Range 44.8 V = 2.80 V/cell (`000` 3.3.2) is P1;
    # cell makers' discharge cut-off 2.50 V is P2; alarm 2.90 V; release 3.00-3.10 V.
    (23, "cell_uv_alarm_mv", 2900, 2000, 3300, ADMIN),
    (24, "cell_uv_alarm_rel_mv", 3000, 2000, 3300, ADMIN),
    (25, "cell_uv_alarm_delay_ms", 2000, 0, 600000, ADMIN),
    (26, "cell_uv_p1_mv", 2800, 2000, 3300, ADMIN),
    (27, "cell_uv_p1_rel_mv", 3000, 2000, 3300, ADMIN),
    (28, "cell_uv_p1_delay_ms", 1000, 0, 600000, ADMIN),
    (29, "cell_uv_p2_mv", 2500, 2000, 3300, ADMIN),
    (30, "cell_uv_p2_rel_mv", 2900, 2000, 3300, ADMIN),
    (31, "cell_uv_p2_delay_ms", 500, 0, 600000, ADMIN),
    # Pack over voltage (POVP, alarm TOV). Range top 57.6 V (`000` 3.3.2) is P1; P2 =
    # 16 x 3.65 V; alarm 56.8 V (charge 56.0 V + 0.8 V); release at 55.2 V (below charge 56.0 V).
    (32, "pack_ov_alarm_mv", 56800, 48000, 62400, ADMIN),
    (33, "pack_ov_alarm_rel_mv", 56000, 48000, 62400, ADMIN),
    (34, "pack_ov_alarm_delay_ms", 2000, 0, 600000, ADMIN),
    (35, "pack_ov_p1_mv", 57600, 48000, 62400, ADMIN),
    (36, "pack_ov_p1_rel_mv", 55200, 48000, 62400, ADMIN),
    (37, "pack_ov_p1_delay_ms", 1000, 0, 600000, ADMIN),
    (38, "pack_ov_p2_mv", 58400, 48000, 62400, ADMIN),
    (39, "pack_ov_p2_rel_mv", 55200, 48000, 62400, ADMIN),
    (40, "pack_ov_p2_delay_ms", 500, 0, 600000, ADMIN),
    # Pack under voltage (PUVP, alarm TUV). Range bottom 44.8 V (`000` 3.3.2) is P1, 16 x
    # 2.5 V = 40.0 V is P2; alarm 46.4 V; release 48.0 V (low-voltage cut-off told to the
    # inverter, `000` 5.6).
    (41, "pack_uv_alarm_mv", 46400, 32000, 52000, ADMIN),
    (42, "pack_uv_alarm_rel_mv", 48000, 32000, 52000, ADMIN),
    (43, "pack_uv_alarm_delay_ms", 2000, 0, 600000, ADMIN),
    (44, "pack_uv_p1_mv", 44800, 32000, 52000, ADMIN),
    (45, "pack_uv_p1_rel_mv", 48000, 32000, 52000, ADMIN),
    (46, "pack_uv_p1_delay_ms", 1000, 0, 600000, ADMIN),
    (47, "pack_uv_p2_mv", 40000, 32000, 52000, ADMIN),
    (48, "pack_uv_p2_rel_mv", 46400, 32000, 52000, ADMIN),
    (49, "pack_uv_p2_delay_ms", 500, 0, 600000, ADMIN),
    # Charge over current (COCP, alarm COC). Max charge 70 A (`000` 3.3.2): alarm 72 A,
    # P1 75 A for 10 s, P2 85 A for 1 s (hw_occ 90 A sits beyond). For the protection levels
    # the release value is the current that must be under it when the retry delay
    # (oc_retry_ms) has run out; the FET is open so it is ~0.
    (50, "chg_oc_alarm_ma", 72000, 1000, 300000, ADMIN),
    (51, "chg_oc_alarm_rel_ma", 68000, 1000, 300000, ADMIN),
    (52, "chg_oc_alarm_delay_ms", 5000, 0, 600000, ADMIN),
    (53, "chg_oc_p1_ma", 75000, 1000, 300000, ADMIN),
    (54, "chg_oc_p1_rel_ma", 50000, 1000, 300000, ADMIN),
    (55, "chg_oc_p1_delay_ms", 10000, 0, 600000, ADMIN),
    (56, "chg_oc_p2_ma", 85000, 1000, 300000, ADMIN),
    (57, "chg_oc_p2_rel_ma", 50000, 1000, 300000, ADMIN),
    (58, "chg_oc_p2_delay_ms", 1000, 0, 600000, ADMIN),
    # Discharge over current (DOCP, alarm DOC), magnitude. Max discharge 100 A; peak
    # 101-119 A for 5 min and 120-200 A for 15 s (`000` 3.3.2): alarm 100 A after 5 s,
    # P1 101 A for 5 min, P2 120 A for 15 s; beyond 200 A the AFE's OCD (220 A, 100 ms).
    (59, "dsg_oc_alarm_ma", 100000, 1000, 500000, ADMIN),
    (60, "dsg_oc_alarm_rel_ma", 95000, 1000, 500000, ADMIN),
    (61, "dsg_oc_alarm_delay_ms", 5000, 0, 600000, ADMIN),
    (62, "dsg_oc_p1_ma", 101000, 1000, 500000, ADMIN),
    (63, "dsg_oc_p1_rel_ma", 50000, 1000, 500000, ADMIN),
    (64, "dsg_oc_p1_delay_ms", 300000, 0, 600000, ADMIN),
    (65, "dsg_oc_p2_ma", 120000, 1000, 500000, ADMIN),
    (66, "dsg_oc_p2_rel_ma", 50000, 1000, 500000, ADMIN),
    (67, "dsg_oc_p2_delay_ms", 15000, 0, 600000, ADMIN),
    # Charge high temperature on the cell NTCs (CHTP, alarm COT), deci-degC. `003` 0..45 C
    # (safer than `000`'s 50 C) is P1; `000`'s 50 C is P2; alarm 42 C; release 40/42 C.
    (68, "chg_ht_alarm_dc", 420, -400, 800, ADMIN),
    (69, "chg_ht_alarm_rel_dc", 400, -400, 800, ADMIN),
    (70, "chg_ht_alarm_delay_ms", 5000, 0, 600000, ADMIN),
    (71, "chg_ht_p1_dc", 450, -400, 800, ADMIN),
    (72, "chg_ht_p1_rel_dc", 400, -400, 800, ADMIN),
    (73, "chg_ht_p1_delay_ms", 5000, 0, 600000, ADMIN),
    (74, "chg_ht_p2_dc", 500, -400, 800, ADMIN),
    (75, "chg_ht_p2_rel_dc", 420, -400, 800, ADMIN),
    (76, "chg_ht_p2_delay_ms", 2000, 0, 600000, ADMIN),
    # Charge low temperature (CLTP, alarm CUT). LiFePO4 cell makers forbid charging below
    # 0 C (lithium plating), so P1 = 0 C (`003`) rather than `000`'s -5 C, which is P2;
    # alarm 5 C; release 3 C / 2 C.
    (77, "chg_lt_alarm_dc", 50, -400, 300, ADMIN),
    (78, "chg_lt_alarm_rel_dc", 80, -400, 300, ADMIN),
    (79, "chg_lt_alarm_delay_ms", 5000, 0, 600000, ADMIN),
    (80, "chg_lt_p1_dc", 0, -400, 300, ADMIN),
    (81, "chg_lt_p1_rel_dc", 30, -400, 300, ADMIN),
    (82, "chg_lt_p1_delay_ms", 5000, 0, 600000, ADMIN),
    (83, "chg_lt_p2_dc", -50, -400, 300, ADMIN),
    (84, "chg_lt_p2_rel_dc", 20, -400, 300, ADMIN),
    (85, "chg_lt_p2_delay_ms", 2000, 0, 600000, ADMIN),
    # Discharge high temperature (DHTP, alarm DOT): discharge up to 50 C (`000`, `003`) is
    # P1; cell makers' absolute discharge limit 60 C is P2; alarm 47 C; release 45/50 C.
    (86, "dsg_ht_alarm_dc", 470, -400, 900, ADMIN),
    (87, "dsg_ht_alarm_rel_dc", 440, -400, 900, ADMIN),
    (88, "dsg_ht_alarm_delay_ms", 5000, 0, 600000, ADMIN),
    (89, "dsg_ht_p1_dc", 500, -400, 900, ADMIN),
    (90, "dsg_ht_p1_rel_dc", 450, -400, 900, ADMIN),
    (91, "dsg_ht_p1_delay_ms", 5000, 0, 600000, ADMIN),
    (92, "dsg_ht_p2_dc", 600, -400, 900, ADMIN),
    (93, "dsg_ht_p2_rel_dc", 500, -400, 900, ADMIN),
    (94, "dsg_ht_p2_delay_ms", 2000, 0, 600000, ADMIN),
    # Discharge low temperature (DLTP, alarm DUT): `000` -10 C is P1 (the safer of `000`
    # -10 C and `003` -20 C), `003`'s -20 C is P2; alarm -5 C; release -7/-15 C.
    (95, "dsg_lt_alarm_dc", -50, -400, 300, ADMIN),
    (96, "dsg_lt_alarm_rel_dc", -20, -400, 300, ADMIN),
    (97, "dsg_lt_alarm_delay_ms", 5000, 0, 600000, ADMIN),
    (98, "dsg_lt_p1_dc", -100, -400, 300, ADMIN),
    (99, "dsg_lt_p1_rel_dc", -70, -400, 300, ADMIN),
    (100, "dsg_lt_p1_delay_ms", 5000, 0, 600000, ADMIN),
    (101, "dsg_lt_p2_dc", -200, -400, 300, ADMIN),
    (102, "dsg_lt_p2_rel_dc", -150, -400, 300, ADMIN),
    (103, "dsg_lt_p2_delay_ms", 2000, 0, 600000, ADMIN),
    # MOSFET over temperature (MOS OT) on the MOSFET NTCs. The manuals give no number; the
    # heat-sink NTC of a 100 A board: alarm 80 C, P1 90 C, P2 105 C (FET junctions are
    # rated 150-175 C; the sink runs 20-40 C below the junction); release 20 C lower.
    (104, "mos_ot_alarm_dc", 800, 300, 1500, ADMIN),
    (105, "mos_ot_alarm_rel_dc", 700, 300, 1500, ADMIN),
    (106, "mos_ot_alarm_delay_ms", 5000, 0, 600000, ADMIN),
    (107, "mos_ot_p1_dc", 900, 300, 1500, ADMIN),
    (108, "mos_ot_p1_rel_dc", 700, 300, 1500, ADMIN),
    (109, "mos_ot_p1_delay_ms", 5000, 0, 600000, ADMIN),
    (110, "mos_ot_p2_dc", 1050, 300, 1500, ADMIN),
    (111, "mos_ot_p2_rel_dc", 800, 300, 1500, ADMIN),
    (112, "mos_ot_p2_delay_ms", 1000, 0, 600000, ADMIN),
    # Ambient (board NTC) high temperature (EOTP, alarm EOT). Installation range of the
    # manuals' packs is about -10..50 C: alarm 55 C, P1 60 C, P2 70 C; release 50/55 C.
    (113, "amb_ht_alarm_dc", 550, 200, 1200, ADMIN),
    (114, "amb_ht_alarm_rel_dc", 500, 200, 1200, ADMIN),
    (115, "amb_ht_alarm_delay_ms", 5000, 0, 600000, ADMIN),
    (116, "amb_ht_p1_dc", 600, 200, 1200, ADMIN),
    (117, "amb_ht_p1_rel_dc", 500, 200, 1200, ADMIN),
    (118, "amb_ht_p1_delay_ms", 5000, 0, 600000, ADMIN),
    (119, "amb_ht_p2_dc", 700, 200, 1200, ADMIN),
    (120, "amb_ht_p2_rel_dc", 550, 200, 1200, ADMIN),
    (121, "amb_ht_p2_delay_ms", 2000, 0, 600000, ADMIN),
    # Ambient low temperature (EUTP, alarm EUT): alarm -15 C, P1 -20 C (`003`'s discharge
    # floor), P2 -30 C; release -10/-15 C.
    (122, "amb_lt_alarm_dc", -150, -500, 200, ADMIN),
    (123, "amb_lt_alarm_rel_dc", -100, -500, 200, ADMIN),
    (124, "amb_lt_alarm_delay_ms", 5000, 0, 600000, ADMIN),
    (125, "amb_lt_p1_dc", -200, -500, 200, ADMIN),
    (126, "amb_lt_p1_rel_dc", -100, -500, 200, ADMIN),
    (127, "amb_lt_p1_delay_ms", 5000, 0, 600000, ADMIN),
    (128, "amb_lt_p2_dc", -300, -500, 200, ADMIN),
    (129, "amb_lt_p2_rel_dc", -150, -500, 200, ADMIN),
    (130, "amb_lt_p2_delay_ms", 2000, 0, 600000, ADMIN),
    # Cell imbalance (max - min cell, mV; alarm IMB, protection IMB: stops charging). `004`:
    # failure when the difference exceeds 1 V (imb_fail_mv). LiFePO4 practice: alarm
    # 300 mV, P1 500 mV, P2 800 mV (30 s / 10 s: balancing is slow, no need to hurry).
    (131, "imb_alarm_mv", 300, 20, 1500, ADMIN),
    (132, "imb_alarm_rel_mv", 200, 20, 1500, ADMIN),
    (133, "imb_alarm_delay_ms", 30000, 0, 600000, ADMIN),
    (134, "imb_p1_mv", 500, 20, 1500, ADMIN),
    (135, "imb_p1_rel_mv", 300, 20, 1500, ADMIN),
    (136, "imb_p1_delay_ms", 30000, 0, 600000, ADMIN),
    (137, "imb_p2_mv", 800, 20, 1500, ADMIN),
    (138, "imb_p2_rel_mv", 400, 20, 1500, ADMIN),
    (139, "imb_p2_delay_ms", 10000, 0, 600000, ADMIN),
    # Over-current retry and lock-out (`000` 3.4: automatic recovery, locked after three
    # consecutive trips). The manuals give no delay; 30 s is the usual retry time of
    # LiFePO4 pack BMSes (long enough for an inverter to settle). A trip counts as
    # consecutive when it comes within oc_count_reset_ms of the previous release.
    (140, "oc_retry_ms", 30000, 1000, 600000, ADMIN),
    (141, "oc_lock_count", 3, 1, 10, ADMIN),
    (142, "oc_count_reset_ms", 60000, 1000, 3600000, ADMIN),
    # Firmware short-circuit level (SCP), a backup of the AFE's SCD (hw_scd_ma): above the
    # 200 A peak of `000` 3.3.2 and hw_ocd_ma, below hw_scd_ma; 0 ms = the first cycle it is seen.
    (143, "scp_ma", 300000, 150000, 1000000, FACTORY),
    (144, "scp_delay_ms", 0, 0, 1000, FACTORY),
    # Reversed polarity: P+/P- below -1 V (a battery or charger the wrong way round).
    (145, "rev_pol_mv", 1000, 100, 10000, FACTORY),
    # Sensor plausibility (SPEC 1, 3). A LiFePO4 cell reads 2.0-3.9 V in any state the
    # firmware may act on; outside 0.5..4.5 V the reading itself is broken (open sense
    # wire, dead input). NTC tables of 10 k NTCs cover -40..+120 C: beyond that the NTC is
    # open (reads extreme cold) or shorted (extreme heat).
    (146, "cell_phys_min_mv", 500, 0, 2000, FACTORY),
    (147, "cell_phys_max_mv", 4500, 3900, 6000, FACTORY),
    (148, "ntc_min_dc", -400, -600, -200, FACTORY),
    (149, "ntc_max_dc", 1200, 900, 1800, FACTORY),
    # Sum of the cells vs the AFE's stack measurement: 1 V (62 mV/cell, far beyond the
    # AFE's +-10 mV/cell accuracy, so only a broken sense line or divider trips it).
    (150, "stack_sum_tol_mv", 1000, 100, 5000, FACTORY),
    # How long a plausibility failure must persist before it latches (noise immunity).
    (151, "sensor_fail_delay_ms", 2000, 0, 60000, FACTORY),
    # Stuck reading: a cell (or the current) reads exactly the same across a cycle in which
    # the stack voltage stepped by sensor_stuck_step_mv or more (a load step: 0.5 mOhm/cell
    # makes a healthy cell move ~6 mV per 100 mV of stack), and is still unchanged
    # sensor_stuck_ms later.
    (152, "sensor_stuck_step_mv", 100, 20, 2000, FACTORY),
    (153, "sensor_stuck_ms", 10000, 1000, 600000, FACTORY),
    # AFE link lost: this many failed reads in a row (1 s at 100 ms; SPEC 1 'AFE not
    # answering', `000` sensor failure).
    (154, "afe_fail_reads", 10, 1, 1000, FACTORY),
    # MOSFET failure (`004`): current beyond 2 A (4x the dead band, above measurement
    # offset) through a FET that was commanded off, for 2 s.
    (155, "mos_fail_ma", 2000, 500, 20000, FACTORY),
    (156, "mos_fail_delay_ms", 2000, 100, 60000, FACTORY),
    # Pre-charge of the inverter's capacitors (`000` 3.2); typical inverter DC links
    # charge through the pre-charge resistor in well under 3 s.
    (157, "precharge_timeout_ms", 3000, 200, 30000, FACTORY),
    # Imbalance failure (`004`: 'over voltage difference among cells', delta > 1 V).
    (158, "imb_fail_mv", 1000, 100, 2000, ADMIN),
    (159, "imb_fail_delay_ms", 10000, 0, 600000, ADMIN),
    # Low SOC alarm (USOC, `003` 5.1): 10 %, released at 15 %; the low SOC cut-off told
    # to the inverter is 4 % = max DoD 96 % (`000` 5.6, 3.3.2).
    (160, "usoc_alarm_pct", 10, 0, 50, USER),
    (161, "usoc_alarm_rel_pct", 15, 1, 60, USER),
    (162, "soc_cutoff_pct", 4, 0, 30, USER),
    (163, "max_dod_pct", 96, 50, 100, USER),
    # Charge behaviour told to the inverter (`000` 5.6, 3.3.2): absorption 56.0 V, float
    # 54.6 V, re-charge 50 V, low-voltage cut-off 48.0 V; 50 A standard, 70 A max charge,
    # 100 A max discharge.
    (164, "charge_mv", 56000, 50000, 58400, ADMIN),
    (165, "float_mv", 54600, 50000, 58400, ADMIN),
    (166, "recharge_mv", 50000, 44800, 56000, ADMIN),
    (167, "low_cutoff_mv", 48000, 40000, 52000, ADMIN),
    (168, "std_current_ma", 50000, 1000, 200000, ADMIN),
    (169, "max_chg_ma", 70000, 1000, 200000, ADMIN),
    (170, "max_dsg_ma", 100000, 1000, 300000, ADMIN),
    # Buzzer (SPEC 5, `003` 5.2): disabled by default, enabled by the PC tool.
    (171, "buzzer_enable", 0, 0, 1, USER),
    # Sleep and wake (SPEC 10, `003` 2.4/5.5, `004` 6.3). Sleep voltage: the manuals give
    # no number; 3.0 V/cell is ~5 % SOC on the LiFePO4 curve (lib/bms/ocv.py), 30 min.
    (172, "sleep_cell_mv", 3000, 2500, 3300, ADMIN),
    (173, "sleep_delay_ms", 1800000, 10000, 86400000, ADMIN),
    # No _ms row goes beyond 6 days: ticks_diff on the 2**30 ms clock is valid below
    # 2**29 ms (6.2 days; defs.ticks).
    (174, "standby_sleep_ms", 86400000, 60000, 518400000, ADMIN),
    (175, "uv_sleep_delay_ms", 30000, 1000, 600000, ADMIN),
    (176, "uv_wake_interval_ms", 14400000, 60000, 86400000, ADMIN),
    (177, "uv_wake_tries", 10, 0, 100, ADMIN),
    (178, "charger_wake_mv", 48000, 45000, 60000, ADMIN),
    # Button (SPEC 6, `000` E, `003` 5.3): hold 3 s sleep/wake, 6-10 s reset.
    (179, "button_sleep_ms", 3000, 1000, 5000, FACTORY),
    (180, "button_reset_min_ms", 6000, 4000, 10000, FACTORY),
    (181, "button_reset_max_ms", 10000, 6000, 30000, FACTORY),
    # Board options: dry contacts 0 = `000` 3.3.3.1 (charge / discharge enable), 1 = `003`
    # 2.2 (fault / low-battery); heater 0 = none, 1 = heating film fitted (`002`).
    (182, "dry_contact_mapping", 0, 0, 1, FACTORY),
    (183, "heater", 0, 0, 1, FACTORY),
    # Pre-charge is over when the inverter side is within 2 V (~4 %) of the stack:
    # closing the discharge FET then drives < 2 V / 2 mOhm of inrush (FET + cable).
    (184, "precharge_margin_mv", 2000, 500, 10000, FACTORY),
    # estimate: SOC (issue 4, SPEC 9). The OCV is trusted only after a rest (LiFePO4
    # cells relax for 30 min to hours) and only on the steep ends of the curve
    # (lib/bms/ocv.py: <= 3.22 V is <= 14 %, >= 3.34 V is >= 96 %; the plateau
    # between moves 8 mV per 10 %, less than the AFE's error). Charge end (`000` Q1,
    # Q5): cut-off current C/20 at the charge voltage 56.0 V = 3.50 V/cell for 30 s,
    # or COVP. Capacity is learned over at least 50 % between two calibration points.
    (185, "soc_rest_ms", 1800000, 60000, 86400000, ADMIN),
    (186, "soc_ocv_low_mv", 3220, 2900, 3300, ADMIN),
    (187, "soc_ocv_high_mv", 3340, 3300, 3600, ADMIN),
    (188, "charge_end_ma", 5000, 500, 50000, ADMIN),
    (189, "charge_end_cell_mv", 3500, 3300, 3650, ADMIN),
    (190, "charge_end_delay_ms", 30000, 0, 600000, ADMIN),
    (191, "soh_min_span_pct", 50, 20, 100, ADMIN),
    # balance: passive bleed (`000` 3.2). Only where the curve shows SOC: cells at or
    # above 3.40 V (the knee); start 8 mV above the lowest cell, stop at 3 mV (AFE
    # noise is ~2 mV); at most 4 cells at once (0 = balancing off), bled cells at
    # least bal_min_gap_count apart (2: never two adjacent cells, the BQ76952's
    # host-controlled balancing rule); paused at 45 C (resume 40 C) on any cell or
    # board NTC (the bleed resistors heat the board).
    (192, "bal_min_cell_mv", 3400, 3000, 3600, ADMIN),
    (193, "bal_start_mv", 8, 2, 200, ADMIN),
    (194, "bal_stop_mv", 3, 1, 200, ADMIN),
    (195, "bal_cells_count", 4, 0, 16, ADMIN),
    (196, "bal_min_gap_count", 2, 1, 4, FACTORY),
    (197, "bal_max_dc", 450, 200, 800, ADMIN),
    (198, "bal_max_rel_dc", 400, 200, 800, ADMIN),
    # limits told to the inverter (SPEC 8/9): CCL tapers from 3.40 V on the highest
    # cell to ccl_min_ma at cell_ov_alarm_mv (then stops); DCL tapers from 3.10 V on
    # the lowest cell (~5 %) to 0 at cell_uv_p1_mv. Temperature derating: charge full
    # between 15 and 35 C, 0 at the CLTP/CHTP P1 levels; discharge full between 0 and
    # 45 C, 0 at DLTP/DHTP P1 (LiFePO4 datasheets: charge 0-45 C, discharge -20-60 C,
    # reduced current near the ends).
    (199, "chg_taper_cell_mv", 3400, 3200, 3650, ADMIN),
    (200, "ccl_min_ma", 5000, 0, 50000, ADMIN),
    (201, "dsg_taper_cell_mv", 3100, 2800, 3300, ADMIN),
    (202, "chg_derate_cold_dc", 150, -200, 400, ADMIN),
    (203, "chg_derate_hot_dc", 350, 0, 600, ADMIN),
    (204, "dsg_derate_cold_dc", 0, -300, 300, ADMIN),
    (205, "dsg_derate_hot_dc", 450, 0, 700, ADMIN),
    # Force-charge requests (Pylon 0x35C b5 "force charge I", b4 "II"): I at 10 %,
    # II at 5 % (the more urgent), both released at 15 %; full-charge request (b3)
    # when the SOC has not reached 97 % for 30 days; forced recharge after 2 days of
    # standby below recharge_mv (`003` 5.5).
    (206, "force_chg1_pct", 10, 1, 50, USER),
    (207, "force_chg2_pct", 5, 0, 49, USER),
    (208, "force_chg_rel_pct", 15, 2, 60, USER),
    (209, "full_req_pct", 97, 80, 100, USER),
    (210, "full_req_day_count", 30, 1, 365, USER),
    (211, "recharge_standby_ms", 172800000, 60000, 518400000, ADMIN),
    # inverter: (issue 7, SPEC 6/8) protocol ID (0 Victron/SMA/Studer/Sofar, 1 Pylon
    # family, 2 Schneider reserved) and RS485 baud when the board has no DIP (a DIP
    # overrides both; read at start); the bus (0 auto-detect, 1 CAN, 2 RS485); the CAN
    # period (Pylon/Deye/Sol-Ark 1 s; SMA at least 200 ms); presence: silent for
    # inv_lost_ms -> alarm and safe limits (Victron stops after ~3 s without 0x351, SMA
    # F952 after 60 s), silent for inv_sleep_ms -> power off (SPEC 8: 60 minutes).
    # (choices carry _count: the unit rule of the table; baud 0 = 9600, 1 = 115200)
    (212, "inv_protocol_count", 0, 0, 3, USER),
    (213, "inv_baud_high_count", 0, 0, 1, USER),
    (214, "inv_bus_count", 0, 0, 2, ADMIN),
    (215, "inv_can_period_ms", 1000, 200, 5000, ADMIN),
    (216, "inv_lost_ms", 15000, 3000, 600000, ADMIN),
    (217, "inv_sleep_ms", 3600000, 60000, 86400000, ADMIN),
    # balance by charge (issue 4, bms.balance): the board's bleed current (BQ76952
    # internal balancing: ~28 ohm switch + 2 x 20 ohm filter resistors = ~50 mA at
    # 3.4 V, TI E2E 967073; 0 = the charge rule off, the voltage rule only); a cell
    # starts when it owes bal_q_start_mah (~2 mV at the top) and bleeds what it owes
    # down to 0, also on the plateau, down to bal_q_min_cell_mv (~11 %); the excess
    # is measured at the top (highest cell >= bal_min_cell_mv) at 0..bal_meas_max_ma.
    (218, "bal_bleed_ma", 50, 0, 1000, FACTORY),
    (219, "bal_q_start_mah", 5, 1, 1000, ADMIN),
    (220, "bal_q_min_cell_mv", 3200, 2800, 3600, ADMIN),
    (221, "bal_meas_max_ma", 5000, 0, 50000, ADMIN),
    # Stuck temperature reading (SPEC 1 'values stuck', `000` 3.4 temperature sensor
    # failure: failure mode, manual intervention): a channel that reads the same while
    # another channel moved by ntc_stuck_move_dc since it last changed (5 C: far beyond
    # NTC tolerance and drift, as each channel is compared with its own earlier reading),
    # or, for the cell and MOSFET NTCs, while the current put ntc_stuck_heat_1c_ms of heat
    # into the pack (time at 1 C; I^2*R heat scales with (I / capacity)^2 as R ~ 1/Ah:
    # 600 s at 1 C is 3 kJ in a 0.5 mOhm 100 Ah cell, ~1.4 C on ~2.2 kJ/K, 14 steps of
    # the 0.1 C reading; engineering estimates, as in lib/sim/pack_model.py), is suspect;
    # still the same ntc_stuck_ms later (a glued NTC follows its cell within minutes) it
    # is an NTC fault.
    (222, "ntc_stuck_move_dc", 50, 10, 500, FACTORY),
    (223, "ntc_stuck_heat_1c_ms", 600000, 60000, 36000000, FACTORY),
    (224, "ntc_stuck_ms", 300000, 10000, 3600000, FACTORY),
    # Pylontech RS485 0x42 units (proto.pylon_rs485 put_pack): 0 = Pylontech's 0.1 A and
    # mAh (what real packs send and python-pylontech, FHEM and US2000B readers decode),
    # 1 = 10 mA and 10 mAh of Pace-based "Pylontech compatible" BMSs (PROTOCOLS 7).
    (225, "inv_rs485_units_count", 0, 0, 1, USER),
    # host protocol login (bms.auth, issue 13): a session ends after this long
    # without a request that uses it (IEC 62443-4-2 CR 2.6 remote session
    # termination after a configurable period of inactivity).
    (226, "auth_idle_ms", 600000, 60000, 3600000, ADMIN),
    # calibration (issue 13, SPEC 11 "calibrate voltage, current"): the gain the
    # acquire stage applies to the AFE's voltages (cells, stack, pack side) and to
    # its current, 1000000 = as read. +-5 %: a BQ76952's trimmed cell gain is within
    # ~+-0.2 % and its current within the shunt's tolerance (1 % parts), so a wider
    # correction is a wrong reference, not a board to correct. The current offset is
    # the estimator's (learned at zero current, set by the PC tool; the counters file).
    (227, "cal_v_gain_ppm", 1000000, 950000, 1050000, ADMIN),
    (228, "cal_i_gain_ppm", 1000000, 950000, 1050000, ADMIN),
    # parallel packs (SPEC 6, `003` 4.3: the address DIP, 0 = not set = automatic): the
    # link address of this pack, read at start like a DIP. 0 = automatic (dynamic: the
    # pack with nothing upstream is the master, each pack hands address + 1 down); 1 =
    # fixed master (never hands over; board.link_dip_master wins over the parameter);
    # 2..32 = a slave at that address whatever upstream hands it (it hands address + 1
    # down; with no master upstream it is cut off, as with a cut cable).
    (229, "link_fixed_address_count", 0, 0, 32, ADMIN),
    # CAN bit rate of the one bus the link, the inverter and the host protocol
    # share (issue 13, SPEC 11 "CAN baud rate"): 0 = 500 kbit/s (Pylontech, Victron,
    # SMA CAN manuals), 1 = 250 kbit/s. Read at start; the pack listens before it
    # sends and follows a bus it hears at the other rate (app.canrate, bms.canrate).
    (230, "can_bitrate_count", 0, 0, 1, ADMIN),
)
