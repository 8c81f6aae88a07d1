"""What the browser viewer needs beside findings.json: the study's voxels and the report linked to findings.

``viewer.bin`` holds the image as little-endian int16 (z, y, x), strided to at most ``MAX_SIDE`` pixels a
side and ``MAX_SLICES`` slices (HU for CT; other images scaled to 0..4095); ``viewer.json`` says its shape,
the stride (voxel ``v`` of the study is ``v // stride`` here), the window presets and the report split
into sentences, each with the findings it states (found with the report labeler of ``knowledge``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

MAX_SIDE = 384
MAX_SLICES = 320
CT_PRESETS = {"lung": (-600, 1500), "mediastinum": (40, 400), "bone": (400, 1800), "brain": (40, 80),
              "abdomen": (50, 350)}


def link_sentences(report: dict | None, findings: list[dict]) -> list[dict[str, Any]]:
    """The report's sentences (findings, then impression), each with the indices of the present findings of
    the kinds it states as positive or uncertain."""
    from radscribe.knowledge.labeler import label_text, split_sentences

    out: list[dict[str, Any]] = []
    for section in ("findings", "impression"):
        for sentence in split_sentences((report or {}).get(section) or ""):
            kinds = {m.kind for m in label_text(sentence) if m.status != "negative"}
            hits = [i for i, f in enumerate(findings) if f.get("present") and f.get("kind") in kinds]
            out.append({"section": section, "text": sentence, "findings": hits})
    return out


def write_viewer_files(study: Path, out: Path, *, series_uid: str | None = None) -> None:
    """Write ``viewer.bin`` and ``viewer.json`` into the finished output folder ``out``."""
    from radscribe.io.loader import load_study

    image = load_study(Path(study), series_uid).image
    arr = np.asarray(image.array)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4:  # colour: luminance
        arr = arr[..., :3].mean(axis=-1)
    stride = (max(1, -(-arr.shape[0] // MAX_SLICES)), max(1, -(-arr.shape[1] // MAX_SIDE)),
              max(1, -(-arr.shape[2] // MAX_SIDE)))
    small = arr[::stride[0], ::stride[1], ::stride[2]].astype(np.float32)
    hu = image.units == "HU"
    if hu:
        data = np.clip(small, -2048, 4095).astype("<i2")
        presets = CT_PRESETS
    else:
        lo, hi = float(np.percentile(small, 0.5)), float(np.percentile(small, 99.5))
        data = (np.clip((small - lo) / max(hi - lo, 1e-6), 0, 1) * 4095).astype("<i2")
        presets = {"full": (2048, 4096), "contrast": (2048, 2048), "bright": (1400, 2800)}
    findings_doc = json.loads((out / "findings.json").read_text())
    meta = {
        "shape": list(data.shape), "stride": list(stride), "units": "HU" if hu else "scaled 0..4095",
        "aspect": float(image.spacing[1] * stride[1]) / float(image.spacing[2] * stride[2])
        if image.spacing_known else 1.0,
        "presets": {k: {"center": c, "width": w} for k, (c, w) in presets.items()},
        "default_preset": "lung" if hu and findings_doc["study"].get("body_region") == "chest" else next(iter(presets)),
        "sentences": link_sentences(findings_doc.get("report"), findings_doc.get("findings", [])),
    }
    (out / "viewer.bin").write_bytes(data.tobytes())
    (out / "viewer.json").write_text(json.dumps(meta))
