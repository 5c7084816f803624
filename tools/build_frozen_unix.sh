#!/usr/bin/env bash
# Builds the 32-bit unix MicroPython 1.27 (as ../shared/tools/micropython/
# build.sh does) with the firmware frozen into it the way a board's firmware
# would hold it (tools/frozen.py: the deployed copies, board module as
# `board`), for tools/ram.py's `frozen` rows. Not part of `make test`.
#
#   tools/build_frozen_unix.sh [BOARD ...]     default: esp32_bq rp2040_bq
#   MICROPYTHON_DIR=<v1.27.0 source tree>      required (git archive v1.27.0; no submodules needed)
#   PARTS="all lower"                          which parts (tools/frozen.py)
#
# Output: build/micropython-frozen/<board>-<part>/micropython. The objects
# are shared (build/micropython-frozen/obj): after the first build another
# board or part only recompiles the frozen content and relinks.
# micropython-lib is not needed (only asyncio, from the MicroPython tree, is
# frozen besides the firmware); the port's check for it is given an empty
# stand-in directory. Needs gcc-multilib.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${MICROPYTHON_DIR:?set MICROPYTHON_DIR to a MicroPython v1.27.0 source tree}
src=$(cd "$src" && pwd)
py=${PYTHON:-$root/.venv/bin/python}
boards=${*:-esp32_bq rp2040_bq}
out=$root/build/micropython-frozen
mkdir -p "$out/no-micropython-lib"
touch "$out/no-micropython-lib/README.md"
make -C "$src/mpy-cross" -j2
for board in $boards; do
  for part in ${PARTS:-all lower}; do
    dir=$out/$board-$part
    man=$(cd "$root" && "$py" -m tools.frozen --board "$board" --part "$part" --out "$dir")
    make -C "$src/ports/unix" -j2 VARIANT=standard BUILD="$out/obj" MICROPY_FORCE_32BIT=1 \
      MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 MICROPY_PY_SSL=0 MICROPY_SSL_MBEDTLS=0 \
      MICROPY_USE_READLINE=0 MPY_LIB_DIR="$out/no-micropython-lib" FROZEN_MANIFEST="$man" \
      LDFLAGS_EXTRA=-static
    cp "$out/obj/micropython" "$dir/micropython"
    size "$out/obj/frozen_content.o" | tail -1 | awk '{print $1 + $2}' > "$dir/frozen_bytes"
    echo "$dir/micropython (frozen content $(cat "$dir/frozen_bytes") bytes)"
  done
done
