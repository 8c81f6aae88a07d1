"""COV-CTR (Li et al. 2020): 720 chest CT slices with a radiologist's English report and a COVID-19 label.

The split is the one in ``annotation.json`` (576 / 72 / 72; the ZeroMRG release). Targets per image,
multi-label (one 0/1 column per label):

* ``covid19_pneumonia`` - the dataset's COVID-19 label;
* the finding kinds the rule-based report labeler (:mod:`radscribe.knowledge.labeler`) states as
  *positive* in the image's report (a negated or hedged mention counts as absent), with the side
  the report names where it names one (``left`` / ``right`` / ``bilateral``, else None).

A label with fewer than ``min_positives`` positives in *train* is dropped (:func:`kept_labels`), and
the adapter says so: a sigmoid head cannot learn, and val cannot select or calibrate, a label seen a
handful of times. Images are cached as in :mod:`radscribe.data.datasets` (percentile-normalised,
resized, 0..1 uint8), the same preparation inference applies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from radscribe.data.datasets import CachedDataset, cache_images
from radscribe.data.paths import dataset_dir
from radscribe.errors import RadscribeInputError

DATASET = "cov_ctr"
SPLITS = ("train", "val", "test")
COVID_LABEL = "covid19_pneumonia"
#: Labeler kinds the detector is asked to learn (issue 15): airspace, lesion, pleural, nodal, interstitial.
CANDIDATE_LABELS = (COVID_LABEL, "ground_glass_opacity", "opacity", "consolidation", "nodule", "effusion",
                    "lymphadenopathy", "fibrosis", "mass", "calcification")
MIN_POSITIVES = 10


@dataclass(frozen=True)
class CovCtrEntry:
    """One annotation row, with what the labeler read off its report (kind -> side or None)."""

    id: str
    image: Path
    report: str
    covid: int
    findings: dict[str, str | None]

    def target(self, label: str) -> int:
        return self.covid if label == COVID_LABEL else int(label in self.findings)


def read_entries(root: Path | None = None) -> dict[str, list[CovCtrEntry]]:
    """split -> entries of ``annotation.json``; RadscribeInputError when the dataset is absent or malformed."""
    from radscribe.knowledge.labeler import label_report

    root = Path(root) if root else dataset_dir(DATASET)
    ann = root / "annotation.json"
    try:
        data = json.loads(ann.read_text())
    except (OSError, ValueError) as exc:
        raise RadscribeInputError(f"cannot read COV-CTR annotations {ann}: {exc}") from exc
    out: dict[str, list[CovCtrEntry]] = {}
    for split in SPLITS:
        rows = data.get(split) if isinstance(data, dict) else None
        if not isinstance(rows, list) or not rows:
            raise RadscribeInputError(f"{ann} has no {split!r} list")
        entries = []
        for r in rows:
            try:
                mentions = label_report(r["report"])
                found = {k: m.side for k, m in mentions.items()
                         if m.status == "positive" and k not in ("normal", "no_finding")}
                entries.append(CovCtrEntry(str(r["id"]), root / r["image"], r["report"], int(r["covid"]), found))
            except (KeyError, TypeError, ValueError) as exc:
                raise RadscribeInputError(f"{ann}: malformed {split} entry {r!r:.80}: {exc}") from exc
        out[split] = entries
    return out


def target_matrix(entries: Sequence[CovCtrEntry], labels: Sequence[str]) -> np.ndarray:
    """(N, L) 0/1 int64 targets of ``entries`` for ``labels``."""
    return np.array([[e.target(lbl) for lbl in labels] for e in entries], dtype=np.int64).reshape(len(entries),
                                                                                                   len(labels))


def prevalence(entries: dict[str, list[CovCtrEntry]], labels: Sequence[str] = CANDIDATE_LABELS) -> dict:
    """split -> label -> {"positives", "n", "fraction"} and, for finding kinds, the sides the reports name."""
    out: dict = {}
    for split, rows in entries.items():
        y = target_matrix(rows, labels)
        out[split] = {}
        for j, lbl in enumerate(labels):
            pos = int(y[:, j].sum())
            row = {"positives": pos, "n": len(rows), "fraction": round(pos / len(rows), 4) if rows else 0.0}
            if lbl != COVID_LABEL:
                sides: dict[str, int] = {}
                for e in rows:
                    if lbl in e.findings:
                        key = e.findings[lbl] or "not stated"
                        sides[key] = sides.get(key, 0) + 1
                row["sides"] = dict(sorted(sides.items()))
            out[split][lbl] = row
    return out


def kept_labels(entries: dict[str, list[CovCtrEntry]], labels: Sequence[str] = CANDIDATE_LABELS,
                min_positives: int = MIN_POSITIVES) -> tuple[tuple[str, ...], dict[str, int]]:
    """(labels with >= ``min_positives`` training positives, {dropped label: its training positives})."""
    y = target_matrix(entries["train"], labels)
    pos = {lbl: int(y[:, j].sum()) for j, lbl in enumerate(labels)}
    kept = tuple(lbl for lbl in labels if pos[lbl] >= min_positives)
    return kept, {lbl: n for lbl, n in pos.items() if n < min_positives}


def format_prevalence(prev: dict, labels: Sequence[str]) -> str:
    """A plain-text table: label, then positives/n per split."""
    splits = list(prev)
    lines = ["label".ljust(22) + "".join(s.rjust(12) for s in splits)]
    for lbl in labels:
        lines.append(lbl.ljust(22) + "".join(
            f"{prev[s][lbl]['positives']}/{prev[s][lbl]['n']}".rjust(12) for s in splits))
    return "\n".join(lines)


class MultiLabelDataset(CachedDataset):
    """:class:`CachedDataset` with (N, L) 0/1 targets: ``__getitem__`` gives (x (1, S, S) 0..1, y (L,))."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, names: Sequence[str] | None = None):
        super().__init__(images, np.zeros(len(labels)), names)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.images[i].astype(np.float32) / 255.0)[None]
        return x, torch.from_numpy(self.labels[i])


def cov_ctr_splits(labels: Sequence[str], size: int, splits: Sequence[str] = SPLITS, root: Path | None = None,
                   progress: bool = True, entries: dict[str, list[CovCtrEntry]] | None = None,
                   ) -> dict[str, MultiLabelDataset]:
    """split -> :class:`MultiLabelDataset` of the images at ``size`` px with targets for ``labels``."""
    entries = entries or read_entries(root)
    out = {}
    for split in splits:
        rows = entries[split]
        out[split] = MultiLabelDataset(cache_images([str(e.image) for e in rows], size, progress),
                                       target_matrix(rows, labels), [e.id for e in rows])
    return out
