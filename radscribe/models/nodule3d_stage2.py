"""Second stage of the 3D nodule network: texture and malignancy from the network's own mask.

Features of one cube (51^3 at the assumed LIDC voxel size, HU): HU statistics inside the predicted mask
(mean, median, 10th / 90th percentile, std, fraction above -300 HU (solid, as the HU rule calls it) and
above -100 HU), its size (log volume in mm^3, axial long axis in mm), the network's texture probabilities
and its expected ratings. Two multinomial / binary logistic regressions (scikit-learn, class-balanced, fit
per fold on the training cubes by :func:`radscribe.train.nodule3d_eval.fit_stage2`) map them to texture
probabilities and P(malignancy >= 3). The fitted coefficients travel as plain JSON in the weights' config.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radscribe.findings.measure import axial_axes

FEATURES = ("hu_mean", "hu_median", "hu_p10", "hu_p90", "hu_std", "solid_fraction", "dense_fraction",
            "log_volume_mm3", "long_axis_mm", "net_ground_glass", "net_part_solid", "net_solid",
            "net_malignancy", "net_spiculation", "net_lobulation", "net_margin")


def cube_features(hu_cube: np.ndarray, mask: np.ndarray, texture_prob: np.ndarray, ratings: np.ndarray,
                  spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """The :data:`FEATURES` vector of one cube (an empty mask falls back to the central 3^3 voxels)."""
    m = np.asarray(mask, bool)
    if not m.any():
        m = np.zeros(m.shape, bool)
        c = tuple(s // 2 for s in m.shape)
        m[c[0] - 1:c[0] + 2, c[1] - 1:c[1] + 2, c[2] - 1:c[2] + 2] = True
    v = np.asarray(hu_cube, np.float32)[m]
    long_ = axial_axes(m, spacing_mm)[0]
    return np.array([v.mean(), np.median(v), np.percentile(v, 10), np.percentile(v, 90), v.std(),
                     (v > -300).mean(), (v > -100).mean(), np.log(m.sum() * float(np.prod(spacing_mm))), long_,
                     *np.asarray(texture_prob, float), *np.asarray(ratings, float)], float)


def _apply_lr(params: dict[str, Any], X: np.ndarray) -> np.ndarray:
    """Class probabilities of a serialised standardised logistic regression (see :func:`serialise_lr`)."""
    z = (np.atleast_2d(X) - np.array(params["mean"])) / np.array(params["scale"])
    logits = z @ np.array(params["coef"]).T + np.array(params["intercept"])
    if logits.shape[1] == 1:  # binary: P(class 1)
        p1 = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        return np.stack([1 - p1, p1], 1)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def serialise_lr(scaler, lr) -> dict[str, Any]:
    return {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(), "coef": lr.coef_.tolist(),
            "intercept": lr.intercept_.tolist(), "classes": [int(c) for c in lr.classes_]}


def apply_stage2(stage2: dict[str, Any], X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(texture probabilities (N, 3), P(malignancy >= 3) (N,)) for feature rows X (N, len(FEATURES))."""
    tp = _apply_lr(stage2["texture"], X)
    full = np.zeros((len(tp), 3))
    full[:, stage2["texture"]["classes"]] = tp
    return full, _apply_lr(stage2["malignancy"], X)[:, 1]
