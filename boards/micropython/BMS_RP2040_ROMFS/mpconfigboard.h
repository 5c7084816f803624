// BMS RP2040 board (boards/rp2040_bq.py): Raspberry Pi Pico class, 2 MiB
// flash. As RPI_PICO (MicroPython v1.27.0 ports/rp2/boards/) with 512 KiB of
// its littlefs given to ROMFS: room for two app images (A and B, for the
// update issue). ports/rp2/rp2_flash.c puts ROMFS just below the filesystem
// (MICROPY_HW_FLASH_STORAGE_BASE - MICROPY_HW_ROMFS_BYTES) and
// ports/rp2/mpconfigport.h enables MICROPY_VFS_ROM when it is > 0; both
// sizes must be multiples of 4 KiB. Code space stays 2048 - 1408 = 640 KiB.
#define MICROPY_HW_BOARD_NAME                   "BMS RP2040 (ROMFS)"
#define MICROPY_HW_FLASH_STORAGE_BYTES          (896 * 1024)
#define MICROPY_HW_ROMFS_BYTES                  (512 * 1024)
