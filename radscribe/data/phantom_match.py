"""Detections matched to a phantom's known nodules (:mod:`radscribe.data.phantom`'s ``truth.json``): the one rule
that training (labels of candidates) and evaluation (sensitivity, FROC) share."""

from __future__ import annotations

import numpy as np


def match_tolerance_mm(nodule: dict) -> float:
    """How far a detection's centre may be from a true nodule's centre: its radius, at least 3 mm."""
    return max(nodule["diameter_mm"] / 2, 3.0)


def match_to_truth(truth: list[dict], centres_mm) -> list[tuple[int, int, float]]:
    """Greedy nearest matching of detections to ``truth["nodules"]``: (truth index, detection index, mm).

    ``centres_mm`` are detection centres in patient LPS mm; each nodule and each detection is used
    at most once, closest pairs first, within :func:`match_tolerance_mm`.
    """
    pairs = []
    for i, n in enumerate(truth):
        c = np.array(n["center_patient"])
        tol = match_tolerance_mm(n)
        for j, d in enumerate(centres_mm):
            dist = float(np.linalg.norm(np.asarray(d) - c))
            if dist <= tol:
                pairs.append((dist, i, j))
    pairs.sort()
    used_t, used_d, out = set(), set(), []
    for dist, i, j in pairs:
        if i in used_t or j in used_d:
            continue
        used_t.add(i)
        used_d.add(j)
        out.append((i, j, dist))
    return out
