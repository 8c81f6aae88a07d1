"""Draw the 50-report hand-check sample of docs/parts/audit.md and print each report with its MeSH coding.

    python benchmarks/iu_reports/audit_sample.py runs/audit > sample.txt

Needs the JSONL files written by the commands in docs/parts/audit.md (structured, most-common, retrieval,
llm-lora-20) in the given folder. Seed 19; studies with a coded finding are preferred (see ``PLAN``) so that
the sample is not 50 copies of the normal report.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from radscribe.data.iu_xray import _uid_of, read_iu_reports
from radscribe.data.paths import shared_data_dir

#: (label, JSONL stem, field, how many, only studies with a coded finding)
PLAN = [("reference", "structured", "reference", 8, False), ("reference", "structured", "reference", 8, True),
        ("retrieval", "retrieval", "unguarded", 8, True), ("retrieval", "retrieval", "generated", 8, True),
        ("most-common", "most-common", "generated", 7, True), ("structured", "structured", "generated", 6, True),
        ("llm-lora-20", "llm-lora-20", "generated", 5, False)]


def main(folder: Path) -> None:
    rows = read_iu_reports(shared_data_dir() / "iu_xray_reports" / "indiana_reports.csv")
    src = {stem: [json.loads(line) for line in open(folder / f"{stem}.jsonl")] for _, stem, *_ in PLAN}

    def abnormal(r):
        return rows[_uid_of(r["id"])]["MeSH"].strip().lower() not in ("normal", "no indexing")

    rnd, used, n = random.Random(19), set(), 0
    for label, stem, field, k, abn in PLAN:
        pool = [r for r in src[stem] if (not abn or abnormal(r)) and (label, r["id"]) not in used]
        for r in rnd.sample(pool, k):
            used.add((label, r["id"]))
            print(f"[{n}] {label}/{field} {r['id']}  MeSH: {rows[_uid_of(r['id'])]['MeSH']}\n    {r[field]}\n")
            n += 1


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/audit"))
