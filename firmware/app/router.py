# Owns the receive side of one RS485 port of the link connector (Link IN or
# Link OUT): it is the port's one reader. poll(now_ms) takes what the port holds
# (readinto into a preallocated buffer; a port without readinto is read with
# read(n), which allocates) and splits the byte stream into
#   link frames: SOF 0x7E then a length byte 0..8 (proto.link), fed to the
#     parser; each good frame goes to the link subscriber (fn(parser, now_ms));
#   ASCII: '~' (0x7E) then a printable byte, up to '\r' (Pylontech requests);
#   binary: everything else (Modbus RTU, garbage).
# The ASCII and the binary subscriber (one of each: app.compose connects them)
# get on_rs485(buf, n): whole chunks of their kind from one preallocated buffer,
# in the order the bytes came (a chunk ends where the kind changes, the buffer is
# full or the poll ends). A subscriber that answers writes to the port it was
# given at construction. A binary subscriber that names its RTU framer
# (subscribe_binary(sub, framer): proto.modbus.Framer) keeps a 0x7E binary while
# that framer is inside a frame: RTU data and CRC are any bytes. The link
# service runs poll() at its point of the tick.
# The read and chunk buffers are the module's, shared by every router: nothing
# in them outlives a poll() (it ends with the chunk handed over, and a
# subscriber takes the bytes during on_rs485), and no poll() runs inside
# another (the services call it from their ticks, never from on_rs485/on_link).
from defs.const import const
from proto import link

_OTHER = const(0)  # bytes go to the ASCII or binary subscribers (the kind in _kind)
_SOF = const(1)  # a 0x7E held: the next byte tells a link frame (0..8) from the rest
_LINK = const(2)  # inside a link frame: bytes go to the parser
_ASCII = const(3)  # inside '~' ... '\r'
_CHUNK = const(64)
_RX = const(64)  # bytes taken from the port per readinto
_CR = const(0x0D)
_RXBUF = bytearray(_RX)
_CHUNKBUF = bytearray(_CHUNK)


class Router:
    def __init__(self, port):
        self.port = port
        self.parser = link.Rs485Parser()
        self.on_link = None  # fn(parser, now_ms) for each good link frame
        self.ascii = None
        self.binary = None
        self._framer = None  # the binary subscriber's RTU framer
        self._readinto = hasattr(port, "readinto")  # a flag: a bound method would be an object
        self._route = _OTHER
        self._resume = _OTHER
        self._kind = _OTHER  # of the bytes in the chunk: _OTHER (binary) or _ASCII
        self._n = 0

    def subscribe_link(self, fn):
        self.on_link = fn

    def subscribe_ascii(self, sub):
        self.ascii = sub

    def subscribe_binary(self, sub, framer=None):
        self.binary = sub
        self._framer = framer

    def _in_frame(self):
        """The binary subscriber's frame is under way (the bytes so far delivered)."""
        if self._kind == _OTHER:
            self._flush()
        return self._framer.in_frame()

    def poll(self, now_ms):
        port = self.port
        if self._readinto:
            buf = _RXBUF
            while port.any():
                n = port.readinto(buf)
                if not n:
                    break
                self._split(now_ms, buf, n)
        else:
            n = port.any()
            if n:
                data = port.read(n)
                if data:
                    self._split(now_ms, data, len(data))
        self._flush()

    def _split(self, now_ms, buf, n):
        p = self.parser
        sof = link.SOF
        for i in range(n):
            b = buf[i]
            r = self._route
            if r == _LINK:
                if p.feed(b) and self.on_link is not None:
                    self.on_link(p, now_ms)
                if p.pos == 0:
                    self._route = self._resume  # the frame ended (good or bad)
            elif r == _SOF:
                if b <= link.RS485_MAX_LEN:
                    p.feed(sof)
                    p.feed(b)
                    self._route = _LINK
                elif b == sof:  # a second 0x7E stays held
                    self._put(_ASCII, sof)
                elif 0x20 <= b < 0x7F:
                    self._put(_ASCII, sof)
                    self._put(_ASCII, b)
                    self._route = _ASCII
                else:
                    self._put(_OTHER, sof)
                    self._put(_OTHER, b)
                    self._route = _OTHER
            elif b == sof and not (r == _OTHER and self._framer is not None and self._in_frame()):
                self._resume = r  # where the bytes after a link frame go
                self._route = _SOF
            elif r == _ASCII:
                self._put(_ASCII, b)
                if b == _CR:
                    self._route = _OTHER
            else:
                self._put(_OTHER, b)

    def _put(self, kind, b):
        if kind != self._kind:
            self._flush()
            self._kind = kind
        _CHUNKBUF[self._n] = b
        self._n += 1
        if self._n >= _CHUNK:
            self._flush()

    def _flush(self):
        n = self._n
        if not n:
            return
        self._n = 0
        s = self.ascii if self._kind == _ASCII else self.binary
        if s is not None:
            s.on_rs485(_CHUNKBUF, n)
