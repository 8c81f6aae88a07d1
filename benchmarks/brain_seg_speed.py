"""Speed of one brain MR slice: segmentation + mask cleaning + measurement (the detector's hot path).

    taskset -c 1 python benchmarks/brain_seg_speed.py [--threads 1] [--repeats 30] [--weights DIR] [--image PATH]

Times (median, p90 over ``--repeats`` after 3 warm-up runs) of :func:`radscribe.models.brain_seg.segment_slice`
(head crop, network, map back to the image grid), :func:`clean_mask` and :func:`measure_2d`, on a real
brain_tumor_seg slice (or a synthetic head when the dataset is absent). Without trained weights the network of
the shipped config is used with random weights (same cost). Target: <= 150 ms on 2 cores. Prints JSON, with the
process CPU time beside the wall time: on a shared, oversubscribed core the wall time mostly measures the queue.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--weights", type=Path, help="weights folder (default: the registry's, else random init)")
    ap.add_argument("--config", type=Path, default=Path("radscribe/train/configs/segmentation/mri-brain-tumor-seg-unet.yaml"))
    ap.add_argument("--image", type=Path, help="a brain MR slice (default: brain_tumor_seg yes/Y1.jpg)")
    args = ap.parse_args()

    import numpy as np
    import torch
    import yaml

    torch.set_num_threads(args.threads)
    from radscribe.data.paths import shared_data_dir
    from radscribe.findings.measure import measure_2d
    from radscribe.io.raster import read_raster
    from radscribe.models.brain_seg import WEIGHTS_DIR, SegModel, clean_mask, load_seg_model, segment_slice
    from radscribe.models.seg_networks import arch_kwargs, build_segnet

    wdir = args.weights or WEIGHTS_DIR
    if (wdir / "model.safetensors").is_file():
        model, weights = load_seg_model(wdir), str(wdir)
    else:
        cfg = yaml.safe_load(args.config.read_text())
        arch, kw = arch_kwargs(cfg["model"])
        model = SegModel(build_segnet(arch, **kw).eval(), int(cfg["data"]["input_size"]), cfg, None)
        weights = f"random init of {args.config} (no trained weights found)"
    path = args.image or shared_data_dir() / "brain_tumor_seg" / "yes" / "Y1.jpg"
    if path.is_file():
        img = read_raster(path)[0].array[0]
        source = str(path)
    else:
        yy, xx = np.mgrid[:256, :256]
        img = np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 100 ** 2, 120.0, 0.0).astype(np.float32)
        source = "synthetic 256x256 head"
    seg, post, meas, total, cpu = [], [], [], [], []
    for i in range(args.repeats + 3):
        c0 = time.process_time()
        t0 = time.perf_counter()
        prob, head = segment_slice(model, img)
        t1 = time.perf_counter()
        mask = clean_mask(prob, head)
        t2 = time.perf_counter()
        measure_2d(mask, None, head=head) if mask.any() else None
        t3 = time.perf_counter()
        if i >= 3:
            seg.append(t1 - t0)
            post.append(t2 - t1)
            meas.append(t3 - t2)
            total.append(t3 - t0)
            cpu.append(time.process_time() - c0)

    def ms(v):
        v = sorted(v)
        return {"median_ms": round(1000 * statistics.median(v), 1), "p90_ms": round(1000 * v[int(0.9 * (len(v) - 1))], 1)}

    print(json.dumps({"image": source, "shape": list(img.shape), "weights": weights, "threads": args.threads,
                      "repeats": args.repeats, "segment": ms(seg), "clean_mask": ms(post), "measure": ms(meas),
                      "total": ms(total), "total_cpu": ms(cpu), "target_ms": 150, "loadavg": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
