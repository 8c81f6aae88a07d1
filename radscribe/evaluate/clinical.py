"""Clinical efficacy (CE) of generated reports: do they state the same CheXpert labels as the references?

Both texts go through the rule-based labeler (:mod:`radscribe.knowledge.labeler`); a CheXpert label is
positive when any finding kind mapped to it (``FindingKind.chexpert``) is positive, "No Finding" when the
labeler's ``no_finding`` is. Uncertain and negative count as 0, as in R2Gen's ``compute_ce.py`` (which
sets -1 and blank to 0). Micro / macro precision, recall and F1 are sklearn's over the 14 labels with
``zero_division=0`` (R2Gen's ``compute_mlc``), so a label absent from both sides adds 0 to a macro mean.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score

from radscribe.errors import RadscribeInputError
from radscribe.knowledge import ontology
from radscribe.knowledge.labeler import label_report

LABELS: tuple[str, ...] = ontology.CHEXPERT_LABELS


def chexpert_vector(text: str) -> np.ndarray:
    """0/1 per CheXpert label (order :data:`LABELS`) for one report; uncertain counts as 0."""
    v = np.zeros(len(LABELS), dtype=np.int8)
    for kind_id, m in label_report(text).items():
        if m.status != "positive":
            continue
        if kind_id == "no_finding":
            v[LABELS.index("No Finding")] = 1
        elif kind_id in ontology.FINDING_KINDS and ontology.FINDING_KINDS[kind_id].chexpert:
            v[LABELS.index(ontology.FINDING_KINDS[kind_id].chexpert)] = 1
    return v


def clinical_efficacy(refs: Mapping[str, str], gens: Mapping[str, str]) -> dict:
    """CE of ``gens`` against ``refs`` (same ids): micro/macro P/R/F1 and per-label figures."""
    if set(refs) != set(gens):
        raise RadscribeInputError("references and generated reports have different ids")
    if not refs:
        raise RadscribeInputError("no reports to score")
    ids = sorted(refs)
    gt = np.stack([chexpert_vector(refs[i]) for i in ids])
    pr = np.stack([chexpert_vector(gens[i]) for i in ids])
    out: dict = {"labels": list(LABELS), "n": len(ids)}
    for avg in ("micro", "macro"):
        out[avg] = {"precision": float(precision_score(gt, pr, average=avg, zero_division=0)),
                    "recall": float(recall_score(gt, pr, average=avg, zero_division=0)),
                    "f1": float(f1_score(gt, pr, average=avg, zero_division=0))}
    per = {}
    p = precision_score(gt, pr, average=None, zero_division=0)
    r = recall_score(gt, pr, average=None, zero_division=0)
    f = f1_score(gt, pr, average=None, zero_division=0)
    for j, lab in enumerate(LABELS):
        per[lab] = {"precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]),
                    "support": int(gt[:, j].sum()), "predicted": int(pr[:, j].sum())}
    out["per_label"] = per
    return out
