# Owns the UDS (ISO 14229-1) wire facts of the update session (issue 15):
# the CAN ids (ISO 15765-2 normal fixed addressing, physical: 0x18DA_TA_SA,
# replies 0x18DA_SA_TA), the service ids, the negative response codes, and
# our data identifiers and routine ids, and the bundle broadcast's frames
# (BC_*, not UDS: raw frames one tester sends to every pack at once, each
# pack taking them only inside its own open download). app.uds serves them; the host side
# (tools/bmsctl/update.py) drives them with udsoncan's own definitions.
from defs.const import const

PRIORITY = const(6)
PF_PHYSICAL = const(0xDA)
BASE = (PRIORITY << 26) | (PF_PHYSICAL << 16)  # 0x18DA0000

# services
SESSION = const(0x10)
RESET = const(0x11)
READ_DID = const(0x22)
SECURITY = const(0x27)
ROUTINE = const(0x31)
DOWNLOAD = const(0x34)
TRANSFER = const(0x36)
EXIT = const(0x37)
TESTER_PRESENT = const(0x3E)
NEGATIVE = const(0x7F)
POSITIVE = const(0x40)  # added to the SID

# sessions
DEFAULT = const(1)
PROGRAMMING = const(2)

# negative response codes (ISO 14229-1 A.1)
NRC_NOT_SUPPORTED = const(0x11)
NRC_SUB_NOT_SUPPORTED = const(0x12)
NRC_LENGTH = const(0x13)
NRC_CONDITIONS = const(0x22)
NRC_SEQUENCE = const(0x24)
NRC_RANGE = const(0x31)
NRC_ACCESS_DENIED = const(0x33)
NRC_INVALID_KEY = const(0x35)
NRC_ATTEMPTS = const(0x36)
NRC_DELAY = const(0x37)
NRC_NOT_ACCEPTED = const(0x70)
NRC_PROGRAMMING = const(0x72)
NRC_BLOCK_COUNTER = const(0x73)
NRC_PENDING = const(0x78)
NRC_NOT_IN_SESSION = const(0x7F)
# the order of app.uds's per-code counters
NRCS = (0x11, 0x12, 0x13, 0x22, 0x24, 0x31, 0x33, 0x35, 0x36, 0x37, 0x70, 0x72, 0x73, 0x7F)

# timing reported in the session response (ISO 14229-2 P2server_max ms,
# P2*server_max in 10 ms) and the S3 server timeout
P2_MS = const(50)
P2_STAR_MS = const(5000)
S3_MS = const(5000)

# data identifiers (0xF189: ISO 14229-1 C.1 software version; 0xF1A0..: the
# "vehicle manufacturer specific" range, ours)
DID_VERSION = const(0xF189)  # 8 bytes ASCII, NUL padded: the running firmware's version
DID_SLOTS = const(0xF1A0)  # running, confirmed, pending slot (0/1, 0xFF none, 0xFE recovery), tries
DID_COUNTERS = const(0xF1A1)  # u32 floor (the confirmed image's security counter), u32 running slot's counter
DID_TRANSFER = const(0xF1A2)  # u8 state, u8 reason (update.updater), u32 received, u32 total, u8 next block counter
DID_BUNDLE = const(0xF1A3)  # 32 bytes: SHA-256 of the manifest under way (zeros: none), to resume the same bundle
DID_REFUSED = const(0xF1A4)  # u16 requests refused (every NRC but 0x78), u8 the last NRC
DID_BROADCAST = const(0xF1A5)  # u32 broadcast frames taken, u32 ignored (since the server started)
VERSION_LEN = const(8)

# routines (0x31, start = subfunction 1)
RT_CHECK = const(0xFF01)  # ISO 14229-1 F: checkProgrammingDependencies: verify the image, stage it
RT_ACTIVATE = const(0x0201)  # reset into the staged image
RT_DEFAULTS = const(0x0202)  # parameters back to defaults

BLOCK_DATA = const(256)  # data bytes per TransferData
MAX_BLOCK = BLOCK_DATA + 2  # maxNumberOfBlockLength: SID + counter + data (ISO 14229-1 14.2)

# The bundle broadcast (issue 15's fan-out): 29-bit id BC_BASE | SA (SAE
# J1939-21 Proprietary B, PGN 0xFFB0, PDU2: to everyone; SA the tester, 0xF1),
# inside the 0x18 selection of app.hostcan (no chip filter changes). 8 data
# bytes, big-endian:
#   data     seq u16 (0..0xFFFE), 6 bundle bytes at offset seq * BC_DATA (the
#            last frame padded: a pack takes no byte at or beyond its total)
#   announce 0xFFFF, the bundle's total u24, the first 3 bytes of SHA-256 of
#            its manifest (DID 0xF1A3): a pack takes data frames only after
#            an announce naming its own open download
PF_BROADCAST = const(0xFF)
GE_BROADCAST = const(0xB0)
BC_BASE = (PRIORITY << 26) | (PF_BROADCAST << 16) | (GE_BROADCAST << 8)  # 0x18FFB000
BC_DATA = const(6)
BC_ANNOUNCE = const(0xFFFF)
