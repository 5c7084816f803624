# BMS RP2040 board, built out of tree (the port's Makefile takes BOARD_DIR):
#   make -C <micropython v1.27.0>/ports/rp2 BOARD_DIR=<this dir>
set(PICO_BOARD "pico")
set(PICO_PLATFORM "rp2040")
# the Pico's pin names (LED, GP0..): RPI_PICO's table in the port (ports/rp2
# is CMAKE_SOURCE_DIR; ports/rp2/CMakeLists.txt reads MICROPY_BOARD_PINS)
set(MICROPY_BOARD_PINS ${CMAKE_SOURCE_DIR}/boards/RPI_PICO/pins.csv)

# the stable lower layers frozen in (manifest.py; README "RAM and CPU on the board")
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
