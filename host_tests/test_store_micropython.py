# The MicroPython gate for the store: lib/store on the interpreter's own
# filesystem (store.fs.OsFs under /tmp): write parameters, counters and
# events, "reboot" (new objects), read back, corrupt a byte, detect it.
import json
import textwrap

CODE = textwrap.dedent("""
    import json, os
    from store.fs import OsFs
    from store.store import Store
    from store import atomic, counters as C, eventlog as E
    from bms.params import Params, USOC_ALARM_PCT, BUZZER_ENABLE
    out = {}
    fs = OsFs("/tmp/data")
    s = Store(fs).mount()
    p = Params()
    p.set(USOC_ALARM_PCT, 12)
    p.set(BUZZER_ENABLE, 1)
    s.params.save(p)
    p.set(USOC_ALARM_PCT, 13)
    s.params.save(p)
    v = [0] * C.N
    v[C.SOC_PPM] = 654321
    v[C.LOCKOUT] = 2
    s.counters.save(v)
    for k in range(40):
        s.log.append(100 + k, 1, E.F_BOOT_TIME, 1, k % 7, 0, -k)
    # reboot: new objects on the same files
    s2 = Store(OsFs("/tmp/data")).mount()
    q = Params()
    out["params"] = list(s2.params.load(q)[0:1]) + [q.v[USOC_ALARM_PCT], q.v[BUZZER_ENABLE]]
    w = [0] * C.N
    out["counters"] = [s2.counters.load(w), w[C.SOC_PPM], w[C.LOCKOUT]]
    recs = s2.log.read(0, 999)
    out["log"] = [s2.log.next_seq, recs[0][0], recs[-1][0], recs[-1][7], len(recs)]
    # corrupt one byte of the current parameter file: the CRC catches it
    f = open("/tmp/data/params.bin", "r+b")
    f.seek(200)
    b = f.read(1)
    f.seek(200)
    f.write(bytes([b[0] ^ 0x10]))
    f.close()
    q = Params()
    found, notes = Store(OsFs("/tmp/data")).params.load(q)
    out["corrupt"] = [found, notes, q.v[USOC_ALARM_PCT]]
    # a torn record at the end of the log is ignored
    f = open("/tmp/data/ev0.bin", "ab")
    f.write(b"\\x01\\x02\\x03")
    f.close()
    s3 = Store(OsFs("/tmp/data")).mount()
    out["torn"] = [s3.log.next_seq, s3.log.repaired]
    print(json.dumps(out))
""")


def test_store_runs_on_micropython_filesystem(mpy):
    r = mpy.run(CODE, timeout_s=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["params"] == [True, 13, 1]
    assert got["counters"] == [1, 654321, 2]  # store.atomic.CUR
    assert got["log"] == [40, 0, 39, -39, 40]
    # the previous copy (usoc 12) is used and the fallback is noted
    assert got["corrupt"] == [True, [[3, 1]], 12]
    assert got["torn"] == [40, 1]
