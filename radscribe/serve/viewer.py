"""What the browser viewer needs beside findings.json: the study's voxels and the report linked to findings.

``viewer.bin`` holds the image as little-endian int16 (z, y, x), strided to at most ``MAX_SIDE`` pixels a
side and ``MAX_SLICES`` slices (HU for CT; other images scaled to 0..4095); ``viewer.json`` says its shape,
the stride (voxel ``v`` of the study is ``v // stride`` here), the window presets and the report split
into sentences, each with the findings it states (found with the report labeler of ``knowledge``).
``viewer-layers.bin`` holds each finding's mask and heatmap (files the analysis wrote, ``Finding.artifacts``
``mask`` / ``heatmap``) on the same strided grid as uint8 0..255 (block maximum, so a thin mask survives the
stride); ``viewer.json["layers"]`` lists them (finding index, type, byte offset).
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


def _block_max(layer: np.ndarray, stride, shape) -> np.ndarray:
    """``layer`` (z, y, x, 0..1) reduced by ``stride`` with the block maximum, cut to ``shape``, as uint8."""
    pads = [(0, (-n) % s) for n, s in zip(layer.shape, stride)]
    a = np.pad(layer, pads)
    nz, ny, nx = (n // s for n, s in zip(a.shape, stride))
    a = a.reshape(nz, stride[0], ny, stride[1], nx, stride[2]).max(axis=(1, 3, 5))
    return np.rint(np.clip(a[:shape[0], :shape[1], :shape[2]], 0, 1) * 255).astype(np.uint8)


def _layers(findings: list[dict], out: Path, full_shape, stride, shape) -> tuple[list[dict[str, Any]], bytes]:
    from radscribe.errors import RadscribeInputError
    from radscribe.io.layer_files import read_layer

    meta: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    offset = 0
    for i, f in enumerate(findings):
        for kind in ("mask", "heatmap"):
            rel = (f.get("artifacts") or {}).get(kind)
            if not f.get("present") or not rel:
                continue
            path = (out / rel).resolve()
            if out.resolve() not in path.parents or not path.is_file():
                continue
            try:
                layer = read_layer(path)
            except RadscribeInputError:
                continue
            if layer.shape != tuple(full_shape):
                continue  # not on the study grid: the viewer cannot place it
            small = _block_max(layer, stride, shape)
            meta.append({"finding": i, "type": kind, "offset": offset})
            chunks.append(small.tobytes())
            offset += small.size
    return meta, b"".join(chunks)


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
    layers, blob = _layers(findings_doc.get("findings", []), out, arr.shape, stride, data.shape)
    meta["layers"] = layers
    (out / "viewer-layers.bin").write_bytes(blob)
    (out / "viewer.bin").write_bytes(data.tobytes())
    (out / "viewer.json").write_text(json.dumps(meta))
