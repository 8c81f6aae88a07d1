"""Which coverage rule should the guard use? Re-guard stored generations both ways and score them.

For each JSONL (``generate-reports`` output with its ``unguarded`` text, oracle findings), the guard is
applied to the unguarded text with ``strict_coverage`` on (a finding is stated only by a sentence of the
same kind or of a compatible kind with the same CheXpert label) and off (any compatible kind states it,
the rule before session 3). Prints (stderr) corrections per report, BLEU-4, METEOR, ROUGE-L and CE
micro / macro F1 per file and rule; writes the same as JSON to stdout.

    python benchmarks/iu_reports/guard_coverage.py --split val runs/val3/*.jsonl > runs/val3/guard_coverage.json
"""
import argparse
import json
import sys
import time
from pathlib import Path

from _common import split_studies
from radscribe.data.paths import shared_data_dir
from radscribe.evaluate.reports import evaluate_reports
from radscribe.report.consistency import guard


def main() -> int:
    iu = shared_data_dir() / "iu_xray_reports"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--split", default="val", choices=["val", "test"])
    p.add_argument("--annotation", type=Path, default=iu / "r2gen_split_annotation.json")
    p.add_argument("--reports", type=Path, default=iu / "indiana_reports.csv")
    a = p.parse_args()
    t0 = time.perf_counter()
    studies = split_studies(a.split, a.annotation, a.reports)
    out = {}
    for f in a.files:
        rows = [json.loads(line) for line in f.open()]
        if "unguarded" not in rows[0]:
            print(f"skip {f}: no 'unguarded' text", file=sys.stderr)
            continue
        for strict in (False, True):
            recs, corr = [], 0
            for r in rows:
                g = guard(r["unguarded"], studies[r["id"]].oracle, strict_coverage=strict)
                corr += g.n_corrections
                recs.append({"id": r["id"], "generated": g.text, "reference": r["reference"]})
            m = evaluate_reports(recs, a.annotation, a.split)
            row = {"corrections_per_report": round(corr / len(rows), 3),
                   **{k: round(m[k], 4) for k in ("BLEU_4", "METEOR", "ROUGE_L")},
                   "CE_micro_f1": round(m["CE"]["micro"]["f1"], 4), "CE_macro_f1": round(m["CE"]["macro"]["f1"], 4)}
            out[f"{f.name} {'strict' if strict else 'compatible'}"] = row
            print(f"{f.name:40s} {'strict    ' if strict else 'compatible'} {row}", file=sys.stderr, flush=True)
    print(json.dumps({"split": a.split, "wall_s": round(time.perf_counter() - t0, 1), "rows": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
