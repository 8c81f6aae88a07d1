"""Batch augmentation per modality, on 0..1 tensors (B, 1, S, S) or (B, 1, S, S, S).

2D affine + intensity jitter run on the whole batch at once (one ``affine_grid``/``grid_sample``),
which is what keeps augmentation cheap on a 2-core CPU; 3D uses MONAI's RandFlip/RandRotate90.

* ``cxr``: rotation +-7 deg, scale 0.9-1.1, shift +-6 %, brightness/contrast; never a horizontal
  flip (the heart and the side of a finding depend on it).
* ``cxr-gamma``: as ``cxr`` with a wider affine (rotation +-10 deg, scale 0.85-1.15, shift +-8 %,
  contrast +-20 %) and a random gamma 0.7-1.4 (log-uniform).
* ``mri``: left-right flip, rotation +-15 deg, scale 0.9-1.1, shift +-6 %, brightness/contrast.
* ``ct``: rotation +-8 deg, scale 0.92-1.08, shift +-5 %, mild brightness/contrast.
* ``3d``: flips on every axis and 90-degree rotations in the (H, W) plane (the axis order is kept).
* ``3d-cube``: one of the 48 symmetries of the cube per sample (every axis order times every flip,
  uniformly), so the model does not learn which stored axis is which: a crop saved with its axes
  in another order reads the same (ct-adrenal3d, issue 13 item 9).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from radscribe.data.datasets import IMAGENET_MEAN, IMAGENET_STD

_AFFINE = {  # rotation deg, scale range, shift fraction, brightness, contrast, lr flip
    "cxr": (7.0, (0.9, 1.1), 0.06, 0.10, 0.15, False),
    "cxr-gamma": (10.0, (0.85, 1.15), 0.08, 0.10, 0.20, False),
    "mri": (15.0, (0.9, 1.1), 0.06, 0.10, 0.15, True),
    "ct": (8.0, (0.92, 1.08), 0.05, 0.05, 0.10, False),
}
#: Kinds that also get a random gamma (exposure / processing differences between X-ray sites).
_GAMMA = {"cxr-gamma": (0.7, 1.4)}


def _u(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def augment_2d(x: torch.Tensor, kind: str, g: torch.Generator) -> torch.Tensor:
    """Random affine + intensity jitter of a (B, 1, S, S) 0..1 batch; returns 0..1."""
    rot, (s0, s1), shift, bright, contrast, flip = _AFFINE[kind]
    b = x.shape[0]
    ang = _u(g, b, -rot, rot) * math.pi / 180
    scale = _u(g, b, s0, s1)
    sx = scale * torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if flip else scale
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = torch.cos(ang) / sx
    theta[:, 0, 1] = -torch.sin(ang) / scale
    theta[:, 1, 0] = torch.sin(ang) / sx
    theta[:, 1, 1] = torch.cos(ang) / scale
    theta[:, :, 2] = _u(g, 2 * b, -2 * shift, 2 * shift).view(b, 2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    c = _u(g, b, 1 - contrast, 1 + contrast).view(b, 1, 1, 1)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - m) * c + m + _u(g, b, -bright, bright).view(b, 1, 1, 1)
    x = x.clamp(0, 1)
    if kind in _GAMMA:  # log-uniform gamma, so brighter and darker renderings are equally likely
        lo, hi = _GAMMA[kind]
        gamma = torch.exp(_u(g, b, math.log(lo), math.log(hi))).view(b, 1, 1, 1)
        x = x.clamp_min(1e-6) ** gamma
    return x


def augment_3d(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random flips on each spatial axis and a random 90-degree rotation, per sample of (B, 1, D, H, W)."""
    from monai.transforms import Compose, RandFlip, RandRotate90

    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    tf = Compose([RandFlip(prob=0.5, spatial_axis=0), RandFlip(prob=0.5, spatial_axis=1),
                  RandFlip(prob=0.5, spatial_axis=2), RandRotate90(prob=0.75, max_k=3, spatial_axes=(1, 2))])
    tf.set_random_state(seed)
    return torch.stack([torch.as_tensor(tf(v)).contiguous() for v in x]).float()


def augment_3d_cube(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A uniformly random symmetry of the cube (axis permutation + flips) per sample of (B, 1, S, S, S)."""
    from radscribe.models.classifier import SYMMETRIES, apply_symmetry

    group = SYMMETRIES["cube"]
    pick = torch.randint(0, len(group), (x.shape[0],), generator=g).tolist()
    return torch.stack([apply_symmetry(v, group[k]) for v, k in zip(x, pick)]).contiguous()


def to_network_2d(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) 0..1 -> (B, 3, S, S) ImageNet-normalised (same as ``prepare_2d``)."""
    mean = torch.as_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x.expand(-1, 3, -1, -1) - mean) / std


def make_batch_transform(kind: str, dims: int):
    """(x, generator, train: bool) -> network input, for one data config's ``augment`` kind."""
    def transform(x: torch.Tensor, g: torch.Generator, train: bool) -> torch.Tensor:
        if dims == 3:
            if train and kind == "3d":
                return augment_3d(x, g)
            return augment_3d_cube(x, g) if (train and kind == "3d-cube") else x
        if train and kind in _AFFINE:
            x = augment_2d(x, kind, g)
        return to_network_2d(x)
    return transform
