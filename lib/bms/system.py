# Owns the system view: what the master tells the inverter about the whole
# battery (SPEC 7, 8): voltage, summed current, SOC/SOH, limits, extreme cells
# and temperatures with where they are, module counts and the union of alarm
# states. Filled in place without allocation. from_pack() makes the view of a
# single pack; the parallel-packs issue adds the aggregate over many packs.
from bms import codes
from bms.params import RATED_CAPACITY_MAH
from bms.snapshot import N_CELL_TEMPS


class SystemView:
    def __init__(self):
        self.packs_online = 0
        self.packs_blocking_charge = 0
        self.packs_blocking_discharge = 0
        self.packs_offline = 0
        self.voltage_mv = 0
        self.current_ma = 0  # + = charge
        self.soc_pct = 0
        self.soh_pct = 0
        self.capacity_mah = 0  # installed (rated) capacity of the online packs
        self.cvl_mv = 0
        self.ccl_ma = 0
        self.dcl_ma = 0
        self.dvl_mv = 0
        self.force_charge = 0  # bms.limits.FC_* bits
        self.min_cell_mv = 0
        self.min_cell_pack = 0
        self.min_cell_index = 0
        self.max_cell_mv = 0
        self.max_cell_pack = 0
        self.max_cell_index = 0
        self.min_temp_dc = 0
        self.min_temp_pack = 0
        self.min_temp_index = 0
        self.max_temp_dc = 0
        self.max_temp_pack = 0
        self.max_temp_index = 0
        self.alarms = 0
        self.protections = 0
        self.faults = 0
        self.valid = False  # False until a pack has a good measurement


def from_pack(view, st, params, pack=0):
    """The view of one pack (the single-pack system)."""
    snap = st.snap
    if not snap.reads:
        view.valid = False
        return
    chg_ok = codes.chg_allowed(st)
    dsg_ok = codes.dsg_allowed(st)
    view.packs_online = 1
    view.packs_blocking_charge = 0 if chg_ok else 1
    view.packs_blocking_discharge = 0 if dsg_ok else 1
    view.packs_offline = 0
    view.voltage_mv = snap.stack_mv
    view.current_ma = st.current_ma
    view.soc_pct = st.soc_pct
    view.soh_pct = st.soh_pct
    view.capacity_mah = params.v[RATED_CAPACITY_MAH]
    view.cvl_mv = st.cvl_mv
    view.ccl_ma = st.ccl_ma
    view.dcl_ma = st.dcl_ma
    view.dvl_mv = st.dvl_mv
    view.force_charge = st.force_charge
    cells = snap.cell_mv
    lo = hi = 0
    for i in range(1, len(cells)):
        if cells[i] < cells[lo]:
            lo = i
        if cells[i] > cells[hi]:
            hi = i
    view.min_cell_mv = cells[lo]
    view.max_cell_mv = cells[hi]
    view.min_cell_pack = view.max_cell_pack = pack
    view.min_cell_index = lo
    view.max_cell_index = hi
    temps = snap.temp_dc
    lo = hi = 0
    for i in range(1, N_CELL_TEMPS):
        if temps[i] < temps[lo]:
            lo = i
        if temps[i] > temps[hi]:
            hi = i
    view.min_temp_dc = temps[lo]
    view.max_temp_dc = temps[hi]
    view.min_temp_pack = view.max_temp_pack = pack
    view.min_temp_index = lo
    view.max_temp_index = hi
    view.alarms = st.alarms
    view.protections = st.protections
    view.faults = st.faults
    view.valid = True
