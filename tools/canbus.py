# Owns opening a python-can bus for the host tools (bmsctl, the bench's CAN
# bridge, the update client): INTERFACE, CHANNEL[, bitrate] as python-can takes
# them. On udp_multicast (the bench's bus on loopback; receive_own_messages is
# off, the only setting python-can supports there, yet loopback still returns
# the sender's datagrams: the gateway drops those echoes) on Linux it hears only
# its own group: a socket bound to the
# interface's UDP port (43113) receives every group any socket on the host
# joined while IP_MULTICAST_ALL is 1 (the Linux default, ip(7)), so two benches
# on one machine, on different groups, would hear each other's packs.
import socket
import sys

_IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)  # linux/in.h


def open_bus(interface, channel, bitrate=None):
    """A python-can bus; python-can's own exception when it cannot open it."""
    import can
    kw = {"interface": interface, "channel": channel}
    if bitrate:
        kw["bitrate"] = bitrate
    if interface == "udp_multicast":
        kw["receive_own_messages"] = False
    bus = can.Bus(**kw)
    if interface == "udp_multicast" and sys.platform.startswith("linux"):
        sock = getattr(getattr(bus, "_multicast", None), "_socket", None)  # python-can 4.x internals
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
    return bus
