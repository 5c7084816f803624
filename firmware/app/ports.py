# Owns what the wiring leaves behind after boot (app.compose is set-up code,
# dropped once the pack is built: main.py): the link connector's ports as the
# services see them (Ports), and the wiring of the two services built at
# their first use, whose builders run long after boot: the host protocol
# (app.hostport; app.hostbuild's services and login) and the firmware update
# session over CAN (app.udsport; app.uds). Their closures hold this module,
# not app.compose.
from app.canport import CanPort
from app.router import Router


def _router(port):
    """The reader of an RS485 end with machine.UART's byte API (any, write,
    readinto or read); None for no port or one that reads frames only."""
    if port is None or not hasattr(port, "any") or not hasattr(port, "write"):
        return None
    if not hasattr(port, "readinto") and not hasattr(port, "read"):
        return None
    return Router(port)


class Ports:
    """The link connector as the services see it: the CAN port (sending) and
    its reader, the Link IN and Link OUT readers; None where the board has none."""

    def __init__(self, board):
        self.can = getattr(board, "can", None)
        self.can_rx = CanPort(self.can) if self.can is not None else None
        self.link_in = _router(getattr(board, "link_in", None))
        self.link_out = _router(getattr(board, "link_out", None))


def presence(board):
    """Maintenance mode's physical presence: the button (a pulled-up pin,
    pressed = 0) held now (the jumper was fitted at boot); None on a board
    without a button (never present)."""
    pin = getattr(board, "button", None)
    if pin is None:
        return None
    return lambda: pin.value() == 0


def host(app, board, ports, present=None):
    """The host protocol (PC tool, SCADA): Modbus RTU on Link IN (the binary
    bytes there), the same PDUs over ISO-TP on CAN, the relay of RTU units
    to the other packs (over CAN, else along the RS485 chain: the RTU replies
    on Link OUT), the update session over Modbus file records
    (app.hostupd, on app.update): app.hostport until a host speaks, then the
    services app.hostbuild (imported then) builds (in maintenance mode too:
    commissioning's first request builds them). present(): physical presence
    for commissioning (maintenance mode only)."""
    from app.hostport import HostPort, SELECTION

    def make():
        from app.hostbuild import services
        return services(app, board, ports, port.auth(), present)

    def make_auth():
        from app.hostbuild import login
        return login(app)
    port = HostPort(make, make_auth, app.link.roles, ports.can is None and ports.link_out is not None, ports.can_rx)
    if ports.can_rx is not None:
        ports.can_rx.subscribe(port, SELECTION)
    if ports.link_in is not None:
        ports.link_in.subscribe_binary(port, port)  # the port is the router's RTU framer too
    return port


def uds(app, board, ports, running):
    """The firmware update session over CAN, on the host protocol's login:
    app.udsport until a tester speaks, then the app.uds server; None
    without CAN. running: the slot the boot part mounted (app.compose.running_slot)."""
    if ports.can_rx is None:
        return None
    from app.hostport import SELECTION
    from app.udsport import UdsPort
    roles = app.link.roles
    address = lambda: roles.address  # noqa: E731

    def make():
        from app.uds import Uds
        from app.hostbuild import update_session, version
        from update.updater import file_check
        slot_store = None
        if app.store is not None:
            from store.slotstore import SlotStore
            slot_store = SlotStore(app.store.fs)
        persist = app.persist
        return Uds(app.state, app.params, app.host.auth(), ports.can, address, ports.can_rx,
                   None, slot_store, running,
                   version(board), lambda: app.restart,
                   persist.restore_defaults if persist is not None else None, file_check(board),
                   hold=update_session(app, board))
    svc = UdsPort(address, make)
    ports.can_rx.subscribe(svc, SELECTION)  # the host protocol's (0x18......): no further mask on the chip
    return svc
