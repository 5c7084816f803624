# Owns the pack state, the one "database" of a pack: every field has exactly
# one producer (named beside it); everything else only reads. Allocated once.
from array import array
from defs.snapshot import Snapshot
from defs import modes, leds
from defs.events import Events


class PackState:
    def __init__(self):
        self.snap = Snapshot()  # acquire
        self.afe_errors = 0  # acquire: failed reads in a row
        self.acquire_us = 0  # acquire: duration of the last AFE read
        self.mode = modes.STANDBY  # control
        self.chg_fet = False  # control: commanded charge FET
        self.dsg_fet = False  # control: commanded discharge FET
        self.pchg_fet = False  # control: commanded pre-charge FET
        self.current_ma = 0  # control: measured current after the dead band
        self.soc_pct = 0  # estimate
        self.soc_valid = False  # estimate: False until the first good read
        # estimate: (issue 4; bms.soc) the SOC in ppm behind soc_pct, whether the last
        # charge ended (100 % may be shown), the learned full-charge capacity and SOH,
        # the current offset learned at zero current, and the lifetime counters (the
        # store saves and restores these; soc_restore_ppm >= 0 set before the first
        # cycle is the SOC to start from after a reset instead of the OCV guess)
        self.soc_ppm = 0
        self.soc_full = False
        self.soc_restore_ppm = -1
        self.fcc_mah = 0  # 0 until restored or learned: the rated capacity is used
        self.soh_pct = 100
        self.i_offset_ma = 0
        self.cycles = 0
        self.chg_ah = 0
        self.dsg_ah = 0
        self.chg_wh = 0
        self.dsg_wh = 0
        # limits: (bms.limits) what the inverter is told: charge voltage limit (never 0),
        # charge and discharge current limits, discharge voltage limit, force-charge
        # request bits (defs.codes.FC_*)
        self.cvl_mv = 0
        self.ccl_ma = 0
        self.dcl_ma = 0
        self.dvl_mv = 0
        self.force_charge = 0
        # balance: (bms.balance) bit c set = cell c is being bled
        self.balance_mask = 0
        self.alarms = 0  # protect: bits of codes.ALARMS
        self.protections = 0  # protect: bits of codes.PROTECTIONS
        self.faults = 0  # protect: bits of codes.FAULTS
        self.hw_alerts = 0  # control: latched AFE alert bits (defs.afe)
        self.leds = array("B", [leds.OFF] * leds.N_LEDS)  # indicate
        self.buzzer = leds.OFF  # indicate
        self.safe_reason = None  # runner: set when the pack was forced safe
        # button: the last classified press (bms.button.*) and a counter that
        # grows with every press, so readers see each action once
        self.button_action = 0
        self.button_count = 0
        # control: an LED sequence being played (bms.indicate.SEQ_*) and its start
        self.seq = 0
        self.seq_start_ms = 0
        self.precharge_failed = False  # control: the last pre-charge did not finish
        self.sleep_reason = 0  # control: bms.sleep.BY_* while asleep, else 0
        self.contacts = 0  # control: dry contacts closed, bit 0 = contact 1
        # protect: (bms.protect) over-current lock-out bits (LOCK_CHG 1, LOCK_DSG 2),
        # AFE alert bits whose release rule holds (control clears them in the
        # AFE and zeroes this), the event ring, and a counter that a PC command
        # increments to ask for a manual reset (the button reset is seen directly)
        self.lockout = 0
        self.hw_clear = 0
        self.events = Events(64)
        self.protect_reset_req = 0
        # store: (app.persist, lib/store) the deep-discharge flag (the lowest cell
        # reached cell_uv_p2_mv; cleared when charging brings it back to
        # cell_uv_alarm_rel_mv), firmware starts, and protection events dropped
        # from the ring before the event history got them, flash errors seen.
        self.deep_discharge = False
        self.boots = 0
        self.events_lost = 0
        self.store_errors = 0
        # inverter: (app.inverter) protocol ID and RS485 baud read at start, the bus the
        # inverter was heard on (0 none yet, 1 CAN, 2 RS485), requests/frames heard, bad
        # requests, ms since the inverter was last heard (0 until it was first heard),
        # the presence alarm (silent inv_lost_ms: safe limits sent) and the power-off
        # request (silent inv_sleep_ms; control: bms.sleep.BY_INVERTER)
        self.inverter_protocol = 0
        self.inverter_baud = 9600
        self.inverter_bus = 0
        self.inverter_frames = 0
        self.inverter_errors = 0
        self.inverter_silent_ms = 0
        self.inverter_lost = False
        self.inverter_sleep_req = False
        # link: (app.link, bms.parallel) role (parallel.NONE/SINGLE/MASTER/SLAVE), address
        # (1 master, 2.. slaves, 0 none), FETs held open on joining (control obeys),
        # slave cut off from its master, packs online (master), parallel mode (M/S on)
        self.link_role = 0
        self.link_address = 0
        self.link_hold = False
        self.link_orphan = False
        self.link_online = 0
        self.link_parallel = False
        # link: parallel failure as this pack sees it (master: a pack offline or an
        # address conflict; slave: cut off from its master); the link alarm stages
        # (app.link.LinkAlarm) show it as the PARALLEL alarm in st.alarms
        self.link_failure = False
