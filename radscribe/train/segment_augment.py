"""Joint image + mask augmentation for 2D segmentation (MONAI dictionary transforms).

Left-right flip (the side of a tumour flips with its mask, so labels stay right), rotation +-15 deg,
scale 0.85-1.15, shift +-6 %, intensity scale/shift, gamma and light Gaussian noise. Seeded per epoch
so a resumed run sees exactly the samples an uninterrupted one would.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def make_seg_augment(size: int):
    """A MONAI ``Compose`` over {"image": (1, S, S) float 0..1, "label": (1, S, S) float 0/1}."""
    from monai.transforms import (
        Compose, RandAdjustContrastd, RandAffined, RandFlipd, RandGaussianNoised, RandScaleIntensityd,
        RandShiftIntensityd,
    )

    keys = ("image", "label")
    return Compose([
        RandFlipd(keys, prob=0.5, spatial_axis=1),
        RandAffined(keys, prob=0.8, rotate_range=math.radians(15), scale_range=(0.15, 0.15),
                    translate_range=(0.06 * size, 0.06 * size), mode=("bilinear", "nearest"),
                    padding_mode="zeros"),
        RandScaleIntensityd("image", factors=0.15, prob=0.5),
        RandShiftIntensityd("image", offsets=0.08, prob=0.5),
        RandAdjustContrastd("image", gamma=(0.7, 1.5), prob=0.3),
        RandGaussianNoised("image", std=0.02, prob=0.2),
    ])


def augment_batch(tf, x: np.ndarray, y: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment each sample of (B, 1, S, S) images and masks; returns float images and long masks."""
    from monai.data import set_track_meta

    set_track_meta(False)
    tf.set_random_state(seed)
    xs, ys = [], []
    for xi, yi in zip(x, y):
        d = tf({"image": xi.astype(np.float32), "label": yi.astype(np.float32)})
        xs.append(torch.as_tensor(np.asarray(d["image"])).clamp(0, 1))
        ys.append(torch.as_tensor(np.asarray(d["label"])) > 0.5)
    return torch.stack(xs).float(), torch.stack(ys).long()
