import json, sys
src, dst = sys.argv[1], sys.argv[2]
with open(dst, "w") as out:
    for line in open(src):
        r = json.loads(line)
        r["generated"], r["n_corrections"], r["guard_ms"] = r["unguarded"], 0, 0.0
        out.write(json.dumps(r) + "\n")
