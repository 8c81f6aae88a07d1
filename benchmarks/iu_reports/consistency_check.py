"""Guard statistics per JSONL and a second guard pass over the guarded text (must find nothing)."""
import json, sys
from _common import findings_for, test_studies
from radscribe.report.consistency import guard
test = test_studies()
for f in sys.argv[1:]:
    rows = [json.loads(l) for l in open(f)]
    left = 0
    for r in rows:
        g = guard(r["generated"], findings_for(f, test[r["id"]]))
        left += g.n_corrections
    n = len(rows)
    print(json.dumps({"file": f, "n": n, "corrections": sum(r["n_corrections"] for r in rows),
                      "per_report": round(sum(r["n_corrections"] for r in rows) / n, 3),
                      "changed": sum(r["n_corrections"] > 0 for r in rows),
                      "dropped": sum(r.get("n_dropped", 0) for r in rows), "added": sum(r.get("n_added", 0) for r in rows),
                      "second_pass_corrections": left}))
