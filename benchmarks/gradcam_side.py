"""How often is the side that radscribe reads off a Grad-CAM heatmap right? (issue 13, item 7)

Truth: the hand-drawn tumour masks of ``brain_tumor_seg/`` (128 axial brain MR slices). For each
slice the `mri-brain-tumor` classifier runs as `analyze` runs it (`classify_image`, the shipped
weights); where it reports a tumour with a side, that side is compared with the side of the mask,
computed by the same rule (:func:`radscribe.models.classify.heatmap_side` on the mask: >= 75 % of
its area on one side of the body midline, else no side). Both are display sides of PNG/JPEG images
(image left = patient right assumed), so the convention cancels out of the comparison.

    .venv/bin/python benchmarks/gradcam_side.py [--json out.json]

Prints counts and the agreement with a Wilson 95 % interval. Light: ~1 min on one core.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from radscribe.data.datasets import read_gray
from radscribe.data.paths import dataset_dir
from radscribe.io.loader import load_study


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def main(argv: list[str] | None = None) -> int:
    from radscribe.models.classify import classify_image, heatmap_side
    from radscribe.models.registry import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    root = dataset_dir("brain_tumor_seg")
    model = load_model("mri-brain-tumor")
    rows, skipped, t0 = [], [], time.perf_counter()
    for img_path in sorted((root / "yes").iterdir()):
        mask_path = root / "masks" / (img_path.stem + ".png")
        if not mask_path.is_file():
            continue
        image = load_study(img_path).image  # exactly what `radscribe analyze` reads
        arr = image.array[0]
        mask = read_gray(mask_path) >= 128
        if mask.shape != arr.shape:  # two of the source's masks were drawn on another image size
            skipped.append(img_path.name)
            continue
        truth, _ = heatmap_side(mask.astype(np.float32), arr)
        res = classify_image(model, image)
        pos = [f for f in res.findings if f.present]
        rows.append({"file": img_path.name, "truth_side": truth, "label": res.label,
                     "cam_side": pos[0].side if pos else None, "positive": bool(pos)})
    wall = time.perf_counter() - t0
    judged = [r for r in rows if r["positive"] and r["cam_side"] and r["truth_side"]]
    right = sum(r["cam_side"] == r["truth_side"] for r in judged)
    lo, hi = _wilson(right, len(judged))
    summary = {
        "slices_with_mask": len(rows), "skipped_mask_size_mismatch": skipped,
        "mask_has_side": sum(bool(r["truth_side"]) for r in rows),
        "classifier_positive": sum(r["positive"] for r in rows),
        "cam_named_a_side": sum(bool(r["cam_side"]) for r in rows if r["positive"]),
        "judged": len(judged), "cam_side_right": right,
        "agreement": right / len(judged) if judged else float("nan"), "wilson95": [lo, hi],
        "cam_side_on_midline_mask": sum(1 for r in rows if r["cam_side"] and not r["truth_side"]),
        "wall_s": round(wall, 1),
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
