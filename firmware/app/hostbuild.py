# Owns the building of the host protocol's services (app.host, app.hostcan,
# app.relay, the journal), their login (bms.auth), the PC tool's restart, the
# shared update session and the running firmware's version: app.compose's
# host (app.hostport) and UDS port import it only when they build those, so
# none of it is in RAM after boot (issue 12).


def login(app):
    """The login of the host protocol: secrets in the store's credential file
    (RAM only without a store: nobody can log in), nonces from os.urandom
    (None on a port without it: no challenge is ever given)."""
    from bms.auth import Auth
    cred = None
    if app.store is not None:
        from store.cred import CredStore
        cred = CredStore(app.store.fs)
    urandom = getattr(app.board, "urandom", None)  # the bench's packs: seeded, so a trace repeats
    if urandom is None:
        try:
            from os import urandom
        except ImportError:
            urandom = None
    return Auth(cred, app.params, urandom)


def restart(app):
    """The PC tool's MCU restart (app.host, after its reply): the counters
    saved (a flash error does not stop it), then app.restart (main.py:
    machine.reset; the bench: a fresh firmware start on the same flash)."""
    if app.persist is not None:
        try:
            app.persist.save_now()
        except OSError:
            pass
    if app.restart is not None:
        app.restart()


def services(app, board, ports, auth, present):
    """[Host, HostCan (with CAN), Relay (with Link IN)] on auth, for
    app.hostport (which hands them the ports' frames and bytes; the relay's
    replies on Link OUT are subscribed here)."""
    from app.host import Host
    from app.inverter import serial
    journal = None
    if app.persist is not None:  # without a store writes stay in RAM: no history, clock or defaults
        from app.hostctl import Journal
        journal = Journal(app.persist)
    rin = ports.link_in

    def update():
        from app.hostupd import HostUpdate
        from update.updater import file_check
        return HostUpdate(svc, update_session(app, board), lambda: app.restart, file_check(board))
    svc = Host(app.state, app.params, app.system.view, rin.port if rin is not None else None, auth,
               journal=journal, present=present, update=update,
               version=version(board), serial=serial(board))
    svc.link = app.link
    svc.restart = lambda: restart(app)
    out = [svc]
    can_svc = None
    if ports.can_rx is not None:
        from app.hostcan import HostCan
        roles = app.link.roles
        can_svc = HostCan(svc, ports.can, lambda: roles.address, ports.can_rx)
        out.append(can_svc)
    if rin is not None:
        svc.rx = rin  # read by the host itself while an update runs on RTU
        from app.relay import Relay  # RTU units of the other packs, over CAN or down Link OUT
        relay = Relay(svc, ports.can, ports.can_rx, app.link, ports.link_out)
        svc.relay = relay
        if can_svc is not None:
            can_svc.relay = relay
        out.append(relay)
        if relay.replies is not None:  # last: a build that runs out of memory before it has subscribed nothing
            ports.link_out.subscribe_binary(relay, relay.replies)  # the replies coming up the chain
    return out


def update_session(app, board):
    """The pack's app.updsess.UpdateSession (app.update), built when the
    first of the sessions that share it is (app.hostupd, app.uds); its
    Updater (update.updater.for_board: the board's ROMFS partition, the slot
    record, the key the pack trusts (its login's provisioned update key, else
    the firmware's) and the recovery version) is imported only when a
    download starts; none without a store or a board name."""
    if app.update is not None:
        return app.update
    from app.updsess import UpdateSession
    make = None
    if app.store is not None and getattr(board, "name", None) is not None:
        def make():
            from store.slotstore import SlotStore
            from update.updater import for_board
            auth = app.host.auth() if app.host is not None else None
            return for_board(board, SlotStore(app.store.fs), auth.update_key() if auth is not None else None)
    app.update = UpdateSession(app.state, make)
    return app.update


def version(board):
    """The running firmware's version (bytes): the `version` file of the
    image the boot part mounted (update.boot.version; the bench's packs:
    board.fw_version, from their simulated slot), else app.host's built-in one."""
    from app.host import VERSION
    v = getattr(board, "fw_version", None)
    if v is None:
        from update import boot
        v = boot.version()
    return v or VERSION
