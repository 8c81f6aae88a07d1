"""Held-out figures of the 3D nodule network, the HU-rule texture baseline, and the 5-fold summary:
``radscribe evaluate-nodule3d RUN_DIR``.

Per fold (on its held-out cubes, 51^3, masks compared on the whole cube):

* Dice of the predicted mask (component at the centre of probability >= 0.5, flip-averaged) per nodule;
  the fold's figure is the mean over its nodules.
* texture 3-class (ground glass / part solid / solid) macro-F1 and accuracy;
* malignancy AUC: rating >= 3 against < 3 (each cube carries one radiologist's rating), scored by the
  cumulative-link P(rating >= 3);
* MAE of the expected rating for malignancy, spiculation, lobulation, margin.

The HU-rule baseline is today's classical stage 2 (:func:`radscribe.models.nodule_measure.characterise`,
density class of :data:`radscribe.models.nodule_candidates.RULES`) on each cube mapped to HU with the
estimated mapping, at the assumed voxel size, started at the cube centre with the candidate scale a
stage-1 detector would report for the nodule's size (equivalent-sphere radius / sqrt 3 of the true mask);
calcified counts as solid, no region as ground glass.

The second stage (:func:`fit_stage2`) is a logistic regression per fold on the network's mask's HU and size
features (:mod:`radscribe.models.nodule3d_stage2`), fit on the fold's training cubes only.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from radscribe.errors import RadscribeInputError

METRICS = ("dice_mean", "texture_macro_f1", "texture_accuracy", "malignancy_auc", "mae_malignancy",
           "mae_spiculation", "mae_lobulation", "mae_margin")


def heldout_dice(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-cube Dice of boolean masks (N, ...) (1 when both are empty)."""
    p = np.asarray(pred, bool).reshape(len(pred), -1)
    t = np.asarray(truth, bool).reshape(len(truth), -1)
    inter, tot = (p & t).sum(1), p.sum(1) + t.sum(1)
    return np.where(tot > 0, 2.0 * inter / np.maximum(tot, 1), 1.0)


def fold_predictions(data, idx: np.ndarray, pr: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One record per held-out cube: truth, Dice, texture probabilities, expected ratings, P(malignancy>=3)."""
    from radscribe.data.lidc import ORDINAL_RATINGS
    from radscribe.models.nodule3d import expected_rating, prob_at_least

    dice = heldout_dice(pr["mask"], data.masks[idx])
    exp = expected_rating(pr["ordinal"])
    p3 = prob_at_least(pr["ordinal"][:, ORDINAL_RATINGS.index("malignancy")], 3)
    out = []
    for j, i in enumerate(idx):
        out.append({"name": data.names[i], "case": data.cases[i], "dice": float(dice[j]),
                    "voxels_true": int(data.masks[i].sum()), "voxels_pred": int(pr["mask"][j].sum()),
                    "texture_true": int(data.texture_class[i]),
                    "texture_prob": [float(v) for v in pr["texture_prob"][j]],
                    "ratings_true": {k: float(data.ratings[k][i]) for k in ORDINAL_RATINGS},
                    "ratings_pred": {k: float(exp[j, n]) for n, k in enumerate(ORDINAL_RATINGS)},
                    "p_malignancy_ge3": float(p3[j])})
    return out


def score_predictions(preds: list[dict[str, Any]]) -> dict[str, float]:
    """The fold figures (module doc) from :func:`fold_predictions` records."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    from radscribe.data.lidc import ORDINAL_RATINGS

    t = np.array([p["texture_true"] for p in preds])
    tp = np.array([int(np.argmax(p["texture_prob"])) for p in preds])
    m_true = np.array([p["ratings_true"]["malignancy"] for p in preds]) >= 3
    m_score = np.array([p["p_malignancy_ge3"] for p in preds])
    out = {"n": len(preds), "dice_mean": float(np.mean([p["dice"] for p in preds])),
           "dice_median": float(np.median([p["dice"] for p in preds])),
           "texture_macro_f1": float(f1_score(t, tp, labels=[0, 1, 2], average="macro", zero_division=0)),
           "texture_accuracy": float(accuracy_score(t, tp)),
           "malignancy_auc": float(roc_auc_score(m_true, m_score)) if 0 < m_true.sum() < len(m_true) else math.nan}
    for k in ORDINAL_RATINGS:
        out[f"mae_{k}"] = float(np.mean([abs(p["ratings_pred"][k] - p["ratings_true"][k]) for p in preds]))
    return out


def write_fold_results(fold_dir: Path, fold: int, preds: list[dict[str, Any]], extra: dict[str, Any]) -> dict:
    m = {"fold": fold, **score_predictions(preds), **extra}
    (fold_dir / "predictions.json").write_text(json.dumps(preds, indent=1))
    (fold_dir / "metrics.json").write_text(json.dumps(m, indent=1))
    return m


def hu_rule_texture(hu_cube: np.ndarray, spacing: tuple[float, float, float], r_eq_mm: float) -> dict[str, Any]:
    """Today's HU-rule density class of the nodule at the centre of one HU cube (z, y, x); module doc."""
    from radscribe.io.image import Image
    from radscribe.models.nodule_candidates import RULES
    from radscribe.models.nodule_measure import characterise
    from radscribe.preprocess.lung import LungSegmentation

    a = np.asarray(hu_cube, np.float32)
    img = Image(a, spacing=tuple(float(s) for s in spacing), modality="CT", units="HU")
    full = np.ones(a.shape, bool)
    half = np.zeros(a.shape, bool)
    half[..., : a.shape[2] // 2] = True
    lungs = LungSegmentation(full, half, full & ~half, float(full.sum() * np.prod(spacing) / 1000.0))
    lung_vals = a[a < -400]
    bg = float(np.median(lung_vals)) if lung_vals.size else -850.0
    feat: dict[str, Any] = {}
    c = tuple(s // 2 for s in a.shape)
    characterise(img, lungs, c, max(r_eq_mm, 1.0) / math.sqrt(3.0), bg, dict(RULES), feat)
    density = feat.get("density", "none")
    cls = {"ground_glass": 0, "part_solid": 1, "solid": 2, "calcified": 2}.get(density, 0)
    region = np.zeros(a.shape, bool)
    if "_region" in feat:
        region[feat["_roi"]] = feat["_region"]
    return {"density": density, "class": cls, "region": region}


def hu_rule_baseline(data, folds: np.ndarray, hu_mapping, progress: bool = True) -> dict[str, Any]:
    """HU-rule texture class (and the Dice of its grown region) for every cube; per-fold macro-F1."""
    from sklearn.metrics import f1_score
    from tqdm import tqdm

    from radscribe.data.lidc import ASSUMED_SPACING_MM

    voxel_mm3 = float(np.prod(ASSUMED_SPACING_MM))
    rows = []
    for i in tqdm(range(len(data)), desc="HU rule", disable=not progress, file=sys.stderr):
        r_eq = (3 * data.masks[i].sum() * voxel_mm3 / (4 * math.pi)) ** (1 / 3)
        res = hu_rule_texture(hu_mapping.to_hu(data.volumes[i]), ASSUMED_SPACING_MM, r_eq)
        rows.append({"name": data.names[i], "fold": int(folds[i]), "density": res["density"], "class": res["class"],
                     "texture_true": int(data.texture_class[i]),
                     "dice": float(heldout_dice(res["region"][None], data.masks[i][None])[0])})
    per_fold = []
    for k in sorted(set(int(f) for f in folds)):
        r = [x for x in rows if x["fold"] == k]
        f1 = f1_score([x["texture_true"] for x in r], [x["class"] for x in r], labels=[0, 1, 2], average="macro",
                      zero_division=0)
        per_fold.append({"fold": k, "texture_macro_f1": float(f1), "dice_mean": float(np.mean([x["dice"] for x in r]))})
    return {"rows": rows, "per_fold": per_fold}


def fit_stage2(fold_dir: Path, data, folds: np.ndarray, hu_mapping) -> dict[str, Any]:
    """Fit the second stage (:mod:`radscribe.models.nodule3d_stage2`) of one trained fold on its training
    cubes, score it on the held-out ones, and store it in ``stage2.json`` and the fold's ``config.json``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from radscribe.data.lidc import ASSUMED_SPACING_MM, ORDINAL_RATINGS
    from radscribe.models.nodule3d import expected_rating, load_nodule3d, predict_cubes
    from radscribe.models.nodule3d_stage2 import FEATURES, apply_stage2, cube_features, serialise_lr

    fold = int(json.loads((fold_dir / "metrics.json").read_text())["fold"])
    mdl = load_nodule3d(fold_dir)
    pr = predict_cubes(mdl.net, data.volumes.astype(np.float32) / 255.0, tta=True)
    exp = expected_rating(pr["ordinal"])
    X = np.stack([cube_features(hu_mapping.to_hu(data.volumes[i]), pr["mask"][i], pr["texture_prob"][i], exp[i],
                                ASSUMED_SPACING_MM) for i in range(len(data))])
    tr, ho = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
    stage2: dict[str, Any] = {"features": list(FEATURES)}
    malig = (data.ratings["malignancy"] >= 3).astype(int)
    for name, y in (("texture", data.texture_class), ("malignancy", malig)):
        sc = StandardScaler().fit(X[tr])
        lr = LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000).fit(sc.transform(X[tr]), y[tr])
        stage2[name] = serialise_lr(sc, lr)
    tp, pm = apply_stage2(stage2, X[ho])
    t_true, m_true = data.texture_class[ho], malig[ho]
    metrics = {"fold": fold, "texture_macro_f1": float(f1_score(t_true, tp.argmax(1), labels=[0, 1, 2], average="macro",
                                                                  zero_division=0)),
               "texture_accuracy": float(accuracy_score(t_true, tp.argmax(1))),
               "malignancy_auc": float(roc_auc_score(m_true, pm)) if 0 < m_true.sum() < len(m_true) else math.nan,
               "n_train": int(len(tr)), "n_heldout": int(len(ho))}
    preds = [{"name": data.names[i], "texture_prob": tp[j].tolist(), "p_malignancy_ge3": float(pm[j])}
             for j, i in enumerate(ho)]
    (fold_dir / "stage2.json").write_text(json.dumps({"stage2": stage2, "metrics": metrics, "predictions": preds,
                                                      "ratings_order": list(ORDINAL_RATINGS)}, indent=1))
    cfg = json.loads((fold_dir / "config.json").read_text())
    cfg["stage2"] = stage2
    (fold_dir / "config.json").write_text(json.dumps(cfg, indent=1))
    return metrics


def _mean_std(v: list[float]) -> dict[str, Any]:
    a = np.array(v, float)
    return {"mean": float(np.nanmean(a)), "std": float(np.nanstd(a)), "per_fold": a.tolist()}


def cli_evaluate_nodule3d(args: Any) -> int:
    """``radscribe evaluate-nodule3d RUN_DIR``: mean +- std over the completed folds, next to the HU rule."""
    from radscribe.data.lidc import estimate_hu_mapping, load_lidc, make_folds

    run_dir = Path(args.run_dir)
    ms = [json.loads(p.read_text()) for p in sorted(run_dir.glob("fold*/metrics.json"))]
    if not ms:
        raise RadscribeInputError(f"no completed fold (fold*/metrics.json) in {run_dir}")
    t0 = time.time()
    data = load_lidc()
    hu = estimate_hu_mapping(data.volumes)
    folds = make_folds(data.cases, data.texture_class)
    base_file = run_dir / "hu_rule.json"
    if base_file.is_file():
        base = json.loads(base_file.read_text())
    else:
        base = hu_rule_baseline(data, folds, hu)
        base_file.write_text(json.dumps(base, indent=1))
    s2 = []
    for m in ms:
        f2 = run_dir / f"fold{m['fold']}" / "stage2.json"
        s2.append(json.loads(f2.read_text())["metrics"] if f2.is_file()
                  else fit_stage2(run_dir / f"fold{m['fold']}", data, folds, hu))
    done = [m["fold"] for m in ms]
    bf = [b for b in base["per_fold"] if b["fold"] in done]
    out: dict[str, Any] = {"folds_done": done, "hu_mapping": hu.to_dict(), "network": {}, "hu_rule": {},
                           "train_wall_seconds": _mean_std([m["train_wall_seconds"] for m in ms])}
    for k in METRICS:
        out["network"][k] = _mean_std([m[k] for m in ms])
    for k in ("texture_macro_f1", "dice_mean"):
        out["hu_rule"][k] = _mean_std([b[k] for b in bf])
    out["stage2"] = {k: _mean_std([m[k] for m in s2])
                     for k in ("texture_macro_f1", "texture_accuracy", "malignancy_auc")}
    (run_dir / "cv_summary.json").write_text(json.dumps(out, indent=1))
    print(f"{len(done)} fold(s) {done} in {run_dir} ({time.time() - t0:.0f} s)")
    print("| measure | network heads (mean +- std) | network + stage 2 | HU rule |")
    print("|---|---|---|---|")
    fmt = lambda d: f"{d['mean']:.3f} +- {d['std']:.3f}" if d else "-"  # noqa: E731
    for k in METRICS:
        print(f"| {k} | {fmt(out['network'][k])} | {fmt(out['stage2'].get(k))} | {fmt(out['hu_rule'].get(k))} |")
    return 0
