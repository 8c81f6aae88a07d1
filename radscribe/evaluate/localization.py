"""Where a classifier looks: Grad-CAM heatmaps scored against hand-drawn masks (``radscribe localize``).

Box IoU between the heatmap's box and the mask's bounding box, and the pointing game (heatmap arg-max
inside the mask, strictly and within ``POINTING_TOLERANCE_PX``), with centre baselines.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from radscribe.data.datasets import read_gray
from radscribe.data.paths import dataset_dir
from radscribe.errors import RadscribeInputError
from radscribe.evaluate.classification import rounded
from radscribe.io.image import Image
from radscribe.io.output import atomic_file
from radscribe.models.explain import CamSession, box_iou, cam_layers, heatmap_box, mask_box, resize_heatmap
from radscribe.models.registry import load_model


#: Pointing-game tolerance in pixels (Zhang et al. 2016, "Top-down neural attention by excitation
#: backprop", used 15 px): a hit when the heatmap's maximum lies within this distance of the mask.
POINTING_TOLERANCE_PX = 15


def localization_scores(heatmap: np.ndarray, mask: np.ndarray, threshold: float = 0.5,
                        tolerance_px: float = POINTING_TOLERANCE_PX) -> dict:
    """One heatmap (y, x) against one boolean mask of the same shape: box IoU (heatmap box vs the mask's
    bounding box), pointing-game hits (arg-max in the mask; within ``tolerance_px`` of it) and the
    same for the centre baselines (image-centre point; centred box of half the height and width)."""
    mask = np.asarray(mask, bool)
    box, gt = heatmap_box(heatmap, threshold), mask_box(mask)
    peak = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    dist = ndimage.distance_transform_edt(~mask)
    H, W = mask.shape
    centre = (H // 2, W // 2)
    cbox = (H // 4, W // 4, H - H // 4, W - W // 4)
    return {"iou": box_iou(box, gt) if box else 0.0, "hit_strict": bool(mask[peak]),
            "hit_tol": bool(dist[peak] <= tolerance_px), "centre_hit_tol": bool(dist[centre] <= tolerance_px),
            "centre_box_iou": box_iou(cbox, gt), "box": box, "mask_box": gt}


def evaluate_localization(model: str = "mri-brain-tumor", dataset: str = "brain_tumor_seg",
                          threshold: float = 0.5, limit: int | None = None) -> dict:
    """Grad-CAM boxes/peaks against the hand-drawn tumour masks of ``brain_tumor_seg`` (yes/ + masks/).

    For each image the heatmap of the most probable *tumour* class (arg-max over the non-normal
    labels, whatever the model's top label) is resized to the image, boxed (>= ``threshold`` of max,
    largest region) and compared with the mask's bounding box (IoU) and the mask itself (pointing
    game: heatmap arg-max inside the mask, strict and within ``POINTING_TOLERANCE_PX``). Baselines:
    the image centre as the point, and a centred box covering the middle half of each side.
    """
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.perf_counter()
    root = dataset_dir(dataset)
    loaded = load_model(model)
    spec = loaded.spec
    tumour_idx = [i for i, lbl in enumerate(spec.labels) if lbl != spec.normal_label]
    files = sorted(p for p in (root / "yes").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if limit:
        files = files[:limit]
    # the fused CAM layers were chosen on one fixed-seed half of these images: report the other half too
    perm = np.random.default_rng(0).permutation(len(files))
    selection_half = {files[i].name for i in perm[: len(files) // 2]}
    rows = []
    for f in tqdm(files, desc="localisation", leave=False):
        mpath = root / "masks" / (f.stem + ".png")
        if not mpath.is_file():
            continue
        img = read_gray(f)
        mask = read_gray(mpath) >= 128
        if mask.shape != img.shape or not mask.any():
            continue
        image = Image(array=img[None], spacing_known=False, source=str(f), source_format="jpeg")
        x = loaded.preprocess(image)
        s = CamSession(loaded, x)
        p = torch.softmax(s.logits[0] / loaded.temperature, 0).numpy()
        k = max(tumour_idx, key=lambda i: p[i])
        h = resize_heatmap(s.cam(k), img.shape)
        sc = localization_scores(h, mask, threshold)
        rows.append({
            "file": f.name, "pred": spec.labels[int(np.argmax(p))], "tumour_class": spec.labels[k],
            "p_tumour": float(1 - p[spec.labels.index(spec.normal_label)]),
            **{k2: v for k2, v in sc.items() if k2 not in ("box", "mask_box")},
            "mask_fraction": float(mask.mean()), "half": "selection" if f.name in selection_half else "held_out",
        })
    if not rows:
        raise RadscribeInputError(f"no image/mask pairs found under {root}")
    def summary(rs: list[dict]) -> dict:
        iou = np.array([r["iou"] for r in rs])
        return {
            "n": len(rs),
            "predicted_tumour_rate": float(np.mean([r["pred"] != spec.normal_label for r in rs])),
            "box_iou_mean": float(iou.mean()), "box_iou_median": float(np.median(iou)),
            "box_iou_ge_0.5": float((iou >= 0.5).mean()),
            "pointing_hit_strict": float(np.mean([r["hit_strict"] for r in rs])),
            "pointing_hit_tol": float(np.mean([r["hit_tol"] for r in rs])),
            "baseline_centre_point_hit_tol": float(np.mean([r["centre_hit_tol"] for r in rs])),
            "baseline_centre_box_iou_mean": float(np.mean([r["centre_box_iou"] for r in rs])),
            "baseline_centre_box_iou_ge_0.5": float(np.mean([r["centre_box_iou"] >= 0.5 for r in rs])),
            "mean_mask_fraction_of_image": float(np.mean([r["mask_fraction"] for r in rs])),
        }

    res = {
        "model": model, "dataset": f"{dataset} (yes/ images with masks/; a different source than the training data)",
        "cam_layers": list(cam_layers(loaded)), "box_threshold": threshold,
        "pointing_tolerance_px": POINTING_TOLERANCE_PX,
        "all": summary(rows), "held_out_half": summary([r for r in rows if r["half"] == "held_out"]),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    res["per_image"] = rows
    return res


def cli_localize(args) -> int:
    """``radscribe localize [--model NAME] [--threshold F] [--json FILE]``: print the summary, optionally
    write every image's scores."""
    if not 0.0 < args.threshold < 1.0:
        raise RadscribeInputError(f"--threshold must be between 0 and 1, got {args.threshold}")
    r = rounded(evaluate_localization(args.model, threshold=args.threshold))
    print(json.dumps({k: v for k, v in r.items() if k != "per_image"}, indent=1))
    if args.json:
        with atomic_file(args.json) as fh:
            json.dump(r, fh, indent=1)
    return 0
