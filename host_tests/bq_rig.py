# Owns the rig a real BQ board (boards/esp32_bq.py, boards/rp2040_bq.py) runs
# on in MicroPython, used by the gate's real-board test and tools/ram.py: on
# the fake machine's I2C a BQ76952 model (CRC on, 16 cells 3300..3315 mV) at
# 0x08 and a PCA9555 model at 0x20; a 500 kbit/s CAN bus with the board's
# MCP2515 model (8 MHz) on machine's SPI and a peer's model for the inverter.
import machine
import sim_mcp2515 as simcan
from sim_bq76952 import SimBQ76952


class Rig:
    def __init__(self):
        bq = SimBQ76952(crc=True)
        bq.cell_mv = [3300 + i for i in range(16)]
        bq.render()
        machine.I2C_DEVICES[0x08] = bq
        machine.I2C_DEVICES[0x20] = machine.Pca9555Model()
        self.bq = bq
        self.bus = simcan.Bus(500000)
        self.chip = self.bus.attach(simcan.Mcp2515(8000000, name="board"))
        self.peer_chip = self.bus.attach(simcan.Mcp2515(8000000, name="peer", seed=3))
        machine.SPI_DEVICE = self.chip.spi

    def wire(self, board):
        """The board module's CAN chip-select and INT pins to the board's chip."""
        machine.WIRES[board.PINS["can_cs"]] = self.chip.cs
        machine.WIRES[board.PINS["can_int"]] = self.chip.int_pin

    def peer(self):
        """The inverter's node on the bus: the firmware's own driver on the
        peer's model, receiving every identifier."""
        from drivers.mcp2515 import MCP2515
        p = MCP2515(self.peer_chip.spi, self.peer_chip.cs, 500000, osc_hz=8000000,
                    int_pin=self.peer_chip.int_pin)
        p.set_filters(None)
        return p
