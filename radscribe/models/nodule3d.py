"""3D nodule segmentation with characterisation heads (MONAI ``UNet``), its multi-task loss and predictor.

:class:`Nodule3DNet` reads a (B, 1, S, S, S) cube, intensities 0..1 on the LIDC cubes' scale (see
:mod:`radscribe.data.lidc`: v / 255 with ``HU = slope * v + intercept``), voxel order (z, y, x), and returns

* ``seg``: (B, 2, S, S, S) logits (background, nodule);
* ``texture``: (B, 3) logits over :data:`radscribe.data.lidc.TEXTURE_CLASSES` (ground glass, part solid,
  solid - the knowledge module's density words);
* ``ordinal``: (B, 4, 4) cumulative logits ``logit P(rating > k)``, k = 1..4, for the LIDC ratings
  malignancy, spiculation, lobulation, margin (1-5): a cumulative-link model with one score per head
  and ordered thresholds, so ratings stay ordinal.

The heads read the bottleneck (global average), the decoder's last features averaged inside the network's
own (detached) nodule probability, the probability's log volume and the mean / std of the input inside it.

Loss: MONAI ``DiceCELoss`` for the mask + ``head_weight`` x (class-weighted cross-entropy for texture + the
cumulative-link binary cross-entropies). A head whose attribute the knowledge module defines (texture ->
``density``; spiculation, lobulation, margin -> ``margin``) is weighted ``knowledge_weight``; malignancy,
which the knowledge module has no attribute for, is weighted 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from radscribe.data.lidc import ORDINAL_RATINGS, TEXTURE_CLASSES, HUMapping
from radscribe.errors import RadscribeInputError
from radscribe.knowledge.descriptors import ATTRIBUTES

#: Side of the cube the network reads (the centre of the 51^3 LIDC cube).
INPUT_SIZE = 48
N_LEVELS = 5
#: Which knowledge attribute each head describes (None: the knowledge module has none).
KNOWLEDGE_ATTRIBUTE: dict[str, str | None] = {
    "texture": "density", "malignancy": None, "spiculation": "margin", "lobulation": "margin", "margin": "margin"}
assert all(a is None or a in ATTRIBUTES for a in KNOWLEDGE_ATTRIBUTE.values())
assert set(TEXTURE_CLASSES) <= set(ATTRIBUTES["density"])
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _bottom_layer(unet: nn.Module) -> nn.Module:
    """The innermost (bottleneck) layer of a MONAI ``UNet``: Sequential(down, SkipConnection(sub), up) nested."""
    from monai.networks.layers import SkipConnection

    m = unet.model
    while isinstance(m, nn.Sequential) and len(m) == 3 and isinstance(m[1], SkipConnection):
        m = m[1].submodule
    return m


class Nodule3DNet(nn.Module):
    """See the module doc. ``channels`` per U-Net level (coarsest last), ``features`` decoder output channels."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128, 256), num_res_units: int = 1,
                 features: int = 16, hidden: int = 64, dropout: float = 0.0, head_dropout: float = 0.3):
        super().__init__()
        from monai.networks.nets import UNet

        ch = tuple(int(c) for c in channels)
        self.unet = UNet(spatial_dims=3, in_channels=1, out_channels=features, channels=ch,
                         strides=(2,) * (len(ch) - 1), num_res_units=num_res_units, dropout=dropout)
        self.act = nn.PReLU()
        self.seg = nn.Conv3d(features, 2, 1)
        self._bottleneck: torch.Tensor | None = None
        _bottom_layer(self.unet).register_forward_hook(self._keep_bottleneck)
        n_in = ch[-1] + features + 3
        self.trunk = nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(head_dropout))
        self.texture = nn.Linear(hidden, len(TEXTURE_CLASSES))
        self.score = nn.Linear(hidden, len(ORDINAL_RATINGS))
        # thresholds theta_1 < ... < theta_4 per ordinal head: first + cumulative softplus steps
        self.theta0 = nn.Parameter(torch.full((len(ORDINAL_RATINGS), 1), -1.5))
        self.theta_steps = nn.Parameter(torch.zeros(len(ORDINAL_RATINGS), N_LEVELS - 2))

    def _keep_bottleneck(self, _module, _inp, out) -> None:
        self._bottleneck = out

    def thresholds(self) -> torch.Tensor:
        steps = nn.functional.softplus(self.theta_steps) + 1e-3
        return torch.cat([self.theta0, self.theta0 + torch.cumsum(steps, 1)], 1)  # (4, 4)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.act(self.unet(x))
        seg = self.seg(f)
        bott = self._bottleneck.mean(dim=(2, 3, 4))
        p = torch.softmax(seg, 1)[:, 1:2].detach()
        vol = p.sum(dim=(2, 3, 4)) + 1.0
        inside = (f * p).sum(dim=(2, 3, 4)) / vol
        mu = (x * p).sum(dim=(2, 3, 4)) / vol
        sd = torch.sqrt(torch.clamp(((x - mu[:, :, None, None, None]) ** 2 * p).sum(dim=(2, 3, 4)) / vol, min=1e-6))
        h = self.trunk(torch.cat([bott, inside, torch.log(vol) / 10.0, mu, sd], 1))
        ordinal = self.score(h)[:, :, None] - self.thresholds()[None]
        return {"seg": seg, "texture": self.texture(h), "ordinal": ordinal}


def head_weights(knowledge_weight: float) -> dict[str, float]:
    """Loss weight per head: ``knowledge_weight`` where the knowledge module defines the attribute, else 1."""
    return {h: (knowledge_weight if a is not None else 1.0) for h, a in KNOWLEDGE_ATTRIBUTE.items()}


class Nodule3DLoss(nn.Module):
    """Dice + CE on the mask, plus ``head_weight`` x knowledge-weighted head losses (module doc).

    ``texture_class_weights`` (3,) counter class imbalance (e.g. inverse training frequencies)."""

    def __init__(self, head_weight: float = 0.3, knowledge_weight: float = 2.0,
                 texture_class_weights: torch.Tensor | None = None):
        super().__init__()
        from monai.losses import DiceCELoss

        self.dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
        self.head_weight = float(head_weight)
        self.w = head_weights(knowledge_weight)
        self.register_buffer("tw", texture_class_weights if texture_class_weights is not None else torch.ones(3))

    def forward(self, out: dict[str, torch.Tensor], label: torch.Tensor, texture: torch.Tensor,
                ratings: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        seg = self.dice_ce(out["seg"], label)
        parts = {"seg": float(seg.detach())}
        tex = nn.functional.cross_entropy(out["texture"], texture, weight=self.tw)
        parts["texture"] = float(tex.detach())
        heads = self.w["texture"] * tex
        levels = torch.arange(1, N_LEVELS, dtype=ratings.dtype)
        for i, name in enumerate(ORDINAL_RATINGS):
            target = (ratings[:, i:i + 1] > levels[None]).float()
            li = nn.functional.binary_cross_entropy_with_logits(out["ordinal"][:, i], target)
            parts[name] = float(li.detach())
            heads = heads + self.w[name] * li
        total = seg + self.head_weight * heads
        parts["total"] = float(total.detach())
        return total, parts


def expected_rating(ordinal_logits: torch.Tensor | np.ndarray) -> np.ndarray:
    """Expected rating 1 + sum_k P(rating > k) from cumulative logits (..., 4)."""
    t = torch.as_tensor(ordinal_logits, dtype=torch.float32)
    return (1.0 + torch.sigmoid(t).sum(-1)).numpy()


def prob_at_least(ordinal_logits: torch.Tensor | np.ndarray, level: int) -> np.ndarray:
    """P(rating >= level) for level 2..5 from cumulative logits (..., 4)."""
    if not 2 <= level <= N_LEVELS:
        raise ValueError(f"level must be 2..{N_LEVELS}, got {level}")
    return torch.sigmoid(torch.as_tensor(ordinal_logits, dtype=torch.float32)[..., level - 2]).numpy()


def center_crop(cubes: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, int]:
    """Centre crop (N, D, D, D) -> (N, size, size, size); returns the crop and its offset on every axis."""
    o = (cubes.shape[-1] - size) // 2
    return cubes[..., o:o + size, o:o + size, o:o + size], o


def component_at_centre(mask: np.ndarray) -> np.ndarray:
    """The connected component of a 3D mask nearest the cube's centre (the cubes are nodule-centred)."""
    from scipy import ndimage as ndi

    lab, n = ndi.label(mask)
    if n <= 1:
        return mask.astype(bool)
    c = np.array(mask.shape) // 2
    if lab[tuple(c)]:
        return lab == lab[tuple(c)]
    pts = np.argwhere(lab > 0)
    return lab == lab[tuple(pts[int(np.argmin(((pts - c) ** 2).sum(1)))])]


@torch.no_grad()
def predict_cubes(model: Nodule3DNet, cubes: np.ndarray, tta: bool = True, batch: int = 4) -> dict[str, np.ndarray]:
    """Run the network on (N, D, D, D) cubes of 0..1 intensities (D >= INPUT_SIZE, nodule-centred).

    Returns ``prob`` (N, D, D, D) nodule probability (0 outside the centre crop), ``mask`` (component at
    the centre of prob >= 0.5), ``texture_prob`` (N, 3) and ``ordinal`` (N, 4, 4) cumulative logits. With
    ``tta`` the in-plane flips (4 views) are averaged."""
    model.eval()
    crop, o = center_crop(np.asarray(cubes, np.float32))
    flips = [(), (3,), (4,), (3, 4)] if tta else [()]
    probs, tex, ordl = [], [], []
    for i in range(0, len(crop), batch):
        x = torch.from_numpy(np.ascontiguousarray(crop[i:i + batch]))[:, None]
        p = t = r = 0.0
        for fl in flips:
            out = model(torch.flip(x, fl) if fl else x)
            s = torch.softmax(out["seg"], 1)[:, 1:2]
            p = p + (torch.flip(s, fl) if fl else s)
            t = t + torch.softmax(out["texture"], 1)
            r = r + out["ordinal"]
        probs.append((p / len(flips))[:, 0].numpy())
        tex.append((t / len(flips)).numpy())
        ordl.append((r / len(flips)).numpy())
    prob = np.zeros(np.shape(cubes), np.float32)
    s = slice(o, o + INPUT_SIZE)
    prob[:, s, s, s] = np.concatenate(probs)
    mask = np.stack([component_at_centre(pi >= 0.5) for pi in prob])
    return {"prob": prob, "mask": mask, "texture_prob": np.concatenate(tex), "ordinal": np.concatenate(ordl)}


@dataclass(frozen=True)
class Nodule3DModel:
    """A loaded network with the spec that travels with its weights (HU mapping, voxel size, input size)."""

    net: Nodule3DNet
    hu: HUMapping
    spacing_mm: tuple[float, float, float]
    cube_size: int
    config: dict[str, Any]


def build_nodule3d(model_cfg: dict[str, Any]) -> Nodule3DNet:
    kw = dict(model_cfg)
    if "channels" in kw:
        kw["channels"] = tuple(kw["channels"])
    return Nodule3DNet(**kw)


def load_nodule3d(weights_dir: str | Path) -> Nodule3DModel:
    """Load ``config.json`` + ``model.safetensors`` from a weights folder; RadscribeInputError when they are
    missing, corrupt or do not match the network the config describes."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(weights_dir)
    try:
        cfg = json.loads((d / CONFIG_FILE).read_text())
        net = build_nodule3d(cfg["model"])
        net.load_state_dict(load_file(str(d / WEIGHTS_FILE)), strict=True)
        hu = HUMapping.from_dict(cfg["hu_mapping"])
        spacing = tuple(float(s) for s in cfg["spacing_mm"])
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        raise RadscribeInputError(f"cannot load the nodule3d weights from {d}: {type(exc).__name__}: {exc}") from None
    net.eval()
    return Nodule3DModel(net, hu, spacing, int(cfg.get("cube_size", 51)), cfg)  # type: ignore[arg-type]
