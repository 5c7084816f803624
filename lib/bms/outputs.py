# Owns the decisions for the pack's other outputs: the dry contacts in both
# mappings of SPEC 3 and the heating film. Pure: values in, levels out.

# Dry-contact mappings (a board option / parameter dry_contact_mapping).
from defs.const import const
CONTACTS_ENABLE = const(0)  # `000` 3.3.3.1: output 1 = charge enable, output 2 = discharge enable
CONTACTS_ALARM = const(1)  # `003` 2.2: contact 1/2 closes on fault protection, 3/4 on low-battery alarm


def contact_levels(mapping, chg_on, dsg_on, protection_or_fault, low_battery):
    """Closed (1) / open (0) of contact 1 and 2 as a 2-bit value: bit 0 = contact 1."""
    if mapping == CONTACTS_ENABLE:
        return (1 if chg_on else 0) | (2 if dsg_on else 0)
    return (1 if protection_or_fault else 0) | (2 if low_battery else 0)


def heater_on(was_on, min_cell_temp_dc, charge_min_dc, hysteresis_dc, charger_present):
    """Heat before charging below the low-temperature limit (SPEC 3, `002`
    "heating film"): on while a charger is present and the coldest cell is
    below the limit, off again hysteresis_dc above it."""
    if not charger_present:
        return False
    if was_on:
        return min_cell_temp_dc < charge_min_dc + hysteresis_dc
    return min_cell_temp_dc < charge_min_dc
