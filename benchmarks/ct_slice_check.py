"""ct-chest-slice through the inference path, on COV-CTR test (or val): routing, agreement, latency.

    .venv/bin/python benchmarks/ct_slice_check.py [--split test] [--json FILE]

For every image of the split, as ``radscribe analyze`` reads it (``load_study`` -> ``recognize`` ->
``routing.decide`` -> the detector's ``applies`` / ``detect``): does the slice route to
``ct-chest-slice``, which findings it reports, and the wall / process-CPU milliseconds of ``detect``
(warm: weights loaded once before timing; Grad-CAM included). The per-label AUC of the calibrated
probabilities from this path is printed beside the training run's figures, so a preprocessing
mismatch between training and inference would show. The 1-minute load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="test", choices=["val", "test"])
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import torch
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(1)
    from radscribe.data.cov_ctr import read_entries
    from radscribe.io.loader import load_study
    from radscribe.models import routing
    from radscribe.models.ct_slice import LABELS, CtChestSliceDetector
    from radscribe.preprocess.recognize import recognize, with_recognition

    entries = read_entries()[args.split]
    det = CtChestSliceDetector()
    det.load()
    routed, wall, cpu, probs, present, negatives, reasons = 0, [], [], [], [], [], {}
    for e in entries:
        loaded = load_study(e.image)
        rec = recognize(loaded.image, loaded.header)
        image = with_recognition(loaded.image, rec)
        why = det.applies(image, rec)
        if why is not None:
            reasons[why] = reasons.get(why, 0) + 1
        else:
            routed += 1
        t, c = time.perf_counter(), time.process_time()
        res = det.detect(image)
        wall.append(1000 * (time.perf_counter() - t))
        cpu.append(1000 * (time.process_time() - c))
        f0 = (res.findings[0].features if res.findings else
              {f"p_{lbl}": float(p) for lbl, p in zip(LABELS, det.load().predict_proba(
                  det.load().preprocess(image)[None])[0])})
        probs.append([f0[f"p_{lbl}"] for lbl in LABELS])
        present.append(sum(f.present for f in res.findings))
        negatives.append(sum(not f.present for f in res.findings))
        routing._CACHE.last = None
    p = np.array(probs)
    y = np.array([[e.target(lbl) for lbl in LABELS] for e in entries])
    auc = {lbl: float(roc_auc_score(y[:, j], p[:, j])) for j, lbl in enumerate(LABELS) if 0 < y[:, j].sum() < len(y)}
    out = {"split": args.split, "n": len(entries), "routed_to_ct_chest_slice": routed, "not_routed": reasons,
           "auc_inference_path": auc, "mean_present_findings": float(np.mean(present)),
           "mean_pertinent_negatives": float(np.mean(negatives)),
           "detect_wall_ms": {"median": float(np.median(wall)), "p90": float(np.percentile(wall, 90))},
           "detect_cpu_ms": {"median": float(np.median(cpu))}, "threads": 1,
           "load_average_1min": os.getloadavg()[0]}
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
