# Owns bmsctl's user-defined Modbus PDU (Modbus Application Protocol 5: codes
# 65-72 and 100-110 are the user's) as pymodbus classes, independent of the
# board's encoder: FC 0x41, one block of a firmware update (app.hostupd,
# proto.modbus.FC_UPDATE_BLOCK). Request: byte count N, block number u16, N - 2
# bundle bytes; reply: the block number. decoder() is pymodbus's DecodePDU
# with it registered, for every framer that must know its length (bmsctl's
# transports, the bench's gateway).
import struct

from pymodbus.pdu import DecodePDU, ModbusPDU

FC_UPDATE_BLOCK = 0x41


class UpdateBlockRequest(ModbusPDU):
    function_code = FC_UPDATE_BLOCK
    rtu_byte_count_pos = 2

    def __init__(self, block=0, data=b"", dev_id=0, transaction_id=0):
        ModbusPDU.__init__(self, dev_id=dev_id, transaction_id=transaction_id)
        self.block = block
        self.data = bytes(data)

    def encode(self):
        return struct.pack(">BH", 2 + len(self.data), self.block) + self.data

    def decode(self, data):
        self.block = struct.unpack(">H", data[1:3])[0]
        self.data = bytes(data[3:1 + data[0]])


class UpdateBlockResponse(ModbusPDU):
    function_code = FC_UPDATE_BLOCK
    rtu_frame_size = 6  # unit, function, block number, CRC

    def __init__(self, block=0, dev_id=0, transaction_id=0):
        ModbusPDU.__init__(self, dev_id=dev_id, transaction_id=transaction_id)
        self.block = block

    def encode(self):
        return struct.pack(">H", self.block)

    def decode(self, data):
        self.block = struct.unpack(">H", data[:2])[0]


def decoder(server=False):
    """pymodbus's DecodePDU (server: of requests, else of replies) with FC 0x41."""
    d = DecodePDU(server)
    d.register(UpdateBlockRequest if server else UpdateBlockResponse)
    return d
