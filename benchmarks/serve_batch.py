"""Batch throughput: the same N synthetic 2D studies through ``--engine local`` and ``--engine ray`` (W actors).

    python benchmarks/serve_batch.py --studies 200 --workers 2 [--out result.json]

Each engine writes into its own fresh folder; the Ray figure includes starting the local cluster (its
per-batch overhead) and is also given without it (``studies_per_s`` from the batch's own wall time).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    from PIL import Image

    from radscribe.serve.batch import run_batch

    root = Path(tempfile.mkdtemp(prefix="radscribe-batch-"))
    src = root / "studies"
    src.mkdir()
    for k in range(args.studies):
        rng = np.random.default_rng(k)
        y, x = np.mgrid[:96, :96]
        img = (120 + 80 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 8, (96, 96))).clip(0, 255)
        buf = io.BytesIO()
        Image.fromarray(img.astype(np.uint8)).save(buf, format="PNG")
        (src / f"s{k:04d}.png").write_bytes(buf.getvalue())
    result = {"command": " ".join(["python", "benchmarks/serve_batch.py", *(argv or sys.argv[1:])])}
    for engine, workers in (("local", 1), ("ray", args.workers)):
        t = time.perf_counter()
        s = run_batch(src, root / f"out-{engine}", engine=engine, workers=workers, progress=False)
        s["total_wall_s"] = round(time.perf_counter() - t, 2)
        result[engine] = s
    result["ray_over_local"] = round(result["local"]["total_wall_s"] / result["ray"]["total_wall_s"], 3)
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
