# BMS ESP32 board, built out of tree (the port's Makefile takes BOARD_DIR):
#   make -C <micropython v1.27.0>/ports/esp32 BOARD_DIR=<this dir>
# The sdkconfig fragments are ESP32_GENERIC's; the partition table is ours.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    ${CMAKE_BINARY_DIR}/sdkconfig.bms_partitions
)

# CONFIG_PARTITION_TABLE_CUSTOM_FILENAME is taken relative to the port's
# directory unless absolute, and this board lives outside it: a fragment with
# the absolute path, written at configure time (ports/esp32/CMakeLists.txt
# concatenates SDKCONFIG_DEFAULTS after including this file; later wins over
# sdkconfig.base's partitions-4MiBplus.csv).
file(WRITE ${CMAKE_BINARY_DIR}/sdkconfig.bms_partitions
    "CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${MICROPY_BOARD_DIR}/partitions-4MiB-romfs-ab.csv\"\n")

# the stable lower layers frozen in (manifest.py; README "RAM and CPU on the board")
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
