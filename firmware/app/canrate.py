# Owns the CAN controller's bit rate and mode after start (issue 13, SPEC 11
# "CAN baud rate"): the parameter can_bitrate_count, read at start, is where the
# controller begins listening (listen-only: no ACK, no error flags, no frames);
# bms.canrate decides from what it hears when it may send and at which rate,
# and this service puts the controller there. The controller refuses to send
# while it listens (drivers.mcp2515, sim.bus), so the link reports, the inverter
# frames and the host/UDS replies all wait for a confirmed rate. Shown in
# state.can_kbps / can_followed (the PC tool's info block) and, when the pack
# follows a bus at the other rate, in the event log (C_CAN_FOLLOWED).
# The CAN port contract used: init(bitrate, mode), MODE_SILENT, MODE_NORMAL,
# msg_errors (frames seen with errors, counted in listen-only mode too, where
# the MCP2515 freezes TEC/REC: DS20001801 10.4, MERRF 7.4); app.canport counts
# the valid frames read.
from app.service import Service
from bms import canrate as R
from bms.params import CAN_BITRATE_COUNT
from store.eventlog import C_CAN_FOLLOWED

from defs.const import const

LISTEN_PERIOD_MS = const(10)
RUN_PERIOD_MS = const(1000)  # nothing left to decide: the runners read period_ms each time


class CanRate(Service):
    name = "canrate"

    def __init__(self, state, params, can, rx, log=None):
        """can: the controller; rx: its reader (app.canport.CanPort, frames);
        log(code, value): the event log (app.persist.log; None without a store)."""
        self.st = state
        self.can = can
        self.rx = rx
        self.log = log
        self.choice = R.Choice(params.v[CAN_BITRATE_COUNT], rx.frames, can.msg_errors)
        self.period_ms = LISTEN_PERIOD_MS
        self.init_errors = 0  # init() refused (chip not answering: its poll() retries)
        self.log_errors = 0
        state.can_kbps = 0
        state.can_followed = False
        self._init(can.MODE_SILENT)

    def _init(self, mode):
        try:
            self.can.init(R.bps_of(self.choice.rate), mode)
        except OSError:
            self.init_errors += 1

    def tick(self, now_ms):
        c = self.choice
        if c.state == R.STATE_RUN:
            return
        act = c.step(now_ms, self.rx.frames, self.can.msg_errors)
        if act == R.ACT_LISTEN:
            self._init(self.can.MODE_SILENT)
        elif act == R.ACT_RUN:
            self._init(self.can.MODE_NORMAL)
            st = self.st
            st.can_kbps = R.RATES_KBPS[c.rate]
            st.can_followed = c.followed
            self.period_ms = RUN_PERIOD_MS
            if c.followed and self.log is not None:
                try:
                    self.log(C_CAN_FOLLOWED, st.can_kbps)
                except OSError:
                    self.log_errors += 1
