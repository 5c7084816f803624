# Owns the choice of the CAN bit rate a pack joins the bus at (parameter
# can_bitrate_count, read at start): the decision only, on counters the
# service (app.canrate) reads from the CAN port. The controller listens (no ACK,
# no error flags, no frames) at the stored rate first:
#   - a valid frame heard: the rate is confirmed, normal mode there;
#   - errors and no valid frame (ERRORS_SWITCH of them, or any by the end of the
#     window): the bus runs at another rate: listen at the other rate;
#   - LISTEN_MS of silence at the stored rate: the pack is the first node, normal
#     mode at the stored rate; silence at the other rate: back to the stored one.
# So a pack never sends at a rate it has not heard (or found the bus silent
# at). A window that saw errors never counts as silence: a bus carrying a frame
# burst once a second at another rate still moves the pack off its stored rate.
from defs.const import const
from defs.ticks import ticks_diff

RATES_KBPS = (500, 250)  # can_bitrate_count 0, 1
# longer than two of the slowest periodic frames of a running system (link
# reports and the inverter frames every 1 s, bms.parallel.REPORT_MS; the
# inverter's own 0x305 every 1 s): a live bus is heard within one window
LISTEN_MS = const(2500)
ERRORS_SWITCH = const(4)  # errors without a valid frame that end a window early

STATE_LISTEN = const(0)
STATE_RUN = const(1)
# step() results
ACT_NONE = const(0)
ACT_RUN = const(1)  # normal mode at RATES_KBPS[choice.rate]
ACT_LISTEN = const(2)  # listen-only at RATES_KBPS[choice.rate]


def bps_of(index):
    return RATES_KBPS[index] * 1000


class Choice:
    """The start-up decision. stored: can_bitrate_count (an index of
    RATES_KBPS). step(now_ms, frames, errors) with the port's counters of
    valid frames received and receive errors (cumulative; only their changes
    count) says what the controller does next (ACT_*); rate is the index it
    listens or runs at, state STATE_LISTEN or STATE_RUN, followed True when it
    runs at the rate it found on the bus instead of the stored one."""

    def __init__(self, stored, frames=0, errors=0):
        """frames, errors: the counters as the controller starts listening (what
        is read after that counts, even before the first step)."""
        self.stored = stored
        self.rate = stored
        self.state = STATE_LISTEN
        self.followed = False
        self.windows = 1  # listen windows begun (1: the first, at the stored rate)
        self._t0 = None  # the first window's time starts at the first step
        self._frames0 = frames
        self._errors0 = errors

    def _window(self, now_ms, frames, errors):
        self._t0 = now_ms
        self._frames0 = frames
        self._errors0 = errors
        self.windows += 1

    def step(self, now_ms, frames, errors):
        if self.state == STATE_RUN:
            return ACT_NONE
        if self._t0 is None:
            self._t0 = now_ms
        if frames != self._frames0:
            self.state = STATE_RUN
            self.followed = self.rate != self.stored
            return ACT_RUN
        bad = errors != self._errors0
        if (errors - self._errors0) & 0x3FFFFFFF >= ERRORS_SWITCH:
            return self._switch(now_ms, frames, errors)
        if ticks_diff(now_ms, self._t0) < LISTEN_MS:
            return ACT_NONE
        if bad or self.rate != self.stored:
            return self._switch(now_ms, frames, errors)
        self.state = STATE_RUN  # silence at the stored rate: the first node on the bus
        return ACT_RUN

    def _switch(self, now_ms, frames, errors):
        self.rate ^= 1
        self._window(now_ms, frames, errors)
        return ACT_LISTEN
