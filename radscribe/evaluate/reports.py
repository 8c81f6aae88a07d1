"""``radscribe evaluate-reports``: NLG metrics and clinical efficacy of generated IU X-ray reports.

Input: JSONL, one ``{"id": ..., "generated": ...}`` object per line (``"reference"`` optional; when absent
it is R2Gen's report of that id in the annotation file's ``--split``). Output: a table on stdout and a JSON
file (written atomically) with BLEU_1..4, METEOR, ROUGE_L, CIDEr, CE micro/macro P/R/F1 and per-label CE.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from radscribe.data.iu_xray import read_annotation
from radscribe.errors import RadscribeInputError
from radscribe.evaluate.clinical import clinical_efficacy
from radscribe.evaluate.nlg import r2gen_vocabulary, score_nlg
from radscribe.io.output import atomic_file


def read_generated(path: Path) -> list[dict]:
    """Records of a JSONL file of generated reports; every problem names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise RadscribeInputError(f"generated-reports file {path} not found")
    records, seen = [], set()
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RadscribeInputError(f"{path} line {n}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or "id" not in rec or "generated" not in rec:
                raise RadscribeInputError(f"{path} line {n}: expected an object with 'id' and 'generated'")
            if not isinstance(rec["generated"], str) or ("reference" in rec and not isinstance(rec["reference"], str)):
                raise RadscribeInputError(f"{path} line {n}: 'generated' and 'reference' must be strings")
            rid = str(rec["id"])
            if rid in seen:
                raise RadscribeInputError(f"{path} line {n}: id {rid!r} appears twice")
            seen.add(rid)
            records.append({"id": rid, "generated": rec["generated"], "reference": rec.get("reference")})
    if not records:
        raise RadscribeInputError(f"{path} holds no generated reports (empty file)")
    return records


def evaluate_reports(records: list[dict], annotation: Path | None, split: str, *, protocol: str = "r2gen",
                     meteor: bool = True) -> dict:
    """All metrics for ``records`` (see :func:`read_generated`); references missing from a record come from
    R2Gen's annotation file, whose training split also gives the ``<unk>`` vocabulary of ``protocol="r2gen"``."""
    need_ann = protocol == "r2gen" or any(r["reference"] is None for r in records)
    ann = read_annotation(annotation) if need_ann else None
    refs, gens = {}, {}
    if any(r["reference"] is None for r in records):
        by_id = {e["id"]: e.get("report", "") for e in ann[split]}
        unknown = [r["id"] for r in records if r["reference"] is None and r["id"] not in by_id]
        if unknown:
            raise RadscribeInputError(
                f"{len(unknown)} id(s) without a 'reference' are not in the {split!r} split of {annotation}, "
                f"e.g. {unknown[:3]}; give a 'reference' or the right --split")
    for r in records:
        refs[r["id"]] = r["reference"] if r["reference"] is not None else by_id[r["id"]]
        gens[r["id"]] = r["generated"]
    vocab = r2gen_vocabulary(e.get("report", "") for e in ann["train"]) if protocol == "r2gen" else None
    t0 = time.perf_counter()
    nlg = score_nlg(refs, gens, protocol=protocol, vocab=vocab, meteor=meteor)
    t_nlg = time.perf_counter() - t0
    ce = clinical_efficacy(refs, gens)
    return {"n": len(records), "split": split, "protocol": protocol, **nlg,
            "CE": {"micro": ce["micro"], "macro": ce["macro"], "per_label": ce["per_label"],
                   "uncertain_as": "negative", "labels": ce["labels"]},
            "timings_s": {"nlg": round(t_nlg, 2), "ce": round(time.perf_counter() - t0 - t_nlg, 2)}}


def cli_evaluate_reports(args) -> int:
    records = read_generated(args.input)
    result = evaluate_reports(records, args.annotation, args.split, protocol=getattr(args, "protocol", "r2gen"),
                              meteor=not getattr(args, "no_meteor", False))
    result["input"] = str(args.input)
    _print(result)
    with atomic_file(args.out) as fh:
        json.dump(result, fh, indent=1)
    print(f"wrote {args.out}")
    return 0


def _print(result: dict) -> None:
    console = Console()
    t = Table(title=f"{result['n']} reports, protocol {result['protocol']}")
    names = ["BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr"]
    for n in names:
        t.add_column(n, justify="right")
    t.add_row(*("-" if result[n] is None else f"{result[n]:.3f}" for n in names))
    console.print(t)
    ce = Table(title="Clinical efficacy (CheXpert labels from the rule-based labeler; uncertain = negative)")
    for col in ("label", "support", "predicted", "precision", "recall", "F1"):
        ce.add_column(col, justify="left" if col == "label" else "right")
    for lab, v in result["CE"]["per_label"].items():
        ce.add_row(lab, str(v["support"]), str(v["predicted"]), f"{v['precision']:.3f}", f"{v['recall']:.3f}",
                   f"{v['f1']:.3f}")
    for avg in ("micro", "macro"):
        v = result["CE"][avg]
        ce.add_row(avg, "", "", f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}")
    console.print(ce)
