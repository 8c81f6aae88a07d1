"""Guard statistics per JSONL and a second guard pass over the guarded text (must find nothing)."""
import json, sys
from radscribe.data.paths import shared_data_dir
from radscribe.data.iu_xray import load_iu
from radscribe.report.consistency import guard
iu = shared_data_dir() / "iu_xray_reports"
test = {s.id: s for s in load_iu(iu / "r2gen_split_annotation.json", iu / "indiana_reports.csv")["test"]}
for f in sys.argv[1:]:
    rows = [json.loads(l) for l in open(f)]
    mode = "oracle" if "oracle" in f else "indication"
    left = 0
    for r in rows:
        st = test[r["id"]]
        g = guard(r["generated"], st.oracle if mode == "oracle" else st.from_indication)
        left += g.n_corrections
    n = len(rows)
    print(json.dumps({"file": f, "n": n, "corrections": sum(r["n_corrections"] for r in rows),
                      "per_report": round(sum(r["n_corrections"] for r in rows) / n, 3),
                      "changed": sum(r["n_corrections"] > 0 for r in rows),
                      "dropped": sum(r.get("n_dropped", 0) for r in rows), "added": sum(r.get("n_added", 0) for r in rows),
                      "second_pass_corrections": left}))
