"""Metrics and calibration of a multi-label (one sigmoid per label) classifier.

* :func:`multilabel_metrics` - what :func:`radscribe.train.loop.fit` scores validation by: mean binary
  cross-entropy (``loss``), mean per-label accuracy at logit 0 (``acc``), macro AUC over the labels
  with both classes present (``auc``), and per-label AUC;
* :func:`fit_label_temperatures` - one temperature per label: ``sigmoid(z / T)`` is the two-class
  softmax of ``(0, z)`` at temperature T, so :func:`radscribe.train.calibration.fit_temperature`
  (validation NLL, bounded search) fits it unchanged;
* :func:`fit_platt` - Platt scaling ``sigmoid(a z + b)`` (val NLL; a bias moves the base rate, which a
  temperature cannot), and :func:`choose_calibration`, which picks per label between the two by
  cross-validated NLL *within* val (the fitted one always wins in-sample);
* :func:`choose_thresholds` - per label the calibrated-probability threshold with the best F1 on val;
* :func:`label_report` - per label AUC, F1 / precision / recall at the chosen threshold, prevalence,
  and binary ECE (15 bins, on ``(1 - p, p)``) before and after calibration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from radscribe.train.calibration import ece, fit_temperature


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def _two_class(z: np.ndarray) -> np.ndarray:
    """(N,) logits -> (N, 2) logits (0, z): their softmax is (1 - sigmoid(z), sigmoid(z))."""
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    return np.stack([np.zeros_like(z), z], axis=1)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def multilabel_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """loss (mean BCE, nats), acc (mean per-label accuracy at logit 0), auc (macro over labels with
    both classes), per-label ``auc_per_label``; ``n`` images."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(np.float64)
    if z.shape != y.shape or z.ndim != 2:
        raise ValueError(f"logits {z.shape} and labels {y.shape} must both be (n, n_labels)")
    bce = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    aucs = [_auc(y[:, j], z[:, j]) for j in range(z.shape[1])]
    finite = [a for a in aucs if not math.isnan(a)]
    return {"loss": float(bce.mean()), "acc": float(((z > 0) == (y > 0.5)).mean()),
            "auc": float(np.mean(finite)) if finite else float("nan"), "auc_per_label": aucs, "n": len(y)}


def fit_label_temperatures(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(L,) temperatures, each fitted on one label's validation logits."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(int)
    return np.array([fit_temperature(_two_class(z[:, j]), y[:, j]) for j in range(z.shape[1])])


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit_platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) minimising the NLL of ``sigmoid(a z + b)`` on one label's logits ``z`` and 0/1 ``y``
    (a tiny L2 term, 1e-4, keeps it finite when the classes separate; ``a`` >= 0.001: a calibration
    never reverses the ranking)."""
    from scipy.optimize import minimize

    z = np.asarray(z, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)

    def f(w: np.ndarray) -> tuple[float, np.ndarray]:
        p = sigmoid(w[0] * z + w[1])
        g = p - y
        return _nll(p, y) + 1e-4 * (w @ w), np.array([np.mean(g * z), np.mean(g)]) + 2e-4 * w

    res = minimize(f, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(1e-3, None), (None, None)])
    return float(res.x[0]), float(res.x[1])


def _fit(method: str, z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if method == "platt":
        return fit_platt(z, y)
    return 1.0 / fit_temperature(_two_class(z), y.astype(int)), 0.0


def choose_calibration(z: np.ndarray, y: np.ndarray, folds: int = 6, seed: int = 0) -> dict:
    """One label: {"method", "scale", "bias", "cv_nll": {method: nll}} - the method (temperature or
    Platt) with the lower ``folds``-fold cross-validated NLL on these (val) logits, refitted on all."""
    from sklearn.model_selection import StratifiedKFold

    z = np.asarray(z, dtype=np.float64).reshape(-1)
    y = np.asarray(y).astype(int).reshape(-1)
    cv: dict[str, float] = {}
    k = min(folds, int(y.sum()), int(len(y) - y.sum()))
    for method in ("temperature", "platt"):
        if k < 2:
            break
        p = np.empty(len(y))
        for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(z, y):
            a, b = _fit(method, z[tr], y[tr])
            p[te] = sigmoid(a * z[te] + b)
        cv[method] = round(_nll(p, y), 6)
    method = min(cv, key=cv.get) if cv else "temperature"
    a, b = _fit(method, z, y)
    return {"method": method, "scale": a, "bias": b, "cv_nll": cv}


def choose_thresholds(probs: np.ndarray, labels: np.ndarray, grid: Sequence[float] | None = None) -> np.ndarray:
    """(L,) thresholds on calibrated probabilities maximising F1 on val (ties: the one nearest 0.5);
    0.5 for a label without a positive. A threshold that calls *every* val image positive is not
    considered: it is no detector (its F1 is the prevalence's), and a calibration that flattened a
    label without signal on val to its base rate would otherwise assert that label on every image."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(int)
    grid = np.asarray(grid if grid is not None else np.round(np.arange(0.05, 0.951, 0.01), 2))
    out = []
    for j in range(p.shape[1]):
        if y[:, j].sum() == 0:
            out.append(0.5)
            continue
        f1 = np.array([f1_score(y[:, j], p[:, j] >= t, zero_division=0) if not (p[:, j] >= t).all() else -1.0
                       for t in grid])
        best = np.flatnonzero(f1 >= f1.max() - 1e-12)
        out.append(float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]]))
    return np.array(out)


def binary_ece(p: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """ECE of one label's probabilities, as the top-label ECE of (1 - p, p)."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    return ece(np.stack([1 - p, p], axis=1), np.asarray(y).astype(int), n_bins)


def label_report(logits: np.ndarray, labels: np.ndarray, names: Sequence[str], temperatures: np.ndarray,
                 thresholds: np.ndarray, biases: np.ndarray | None = None) -> dict:
    """label -> {auc, f1, precision, recall, threshold, positives, n, prevalence, accuracy,
    ece_raw, ece_calibrated} of one split, plus ``macro`` means over labels with both classes.
    Calibrated p = sigmoid(z / T + bias) (bias 0: temperature scaling; else Platt with a = 1 / T)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(int)
    biases = np.zeros(len(names)) if biases is None else np.asarray(biases, dtype=np.float64)
    out: dict = {}
    for j, name in enumerate(names):
        p_raw, p = sigmoid(z[:, j]), sigmoid(z[:, j] / temperatures[j] + biases[j])
        pred = p >= thresholds[j]
        out[name] = {
            "auc": _auc(y[:, j], z[:, j]), "f1": float(f1_score(y[:, j], pred, zero_division=0)),
            "precision": float(precision_score(y[:, j], pred, zero_division=0)),
            "recall": float(recall_score(y[:, j], pred, zero_division=0)),
            "accuracy": float((pred == (y[:, j] == 1)).mean()), "threshold": float(thresholds[j]),
            "positives": int(y[:, j].sum()), "n": int(len(y)), "prevalence": float(y[:, j].mean()),
            "ece_raw": binary_ece(p_raw, y[:, j]), "ece_calibrated": binary_ece(p, y[:, j]),
            "temperature": float(temperatures[j]), "bias": float(biases[j])}
    both = [n for n in names if not math.isnan(out[n]["auc"])]
    out["macro"] = {k: float(np.mean([out[n][k] for n in both])) if both else float("nan")
                    for k in ("auc", "f1", "ece_raw", "ece_calibrated")}
    return out
