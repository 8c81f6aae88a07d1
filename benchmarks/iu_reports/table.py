"""Markdown rows from runs/gen2/<gen>-<mode>[-seedS].eval.json + the matching JSONL."""
import glob, json, statistics, sys
from pathlib import Path

KEYS = ["BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr"]


def row_stats(stem):
    ev = json.load(open(f"{stem}.eval.json"))
    rows = [json.loads(l) for l in open(f"{stem}.jsonl")]
    n = len(rows)
    vals = {k: ev[k] for k in KEYS}
    ce = ev["CE"]
    for a in ("micro", "macro"):
        for m in ("precision", "recall", "f1"):
            vals[f"{a}_{m}"] = ce[a][m]
    vals["corr_per_report"] = sum(r["n_corrections"] for r in rows) / n
    vals["changed"] = sum(r["n_corrections"] > 0 for r in rows) / n
    vals["gen_ms"] = statistics.mean(r["gen_ms"] for r in rows)
    vals["guard_ms"] = statistics.mean(r.get("guard_ms", float("nan")) for r in rows)
    vals["n"] = n
    return vals


def fmt(vals_list):
    out = {}
    for k in vals_list[0]:
        xs = [v[k] for v in vals_list]
        if len(xs) == 1:
            out[k] = f"{xs[0]:.3f}" if k not in ("gen_ms", "guard_ms", "n") else f"{xs[0]:.2f}" if k != "n" else str(xs[0])
        else:
            m, s = statistics.mean(xs), statistics.stdev(xs)
            out[k] = (f"{m:.3f} ± {s:.3f}" if k not in ("gen_ms", "guard_ms") else f"{m:.2f} ± {s:.2f}") if k != "n" else str(xs[0])
    return out


cols = KEYS + ["micro_precision", "micro_recall", "micro_f1", "macro_f1", "corr_per_report", "changed", "gen_ms", "guard_ms", "n"]
print("| generator | findings | " + " | ".join(cols) + " |")
print("|" + "---|" * (len(cols) + 2))
for gen in sys.argv[1:]:
    for mode in ("oracle", "indication"):
        stems = sorted(p[:-10] for p in glob.glob(f"runs/gen2/{gen}-{mode}*.eval.json"))
        if not stems:
            continue
        f = fmt([row_stats(s) for s in stems])
        label = gen + (f" ({len(stems)} seeds)" if len(stems) > 1 else "")
        print(f"| {label} | {mode} | " + " | ".join(f[c] for c in cols) + " |")
