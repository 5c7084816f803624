# Owns the pack state, the one "database" of a pack: every field has exactly
# one writer, the module named first in the comment beside it ("# app.control:
# ..."); everything else only reads. "in place" after the module: the object is
# made here and filled in place by it; "none yet": no module writes it yet.
# host_tests/test_one_writer.py checks every field against this. Allocated once.
from array import array
from defs.snapshot import Snapshot
from defs import modes, leds
from defs.events import Events


class PackState:
    def __init__(self):
        self.snap = Snapshot()  # app.acquire in place
        self.afe_errors = 0  # app.acquire: failed reads in a row
        self.acquire_us = 0  # app.acquire: duration of the last AFE read
        self.mode = modes.STANDBY  # app.control
        self.chg_fet = False  # app.control: commanded charge FET
        self.dsg_fet = False  # app.control: commanded discharge FET
        self.pchg_fet = False  # app.control: commanded pre-charge FET
        self.current_ma = 0  # app.control: measured current after the dead band
        self.soc_pct = 0  # bms.soc
        self.soc_valid = False  # app.estimate: False until the first good read
        # the estimate stage's estimator (issue 4): the SOC in ppm behind soc_pct, whether the last
        # charge ended (100 % may be shown), the learned full-charge capacity and SOH,
        # the current offset learned at zero current, and the lifetime counters (the
        # store saves and restores these; soc_restore_ppm >= 0 set before the first
        # cycle is the SOC to start from after a reset instead of the OCV guess)
        self.soc_ppm = 0  # bms.soc
        self.soc_full = False  # bms.soc
        self.soc_restore_ppm = -1  # bms.soc
        self.fcc_mah = 0  # bms.soc: 0 until restored or learned: the rated capacity is used
        self.soh_pct = 100  # bms.soc
        self.i_offset_ma = 0  # bms.soc
        self.cycles = 0  # bms.soc
        self.chg_ah = 0  # bms.soc
        self.dsg_ah = 0  # bms.soc
        self.chg_wh = 0  # bms.soc
        self.dsg_wh = 0  # bms.soc
        # what the inverter is told: charge voltage limit (never 0),
        # charge and discharge current limits, discharge voltage limit, force-charge
        # request bits (defs.codes.FC_*)
        self.cvl_mv = 0  # bms.limits
        self.ccl_ma = 0  # bms.limits
        self.dcl_ma = 0  # bms.limits
        self.dvl_mv = 0  # bms.limits
        self.force_charge = 0  # bms.limits
        self.balance_mask = 0  # app.balance: bit c set = cell c is being bled (bms.balance)
        self.alarms = 0  # bms.protect: bits of codes.ALARMS
        self.protections = 0  # bms.protect: bits of codes.PROTECTIONS
        self.faults = 0  # bms.protect: bits of codes.FAULTS
        self.hw_alerts = 0  # app.control: latched AFE alert bits (defs.afe)
        self.leds = array("B", [leds.OFF] * leds.N_LEDS)  # app.indicate in place
        self.buzzer = leds.OFF  # app.indicate
        self.safe_reason = None  # app.app: set when the pack was forced safe
        # the last classified press (bms.button.*) and a counter that
        # grows with every press, so readers see each action once
        self.button_action = 0  # app.button
        self.button_count = 0  # app.button
        # the presses the protect stage (their one consumer) passes on to control
        self.reset_presses = 0  # app.protect: RESET presses (a protection reset done)
        self.sleep_wake_presses = 0  # app.protect: SLEEP_WAKE presses
        # an LED sequence started (bms.indicate.SEQ_*) and its start (indicate
        # plays it, or the link's forming flicker if that started later)
        self.seq = 0  # app.control
        self.seq_start_ms = 0  # app.control
        self.precharge_failed = False  # app.control: the last pre-charge did not finish
        self.sleep_reason = 0  # app.control: bms.sleep.BY_* while asleep, else 0
        self.contacts = 0  # app.control: dry contacts closed, bit 0 = contact 1
        # over-current lock-out bits (LOCK_CHG 1, LOCK_DSG 2), the AFE alert bits
        # whose release rule holds and a counter of these requests (control clears
        # them in the AFE once per increment), the event ring, and a counter the
        # PC tool (app.hostctl: an installer session) increments to ask for a manual reset
        self.lockout = 0  # bms.protect
        self.hw_clear = 0  # bms.protect
        self.hw_clear_req = 0  # bms.protect
        self.events = Events(64)  # bms.protect in place
        self.protect_reset_req = 0  # app.hostctl
        # the store (lib/store): the deep-discharge flag (the lowest cell
        # reached cell_uv_p2_mv; cleared when charging brings it back to
        # cell_uv_alarm_rel_mv), firmware starts, and protection events dropped
        # from the ring before the event history got them, flash errors seen.
        self.deep_discharge = False  # app.persist
        self.boots = 0  # app.persiststart
        self.events_lost = 0  # app.persist
        self.store_errors = 0  # app.persist
        self.store_failures = 0  # app.app: the store failed at start (protect latches STORE)
        # failed set_fets transfers in the safe state; the FETs could not be
        # commanded off at all (protect latches the AFE fault)
        self.fet_errors = 0  # app.control
        self.fet_off_failed = False  # app.control
        # protocol ID and RS485 baud read at start, the bus the
        # inverter was heard on (0 none yet, 1 CAN, 2 RS485), requests/frames heard, bad
        # requests, ms since the inverter was last heard (0 until it was first heard),
        # the presence alarm (silent inv_lost_ms: safe limits sent) and the power-off
        # request (silent inv_sleep_ms; control: bms.sleep.BY_INVERTER)
        self.inverter_protocol = 0  # app.inverter
        self.inverter_baud = 9600  # app.inverter
        self.inverter_bus = 0  # app.inverter
        self.inverter_frames = 0  # app.inverter
        self.inverter_errors = 0  # app.inverter
        self.inverter_silent_ms = 0  # app.inverter
        self.inverter_lost = False  # app.inverter
        self.inverter_sleep_req = False  # app.inverter
        # the CAN bit rate (bms.canrate): kbit/s the controller runs at in normal
        # mode, 0 while it still listens (sends nothing); True when that is the
        # rate heard on the bus, not the stored can_bitrate_count
        self.can_kbps = 0  # app.canrate
        self.can_followed = False  # app.canrate
        # (bms.parallel) role (parallel.NONE/SINGLE/MASTER/SLAVE), address
        # (1 master, 2.. slaves, 0 none), FETs held open on joining (control obeys),
        # slave cut off from its master, packs online (master), parallel mode (M/S on)
        self.link_role = 0  # app.link
        self.link_address = 0  # app.link
        self.link_hold = False  # app.link
        self.link_orphan = False  # app.link
        self.link_online = 0  # app.link
        self.link_parallel = False  # app.link
        # the address is fixed (parameter link_fixed_address_count or the DIP
        # master), not handed down; an address another pack also uses (heard
        # within bms.parallel.OFFLINE_MS; 0 none)
        self.link_fixed = False  # app.link
        self.link_conflict = 0  # app.link
        # parallel failure as this pack sees it (master: a pack offline;
        # slave: cut off from its master; either: an address conflict;
        # bms.protect shows it as the PARALLEL alarm), and the forming flicker (SEQ_PARALLEL) started
        # at link_flicker_ms, once per link_flicker_count (indicate plays it)
        self.link_failure = False  # app.link
        self.link_flicker_ms = 0  # app.link
        self.link_flicker_count = 0  # app.link
        self.link_refused = 0  # app.link: link commands refused (a protection reset needs the button)
        # the PC tool's requests (app.hostctl, installer session): FETs it holds open
        # (bit 0 charge, bit 1 discharge; control obeys, 0 releases), a calibration
        # (which: bms.soc.SET_*, the value, a counter; the estimate stage applies
        # each once and notes it in cal_done), sleep (1) or wake (2) by a counter
        self.host_fet_off = 0  # app.hostctl
        # FETs control holds open on request, whatever the protections allow (bit 0
        # charge, bit 1 discharge): the PC tool's, all in maintenance mode; the
        # limits the inverter is told are 0 for them
        self.fets_held = 0  # app.control
        # requests to this pack's unit on the host protocol, any port (a wrapping
        # count): activity on the PC port, which wakes a sleeping pack (SPEC 10)
        self.host_requests = 0  # app.host
        self.cal_what = 0  # app.hostctl
        self.cal_value = 0  # app.hostctl
        self.cal_req = 0  # app.hostctl
        self.cal_done = 0  # app.estimate
        self.host_sleep_cmd = 0  # app.hostctl
        self.host_sleep_req = 0  # app.hostctl
        # an update session is open (UDS or Modbus; the firmware update, issue 15): control
        # holds both FETs open, the limits send CCL = DCL = 0 while it lasts
        self.update_hold = False  # app.updsess
