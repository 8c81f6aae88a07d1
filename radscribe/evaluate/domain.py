"""Measure the domain classifier (:mod:`radscribe.models.domain`) on held-out data: ``radscribe domain evaluate``.

In-domain: the official test splits of the four training datasets and two other sources of the same
domains; out-of-domain: photographs (scikit-image samples + crops), LFW faces, fresh synthetic images
and pure noise, which should all be called ``other``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from radscribe.errors import RadscribeInputError
from radscribe.models.domain import DOMAINS, SEED, DomainPrediction, load_domain_classifier
from radscribe.train.domain import INPUT_SIZE, _files, _read, domain_file_lists, synthetic_other, train


def natural_images() -> dict[str, np.ndarray]:
    """Held-out out-of-domain photographs and microscopy/fundus images bundled with scikit-image."""
    import skimage.data as d

    names = ["astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "page", "text", "horse",
             "hubble_deep_field", "immunohistochemistry", "brick", "grass", "gravel", "clock", "retina", "cell",
             "logo", "colorwheel", "microaneurysms", "cat"]
    out = {}
    for n in names:
        try:
            a = np.asarray(getattr(d, n)(), dtype=np.float32)
        except Exception:  # noqa: BLE001 - an image that needs a download is simply absent
            continue
        out[n] = a[..., :3].mean(-1) if a.ndim == 3 else a
    return out


def out_of_domain_test_set(seed: int = 1234) -> dict[str, list[np.ndarray]]:
    """Groups of held-out non-target images: photos (+ 4 random crops each), LFW faces, fresh synthetic."""
    import skimage.data as d

    rng = np.random.default_rng(seed)
    photos = []
    for a in natural_images().values():
        photos.append(a)
        h, w = a.shape
        for _ in range(4):
            s = int(min(h, w) * rng.uniform(0.4, 0.8))
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            photos.append(a[y:y + s, x:x + s])
    faces = [np.asarray(f, np.float32) for f in d.lfw_subset()[:100]]
    synth = [synthetic_other(rng) for _ in range(200)]
    noise = [rng.random((224, 224)).astype(np.float32) for _ in range(20)] + \
            [rng.normal(size=(300, 300)).astype(np.float32) for _ in range(20)]
    return {"photos_and_crops": photos, "faces_lfw": faces, "synthetic_fresh_seed": synth, "pure_noise": noise}


def evaluate(weights_dir: Path | None = None, n_per_class: int = 200, seed: int = SEED) -> dict:
    """Held-out in-domain accuracy (official test splits + two other-source sets) and the out-of-domain 'other' rate."""
    import torch

    from radscribe.data.paths import shared_data_dir

    torch.set_num_threads(min(2, torch.get_num_threads()))  # OMP_NUM_THREADS=1 keeps it on one core
    t0 = time.perf_counter()
    clf = load_domain_classifier(weights_dir)
    res: dict = {"in_domain": {}, "other_source": {}, "out_of_domain": {}}
    files = domain_file_lists("test", n_per_class, seed + 1)
    tot = tot_raw = n_all = 0
    confusion = {d: {} for d in DOMAINS[:-1]}
    for dom in DOMAINS[:-1]:
        preds = clf.predict_arrays([_read(p) for p in files[dom]])
        ok = sum(p.domain == dom for p in preds)
        ok_raw = sum(p.raw_domain == dom for p in preds)
        for p in preds:
            confusion[dom][p.domain] = confusion[dom].get(p.domain, 0) + 1
        res["in_domain"][dom] = {"n": len(preds), "accuracy": round(ok / len(preds), 4),
                                 "accuracy_without_abstention": round(ok_raw / len(preds), 4)}
        tot, tot_raw, n_all = tot + ok, tot_raw + ok_raw, n_all + len(preds)
    res["in_domain"]["all"] = {"n": n_all, "accuracy": round(tot / n_all, 4),
                               "accuracy_without_abstention": round(tot_raw / n_all, 4)}
    res["in_domain_confusion"] = confusion
    # other sources of the same domains (never seen in training)
    root = shared_data_dir()
    seg = root / "brain_tumor_seg"
    if seg.is_dir():
        preds = clf.predict_arrays([_read(p) for p in _files(seg / "yes") + _files(seg / "no")])
        res["other_source"]["brain_mri (brain_tumor_seg yes+no)"] = _rate(preds, "brain_mri")
    ct = root / "chest_ct_series" / "dicom"
    if ct.is_dir():
        import pydicom

        slices = []
        for f in sorted(ct.iterdir()):
            ds = pydicom.dcmread(f)
            hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            slices.append(np.clip((hu + 1350) / 1500, 0, 1))  # lung window W1500/L-600, like COV-CTR
        res["other_source"]["chest_ct (chest_ct_series DICOM, lung window)"] = _rate(clf.predict_arrays(slices), "chest_ct")
    for group, imgs in out_of_domain_test_set().items():
        res["out_of_domain"][group] = _rate(clf.predict_arrays(imgs), "other")
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    return res


def _rate(preds: list[DomainPrediction], target: str) -> dict:
    counts: dict[str, int] = {}
    for p in preds:
        counts[p.domain] = counts.get(p.domain, 0) + 1
    return {"n": len(preds), f"fraction_{target}": round(counts.get(target, 0) / max(len(preds), 1), 4),
            "predicted": counts}


def cli_domain(args: Any) -> int:
    """``radscribe domain train|evaluate``."""
    if args.input_size is not None and not 32 <= args.input_size <= 512:
        raise RadscribeInputError(f"--input-size must be 32..512 pixels, got {args.input_size}")
    if args.action == "train":
        print(json.dumps(train(args.out, input_size=args.input_size or INPUT_SIZE), indent=1))
        return 0
    r = evaluate(args.out)
    print(json.dumps(r, indent=1))
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))
    return 0
