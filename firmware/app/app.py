# Owns the composition of one pack's firmware: the pack state, the services
# (named attributes: app.cycle and its stages app.protect, app.control,
# app.estimate; app.indicate, app.button, app.inverter, app.link, app.persist)
# and their run order in app.services, the safe state every runner falls back to on an error, and the
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
from app.control import Control, safe_fets
from app.system import System
from app.link import Link
from app.estimate import Estimate
from app.balance import Balance
from app.indicate import Indicate
from app.button import Button
from app.inverter import Inverter, master_test as _master
from proto import link as link_proto, pylon_can



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
        self.protect = self.control = self.estimate = self.indicate = self.button = None
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
        self.protect = Protect(self.state, self.params)  # between acquire and control
        self.control = Control(afe, self.state, self.params, getattr(board, "contacts", None))
        self.estimate = Estimate(self.state, self.params)  # SOC, SOH, counters, limits
        self.cycle = Cycle("cycle", self.params.v[CYCLE_MS], (
            Acquire(afe, self.state, board.ticks_us),
            self.protect,
            self.control,
            self.estimate,  # after protect: the USOC alarm uses last cycle's SOC
            Balance(afe, self.state, self.params),  # balance: cells to bleed
            self.system,  # the view the inverter is told about
        ))
        self.indicate = Indicate(self.state, board.leds, getattr(board, "buzzer", None), self.params)
        # the board's own services (a bench board's pack physics) run first
        self.services = list(board.services) + [self.cycle, self.indicate]
        # the reset button, on boards that have one
        if getattr(board, "button", None) is not None:
            self.button = Button(self.state, board.button, self.params)
            self.services.append(self.button)
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
        self.services.append(self.link)
        # the CAN port delivers only what a service reads: link frames and the
        # inverter's (an MCP2515 delivers nothing until its filters are set)
        if self.inverter.can is not None:
            self.inverter.can.set_filters((link_proto.CAN_FILTER, pylon_can.CAN_FILTER))
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
            self.button = Button(self.state, self.board.button, self.params)
            self.services.append(self.button)
        self.services.append(Held(self))
        self.safe_state("start failures")

    def safe_state(self, reason):
        """FETs open, ALM on: what the pack does when the firmware itself fails.
        Each step is tried even if an earlier one raises."""
        st = self.state
        st.safe_reason = reason
        try:
            if safe_fets(st, self.board.afe) and self.protect is not None:
                # the AFE fault now (a held pack has no protect), the cycle has stopped
                self.protect.prot.update(self.board.ticks_us() // 1000)
        finally:
            st.leds[indicate.ALM] = indicate.ON
            self.board.leds.set(indicate.ALM, 1)


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
