# Owns the parameter file's load at start (the stored values checked and
# migrated by store.paramstore's rules: id, name tag, CONVERT, range,
# validate) and restore-defaults: store.paramstore.ParamStore loads this
# module for each call (defs.transient), so it is not in RAM after boot.
from bms import params as P
from store import atomic
from store.paramstore import SCHEMA, N_PARAMS_DEFAULTS, N_PARAMS_CORRUPT, N_PARAMS_BACKUP, N_PARAM_DROPPED, \
    N_PARAM_DEFAULT, N_PARAM_CONVERTED, N_PARAMS_INVALID, N_PARAMS_RESTORED


def load(ps, params):
    """store.paramstore.ParamStore.load (see there)."""
    conv = {}
    for (rid, old), rule in ps.convert.items():
        conv[(rid, atomic.name_hash(old))] = rule
    src, schema, recs = ps.file.read()
    notes = []
    if src == atomic.NONE:
        return False, [(N_PARAMS_DEFAULTS, 0)]
    if src == atomic.CORRUPT:
        return False, [(N_PARAMS_CORRUPT, 0)]
    if src == atomic.BAK:
        notes.append((N_PARAMS_BACKUP, ps.file.seq))
    r = P.rows()
    trial = P.defaults(r)  # the accepted values go straight in (no list of pairs)
    changed = schema != SCHEMA
    for rid, h, v in recs:
        i = rid - 1
        if not 0 <= i < r.N:
            notes.append((N_PARAM_DROPPED, rid))
            changed = True
            continue
        if h != atomic.tag(r.HASH, i):
            rule = conv.get((rid, h))
            changed = True
            if rule is None:
                notes.append((N_PARAM_DEFAULT, rid))
                continue
            v = v * rule[0] // rule[1]
            notes.append((N_PARAM_CONVERTED, rid))
        if v < P.row_int(r.MIN, i) or v > P.row_int(r.MAX, i):
            notes.append((N_PARAM_DEFAULT, rid))
            changed = True
            continue
        trial[i] = v
    if len(recs) != r.N:
        changed = True  # rows added since (they keep their defaults)
    r = recs = None  # defaults(), set_many and save import their own
    if P.validate(trial) is not None:
        notes.append((N_PARAMS_INVALID, 0))
        params.set_many(enumerate(P.defaults()))
        ps.save(params)
        return False, notes
    params.set_many(enumerate(trial))
    if changed or src == atomic.BAK:
        ps.save(params)
    return True, notes


def restore_defaults(ps, params):
    """store.paramstore.ParamStore.restore_defaults (see there)."""
    r = P.rows()
    keep = P.INSTALLATION
    trial = P.defaults(r)  # the defaults, with the rows kept put back (no list of pairs)
    for i in range(r.N):
        if r.ACCESS[i] == r.FACTORY or i in keep:
            trial[i] = params.v[i]
    r = None  # set_many and save import their own
    params.set_many(enumerate(trial))
    ps.save(params)
    return [(N_PARAMS_RESTORED, 0)]
