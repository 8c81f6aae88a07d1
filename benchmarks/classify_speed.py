"""Time `analyze` for one 2D image (read + route + classify + Grad-CAM heatmap + report) against
MONAI's DenseNet-121 forward pass at 224x224 as the reference, interleaved in one run.

    .venv/bin/python benchmarks/classify_speed.py [--model mri-brain-tumor] [--n 40] [--threads 2] [--json FILE]

Images: the first N files of the model's official test folder (brain_tumor_mri/Testing for
mri-brain-tumor). Uses the committed weights when present, else a randomly initialised network of
the same architecture (same cost). Times are wall milliseconds per image (median, mean, p90);
the 1-minute load average is printed because other processes on a shared machine inflate them.
``classify`` (preprocess + forward) and ``heatmap`` (Grad-CAM, box, side; 0 for a normal verdict) split
``classify_heatmap``.
``total_cpu`` and ``*_cpu`` are process CPU milliseconds (all threads): with ``--threads 1`` they
approximate the latency on an otherwise idle core, which contention cannot inflate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

TEST_DIRS = {"mri-brain-tumor": ("brain_tumor_mri", "Testing"), "cxr-pneumonia": ("chest_xray_pneumonia", "test"),
             "ct-kidney": ("ct_kidney", "Testing")}


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"median_ms": round(float(np.median(a)), 2), "mean_ms": round(float(a.mean()), 2),
            "p90_ms": round(float(np.percentile(a, 90)), 2), "n": int(a.size)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mri-brain-tumor", choices=sorted(TEST_DIRS))
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    from monai.networks.nets import DenseNet121

    from radscribe.data.paths import dataset_dir
    from radscribe.io.loader import load_study
    from radscribe.models.classify import classify_image
    from radscribe.models.registry import LoadedModel, build_model, get_spec, load_model
    from radscribe.models.routing import route
    from radscribe.preprocess.recognize import recognize
    from radscribe.report.structured import write_structured

    spec = get_spec(a.model)
    try:
        loaded, weights = load_model(a.model), "committed"
    except Exception:  # noqa: BLE001 - same architecture, same cost
        loaded, weights = LoadedModel(spec, build_model(a.model, pretrained=False), {}, 1.0), "random init"
    ds, sub = TEST_DIRS[a.model]
    files = sorted(p for p in (dataset_dir(ds) / sub).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    step = max(1, len(files) // a.n)
    files = files[::step][: a.n]
    ref = DenseNet121(spatial_dims=2, in_channels=3, out_channels=len(spec.labels)).eval()
    x_ref = torch.randn(1, 3, 224, 224)

    def analyze_one(path):
        t = {}
        c0 = time.process_time()
        t0 = time.perf_counter()
        st = load_study(path)
        t1 = time.perf_counter()
        rec = recognize(st.image, st.header)
        names, _ = route(st.image, rec)
        t2 = time.perf_counter()
        res = classify_image(loaded, st.image) if a.model in names else None
        t3 = time.perf_counter()
        write_structured(res.findings if res else (), region=spec.body_region, modality=spec.modality,
                         detectors_run=[a.model] if res else [])
        t4 = time.perf_counter()
        t.update(read=t1 - t0, route=t2 - t1, classify_heatmap=t3 - t2, report=t4 - t3, total=t4 - t0,
                 total_cpu=time.process_time() - c0)
        if res is not None:  # classify = preprocess + forward (keeping what Grad-CAM needs); heatmap = the rest
            t.update(classify=res.timings["classify"], heatmap=res.timings.get("heatmap", 0.0))
        return t, res

    def reference_one():
        c0, t0 = time.process_time(), time.perf_counter()
        with torch.inference_mode():
            ref(x_ref)
        return time.perf_counter() - t0, time.process_time() - c0

    for f in files[:3]:                                   # warm-up (imports, allocator, domain model)
        analyze_one(f)
        reference_one()
    parts: dict[str, list[float]] = {}
    refs, refs_cpu, routed = [], [], 0
    load_before = os.getloadavg()[0]
    t_all = time.perf_counter()
    for f in files:
        t, res = analyze_one(f)
        routed += res is not None
        for k, v in t.items():
            parts.setdefault(k, []).append(1000 * v)
        w, c = reference_one()
        refs.append(1000 * w)
        refs_cpu.append(1000 * c)
    wall = time.perf_counter() - t_all
    out = {
        "model": a.model, "weights": weights, "images": f"{len(files)} files from {ds}/{sub}",
        "routed_to_model": routed, "threads": a.threads,
        "analyze_per_image": {k: _stats(v) for k, v in parts.items()},
        "reference_densenet121_forward_224": _stats(refs),
        "reference_densenet121_forward_224_cpu": _stats(refs_cpu),
        "ratio_reference_over_analyze_median_cpu": round(float(np.median(refs_cpu) / np.median(parts["total_cpu"])), 2),
        "ratio_reference_over_analyze_median": round(float(np.median(refs) / np.median(parts["total"])), 2),
        "ratio_reference_over_classify_heatmap_median": round(float(np.median(refs) / np.median(parts["classify_heatmap"])), 2),
        "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores visible, torch {torch.__version__}",
        "wall_s": round(wall, 1),
    }
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
