"""PNG plots for classifier evaluation: ROC, precision-recall, confusion matrix, reliability, heatmaps.

Every function writes one PNG (matplotlib, Agg backend, no display needed) and returns its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from radscribe.train.calibration import reliability_bins

matplotlib.use("Agg")  # before pyplot: no display needed
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _one_vs_rest(labels: Sequence[str], probs: np.ndarray, y: np.ndarray, normal_label: str | None):
    """(name, y_true_binary, score) per curve: binary -> the positive class only, else every class."""
    if len(labels) == 2:
        pos = 1 if normal_label is None or labels[0] == normal_label else 0
        yield labels[pos], (y == pos).astype(int), probs[:, pos]
        return
    for i, name in enumerate(labels):
        yield name, (y == i).astype(int), probs[:, i]


def plot_roc(labels: Sequence[str], probs: np.ndarray, y: np.ndarray, path: Path,
             normal_label: str | None = "normal") -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, yt, s in _one_vs_rest(labels, probs, y, normal_label):
        if yt.min() == yt.max():
            continue
        fpr, tpr, _ = roc_curve(yt, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(yt, s):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC (one-vs-rest)",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_pr(labels: Sequence[str], probs: np.ndarray, y: np.ndarray, path: Path,
            normal_label: str | None = "normal") -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, yt, s in _one_vs_rest(labels, probs, y, normal_label):
        if yt.min() == yt.max():
            continue
        prec, rec, _ = precision_recall_curve(yt, s)
        ax.plot(rec, prec, label=f"{name} (AP {average_precision_score(yt, s):.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (one-vs-rest)",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def plot_confusion(labels: Sequence[str], cm: np.ndarray, path: Path) -> Path:
    """Confusion matrix: rows = true label, columns = predicted label (counts)."""
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2.5, 1.2 * len(labels) + 2))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    thr = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if cm[i, j] > thr else "black")
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    return _save(fig, path)


def plot_reliability(series, path: Path, title: str = "Reliability diagram") -> Path:
    """``series``: list of (name, ReliabilityBins). Bars = accuracy per bin, diagonal = perfect calibration."""
    fig, ax = plt.subplots(figsize=(5, 5))
    width = None
    for k, (name, bins) in enumerate(series):
        centers = (bins.edges[:-1] + bins.edges[1:]) / 2
        width = (bins.edges[1] - bins.edges[0]) / max(len(series), 1)
        m = bins.count > 0
        off = (k - (len(series) - 1) / 2) * width
        ax.bar(centers[m] + off, bins.accuracy[m], width=width, alpha=0.7, edgecolor="black",
               label=f"{name} (ECE {bins.ece:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.set(xlabel="confidence (top label)", ylabel="accuracy", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_heatmap(image2d: np.ndarray, heatmap: np.ndarray, path: Path, box=None, title: str = "") -> Path:
    """Grey image with the heatmap (0..1) overlaid in 'jet'; ``box`` = (y0, x0, y1, x1), exclusive ends."""
    fig, ax = plt.subplots(figsize=(3.2, 3.4))
    ax.imshow(image2d, cmap="gray")
    ax.imshow(np.ma.masked_less(heatmap, 0.05), cmap="jet", alpha=0.4, vmin=0, vmax=1)
    if box is not None:
        y0, x0, y1, x1 = box
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="lime", lw=1.5))
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    return _save(fig, path)


def reliability_diagram(probs, labels, path, *, probs_after=None, n_bins: int = 15,
                        title: str = "Reliability diagram") -> Path:
    """Write a PNG reliability diagram (accuracy vs confidence per bin, with the ECE in the legend).

    ``probs_after`` (optional) draws a second series, e.g. after temperature scaling.
    """
    series = [("before" if probs_after is not None else "model", reliability_bins(probs, labels, n_bins))]
    if probs_after is not None:
        series.append(("after temperature scaling", reliability_bins(probs_after, labels, n_bins)))
    return plot_reliability(series, Path(path), title=title)
