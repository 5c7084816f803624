# Owns the boot-loop guard's hold (app.app counts the failed starts): after
# app.persist.MAX_FAILED_STARTS failed starts in a row the pack is held safe
# (FETs off, ALM on) with only the button running, until a reset press
# releases it. Imported only by a start that holds the pack.
from bms import button
from app.service import Service
from app.button import Button


def hold(app):
    """app held: its services only the button (on a board with one) and Held."""
    app.held = True
    app.services = []
    if getattr(app.board, "button", None) is not None:
        app.button = Button(app.state, app.board.button, app.params)
        app.services.append(app.button)
    app.services.append(Held(app))
    app.safe_state("start failures")


class Held(Service):
    """The held pack's service: a reset press (bms.button.RESET) clears the
    failed-start count and restarts the board (app.restart)."""
    name = "held"
    period_ms = 100

    def __init__(self, app):
        self.app = app
        self._count = app.state.button_count

    def tick(self, now_ms):
        st = self.app.state
        if st.button_count != self._count:
            self._count = st.button_count
            if st.button_action == button.RESET:
                self.app.persist.clear_failed_starts()
                if self.app.restart is not None:
                    self.app.restart()
