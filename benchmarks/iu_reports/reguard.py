"""Re-apply the (fixed) guard to the `unguarded` text of every guarded runs/gen2 file (or of the files
named on the command line); report changes. A changed file loses its stale .eval.json."""
import glob, json, os, sys
from _common import findings_for, test_studies
from radscribe.report.consistency import guard
test = test_studies()
for f in sys.argv[1:] or sorted(glob.glob("runs/gen2/*.jsonl")):
    if "_unguarded" in f:
        continue
    rows = [json.loads(l) for l in open(f)]
    changed = 0
    for r in rows:
        g = guard(r["unguarded"], findings_for(f, test[r["id"]]))
        if g.text != r["generated"] or g.n_corrections != r["n_corrections"]:
            changed += 1
            r.update(generated=g.text, n_corrections=g.n_corrections, n_dropped=len(g.dropped), n_added=len(g.added))
    if changed:
        with open(f + ".tmp", "w") as out:
            for r in rows:
                out.write(json.dumps(r) + "\n")
        os.replace(f + ".tmp", f)
        ev = f[:-6] + ".eval.json"
        if os.path.exists(ev):
            os.remove(ev)
    print(f, "rows changed:", changed)
