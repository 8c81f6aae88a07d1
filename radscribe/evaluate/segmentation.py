"""Cross-validated evaluation of the brain tumour segmentation: ``radscribe evaluate-seg --run DIR --out DIR``.

Every fold's model (``DIR/fold<K>/model.safetensors`` of a ``radscribe train-seg`` run) segments the slices of
its held-out fold exactly as the detector does (:func:`radscribe.models.brain_seg.segment_slice` +
:func:`clean_mask`: on the image's own pixel grid), and each slice is scored against its hand-drawn mask:

* Dice, IoU and the 95 % Hausdorff distance in pixels (MONAI ``compute_dice`` / ``compute_iou`` /
  ``compute_hausdorff_distance``; HD95 only where both masks are non-empty, empty predictions counted apart),
* box IoU of the mask-derived box against the hand-drawn mask's box, and the detection rate
  (box IoU >= 0.5), on the slices with a tumour mask,
* presence: AUC of the calibrated presence on all slices (tumour vs no tumour), the false-positive
  rate on tumour-free slices at the calibrated 0.5 threshold, and the expected calibration error.

Presence calibration (Platt scaling of one feature: the logit of the largest tumour probability or the log of
the segmented head fraction, whichever has the higher AUC there) is fitted on the out-of-fold predictions of
every fold except the shipped model's test fold (:data:`radscribe.data.brain_seg.TEST_FOLD`), so the test
fold's calibrated figures are out of sample. Output: ``metrics.json`` (per fold, mean +- std, pooled),
``per_image.csv``, ``calibration.json``, ``report.html`` with overlays of the best, median and worst slices.
``--export`` copies the test fold's model, config, calibration and metrics to the registry weights folder.
"""

from __future__ import annotations

import csv
import html
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from radscribe.errors import ConfigError, RadscribeInputError


def slice_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Dice, IoU, HD95 (px), box IoU of two 2D boolean masks (MONAI metrics; NaN where undefined)."""
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou

    from radscribe.findings.measure import mask_box
    from radscribe.models.explain import box_iou

    p = torch.from_numpy(np.asarray(pred, bool))[None, None].float()
    g = torch.from_numpy(np.asarray(gt, bool))[None, None].float()
    out = {"dice": float(compute_dice(p, g, include_background=True, ignore_empty=False)[0, 0]),
           "iou": float(compute_iou(p, g, include_background=True, ignore_empty=False)[0, 0])}
    if pred.any() and gt.any():
        out["hd95_px"] = float(compute_hausdorff_distance(p, g, include_background=True, percentile=95)[0, 0])
        out["box_iou"] = box_iou(mask_box(pred), mask_box(gt))
    else:
        out["hd95_px"] = float("nan")
        out["box_iou"] = 0.0 if gt.any() else float("nan")
    return out


def fit_platt(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(a, b) of P = sigmoid(a * logit(score) + b), by logistic regression (weak L2) on out-of-fold scores."""
    s = np.clip(np.asarray(scores, float), 1e-6, 1 - 1e-6)
    return fit_platt_feature(np.log(s / (1 - s)), labels)


def fit_platt_feature(z: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(a, b) of P = sigmoid(a * z + b) for a 1-D feature ``z``."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=100.0).fit(np.asarray(z, float)[:, None], np.asarray(labels, int))
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _features(rows: list[dict], kind: str) -> np.ndarray:
    from radscribe.models.brain_seg import presence_feature

    return np.array([presence_feature(kind, r["score"], r["area_fraction"]) for r in rows])


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of binary probabilities (equal-width bins)."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).mean()
                     for b in range(bins) if (idx == b).any()))


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if len(set(np.asarray(y).tolist())) == 2 else float("nan")


def _contour(m: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return m & ~ndimage.binary_erosion(m, iterations=2)


def overlay_png(image2d: np.ndarray, gt: np.ndarray | None, pred: np.ndarray, path: Path) -> None:
    """Gray slice with the hand-drawn mask's contour in green and the predicted contour in red."""
    from PIL import Image as PILImage

    from radscribe.preprocess.intensity import to_unit_range

    g = (to_unit_range(image2d) * 255).astype(np.uint8)
    rgb = np.stack([g, g, g], -1)
    if gt is not None:
        rgb[_contour(gt)] = (40, 220, 40)
    rgb[_contour(pred)] = (240, 40, 40)
    PILImage.fromarray(rgb).save(path)


def _mean_std(v: list[float]) -> dict[str, float]:
    a = np.asarray(v, float)
    a = a[np.isfinite(a)]
    return {"mean": float(a.mean()) if a.size else float("nan"), "std": float(a.std()) if a.size else float("nan")}


def _nan_none(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _nan_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_none(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def evaluate_run(run_dir: Path, out: Path, progress: bool = True) -> dict:
    """Score every completed fold of ``run_dir`` (see module doc); writes into ``out`` (an existing folder)."""
    from tqdm import tqdm

    from radscribe.data.brain_seg import TEST_FOLD, load_dataset
    from radscribe.io.raster import read_raster
    from radscribe.models.brain_seg import clean_mask, load_seg_model, segment_slice

    ds = load_dataset()
    folds_done = sorted(int(p.parent.name[4:]) for p in run_dir.glob("fold*/model.safetensors"))
    if not folds_done:
        raise RadscribeInputError(f"{run_dir} holds no completed fold (fold<K>/model.safetensors)")
    rows: list[dict] = []
    keep: dict[str, tuple] = {}
    t0 = time.time()
    for k in folds_done:
        fd = run_dir / f"fold{k}"
        tmp = out / f".fold{k}-weights"
        tmp.mkdir(exist_ok=True)
        shutil.copyfile(fd / "model.safetensors", tmp / "model.safetensors")
        shutil.copyfile(run_dir / "config.yaml", tmp / "config.yaml")
        model = load_seg_model(tmp)
        shutil.rmtree(tmp)
        idx = ds.indices(k, heldout=True)
        for i in tqdm(idx, desc=f"fold {k}", disable=not progress, leave=False, file=sys.stderr):
            r = ds.records[i]
            img = read_raster(r.image_path)[0].array[0]
            ts = time.perf_counter()
            prob, head = segment_slice(model, img)
            pred = clean_mask(prob, head)
            seconds = time.perf_counter() - ts
            score = float(prob[pred].max()) if pred.any() else float(prob.max())
            row = {"key": r.key, "fold": k, "tumour": int(r.tumour), "has_mask": int(r.mask_path is not None),
                   "score": score, "pred_px": int(pred.sum()), "seconds": round(seconds, 4),
                   "area_fraction": float(pred.sum()) / max(float(head.sum()), 1.0)}
            gt = None
            if r.mask_path is not None:
                from PIL import Image as PILImage

                with PILImage.open(r.mask_path) as mim:
                    gt = np.asarray(mim.convert("L")) >= 128
                row.update(slice_scores(pred, gt))
                row["gt_px"] = int(gt.sum())
                keep[r.key] = (img, gt, pred)
            elif not r.tumour and len(keep) < 10_000:
                keep.setdefault(f"no:{r.key}", (img, None, pred))
            rows.append(row)
    y = np.array([r["tumour"] for r in rows])
    f = np.array([r["fold"] for r in rows])
    cal_mask = f != TEST_FOLD if (f != TEST_FOLD).any() and len(set(y[f != TEST_FOLD])) == 2 else np.ones(len(y), bool)
    # the presence feature (largest probability or segmented area) is chosen by AUC on the calibration folds
    feats = {kind: _features(rows, kind) for kind in ("max_prob", "log_area")}
    cal_auc = {kind: _auc(y[cal_mask], z[cal_mask]) for kind, z in feats.items()}
    kind = max(cal_auc, key=lambda k: -1.0 if math.isnan(cal_auc[k]) else cal_auc[k])
    ab = fit_platt_feature(feats[kind][cal_mask], y[cal_mask])
    p = 1 / (1 + np.exp(-(ab[0] * feats[kind] + ab[1])))
    for r, pi in zip(rows, p):
        r["presence"] = float(pi)
    per_fold = {}
    for k in folds_done:
        rk = [r for r in rows if r["fold"] == k]
        masked = [r for r in rk if r["has_mask"]]
        neg = [r for r in rk if not r["tumour"]]
        yk, pk = np.array([r["tumour"] for r in rk]), np.array([r["presence"] for r in rk])
        per_fold[k] = {
            "n": len(rk), "n_masked": len(masked), "n_no_tumour": len(neg),
            "dice": _mean_std([r["dice"] for r in masked])["mean"],
            "iou": _mean_std([r["iou"] for r in masked])["mean"],
            "hd95_px": _mean_std([r["hd95_px"] for r in masked])["mean"],
            "box_iou": _mean_std([r["box_iou"] for r in masked])["mean"],
            "detection_rate_box_iou_0.5": float(np.mean([r["box_iou"] >= 0.5 for r in masked])) if masked else None,
            "empty_predictions_on_tumour": int(sum(r["pred_px"] == 0 for r in masked)),
            "presence_auc": _auc(yk, pk),
            "presence_auc_max_prob": _auc(yk, np.array([r["score"] for r in rk])),
            "false_positive_rate": float(np.mean([r["presence"] >= 0.5 and r["pred_px"] > 0 for r in neg])) if neg else None,
            "ece_calibrated": ece(pk, yk),
        }
    keys = ["dice", "iou", "hd95_px", "box_iou", "detection_rate_box_iou_0.5", "presence_auc", "false_positive_rate",
            "ece_calibrated"]
    summary = {k: _mean_std([pf[k] for pf in per_fold.values() if pf[k] is not None]) for k in keys}
    masked = [r for r in rows if r["has_mask"]]
    pooled = {"dice": _mean_std([r["dice"] for r in masked]), "box_iou": _mean_std([r["box_iou"] for r in masked]),
              "presence_auc": _auc(y, p), "presence_auc_by_feature": {k: _auc(y, z) for k, z in feats.items()},
              "n_slices": len(rows), "n_masked": len(masked),
              "seconds_per_slice_median": float(np.median([r["seconds"] for r in rows]))}
    cal = {"score": kind, "a": ab[0], "b": ab[1],
           "method": f"Platt scaling of {'logit(max tumour probability)' if kind == 'max_prob' else 'log(segmented area / head area + 1e-4)'}",
           "auc_on_calibration_folds": cal_auc, "fitted_on_folds": sorted(set(f[cal_mask].tolist())),
           "n": int(cal_mask.sum()),
           # with only the test fold evaluated, calibration is fitted on it: its ECE is then in-sample
           "in_sample_for_test_fold": bool(cal_mask[f == TEST_FOLD].any())}
    result = {"run": str(run_dir), "folds": folds_done, "test_fold": TEST_FOLD, "per_fold": per_fold,
              "mean_std_over_folds": summary, "pooled": pooled, "calibration": cal, "data_notes": list(ds.notes),
              "wall_seconds": round(time.time() - t0, 1)}
    (out / "metrics.json").write_text(json.dumps(_nan_none(result), indent=1))
    (out / "calibration.json").write_text(json.dumps(cal, indent=1))
    with open(out / "per_image.csv", "w", newline="") as fh:
        cols = ["key", "fold", "tumour", "has_mask", "score", "area_fraction", "presence", "pred_px", "gt_px", "dice",
                "iou", "hd95_px", "box_iou", "seconds"]
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    _html(out, rows, keep, result)
    return result


def _html(out: Path, rows: list[dict], keep: dict, result: dict) -> None:
    masked = sorted((r for r in rows if r["has_mask"]), key=lambda r: r["dice"])
    picks = []
    if masked:
        picks = [("worst", "worst", masked[0]), ("median", "median", masked[len(masked) // 2]),
                 ("best", "best", masked[-1])]
    fps = sorted((r for r in rows if not r["tumour"]), key=lambda r: -r["presence"])[:1]
    if fps:
        picks.append(("most confident tumour-free slice", "no_tumour", fps[0]))
    (out / "overlays").mkdir(exist_ok=True)
    cells = []
    for name, tag, r in picks:
        img, gt, pred = keep[r["key"]] if r["key"] in keep else keep[f"no:{r['key']}"]
        fn = f"overlays/{tag}_{Path(r['key']).stem}.png"
        overlay_png(img, gt, pred, out / fn)
        dice = f"Dice {r['dice']:.3f}, box IoU {r['box_iou']:.3f}" if r["has_mask"] else f"{r['pred_px']} px predicted"
        cells.append(f"<figure><img src='{fn}' width='300'><figcaption>{html.escape(name)}: {html.escape(r['key'])} "
                     f"(fold {r['fold']}) - {dice}, presence {r['presence']:.2f}</figcaption></figure>")
    s = result["mean_std_over_folds"]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in s)
    body = "".join(f"<tr><td>fold {k}</td>" + "".join(
        f"<td>{'-' if v.get(m) is None else f'{v[m]:.3f}'}</td>" for m in s) + "</tr>"
        for k, v in result["per_fold"].items())
    body += "<tr><td><b>mean +- std</b></td>" + "".join(
        f"<td><b>{v['mean']:.3f} +- {v['std']:.3f}</b></td>" for v in s.values()) + "</tr>"
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>brain tumour segmentation</title>"
        "<style>body{font-family:sans-serif} td,th{padding:3px 8px;border:1px solid #ccc} figure{display:inline-block}"
        "</style><h1>Brain MR tumour segmentation, cross-validated</h1>"
        f"<p>Run {html.escape(result['run'])}; folds {result['folds']}; green = hand-drawn mask, red = prediction."
        f" Presence calibrated on folds {result['calibration']['fitted_on_folds']}.</p>"
        f"<table><tr><th>fold</th>{head}</tr>{body}</table>{''.join(cells)}")


def export_weights(run_dir: Path, eval_dir: Path, weights_dir: Path, test_fold: int) -> Path:
    """Copy the test fold's model + the run config + calibration + metrics to ``weights_dir``."""
    src = run_dir / f"fold{test_fold}" / "model.safetensors"
    if not src.is_file():
        raise ConfigError(f"--export: the test fold's model {src} does not exist")
    weights_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, weights_dir / "model.safetensors")
    shutil.copyfile(run_dir / "config.yaml", weights_dir / "config.yaml")
    shutil.copyfile(eval_dir / "calibration.json", weights_dir / "calibration.json")
    m = json.loads((eval_dir / "metrics.json").read_text())
    (weights_dir / "metrics.json").write_text(json.dumps(
        {"test_fold": test_fold, "test": m["per_fold"].get(str(test_fold)), "cv": m["mean_std_over_folds"],
         "folds": m["folds"], "calibration": m["calibration"]}, indent=1))
    return weights_dir


def cli_evaluate_seg(args: Any) -> int:
    """``radscribe evaluate-seg --run DIR --out DIR [--export]``."""
    from radscribe.data.brain_seg import TEST_FOLD
    from radscribe.io.output import atomic_dir
    from radscribe.models.brain_seg import WEIGHTS_DIR

    run_dir = Path(args.run)
    if not (run_dir / "config.yaml").is_file():
        raise RadscribeInputError(f"{run_dir} is not a train-seg run folder (no config.yaml)")
    import torch

    torch.set_num_threads(int(getattr(args, "threads", 1) or 1))
    with atomic_dir(Path(args.out), overwrite=args.overwrite) as tmp:
        res = evaluate_run(run_dir, tmp)
    s = res["mean_std_over_folds"]
    print(" | ".join(f"{k} {v['mean']:.3f} +- {v['std']:.3f}" for k, v in s.items()), file=sys.stderr)
    if args.export:
        d = export_weights(run_dir, Path(args.out), WEIGHTS_DIR, TEST_FOLD)
        print(f"exported fold {TEST_FOLD} to {d}", file=sys.stderr)
    return 0
