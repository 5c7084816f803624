# Owns one pack's firmware as a record: the pack state, the services
# (named attributes: app.cycle and its stages app.protect, app.control,
# app.estimate; app.indicate, app.button, app.inverter, app.link, app.persist)
# and their run order in app.services, all built by app.compose; the safe
# state every runner falls back to on an error, and the boot-loop guard's
# count: after app.persist.MAX_FAILED_STARTS failed starts in a row the pack
# is held (app.held, imported only then). A store whose flash fails at start
# is dropped (the pack runs without it) and the STORE fault says so.
from bms.state import PackState
from bms.params import Params
from bms import indicate
from app.control import safe_fets


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
        self.link = self.system = self.cycle = self.inverter = None
        self.canrate = None  # app.canrate: the CAN bit rate (boards with CAN)
        self.host = None  # app.ports.host: the host protocol's port (app.hostport)
        self.uds = self.update = None  # app.compose: the UDS port, the shared update transfer (app.updsess, lazy)
        self.services = []
        if store is not None:
            from app.persist import Persist, MAX_FAILED_STARTS
            try:
                self.persist = Persist(self, store, clock, getattr(board, "pack_address", 0))
            except OSError as e:
                self._store_failed(e)
            if self.persist is not None and self.persist.failed_starts > MAX_FAILED_STARTS:
                from app.held import hold
                hold(self)

    def attach_store(self):
        """The store restores counters and lock-outs now, then logs and saves
        (the last service)."""
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
