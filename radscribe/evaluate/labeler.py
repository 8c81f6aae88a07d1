"""How well the rule-based report labeler (:mod:`radscribe.knowledge.labeler`) agrees with the
IU X-ray MeSH coding, and ``radscribe label-reports``.

:func:`validate_against_mesh` scores the labeler's positives on findings + impression against the
kinds of each report's MeSH terms (per kind, micro/macro, per R2Gen split, and at CheXpert level).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from radscribe.data.iu_xray import _uid_of, mesh_term_kind, read_annotation, read_iu_reports
from radscribe.errors import RadscribeInputError
from radscribe.io.output import atomic_file
from radscribe.knowledge import ontology
from radscribe.knowledge.labeler import label_report


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def _chexpert_of(kinds: set[str]) -> set[str]:
    out = {ontology.FINDING_KINDS[k].chexpert for k in kinds if k in ontology.FINDING_KINDS} - {None}
    return out | ({"No Finding"} if "no_finding" in kinds else set())


def _summarise(counts: dict[str, dict[str, int]]) -> dict:
    """Micro and macro (all labels, 0 when undefined) P/R/F1 of per-label tp/fp/fn counts."""
    per = {lab: {**_prf(c["tp"], c["fp"], c["fn"]), "support": c["tp"] + c["fn"]} for lab, c in counts.items()}
    tp, fp, fn = (sum(c[x] for c in counts.values()) for x in ("tp", "fp", "fn"))
    macro = {m: sum(v[m] for v in per.values()) / len(per) for m in ("precision", "recall", "f1")}
    return {"micro": _prf(tp, fp, fn), "macro": macro, "per_label": per}


def validate_against_mesh(rows: dict[int, dict[str, str]], split_of: dict[int, str] | None = None) -> dict:
    """Labeler positives on findings + impression vs the kinds of each report's MeSH coding.

    Only kinds some MeSH head maps to are scored (the coders could not code the others), plus
    ``no_finding`` (gold: no MeSH term of a scored kind other than ``support_device``, the labeler's own
    definition; terms of kind "other" such as "Deformity/ribs" do not count). Reports coded
    "No Indexing" are left out (nothing was coded). ``split_of`` (uid -> R2Gen split) adds micro figures
    per split. ``chexpert_level``: the same comparison after mapping kinds to CheXpert's 14 labels (what the
    clinical-efficacy metric uses), for all reports and per split.
    """
    scored = sorted(k.id for k in ontology.FINDING_KINDS.values() if k.mesh) + ["no_finding"]
    counts = {k: {"tp": 0, "fp": 0, "fn": 0} for k in scored}
    by_split: dict[str, dict[str, int]] = {}
    chx: dict[str, dict[str, dict[str, int]]] = {}
    reports, skipped = [], 0
    for uid, row in sorted(rows.items()):
        terms = [t.strip() for t in row["MeSH"].split(";") if t.strip()]
        if any(t.lower() == "no indexing" for t in terms):
            skipped += 1
            continue
        gold = {mesh_term_kind(t) for t in terms} - {None, "other"}
        if not gold - {"support_device"}:   # CheXpert's "No Finding": nothing but devices among the kinds
            gold.add("no_finding")
        labels = label_report(f"{row.get('findings', '')} {row.get('impression', '')}")
        pred = {k for k, m in labels.items() if m.status == "positive" and k in counts}
        sp = by_split.setdefault((split_of or {}).get(uid, "not in R2Gen split"), {"tp": 0, "fp": 0, "fn": 0, "n": 0})
        sp["n"] += 1
        for k in scored:
            x = "tp" if k in gold and k in pred else "fp" if k in pred else "fn" if k in gold else None
            if x:
                counts[k][x] += 1
                if k != "no_finding":
                    sp[x] += 1
        split = (split_of or {}).get(uid)
        for key in ("all", split) if split else ("all",):
            cx = chx.setdefault(key, {lab: {"tp": 0, "fp": 0, "fn": 0} for lab in ontology.CHEXPERT_LABELS})
            g, p = _chexpert_of(gold), _chexpert_of(pred)
            for lab in ontology.CHEXPERT_LABELS:
                x = "tp" if lab in g and lab in p else "fp" if lab in p else "fn" if lab in g else None
                if x:
                    cx[lab][x] += 1
        reports.append({"uid": uid, "mesh": terms, "gold": sorted(gold), "predicted": sorted(pred),
                        "missed": sorted(gold - pred), "extra": sorted(pred - gold)})
    per_label = {}
    for k, c in counts.items():
        per_label[k] = {**_prf(c["tp"], c["fp"], c["fn"]), "support": c["tp"] + c["fn"],
                        "predicted": c["tp"] + c["fp"], **c}
    kinds = [k for k in scored if k != "no_finding"]
    tp, fp, fn = (sum(counts[k][x] for k in kinds) for x in ("tp", "fp", "fn"))
    with_support = [k for k in kinds if per_label[k]["support"] > 0]
    macro = {m: sum(per_label[k][m] for k in with_support) / max(1, len(with_support))
             for m in ("precision", "recall", "f1")}
    splits = {name: {"n_reports": c["n"], "micro": _prf(c["tp"], c["fp"], c["fn"])} for name, c in by_split.items()}
    return {"n_reports": len(reports), "n_skipped_no_indexing": skipped, "micro": _prf(tp, fp, fn),
            "micro_by_split": splits if split_of else {},
            "chexpert_level": {key: _summarise(c) for key, c in chx.items()},
            "macro_over_labels_with_support": macro, "per_label": per_label, "reports": reports}


def cli_label_reports(args) -> int:
    """``radscribe label-reports``: label every IU report; with --validate-mesh, score against MeSH."""
    if args.out is None and not args.validate_mesh:
        raise RadscribeInputError("label-reports needs --out FILE.json (or --validate-mesh)")
    t0 = time.perf_counter()
    rows = read_iu_reports(args.reports)
    if args.validate_mesh:
        split_of = None
        ann = Path(args.reports).parent / "r2gen_split_annotation.json"
        if ann.is_file():   # R2Gen's split beside the CSV: also report figures per split
            split_of = {_uid_of(e["id"]): name for name, es in read_annotation(ann).items() for e in es}
        result = validate_against_mesh(rows, split_of)
        result["wall_s"] = round(time.perf_counter() - t0, 2)
        _print_validation(result)
    else:
        labelled = []
        for uid, row in sorted(rows.items()):
            labels = label_report(f"{row.get('findings', '')} {row.get('impression', '')}")
            labelled.append({"uid": uid, "labels": {k: {"status": m.status, "side": m.side, "location": m.location,
                                                        "severity": m.severity} for k, m in labels.items()}})
        result = {"n_reports": len(labelled), "reports": labelled,
                  "wall_s": round(time.perf_counter() - t0, 2)}
        print(f"labelled {len(labelled)} reports in {result['wall_s']} s")
    if args.out is not None:
        with atomic_file(args.out) as fh:
            json.dump(result, fh, indent=1)
        print(f"wrote {args.out}")
    return 0


def _print_validation(result: dict) -> None:
    table = Table(title=f"Labeler vs MeSH on {result['n_reports']} IU X-ray reports (findings + impression)")
    for col in ("label", "support", "predicted", "precision", "recall", "F1"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for k, v in sorted(result["per_label"].items(), key=lambda kv: -kv[1]["support"]):
        if v["support"] or v["predicted"]:
            table.add_row(k, str(v["support"]), str(v["predicted"]), f"{v['precision']:.3f}",
                          f"{v['recall']:.3f}", f"{v['f1']:.3f}")
    mi, ma = result["micro"], result["macro_over_labels_with_support"]
    table.add_row("micro (kinds)", "", "", f"{mi['precision']:.3f}", f"{mi['recall']:.3f}", f"{mi['f1']:.3f}")
    table.add_row("macro (kinds)", "", "", f"{ma['precision']:.3f}", f"{ma['recall']:.3f}", f"{ma['f1']:.3f}")
    Console().print(table)
    for name, v in sorted(result.get("micro_by_split", {}).items()):
        m = v["micro"]
        Console().print(f"{name}: {v['n_reports']} reports, micro P {m['precision']:.3f} R {m['recall']:.3f} "
                        f"F1 {m['f1']:.3f}")
    for name, v in sorted(result.get("chexpert_level", {}).items()):
        mi, ma = v["micro"], v["macro"]
        Console().print(f"CheXpert labels, {name}: micro F1 {mi['f1']:.3f} (P {mi['precision']:.3f} R {mi['recall']:.3f}), "
                        f"macro F1 {ma['f1']:.3f}")
