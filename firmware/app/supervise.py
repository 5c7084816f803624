# Owns what a service failure does to the pack, in the one copy both runners
# use (the board's app.runner and the bench's tools/simworld): the first
# failure puts the app in its safe state and is kept as (service name,
# exception); every failure stops the app's services (stop() is the runner's).


class Failure:
    def __init__(self, app, stop):
        self.app = app
        self.stop = stop
        self.failed = None

    def fail(self, where, exc):
        if self.failed is None:
            self.failed = (where, exc)
            self.app.safe_state(where)
        self.stop()
