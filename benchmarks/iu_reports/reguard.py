"""Re-apply the (fixed) guard to the `unguarded` text of every guarded runs/gen2 file; report changes."""
import glob, json, os
from radscribe.data.paths import shared_data_dir
from radscribe.data.iu_xray import load_iu
from radscribe.report.consistency import guard
iu = shared_data_dir() / "iu_xray_reports"
test = {s.id: s for s in load_iu(iu / "r2gen_split_annotation.json", iu / "indiana_reports.csv")["test"]}
for f in sorted(glob.glob("runs/gen2/*.jsonl")):
    if "_unguarded" in f:
        continue
    rows = [json.loads(l) for l in open(f)]
    mode = "oracle" if "-oracle" in f else "indication"
    changed = 0
    for r in rows:
        st = test[r["id"]]
        g = guard(r["unguarded"], st.oracle if mode == "oracle" else st.from_indication)
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
