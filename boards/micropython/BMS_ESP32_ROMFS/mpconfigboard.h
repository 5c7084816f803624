// BMS ESP32 board (boards/esp32_bq.py): ESP32-WROOM-32 class, 4 MiB flash,
// no PSRAM. As ESP32_GENERIC (MicroPython v1.27.0 ports/esp32/boards/) plus
// ROMFS: the app image is mounted at /rom and its bytecode runs from flash.
#define MICROPY_HW_BOARD_NAME "BMS ESP32 (ROMFS)"
#define MICROPY_HW_MCU_NAME "ESP32"

// Off by default in v1.27.0 (py/mpconfig.h); with it, ports/esp32/esp32_partition.c
// serves the data partition named "romfs" to vfs.rom_ioctl and the runtime
// mounts it at /rom (extmod/vfs.c, mp_vfs_mount_romfs_protected).
#define MICROPY_VFS_ROM (1)
