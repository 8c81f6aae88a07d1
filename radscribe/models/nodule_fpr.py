"""Learned false-positive reduction for lung nodule candidates (LUNA16 style): a small 3D CNN scores a cube
around each candidate; its calibrated probability becomes the nodule finding's confidence.

Input: two cubes of ``CUBE``^3 voxels centred on the candidate, resampled (trilinear) from the CT to isotropic
voxels of ``SCALES_MM`` (1 mm: a 32 mm field of view for the nodule itself; 2 mm: 64 mm of context - vessel
or wall it sits on), HU clipped to ``HU_RANGE`` and scaled to 0..1, stacked as two channels. Resampling to mm
makes the network independent of the scan's slice thickness and pixel size.

Network: MONAI's ``Classifier`` (residual conv units with strided downsampling, instance norm, one logit).
Calibration: Platt scaling ``p = sigmoid(a * logit + b)`` fitted on validation phantoms; ``threshold`` is the
operating point chosen on validation (``config.json``). Training code: :mod:`radscribe.train.nodule_fpr`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radscribe.errors import RadscribeInputError
from radscribe.io.image import Image

NAME = "lung-nodule-fpr"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights" / NAME
CUBE = 32
SCALES_MM = (1.0, 2.0)
HU_RANGE = (-1000.0, 400.0)


def _interp_matrix(pos: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Linear-interpolation weights (len(pos), width) over input indices ``start .. start + width`` of an axis of
    length ``n``; positions outside the axis get weight 0 (they read as air)."""
    i0 = np.floor(pos).astype(int)
    f = pos - i0
    start = max(int(i0.min()), 0)
    stop = min(int(i0.max()) + 2, n)
    width = max(stop - start, 1)
    w = np.zeros((len(pos), width), np.float32)
    for idx, wt in ((i0, 1.0 - f), (i0 + 1, f)):
        ok = (idx >= start) & (idx < stop)
        np.add.at(w, (np.flatnonzero(ok), idx[ok] - start), wt[ok])
    return w, start


def extract_cubes(image: Image, centers_zyx: np.ndarray, *, cube: int = CUBE,
                  scales_mm: tuple[float, ...] = SCALES_MM, hu_range: tuple[float, float] = HU_RANGE) -> np.ndarray:
    """(N, len(scales), cube, cube, cube) float32 in 0..1: isotropic cubes (z, y, x) around each voxel centre.

    Trilinear resampling done as three 1D interpolation matrices applied to the native crop (separable, so a
    64 mm cube costs a few small matrix products, not 32^3 scattered reads); points outside the volume read as
    air."""
    centers = np.asarray(centers_zyx, dtype=np.float64).reshape(-1, 3)
    arr = np.asarray(image.array)
    if arr.ndim != 3:
        raise RadscribeInputError(f"{NAME} needs a CT volume (z, y, x), got an array of shape {arr.shape}")
    lo, hi = hu_range
    spacing = np.asarray(image.spacing, dtype=np.float64)
    offs = np.arange(cube, dtype=np.float64) - (cube - 1) / 2.0
    out = np.empty((len(centers), len(scales_mm), cube, cube, cube), np.float32)
    for n, c in enumerate(centers):
        for k, s in enumerate(scales_mm):
            (wz, z0), (wy, y0), (wx, x0) = (_interp_matrix(c[a] + offs * s / spacing[a], arr.shape[a])
                                            for a in range(3))
            crop = arr[z0:z0 + wz.shape[1], y0:y0 + wy.shape[1], x0:x0 + wx.shape[1]].astype(np.float32)
            crop = (np.clip(crop, lo, hi) - lo) / (hi - lo)
            if crop.shape != (wz.shape[1], wy.shape[1], wx.shape[1]):  # the centre is far outside the volume
                out[n, k] = 0.0
                continue
            v = crop @ wx.T                                  # (z, y, X)
            v = np.einsum("by,zyc->zbc", wy, v)              # (z, Y, X)
            out[n, k] = np.tensordot(wz, v, axes=(1, 0))      # (Z, Y, X)
    return out


def build_network(channels: tuple[int, ...] = (16, 32, 64), in_channels: int = len(SCALES_MM), cube: int = CUBE,
                  dropout: float = 0.1) -> Any:
    from monai.networks.nets import Classifier

    return Classifier(in_shape=(in_channels, cube, cube, cube), classes=1, channels=tuple(channels),
                      strides=(2,) * len(channels), num_res_units=1, dropout=dropout)


@dataclass
class FPRModel:
    """The loaded scorer: network + Platt calibration + operating threshold (see module doc)."""

    net: Any
    platt_a: float
    platt_b: float
    threshold: float
    config: dict[str, Any]

    @classmethod
    def load(cls, weights_dir: Path | None = None) -> "FPRModel":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        d = Path(weights_dir) if weights_dir else WEIGHTS_DIR
        cfg_path, w_path = d / "config.json", d / "model.safetensors"
        if not (cfg_path.is_file() and w_path.is_file()):
            raise RadscribeInputError(f"{NAME}: no trained weights in {d} (config.json + model.safetensors); "
                                      "see docs/parts/nodules.md for the command that makes them")
        try:
            cfg = json.loads(cfg_path.read_text())
            net = build_network(tuple(cfg["channels"]), len(cfg["scales_mm"]), int(cfg["cube"]))
            net.load_state_dict(load_file(str(w_path)))
        except (ValueError, KeyError, TypeError, RuntimeError, OSError, SafetensorError) as exc:
            msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise RadscribeInputError(f"{NAME}: weights in {d} are corrupt or do not match config.json ({msg})") from None
        net.eval()  # no global grad switch: logits() runs under inference_mode
        return cls(net=net, platt_a=float(cfg["platt"][0]), platt_b=float(cfg["platt"][1]),
                   threshold=float(cfg["threshold"]), config=cfg)

    def logits(self, cubes: np.ndarray, batch: int = 64) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(cubes), batch):
                out.append(self.net(torch.from_numpy(np.ascontiguousarray(cubes[i:i + batch]))).reshape(-1).numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def probability(self, logits: np.ndarray) -> np.ndarray:
        z = self.platt_a * np.asarray(logits, np.float64) + self.platt_b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def score(self, image: Image, centers_zyx: np.ndarray) -> np.ndarray:
        """Calibrated nodule probability per candidate centre (voxel z, y, x)."""
        if len(centers_zyx) == 0:
            return np.zeros(0)
        cfg = self.config
        cubes = extract_cubes(image, centers_zyx, cube=int(cfg["cube"]), scales_mm=tuple(cfg["scales_mm"]),
                              hu_range=tuple(cfg["hu_range"]))
        return self.probability(self.logits(cubes))

