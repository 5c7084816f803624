# Owns the control stage: mode, every output decision and every AFE write.
# Each cycle: clear the AFE alerts the protect stage released (once per
# st.hw_clear_req), act on the button presses the protect stage passes on
# (st.sleep_wake_presses, st.reset_presses: sleep/wake, reset sequence), apply the sleep and wake rules
# (bms.sleep), then the FETs: each follows the protections and faults that
# block it (defs.codes), and the discharge FET only closes after a finished
# pre-charge (`000` 3.2, `004`: its failure is a fault): the pre-charge FET
# charges the inverter's input capacitors through its resistor until the pack
# side is within precharge_margin_mv of the stack; taking longer than
# precharge_timeout_ms fails it (st.precharge_failed: protect latches the
# PRECHARGE fault). Then the dry contacts (bms.outputs). In maintenance mode
# (the forced-update jumper fitted at boot) both FETs stay open.
from defs.const import const
from defs import codes, modes
from defs.ticks import ticks_diff
from bms import indicate, outputs, parallel, sleep
from bms import params as P
from store import counters as C

FET_OFF_TRIES = const(5)  # set_fets(False...) attempts in the safe state before the AFE fault
_UV = codes.mask(codes.PROTECTIONS, ("CUVP", "PUVP"))
_LOW_BATTERY = codes.mask(codes.ALARMS, ("UV", "TUV", "USOC"))


def safe_fets(st, afe):
    """The safe state's FETs (app.App.safe_state): commanded off, and
    set_fets(False...) until the AFE takes it (False: the I2C transfer
    failed), at most FET_OFF_TRIES times, each failure counted. True when it
    never went through (protect then latches the AFE fault)."""
    st.chg_fet = st.dsg_fet = st.pchg_fet = False
    n = 0
    while afe.set_fets(False, False, False) is False:
        st.fet_errors += 1
        n += 1
        if n >= FET_OFF_TRIES:
            st.fet_off_failed = True
            return True
    return False


class Control:
    def __init__(self, afe, state, params, contacts=None, maintenance=False):
        """maintenance: the board booted with the forced-update jumper fitted
        (app.compose): both FETs stay open for the whole run."""
        self.afe = afe
        self.maintenance = maintenance
        self.state = state
        self.params = params
        self.contacts = contacts
        v = params.v
        self.sleep = sleep.SleepRules(v[P.SLEEP_CELL_MV], v[P.SLEEP_DELAY_MS], v[P.STANDBY_SLEEP_MS],
                                      v[P.UV_SLEEP_DELAY_MS], v[P.UV_WAKE_INTERVAL_MS],
                                      v[P.UV_WAKE_TRIES], v[P.CHARGER_WAKE_MV])
        self._pre_margin_mv = v[P.PRECHARGE_MARGIN_MV]
        self._pre_timeout_ms = v[P.PRECHARGE_TIMEOUT_MS]
        self._pre_since = -1  # when the running pre-charge started; -1: none runs
        self._hw_clear_seen = state.hw_clear_req
        self._sleep_wake_seen = state.sleep_wake_presses
        self._reset_seen = state.reset_presses
        self._host_sleep_seen = state.host_sleep_req
        self._host_requests_seen = state.host_requests
        self._contacts = -1

    def save(self, v):
        """The UV wake-up tries and, while asleep, why, into the counters array v."""
        v[C.UV_TRIES] = self.sleep.uv_tries
        v[C.SLEEP_REASON] = self.sleep.reason if self.state.sleep_reason else 0

    def restore(self, v):
        self.sleep.uv_tries = v[C.UV_TRIES]
        self.sleep.reason = v[C.SLEEP_REASON]

    def tick(self, now_ms):
        st = self.state
        if st.hw_clear_req != self._hw_clear_seen:
            # protect: the firmware's release rule of these AFE alerts holds
            self._hw_clear_seen = st.hw_clear_req
            self.afe.clear_alerts(st.hw_clear)
        st.hw_alerts = self.afe.read_alerts()
        snap = st.snap
        if not snap.reads:
            return
        deadband = self.params.v[P.CURRENT_DEADBAND_MA]
        i_ma = snap.current_ma
        st.current_ma = i_ma if (i_ma >= deadband or i_ma <= -deadband) else 0
        # this snapshot shows the charger side only if it was read with the FETs open
        fets_were_open = not (st.chg_fet or st.dsg_fet or st.pchg_fet)
        if st.sleep_wake_presses != self._sleep_wake_seen or st.reset_presses != self._reset_seen:
            self._buttons(now_ms)
        if st.host_sleep_req != self._host_sleep_seen:
            self._host_sleep(now_ms)
        pc = st.host_requests != self._host_requests_seen  # activity on the PC port (SPEC 10)
        self._host_requests_seen = st.host_requests
        if st.sleep_reason:
            if fets_were_open and self.sleep.wake(now_ms, snap.pack_mv, snap.stack_mv, False, pc):
                self._wake(now_ms)
        elif st.inverter_sleep_req:
            # the inverter has been silent for inv_sleep_ms (60 min, `004` 6.3)
            self._go_to_sleep(self.sleep.command(sleep.BY_INVERTER, now_ms), now_ms)
        else:
            # communication: an inverter being heard, or packs in parallel
            comm = (st.inverter_bus != 0 and not st.inverter_lost) or st.link_parallel \
                or st.link_role == parallel.SLAVE
            why = self.sleep.check(now_ms, snap.min_cell_mv, st.current_ma, (st.protections & _UV) != 0,
                                   (st.protections & ~_UV) != 0 or st.faults != 0, st.balance_mask != 0, comm)
            if why:
                self._go_to_sleep(why, now_ms)
        if st.sleep_reason:
            st.mode = modes.SLEEP
            self._fets(False, False, False)
        else:
            st.mode = modes.mode_from_current(i_ma, deadband)
            if st.faults:
                st.mode = modes.FAILURE
            elif st.protections:
                st.mode = modes.PROTECTION
            hold = st.link_hold  # link: a joiner > 1 V off the system stays off the bus
            # held open: by the PC tool; both in maintenance mode and by an update
            off = 3 if self.maintenance or st.update_hold else st.host_fet_off
            st.fets_held = off
            self._drive(now_ms, codes.chg_allowed(st) and not hold and not off & 1,
                        codes.dsg_allowed(st) and not hold and not off & 2)
        self._outputs()

    def _buttons(self, now_ms):
        """A new press passed on by the protect stage: sleep/wake, or reset."""
        st = self.state
        if st.sleep_wake_presses != self._sleep_wake_seen:
            self._sleep_wake_seen = st.sleep_wake_presses
            if st.sleep_reason:
                self._wake(now_ms)
            else:
                self._go_to_sleep(self.sleep.command(sleep.BY_BUTTON, now_ms), now_ms)
        elif st.reset_presses != self._reset_seen:
            self._reset_seen = st.reset_presses
            # the protect stage resets protections; here: a new pre-charge try,
            # awake, and the all-on sequence (`003` 5.3)
            st.precharge_failed = False
            self._pre_since = -1
            if st.sleep_reason:
                self._wake(now_ms)
            self._sequence(indicate.SEQ_RESET, now_ms)

    def _host_sleep(self, now_ms):
        """The PC tool's sleep (1) or wake (2) command: a new st.host_sleep_req."""
        st = self.state
        self._host_sleep_seen = st.host_sleep_req
        if st.host_sleep_cmd == 2 and st.sleep_reason:
            self._wake(now_ms)
        elif st.host_sleep_cmd == 1 and not st.sleep_reason:
            self._go_to_sleep(self.sleep.command(sleep.BY_COMMAND, now_ms), now_ms)

    def _go_to_sleep(self, why, now_ms):
        self.state.sleep_reason = why
        self._pre_since = -1
        self._sequence(indicate.SEQ_POWER_OFF, now_ms)

    def _wake(self, now_ms):
        self.state.sleep_reason = sleep.NONE
        self._sequence(indicate.SEQ_WAKE, now_ms)

    def _sequence(self, seq, now_ms):
        st = self.state
        st.seq = seq
        st.seq_start_ms = now_ms

    def _drive(self, now_ms, chg, dsg):
        """FET commands; the discharge FET closes only after a pre-charge."""
        st = self.state
        pchg = False
        if not dsg:
            self._pre_since = -1
        elif not st.dsg_fet:
            if self._pre_since < 0 and not st.precharge_failed:
                self._pre_since = now_ms
            if self._pre_since >= 0 and st.snap.stack_mv - st.snap.pack_mv <= self._pre_margin_mv:
                self._pre_since = -1  # done: the discharge FET closes
            elif self._pre_since >= 0 and ticks_diff(now_ms, self._pre_since) >= self._pre_timeout_ms:
                st.precharge_failed = True  # protect latches the PRECHARGE fault
                self._pre_since = -1
                dsg = False
            else:
                pchg = True
                dsg = False
        self._fets(chg, dsg, pchg)

    def _fets(self, chg, dsg, pchg):
        st = self.state
        if chg != st.chg_fet or dsg != st.dsg_fet or pchg != st.pchg_fet:
            st.chg_fet = chg
            st.dsg_fet = dsg
            st.pchg_fet = pchg
            self.afe.set_fets(chg, dsg, pchg)

    def _outputs(self):
        st = self.state
        levels = outputs.contact_levels(self.params.v[P.DRY_CONTACT_MAPPING], st.chg_fet, st.dsg_fet,
                                        (st.protections | st.faults) != 0, (st.alarms & _LOW_BATTERY) != 0)
        st.contacts = levels
        if self.contacts is not None and levels != self._contacts:
            self._contacts = levels
            self.contacts.set(0, levels & 1)
            self.contacts.set(1, levels & 2)
