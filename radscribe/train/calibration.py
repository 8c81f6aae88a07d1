"""Probability calibration: temperature scaling fitted on validation logits, and the expected
calibration error it is judged by (``calibration.json`` beside every classifier's weights).

Temperature scaling (Guo et al., ICML 2017) divides every logit by one scalar ``T > 0`` fitted by
minimising the negative log-likelihood on *validation* logits; the arg-max (and so accuracy) is
unchanged, only the confidence moves. ECE here is the usual top-label ECE with 15 equal-width bins
over ``(0, 1]``: ``sum_b |acc_b - conf_b| * n_b / n``. The reliability diagram is drawn by
:func:`radscribe.evaluate.plots.reliability_diagram`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

#: Temperatures searched (log-uniform bounds); outside this range something is wrong with the logits.
T_MIN, T_MAX = 0.05, 20.0


def _as_logits(logits) -> np.ndarray:
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().numpy()
    a = np.asarray(logits, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"logits must be (n, n_classes >= 2), got shape {a.shape}")
    return a


def _as_labels(labels, n: int) -> np.ndarray:
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"{y.shape[0]} labels for {n} rows")
    return y


def nll(logits, labels, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of ``softmax(logits / temperature)``."""
    z = _as_logits(logits)
    y = _as_labels(labels, z.shape[0])
    lp = log_softmax(z / float(temperature), axis=1)
    return float(-lp[np.arange(len(y)), y].mean())


def fit_temperature(logits, labels) -> float:
    """Temperature ``T`` minimising the validation NLL of ``softmax(logits / T)``.

    A bounded scalar search on ``log T`` (Brent), which is exact for this one-parameter convex-ish
    problem and needs no learning rate. Returns a float in ``[T_MIN, T_MAX]``.

    When every validation prediction is already correct the NLL keeps falling as ``T -> 0``, so the
    fit would only sharpen the model without evidence; ``1.0`` (no change) is returned then.
    """
    z = _as_logits(logits)
    y = _as_labels(labels, z.shape[0])
    if len(y) == 0:
        raise ValueError("no validation samples to fit a temperature on")
    if bool((z.argmax(axis=1) == y).all()):
        return 1.0
    rows = np.arange(len(y))

    def f(log_t: float) -> float:
        lp = log_softmax(z / np.exp(log_t), axis=1)
        return float(-lp[rows, y].mean())

    res = minimize_scalar(f, bounds=(np.log(T_MIN), np.log(T_MAX)), method="bounded",
                          options={"xatol": 1e-5})
    return float(np.exp(res.x))


def probs_from_logits(logits, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` as float64 (n, n_classes)."""
    return softmax(_as_logits(logits) / float(temperature), axis=1)


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics of top-label confidence: edges (n_bins + 1), and per bin count/accuracy/confidence."""

    edges: np.ndarray
    count: np.ndarray
    accuracy: np.ndarray     # NaN for empty bins
    confidence: np.ndarray   # NaN for empty bins

    @property
    def ece(self) -> float:
        n = self.count.sum()
        if n == 0:
            return 0.0
        m = self.count > 0
        return float(np.sum(np.abs(self.accuracy[m] - self.confidence[m]) * self.count[m]) / n)


def reliability_bins(probs, labels, n_bins: int = 15) -> ReliabilityBins:
    """Top-label confidence binned into ``n_bins`` equal-width bins ``(lo, hi]`` (the first includes 0)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be (n, n_classes), got shape {p.shape}")
    y = _as_labels(labels, p.shape[0])
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds (edges[b], edges[b+1]]; confidence exactly 0 goes to bin 0
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(count > 0, acc_sum / np.maximum(count, 1), np.nan)
        cf = np.where(count > 0, conf_sum / np.maximum(count, 1), np.nan)
    return ReliabilityBins(edges, count, acc, cf)


def ece(probs, labels, n_bins: int = 15) -> float:
    """Top-label expected calibration error with ``n_bins`` equal-width bins (a fraction in [0, 1])."""
    return reliability_bins(probs, labels, n_bins).ece


def calibration_summary(val_logits, val_labels, n_bins: int = 15) -> dict:
    """Fit T on validation logits; the dict written to ``calibration.json`` (split "val")."""
    t = fit_temperature(val_logits, val_labels)
    return {
        "temperature": round(t, 6),
        "ece_before": round(ece(probs_from_logits(val_logits), val_labels, n_bins), 6),
        "ece_after": round(ece(probs_from_logits(val_logits, t), val_labels, n_bins), 6),
        "nll_before": round(nll(val_logits, val_labels), 6),
        "nll_after": round(nll(val_logits, val_labels, t), 6),
        "n": int(len(np.asarray(val_labels).reshape(-1))),
        "n_bins": n_bins,
        "split": "val",
        **({"note": "every validation prediction is correct: temperature scaling is not identifiable, T = 1"}
           if t == 1.0 and bool((_as_logits(val_logits).argmax(1) == _as_labels(val_labels, len(
               _as_logits(val_logits)))).all()) else {}),
    }
