# app.compose is set-up code (issue 12): main.py drops it once the pack is
# built, so on the board its functions and constants leave the heap. That
# only frees them if nothing the pack runs on refers to the module: no
# function whose globals are compose's (a closure the host protocol or the
# UDS port calls at its first use), no class of it (an object's type). The
# check walks every object reachable from what main.start returns (not into
# module namespaces, which every function names) on a real board module
# (boards/esp32_bq.py on the fake machine and the chip models), with and
# without the maintenance jumper (its presence test is a closure too).
import gc
import sys
import types

import pytest

import fake_machine as fm
from test_boards import load, Rig
from test_maintenance import Level


def _reachable(roots):
    namespaces = {id(vars(m)) for m in list(sys.modules.values()) if m is not None}
    seen, todo = set(), list(roots)
    while todo:
        o = todo.pop()
        if id(o) in seen or isinstance(o, types.ModuleType) or id(o) in namespaces:
            continue
        seen.add(id(o))
        yield o
        todo.extend(gc.get_referents(o))


@pytest.mark.parametrize("jumper", [False, True])
def test_nothing_the_pack_runs_on_holds_app_compose(monkeypatch, jumper):
    mod = load("esp32_bq", monkeypatch)
    Rig(mod)
    fm.WIRES[mod.PINS["jumper"]] = Level(jumper)
    fm.WIRES[mod.PINS["button"]] = Level(False)
    monkeypatch.delitem(sys.modules, "main", raising=False)
    import main
    from app import compose
    ns = vars(compose)
    app, sup = main.start(mod.build())
    assert "app.compose" not in sys.modules and app.control.maintenance == jumper
    held = [o for o in _reachable([app, sup])
            if (isinstance(o, types.FunctionType) and o.__globals__ is ns)
            or (isinstance(o, type) and o.__module__ == "app.compose")]
    assert held == []
    assert app.host.build() and app.uds is not None  # the closures it does hold still build
