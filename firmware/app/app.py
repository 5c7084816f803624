# Owns the composition of one pack's firmware: the pack state, the services in
# their order, and the safe state every runner falls back to on an error.
from bms.state import PackState
from bms.params import Params, CYCLE_MS
from bms import hwlimits, indicate
from app.service import Cycle
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


class App:
    def __init__(self, board, params=None, store=None, clock=None):
        self.board = board
        self.params = params if params is not None else Params()
        self.state = PackState()
        # store: (lib/store) the stored parameters replace the given ones; without
        # a usable file the given ones (or defaults) are written as the first copy
        self.store = store
        notes = ()
        if store is not None:
            found, notes = store.params.load(self.params)
            if not found:
                store.params.save(self.params)
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
        self.persist = None
        if store is not None:
            from app.persist import Persist
            self.persist = Persist(self, store, clock, notes, getattr(board, "pack_address", 0))
            self.services.append(self.persist)

    def safe_state(self, reason):
        """FETs open, ALM on: what the pack does when the firmware itself fails.
        Each step is tried even if an earlier one raises."""
        st = self.state
        st.safe_reason = reason
        st.chg_fet = st.dsg_fet = st.pchg_fet = False
        try:
            self.board.afe.set_fets(False, False, False)
        finally:
            st.leds[indicate.ALM] = indicate.ON
            self.board.leds.set(indicate.ALM, 1)
