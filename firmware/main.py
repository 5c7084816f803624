# Builds the board (the deployed /board module: build() returns an object
# with afe, leds and ticks_us) and runs the pack's services until one fails.
# A failure leaves the pack in its safe state (FETs open, ALM on) and the
# board at the REPL: the watchdog or the reset button restarts it.
import asyncio
import sys

import board
from app.app import App
from app.runner import Runner


def main():
    app = App(board.build())
    failed = asyncio.run(Runner(app).run())
    if failed:
        print("bms: stopped in safe state after a failure in", failed[0])
        sys.print_exception(failed[1])


if __name__ == "__main__":
    main()
