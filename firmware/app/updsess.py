# Owns the pack's one firmware-update transfer and PackState.update_hold
# (issue 15): the update sessions (app.uds over CAN, app.hostupd over Modbus
# file records) share one update.updater.Updater, built at the first download
# (it is imported only then), and take the pack in turn: while one holds it the
# other is refused, and update_hold asks app.control to hold both FETs open and
# bms.limits to send CCL = DCL = 0 until the holder releases it.


class UpdateSession:
    def __init__(self, state, make_updater=None):
        """make_updater() -> update.updater.Updater (None: no update on this install)."""
        self.state = state
        self.make_updater = make_updater
        self.upd = None
        self.owner = None

    def take(self, who):
        """Hold the pack for who; False while another session holds it."""
        if self.owner is not None and self.owner is not who:
            return False
        self.owner = who
        self.state.update_hold = True
        return True

    def release(self, who):
        if self.owner is who:
            self.owner = None
            self.state.update_hold = False

    def updater(self):
        """The Updater (built once), or None when this install cannot make one."""
        if self.upd is None and self.make_updater is not None:
            try:
                self.upd = self.make_updater()
            except (OSError, ImportError, MemoryError):
                return None
        return self.upd
