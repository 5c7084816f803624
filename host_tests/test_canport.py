"""The CAN port's one reader (firmware/app/canport.py): each frame goes to the
subscribers whose acceptance item (id, mask, flags) takes it, as the MCP2515's
filters would (29-bit link ids of proto.link, the 11-bit inverter ids
0x305/0x306/0x307 of PROTOCOLS 1), in the one preallocated frame list."""
from app.canport import CanPort
from proto import link, pylon_can
from test_link import FakeCan


class Sub:
    def __init__(self):
        self.got = []
        self.lists = set()

    def on_frame(self, bus, fr):
        self.got.append((bus, fr[0], fr[2]))
        self.lists.add(id(fr))


def test_frames_go_to_the_subscriber_whose_item_takes_them():
    status = link.can_id(link.T_STATUS, 2, 1)  # 29-bit, the link prefix
    frames = [(status, bytes(8), 2), (0x305, bytes(8), 0), (0x307, bytes(8), 0),
              (0x305, bytes(8), 2),  # 29-bit id 0x305: not the inverter's
              (0x351, bytes(8), 0),  # a BMS frame from another node: nobody's
              (status, bytes(8), 0),  # the link's bits in an 11-bit frame: not a link frame
              (0x18FF0102, bytes(8), 2)]  # another 29-bit id: nobody's
    can = FakeCan()
    can.rx.extend(frames)
    port = CanPort(can)
    lk, inv = Sub(), Sub()
    port.subscribe(lk, link.CAN_FILTER)
    port.subscribe(inv, pylon_can.CAN_FILTER)
    port.poll()
    assert lk.got == [("can", status, 2)]
    assert inv.got == [("can", 0x305, 0), ("can", 0x307, 0)]
    assert lk.lists | inv.lists == {id(port.frame)}  # one list, filled in place
    assert port.selections() == (link.CAN_FILTER, pylon_can.CAN_FILTER)
