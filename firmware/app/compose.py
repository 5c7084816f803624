# Owns the wiring of one pack's firmware, the only place it is done (used by
# firmware/main.py and the bench, tools/simworld.py): the readers of the link
# connector's ports (app.ports.Ports: app.canport for CAN, app.router for Link
# IN and Link OUT) and their subscribers (link, inverter, the host protocol),
# the acceptance filters of the CAN chip, the services of app.app.App in their
# run order, and on a board the Sleeper and the watchdog wrapping. The
# watchdog itself is the board's (drivers.watchdog, which app may not import):
# main.py passes start() a function that wraps the services. Set-up code:
# main.py drops this module once start() has built the pack; what runs after
# boot holds nothing of it (the builders the host protocol and the UDS port
# call at their first use are app.ports').
from bms import hwlimits
from bms.params import CYCLE_MS
from proto import link as link_proto, pylon_can
from app.app import App
from app.service import Cycle
from app.acquire import Acquire
from app.protect import Protect
from app.control import Control
from app.system import System
from app.link import Link
from app.estimate import Estimate
from app.balance import Balance
from app.indicate import Indicate
from app.button import Button
from app.inverter import Inverter, master_test, serial
from app.canrate import CanRate
from app.ports import Ports, presence, host, uds


def link(state, params, board, ports):
    """The link service on the ports, subscribed to the link frames of each."""
    svc = Link(state, params, ports.can, ports.can_rx, ports.link_in, ports.link_out,
               bool(getattr(board, "link_dip_master", False)))
    if ports.can_rx is not None:
        ports.can_rx.subscribe(svc, link_proto.CAN_FILTER)
    if ports.link_in is not None:
        ports.link_in.subscribe_link(svc.on_link_in)
    if ports.link_out is not None:
        ports.link_out.subscribe_link(svc.on_link_out)
    return svc


def inverter(state, params, view, board, ports, packs):
    """The inverter service, subscribed to the inverter's CAN frames (11-bit)
    and the Pylontech requests on Link IN; packs: 0x42 for another pack."""
    rin = ports.link_in
    svc = Inverter(state, params, view, ports.can, rin.port if rin is not None else None,
                   getattr(board, "dip", None), master_test(state), packs, serial(board))
    if ports.can_rx is not None:
        ports.can_rx.subscribe(svc, pylon_can.CAN_FILTER)
    if rin is not None:
        rin.subscribe_ascii(svc)
    return svc


def running_slot(board):
    """The slot the boot part mounted: update.boot.RUNNING, or board.running
    where the board says (the bench's packs, each booted by the bench)."""
    s = getattr(board, "running", None)
    if s is not None:
        return s
    from update import boot
    return boot.RUNNING


def confirm(app, running):
    """The self-test confirm (app.confirm.Confirm, imported only then) when
    the boot part runs an image under trial (running: the slot it mounted,
    running_slot), else None (a port without ROMFS, a confirmed image, no
    store)."""
    if app.store is None or running < 0:
        return None
    from store.slotstore import SlotStore
    from update import slots
    st = SlotStore(app.store.fs)
    rec = st.load()[0]
    if rec is None or not slots.valid(rec) or not slots.running_pending(rec, running):
        return None
    from app.confirm import Confirm
    return Confirm(app.state, st, rec, running)


def pack(board, params=None, store=None, clock=None, maintenance=False):
    """The firmware of one pack on board (App with its services), as the
    board and the bench run it. maintenance: the forced-update jumper was
    fitted at boot: both FETs held open (so the inverter is told 0 A), the
    maintenance LED pattern, the button not a reset/sleep button but the
    presence that commissioning needs (auth.provision), no self-test confirm
    of an image under trial (it cannot show it drives the FETs)."""
    app = App(board, params, store, clock)
    if app.held:
        return app
    st = app.state
    prm = app.params
    afe = board.afe
    afe.program_protections(hwlimits.from_params(prm))
    ports = Ports(board)
    if ports.can is not None:  # listens first: nothing is sent until the bus rate is confirmed
        app.canrate = CanRate(st, prm, ports.can, ports.can_rx,
                              app.persist.log if app.persist is not None else None)
    # link: the parallel-packs service (roles, addresses, the master's pack table)
    app.link = link(st, prm, board, ports)
    app.system = System(st, prm, app.link)
    app.protect = Protect(st, prm)  # between acquire and control
    app.control = Control(afe, st, prm, getattr(board, "contacts", None), maintenance)
    app.estimate = Estimate(st, prm)  # SOC, SOH, counters, limits
    app.cycle = Cycle("cycle", prm.v[CYCLE_MS], (
        Acquire(afe, st, board.ticks_us, prm),
        app.protect,
        app.control,
        app.estimate,  # after protect: the USOC alarm uses last cycle's SOC
        Balance(afe, st, prm),  # balance: cells to bleed
        app.system,  # the view the inverter is told about
    ))
    app.indicate = Indicate(st, board.leds, getattr(board, "buzzer", None), prm, maintenance)
    # the board's own services (a bench board's pack physics) run first
    services = list(board.services) + [app.cycle, app.indicate]
    # the reset button, on boards that have one
    if getattr(board, "button", None) is not None and not maintenance:
        app.button = Button(st, board.button, prm)
        services.append(app.button)
    # inverter: CAN frames / RS485 server on the master; it ticks before the
    # link, whose tick runs the ports' readers
    app.inverter = inverter(st, prm, app.system.view, board, ports, app.link)
    services.append(app.inverter)
    services.append(app.link)
    if app.canrate is not None:  # after the link's read of the port: a frame heard confirms the rate
        services.append(app.canrate)  # before the host services below answer it
    # the host protocol's port: after the link, whose tick reads the ports
    app.host = host(app, board, ports, presence(board) if maintenance else None)
    services.append(app.host)
    running = running_slot(board)
    app.uds = uds(app, board, ports, running)  # the update session (issue 15)
    if app.uds is not None:
        services.append(app.uds)
    if not maintenance:
        svc = confirm(app, running)  # the self-test of a new image under trial (issue 15)
        if svc is not None:
            services.append(svc)
    app.services = services
    # the CAN port delivers only what a service reads: link frames, the
    # inverter's and the host protocol's (an MCP2515 delivers nothing until its
    # filters are set)
    if ports.can is not None:
        ports.can.set_filters(ports.can_rx.selections())
    app.attach_store()  # last: it restores what the services above hold
    return app


def maintenance(board):
    """The board booted with the forced-update jumper fitted."""
    jumper = getattr(board, "jumper", None)
    return jumper is not None and bool(jumper.fitted)


def start(board, store=None, clock=None, watch=None):
    """(app, supervisor or None): the firmware on board as main.py runs it:
    in maintenance mode when the forced-update jumper was fitted at boot; with
    the Sleeper on a board with deep_sleep(ms) (not in maintenance mode: the
    pack stays reachable), and, given watch (main.py: services -> (watched
    services, supervisor service), starting the WDT), every service wrapped
    for the watchdog."""
    m = maintenance(board)
    if m:
        print("bms: forced-update jumper fitted: maintenance mode (FETs held open, commissioning)")
    app = pack(board, store=store, clock=clock, maintenance=m)
    deep_sleep = getattr(board, "deep_sleep", None)
    if deep_sleep is not None and not app.held and not m:
        from app.sleeper import Sleeper
        app.services.append(Sleeper(app, deep_sleep))
    sup = None
    if watch is not None:
        watched, sup = watch(app.services)
        app.services = watched + [sup]
    return app, sup
