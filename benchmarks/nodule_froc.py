"""FROC and CPM of the nodule candidates scored by the learned false-positive reducer, on held-out phantoms.

For each seed (default 0-19, the evaluation seeds; the reducer trains on 2000+ and is calibrated on 2100+):
phantom -> lung segmentation -> candidate stage (radscribe.models.nodule_candidates) -> the candidates that
reach stage 2 are scored by radscribe.models.nodule_fpr. A true nodule >= 4 mm is found at threshold t when a
candidate within max(radius, 3 mm) of it scores >= t; other candidates near it are ignored (LUNA16 rule);
candidates near a nodule < 4 mm are ignored too; every other candidate >= t is a false positive. The FROC curve
and the CPM (mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4, 8 false positives per scan) come from MONAI's
froc metrics. The hand-set rules' operating point (the ``kept`` candidates) is reported beside it, and the
recall of the candidate stage itself (any candidate near the nodule, before any rejection).

    python benchmarks/nodule_froc.py --seeds 0-19 --out /tmp/froc.json [--real ../shared/data/chest_ct_series/dicom]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from radscribe.data.phantom import make_phantom, parse_seeds
from radscribe.evaluate.phantom import match_tolerance_mm
from radscribe.models.nodule_candidates import detect_nodules
from radscribe.models.nodule_fpr import FPRModel
from radscribe.preprocess.lung import segment_lungs

FP_LEVELS = (0.125, 0.25, 0.5, 1, 2, 4, 8)


def scored(seed, shape, n_nodules, model):
    ph = make_phantom(seed, shape=shape, n_nodules=n_nodules)
    img = ph.to_image()
    t0 = time.perf_counter()
    res = detect_nodules(img, segment_lungs(img))
    t1 = time.perf_counter()
    cands = res.candidates
    cv = np.array([c["features"]["center_voxel"] for c in cands]).reshape(-1, 3)
    stage2 = np.array([not c["reason"].startswith("stage 1") for c in cands], bool)
    p = np.zeros(len(cands))
    if stage2.any():
        p[stage2] = model.score(img, cv[stage2])
    t2 = time.perf_counter()
    mm = img.voxel_to_patient(cv) if len(cv) else np.zeros((0, 3))
    truth = ph.truth["nodules"]
    near = np.full((len(truth), len(cands)), False)
    for i, n in enumerate(truth):
        near[i] = np.linalg.norm(mm - np.asarray(n["center_patient"]), axis=1) <= match_tolerance_mm(n)
    kept = np.array([c["kept"] for c in cands], bool)
    return {"seed": seed, "truth": truth, "p": p, "stage2": stage2, "near": near, "kept": kept,
            "t_detect": t1 - t0, "t_fpr": t2 - t1, "n_scored": int(stage2.sum())}


def froc(scans):
    from monai.metrics import compute_froc_curve_data, compute_froc_score

    tp_probs, fp_probs, n_targets = [], [], 0
    for s in scans:
        big = np.array([n["diameter_mm"] >= 4 for n in s["truth"]], bool)
        for i in np.flatnonzero(big):
            n_targets += 1
            hit = s["near"][i] & s["stage2"]
            tp_probs.append(float(s["p"][hit].max()) if hit.any() else 0.0)
        ignore = s["near"].any(axis=0)
        fp_probs += [float(v) for v in s["p"][s["stage2"] & ~ignore]]
    tp, fp = np.array(tp_probs), np.array(fp_probs)
    # a nodule no scored candidate reaches can never be found: MONAI's curve counts it as missed at every t
    fps, sens = compute_froc_curve_data(fp_probs=fp, tp_probs=tp[tp > 0], num_targets=n_targets,
                                        num_images=len(scans))
    cpm = float(compute_froc_score(fps, sens, eval_thresholds=FP_LEVELS))
    at = {str(lv): float(np.interp(lv, fps[::-1], sens[::-1])) for lv in FP_LEVELS}
    return {"cpm": round(cpm, 4), "sensitivity_at_fp": {k: round(v, 4) for k, v in at.items()},
            "n_targets": n_targets, "n_scans": len(scans)}


def operating_point(scans, thr):
    found = n = fps = 0
    by = {}
    for s in scans:
        for i, nd in enumerate(s["truth"]):
            if nd["diameter_mm"] < 4:
                continue
            hit = bool((s["near"][i] & s["stage2"] & (s["p"] >= thr)).any())
            n += 1
            found += hit
            key = (nd["density"], "4-6mm" if nd["diameter_mm"] < 6 else "6-10mm" if nd["diameter_mm"] < 10 else ">=10mm")
            a = by.setdefault(f"{key[0]} {key[1]}", [0, 0])
            a[0] += hit
            a[1] += 1
        fps += int((s["stage2"] & ~s["near"].any(axis=0) & (s["p"] >= thr)).sum())
    return {"threshold": thr, "sensitivity": round(found / max(n, 1), 4), "found": found, "n": n,
            "fp_per_scan": round(fps / len(scans), 3), "by_density_size": {k: f"{a}/{b}" for k, (a, b) in sorted(by.items())}}


def rules_point(scans):
    found = n = fps = 0
    cand_found = stage2_found = 0
    for s in scans:
        for i, nd in enumerate(s["truth"]):
            if nd["diameter_mm"] < 4:
                continue
            n += 1
            found += bool((s["near"][i] & s["kept"]).any())
            cand_found += bool(s["near"][i].any())
            stage2_found += bool((s["near"][i] & s["stage2"]).any())
        fps += int((s["kept"] & ~s["near"].any(axis=0)).sum())
    return {"rules_sensitivity": round(found / max(n, 1), 4), "rules_fp_per_scan": round(fps / len(scans), 3),
            "candidate_recall_all": round(cand_found / max(n, 1), 4),
            "candidate_recall_scored": round(stage2_found / max(n, 1), 4)}


def main() -> int:
    from tqdm import tqdm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--shape", default="130,512,512")
    ap.add_argument("--n-nodules", type=int, default=6)
    ap.add_argument("--weights", type=Path, help="reducer folder (default: the shipped one)")
    ap.add_argument("--real", type=Path, help="also score the candidates of this real DICOM series (no truth)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    model = FPRModel.load(a.weights)
    shape = tuple(int(v) for v in a.shape.split(","))
    t0 = time.perf_counter()
    scans = [scored(s, shape, a.n_nodules, model) for s in tqdm(parse_seeds(a.seeds), desc="phantoms")]
    res = {"froc": froc(scans), "at_threshold": operating_point(scans, model.threshold), **rules_point(scans),
           "mean_scored_per_scan": round(float(np.mean([s["n_scored"] for s in scans])), 1),
           "mean_fpr_s_per_scan": round(float(np.mean([s["t_fpr"] for s in scans])), 3),
           "mean_detect_s_per_scan": round(float(np.mean([s["t_detect"] for s in scans])), 3),
           "wall_s": round(time.perf_counter() - t0, 1), "weights": model.config.get("name")}
    if a.real:
        from radscribe.io.loader import load_study

        img = load_study(a.real).image
        r = detect_nodules(img, segment_lungs(img))
        cv = np.array([c["features"]["center_voxel"] for c in r.candidates if not c["reason"].startswith("stage 1")])
        p = model.score(img, cv.reshape(-1, 3))
        res["real"] = {"scored": int(len(p)), "above_threshold": int((p >= model.threshold).sum()),
                       "rules_kept": int(sum(c["kept"] for c in r.candidates)),
                       "top_p": [round(float(v), 3) for v in np.sort(p)[::-1][:5]]}
    print(json.dumps(res, indent=1))
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
