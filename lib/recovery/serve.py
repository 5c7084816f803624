# Owns the forced-update / recovery mode (issue 15): what runs instead of the
# firmware when recovery.mode chose it (no valid image slot, or the
# forced-update jumper fitted and the button held at boot). Frozen into the custom firmware with the lower layers
# (tools/frozen.py's "lower" part), together with copies of the board module
# (recovery.board, recovery.bq_board) and of the UDS server with what it needs
# (recovery.app.*, recovery.bms.*: tools/frozen.RECOVERY), so it needs nothing
# from the ROMFS image (which may be the broken thing), and an update still
# changes the app's own board module, UDS server and parameters.
# It builds the board without configuring the AFE, commands every FET off
# (recovery.mode.all_fets_off), blinks RUN and ALM together
# (defs.leds.UPDATE_MODE, as in maintenance mode) and, where the UDS copies
# are frozen, serves the update session of app.uds on CAN at the pack's DIP
# address (1 when the DIP says automatic) with the installer secret in the
# store: the same login, slot record and partition as the firmware's. It
# runs until a reset (the activate routine, 0x11, the button of a power
# cycle); Ctrl-C (mpremote sends it) leaves the REPL with the FETs off.
# Nothing here reads cells or protects: the FETs stay off, the BQ76952's own
# protections still act.
from defs.leds import RUN, ALM, N_LEDS, UPDATE_MODE, is_lit
from defs.ticks import ticks_add, ticks_diff
from recovery.mode import all_fets_off, board_module

BLINK_MS = 50
RX_MS = 10  # the CAN port read while waiting for a tester (the MCP2515 holds 2 frames)
LOOP_MS = 5  # the board loop's sleep between due ticks
DEFAULT_ADDRESS = 1  # the UDS target address while the DIP says automatic addressing


class Blink:
    """RUN and ALM blinking together (UPDATE_MODE), the other LEDs off."""
    name = "blink"
    period_ms = BLINK_MS

    def __init__(self, leds, n_leds):
        self.leds = leds
        self.start_ms = None
        for i in range(n_leds):
            leds.set(i, 0)

    def tick(self, now_ms):
        if self.start_ms is None:
            self.start_ms = now_ms
        v = 1 if is_lit(UPDATE_MODE, ticks_diff(now_ms, self.start_ms)) else 0
        self.leds.set(RUN, v)
        self.leds.set(ALM, v)


class Idle:
    """What the UDS server reads of the pack in recovery: no current (the
    FETs are off), whether they obeyed; update_hold has no reader here; the
    CAN bit rate app.canrate found (can_kbps 0 while it listens)."""

    def __init__(self, fets_off):
        self.current_ma = 0
        self.fet_off_failed = not fets_off
        self.update_hold = False
        self.can_kbps = 0
        self.can_followed = False


class Reader:
    """The recovery's one reader of the CAN port (app.canport.CanPort's poll):
    nothing else runs that would read it (the firmware's link service does)."""
    name = "can-rx"
    period_ms = RX_MS

    def __init__(self, port):
        self.port = port

    def tick(self, now_ms):
        self.port.poll()


def uds(board, fs, fets_off, restart):
    """[its CAN reader, its CAN bit rate, the UDS update server] of recovery on board.can with
    the store on fs, or [] where the copies are not frozen (a .mpy install,
    the bench)."""
    can = getattr(board, "can", None)
    if can is None or fs is None:
        return []
    try:
        from recovery.app.uds import Uds
        from recovery.app.canport import CanPort
        from recovery.app.canrate import CanRate
        from recovery.app.hostport import SELECTION
        from recovery.bms.auth import Auth
        from recovery.bms.params import Params
    except ImportError:
        return []
    from store.cred import CredStore
    from store.slotstore import SlotStore
    from update import boot, trust
    from update.updater import for_board, file_check
    try:
        from os import urandom
    except ImportError:
        urandom = None
    params = Params()
    address = getattr(board, "pack_address", 0) or DEFAULT_ADDRESS
    rx = CanPort(can)
    idle = Idle(fets_off)
    # the board starts the controller listen-only: as the firmware does, it sends only
    # at a rate it has heard (here from the default can_bitrate_count: the store's
    # parameters are not read), or after a silent listen time at it
    rate = CanRate(idle, params, can, rx)
    auth = Auth(CredStore(fs), params, urandom)
    svc = Uds(idle, params, auth, can, lambda: address, rx,
              lambda: for_board(board, SlotStore(fs), auth.update_key()), SlotStore(fs), boot.RUNNING,
              ("R%d" % trust.RECOVERY_VERSION).encode(), restart, None, file_check(board))
    rx.subscribe(svc, SELECTION)
    can.set_filters(rx.selections())
    return [Reader(rx), rate, svc]  # the rate after the reader: a request heard confirms it before the reply


def services(board, fs=None, restart=None, reason=""):
    """The recovery's services on a board built without configuring the AFE:
    [the LEDs, the board's own (CAN polling), the UDS server where frozen];
    the FETs are commanded off first. restart() -> the MCU reset (UDS 0x11,
    activate)."""
    fets_off = all_fets_off(board.afe)
    out = [Blink(board.leds, len(getattr(board, "led_pins", ())) or N_LEDS)]
    out += list(getattr(board, "services", ()))
    session = uds(board, fs, fets_off, restart)
    out += session
    svc = session[-1] if session else None
    print("bms: recovery (%s): FETs %s, RUN+ALM blinking, %s" % (
        reason, "off" if fets_off else "NOT confirmed off", "UDS update session on CAN at address %d"
        % svc.address() if svc is not None else "no update session (not frozen)"))
    return out


def _fs():
    try:
        from store.fs import OsFs
        return OsFs("/data")
    except Exception as e:  # noqa: recovery runs without its store (no login: no update)
        print("bms: recovery: no storage:", e)
        return None


def build(mod):
    """The board without configuring the AFE (a bench board: its plain build)."""
    try:
        return mod.build(configure=False)
    except TypeError:
        return mod.build()


def run(reason, mod=None):
    """Recovery on the board until a reset; Ctrl-C returns (the REPL)."""
    import time
    import machine
    try:
        b = build(mod if mod is not None else board_module())
    except Exception as e:  # noqa: nothing to drive: say so, leave the REPL
        print("bms: recovery (%s): the board failed to start: %s" % (reason, e))
        return
    svcs = services(b, _fs(), lambda: machine.reset, reason)
    due = [time.ticks_ms()] * len(svcs)
    try:
        while True:
            now = time.ticks_ms()
            for i in range(len(svcs)):
                if ticks_diff(now, due[i]) >= 0:
                    svcs[i].tick(now)
                    due[i] = ticks_add(now, svcs[i].period_ms)
            time.sleep_ms(LOOP_MS)
    except KeyboardInterrupt:
        all_fets_off(b.afe)
        print("bms: recovery stopped (FETs off); reset to run again")
