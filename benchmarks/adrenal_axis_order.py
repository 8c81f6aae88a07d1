"""How much does ct-adrenal3d depend on the order and direction of a volume's axes?

    .venv/bin/python benchmarks/adrenal_axis_order.py [--split val] [--tta none,flips,cube] [--nifti] [--json FILE]

Scores the AdrenalMNIST3D split (the official MedMNIST npz, as ``radscribe evaluate`` reads it) with the
committed weights (or ``--weights DIR``), once per test-time group in ``--tta`` (``CNN3D.tta``):

* ``native``: the npz arrays as they are (the order the model was trained in);
* each of the 6 axis orders (no flip), and all 48 orders x flips (mean / min / max ACC and AUC);
  for a group that already averages over them (``cube``), or with ``--orientations plain``, only the
  plain-NIfTI order (2, 1, 0) is scored, with the largest probability change against ``native``;
* ``--nifti``: every volume written as ``nibabel.Nifti1Image(volume, numpy.eye(4))`` and read back
  through ``load_study`` + ``LoadedModel.preprocess`` (what ``radscribe predict`` does), which
  reverses the axes: radscribe reads NIfTI voxel (i, j, k) into array (z, y, x) = (k, j, i).

ACC / AUC / loss use the raw logits (a temperature changes neither ACC nor AUC).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _metrics(logits: np.ndarray, y: np.ndarray) -> dict:
    from radscribe.train.loop import classification_metrics

    m = classification_metrics(logits, y)
    return {"acc": round(m["acc"], 4), "auc": round(m["auc"], 4), "loss": round(m["loss"], 4)}


def _logits(module, x: torch.Tensor, sym=None, batch: int = 64) -> np.ndarray:
    from radscribe.models.classifier import apply_symmetry

    out = []
    with torch.inference_mode():
        for s in range(0, len(x), batch):
            xb = x[s:s + batch]
            out.append(module(apply_symmetry(xb, sym) if sym else xb).float())
    return torch.cat(out).numpy()


def _nifti_logits(loaded, volumes: np.ndarray) -> np.ndarray:
    import nibabel as nib

    from radscribe.io.loader import load_study

    xs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, v in enumerate(volumes):
            f = Path(tmp) / f"{i:04d}.nii.gz"
            nib.save(nib.Nifti1Image(v, np.eye(4)), str(f))
            xs.append(loaded.preprocess(load_study(f).image))
    return _logits(loaded.module, torch.stack(xs))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--weights", type=Path, help="weights folder (default: the committed ct-adrenal3d)")
    ap.add_argument("--tta", default="none,flips,cube", help="comma-separated CNN3D.tta groups to score")
    ap.add_argument("--nifti", action="store_true", help="also score through real NIfTI files (plain save)")
    ap.add_argument("--orientations", default="all", choices=("all", "plain"),
                    help="all: the 6 axis orders and all 48 orders x flips; plain: only order (2, 1, 0)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)

    from radscribe.data.datasets import npz_splits
    from radscribe.data.paths import dataset_dir
    from radscribe.models.classifier import SYMMETRIES
    from radscribe.models.registry import load_model

    loaded = load_model("ct-adrenal3d", a.weights)
    module = loaded.module
    npz = dataset_dir("adrenalmnist3d") / "adrenalmnist3d.npz"
    volumes = np.load(npz)[f"{a.split}_images"]
    ds = npz_splits(npz, loaded.spec.input_size, (a.split,))[a.split]   # as `radscribe evaluate` reads it
    x = torch.from_numpy(ds.images.astype(np.float32) / 255.0).unsqueeze(1)
    y = ds.labels.astype(int)
    t0 = time.perf_counter()
    out: dict = {"split": a.split, "n": int(len(y)), "weights": str(a.weights or loaded.spec.weights_dir),
                 "load_average_1min_before": round(os.getloadavg()[0], 2), "groups": {}}
    for mode in a.tta.split(","):
        module.tta = mode
        t = time.perf_counter()
        native = _logits(module, x)
        r: dict = {"native": _metrics(native, y)}
        p_native = torch.softmax(torch.from_numpy(native), 1).numpy()
        if mode == "cube" or a.orientations == "plain":
            plain = _logits(module, x, ((2, 1, 0), ()))
            r["order_2_1_0"] = _metrics(plain, y)
            r["max_abs_prob_change_vs_native"] = float(np.abs(torch.softmax(torch.from_numpy(plain), 1).numpy()
                                                               - p_native).max())
        else:
            per_order = {}
            all48 = []
            for sym in SYMMETRIES["cube"]:
                m = _metrics(_logits(module, x, sym), y)
                all48.append(m)
                if not sym[1]:
                    per_order["".join(map(str, sym[0]))] = m
            r["orders_no_flip"] = per_order
            r["all_48"] = {k: {"mean": round(float(np.mean([m[k] for m in all48])), 4),
                               "min": round(float(np.min([m[k] for m in all48])), 4),
                               "max": round(float(np.max([m[k] for m in all48])), 4)} for k in ("acc", "auc")}
        if a.nifti:
            nl = _nifti_logits(loaded, volumes)
            r["plain_nifti_files"] = _metrics(nl, y)
            r["plain_nifti_max_abs_prob_change_vs_native"] = float(
                np.abs(torch.softmax(torch.from_numpy(nl), 1).numpy() - p_native).max())
        r["wall_s"] = round(time.perf_counter() - t, 1)
        out["groups"][mode] = r
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
