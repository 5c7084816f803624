# Owns the receive side of the CAN port: it is the one reader of board.can.
# Each subscriber names the frames it takes when it subscribes, with an item in
# the drivers' acceptance-filter shape (id, mask, flags; FLAG_EXT_ID in flags
# for 29-bit ids: proto.link.CAN_FILTER, proto.pylon_can.CAN_FILTER), and gets
# on_frame("can", frame) for every received frame that item accepts, in the
# one preallocated [id, data, flags, ...] list recv() fills (no allocation per
# frame). The composition (app.compose) sets the same items as the chip's
# filters (selections()); the link service runs poll() at its point of the tick.
# frames counts every valid frame read (app.canrate: the bus is heard at the
# rate the controller listens at).


class CanPort:
    def __init__(self, can):
        self.can = can
        self.frame = [0, memoryview(bytearray(8)), 0, 0]
        self._subs = []
        self._sels = []
        self.frames = 0

    def subscribe(self, sub, sel):
        """sub.on_frame("can", frame) for the frames sel = (id, mask, flags) accepts."""
        self._subs.append(sub)
        self._sels.append(sel)

    def selections(self):
        """Every subscriber's item, in order: the acceptance filters to set."""
        return tuple(self._sels)

    def poll(self):
        can = self.can
        fr = self.frame
        ext_flag = can.FLAG_EXT_ID
        subs = self._subs
        sels = self._sels
        while can.any():
            if can.recv(fr) is None:
                break
            self.frames = (self.frames + 1) & 0x3FFFFFFF
            ext = fr[2] & ext_flag
            for k in range(len(subs)):
                ident, mask, flags = sels[k]
                if flags & ext_flag == ext and fr[0] & mask == ident & mask:
                    subs[k].on_frame("can", fr)
