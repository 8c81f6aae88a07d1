"""2D segmentation networks (MONAI) behind one contract, and their loss.

``build_segnet(arch, **kw)`` returns an ``nn.Module`` whose ``forward(x)`` on (B, 1, S, S) 0..1 input gives
logits (B, 2, S, S) in eval mode (background, tumour). In training mode a deep-supervised network returns
(B, K, 2, S, S): the full-resolution head first, then K-1 coarser heads upsampled to S (MONAI DynUNet's
convention); :func:`seg_loss` handles both.

* ``unet`` - MONAI ``UNet`` with residual units (Kerfoot et al. 2018): strided-conv encoder, 5 levels.
* ``dynunet`` - MONAI ``DynUNet``, the 2D nnU-Net-style residual U-Net with deep supervision
  (Isensee et al. 2021): the first level runs at full resolution.
* ``attention-unet`` - MONAI ``AttentionUnet`` (Oktay et al. 2018).

The loss is MONAI's ``DiceCELoss`` (soft Dice on the tumour channel + cross-entropy), with deep-supervision
heads weighted 1, 1/2, 1/4, ... (normalised) as in nnU-Net.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from radscribe.errors import ConfigError

ARCHS = ("unet", "dynunet", "attention-unet")


def build_segnet(arch: str, channels: tuple[int, ...] = (16, 32, 64, 128, 256), num_res_units: int = 2,
                 deep_supr_num: int = 2, dropout: float = 0.0) -> nn.Module:
    """A 2-class 2D segmentation network (see module doc); ``channels`` per level, coarsest last."""
    from monai.networks.nets import AttentionUnet, DynUNet, UNet

    ch = tuple(int(c) for c in channels)
    if len(ch) < 3:
        raise ConfigError(f"segmentation channels need at least 3 levels, got {ch}")
    strides = (2,) * (len(ch) - 1)
    if arch == "unet":
        return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=ch, strides=strides,
                    num_res_units=num_res_units, dropout=dropout)
    if arch == "dynunet":
        return DynUNet(spatial_dims=2, in_channels=1, out_channels=2, kernel_size=[3] * len(ch),
                       strides=[1, *strides], upsample_kernel_size=list(strides), filters=list(ch),
                       dropout=dropout or None, deep_supervision=deep_supr_num > 0,
                       deep_supr_num=max(deep_supr_num, 1), res_block=True)
    if arch == "attention-unet":
        return AttentionUnet(spatial_dims=2, in_channels=1, out_channels=2, channels=ch, strides=strides,
                             dropout=dropout)
    raise ConfigError(f"unknown segmentation arch {arch!r}; known: {', '.join(ARCHS)}")


class SegLoss(nn.Module):
    """Dice + cross-entropy (MONAI ``DiceCELoss``) on logits (B, 2, S, S) or deep-supervised (B, K, 2, S, S)
    against integer targets (B, 1, S, S) (0 background, 1 tumour)."""

    def __init__(self, dice_weight: float = 1.0, ce_weight: float = 1.0):
        super().__init__()
        from monai.losses import DiceCELoss

        # batch=True: Dice over the whole batch, so slices without a tumour do not give 0/0 Dice terms
        self.fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True,
                             lambda_dice=dice_weight, lambda_ce=ce_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.dim() == 4:
            return self.fn(logits, target)
        k = logits.shape[1]
        w = torch.tensor([0.5 ** i for i in range(k)])
        w = w / w.sum()
        return sum(w[i] * self.fn(logits[:, i], target) for i in range(k))


def tumour_probability(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode softmax tumour probability (B, S, S) of a (B, 1, S, S) batch."""
    model.eval()
    with torch.no_grad():
        out = model(x.float())
    if out.dim() == 5:  # a deep-supervised net left in training mode by a caller
        out = out[:, 0]
    return torch.softmax(out.float(), dim=1)[:, 1]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def arch_kwargs(model_cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(arch, keyword arguments of :func:`build_segnet`) from a config's ``model`` mapping."""
    kw = dict(model_cfg)
    arch = kw.pop("arch")
    if "channels" in kw:
        kw["channels"] = tuple(kw["channels"])
    return arch, kw
