# Owns the composition of one pack's firmware: the pack state, the services in
# their order, the safe state every runner falls back to on an error, and the
# boot-loop guard: after app.persist.MAX_FAILED_STARTS failed starts in a row
# the pack is held safe (FETs off, ALM on) with only the button running, until
# a reset press releases it. A store whose flash fails at start is dropped (the
# pack runs without it) and the STORE fault says so.
from bms.state import PackState
from bms.params import Params, CYCLE_MS
from bms import hwlimits, indicate, button
from app.service import Cycle, Service
from app.acquire import Acquire
from app.protect import Protect
from app.control import Control
from app.system import System
from app.link import Link, LinkAlarm
from app.estimate import Estimate
from app.balance import Balance
from app.indicate import Indicate
from app.button import Button
from app.inverter import Inverter, master_test as _master

FET_OFF_TRIES = 5  # set_fets(False...) attempts in the safe state before the AFE fault


class App:
    def __init__(self, board, params=None, store=None, clock=None):
        self.board = board
        self.params = params if params is not None else Params()
        self.state = PackState()
        self.held = False  # the boot-loop guard holds the pack (only the button runs)
        self.restart = None  # main.py: machine.reset, called when a held pack is released
        # store: (lib/store) the stored parameters replace the given ones; without
        # a usable file the given ones (or defaults) are written as the first copy;
        # the counters are loaded and this start counted before anything can fail
        self.store = store
        self.persist = None
        if store is not None:
            from app.persist import Persist, MAX_FAILED_STARTS
            try:
                self.persist = Persist(self, store, clock, getattr(board, "pack_address", 0))
            except OSError as e:
                self._store_failed(e)
            if self.persist is not None and self.persist.failed_starts > MAX_FAILED_STARTS:
                self._hold()
                return
        afe = board.afe
        afe.program_protections(hwlimits.from_params(self.params))
        # link: the parallel-packs service (roles, addresses, the master's pack table)
        self.link = Link(self.state, self.params, board)
        self.system = System(self.state, self.params, self.link)
        self.cycle = Cycle("cycle", self.params.v[CYCLE_MS], (
            Acquire(afe, self.state, board.ticks_us),
            LinkAlarm(self.state, False),  # link: protect sees its own alarms only
            Protect(self.state, self.params),  # protect: between acquire and control
            LinkAlarm(self.state, True),  # link: the PARALLEL alarm merged into st.alarms
            Control(afe, self.state, self.params, getattr(board, "contacts", None)),
            Estimate(self.state, self.params),  # estimate: SOC, SOH, counters, limits
            Balance(afe, self.state, self.params),  # balance: cells to bleed
            self.system,  # the view the inverter is told about
        ))
        # the board's own services (a bench board's pack physics) run first
        self.services = list(board.services) + [
            self.cycle,
            Indicate(self.state, board.leds, getattr(board, "buzzer", None), self.params)]
        # the reset button, on boards that have one (after indicate: tools and
        # gates find indicate at services[1] on boards without services)
        if getattr(board, "button", None) is not None:
            self.services.append(Button(self.state, board.button, self.params))
        # inverter: CAN frames / RS485 server on the master (before link, which then
        # hands it the CAN frames that are not link frames)
        self.inverter = Inverter(self.state, self.params, self.system.view, getattr(board, "can", None),
                                 getattr(board, "link_in", None), getattr(board, "dip", None),
                                 _master(self.state))
        self.inverter.poll_can = False
        self.link.listeners.append(self.inverter)
        if self.link.link_in is not None:  # link owns Link IN: Pylontech requests are handed over
            self.inverter.poll_link = False
            self.link.rs485_listeners.append(self.inverter)
        self.inverter.server.packs = self.link  # 0x42 for another pack: the link's table
        self.services.append(self.inverter)
        self.services.append(self.link)  # link: after indicate (services[1] stays indicate)
        # store: restores counters and lock-outs now, then logs and saves (last)
        if self.persist is not None:
            try:
                self.persist.attach()
                self.services.append(self.persist)
            except OSError as e:
                self._store_failed(e)

    def _store_failed(self, exc):
        print("bms: storage failed, running without it:", exc)
        self.store = None
        self.persist = None
        self.state.store_failures += 1  # protect latches the STORE fault

    def _hold(self):
        self.held = True
        self.services = []
        if getattr(self.board, "button", None) is not None:
            self.services.append(Button(self.state, self.board.button, self.params))
        self.services.append(Held(self))
        self.safe_state("start failures")

    def safe_state(self, reason):
        """FETs open, ALM on: what the pack does when the firmware itself fails.
        Each step is tried even if an earlier one raises."""
        st = self.state
        st.safe_reason = reason
        st.chg_fet = st.dsg_fet = st.pchg_fet = False
        try:
            self._fets_off()
        finally:
            st.leds[indicate.ALM] = indicate.ON
            self.board.leds.set(indicate.ALM, 1)

    def _fets_off(self):
        """set_fets(False...) until the AFE takes it (False: the I2C transfer
        failed), at most FET_OFF_TRIES times, each failure counted; if it never
        goes through, protect latches the AFE fault."""
        st = self.state
        afe = self.board.afe
        n = 0
        while afe.set_fets(False, False, False) is False:
            st.fet_errors += 1
            n += 1
            if n >= FET_OFF_TRIES:
                st.fet_off_failed = True
                cycle = getattr(self, "cycle", None)  # a held pack has none
                for stage in cycle.stages if cycle is not None else ():
                    if hasattr(stage, "prot"):  # the fault now, the cycle has stopped
                        stage.prot.update(self.board.ticks_us() // 1000)
                return


class Held(Service):
    """The held pack's service: a reset press (bms.button.RESET) clears the
    failed-start count and restarts the board (app.restart)."""
    name = "held"
    period_ms = 100

    def __init__(self, app):
        self.app = app
        self._count = app.state.button_count

    def tick(self, now_ms):
        st = self.app.state
        if st.button_count != self._count:
            self._count = st.button_count
            if st.button_action == button.RESET:
                self.app.persist.clear_failed_starts()
                if self.app.restart is not None:
                    self.app.restart()
