"""Each finding's mask and heatmap written beside findings.json, so that a user, a viewer or a PACS tool can
overlay them: ``masks/finding_NN_<kind>.png|.nii.gz`` and ``heatmaps/finding_NN_<kind>.png|.nii.gz`` (PNG for a
2D image, NIfTI with the study's geometry for a volume; :mod:`radscribe.io.layer_files`), recorded in
``Finding.artifacts["mask"]`` / ``["heatmap"]``. A detector that already wrote its own file for a finding
(``artifacts`` set, e.g. the brain tumour mask) keeps it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from radscribe.findings.model import Finding
from radscribe.io.image import Image
from radscribe.io.layer_files import layer_bytes


def write_layers(image: Image, findings: list[Finding], masks: dict[int, np.ndarray],
                 heatmaps: dict[int, np.ndarray], tmp: Path) -> list[Finding]:
    """Write the mask / heatmap of every present finding into ``tmp``; return the findings with the paths."""
    out: list[Finding] = []
    for i, f in enumerate(findings):
        art = dict(f.artifacts)
        for key, folder, layers, is_mask in (("mask", "masks", masks, True), ("heatmap", "heatmaps", heatmaps, False)):
            layer = layers.get(i)
            if not f.present or layer is None or key in art:
                continue
            suffix, data = layer_bytes(layer, image, is_mask=is_mask)
            rel = f"{folder}/finding_{i + 1:02d}_{f.kind}{suffix}"
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            art[key] = rel
        out.append(replace(f, artifacts=art) if art != f.artifacts else f)
    return out
