"""Network, weights and preprocessing of the ``ct-chest-slice`` multi-label classifier (inference only).

Weights folder (``radscribe/models/weights/ct-chest-slice/``):

* ``model.safetensors`` - the fine-tuned network (EMA weights of the selected epoch);
* ``config.yaml`` - the training config, the labels kept and the exact command;
* ``calibration.json`` - per label (head order): ``temperature`` and ``bias`` (p = sigmoid(z / T + b),
  fitted on val: temperature scaling or Platt), ``threshold`` (on the calibrated probability, max F1
  on val), and the val ECE before/after;
* ``metrics.json`` - test-split figures of the exported model.

Training lives in :mod:`radscribe.train.ct_slice`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from radscribe.errors import ConfigError
from radscribe.io.image import Image
from radscribe.models.classifier import EfficientNetLite2D
from radscribe.models.registry import ModelSpec, _read_yaml

#: Lung window (level, width in HU) applied to a slice in HU before the percentile normalisation.
LUNG_WINDOW = (-600.0, 1500.0)


class MultiLabelEfficientNet(EfficientNetLite2D):
    """EfficientNet-Lite0 with one sigmoid output per label; ``loss`` is mean binary cross-entropy.

    ``pos_weight`` (per label, optional) up-weights the positives of rare labels."""

    def __init__(self, n_classes: int, pos_weight: list[float] | None = None, **kw: Any):
        super().__init__(n_classes, **kw)
        self._pos_weight = torch.tensor(pos_weight, dtype=torch.float32) if pos_weight else None
        if self._pos_weight is not None and self._pos_weight.shape != (n_classes,):
            raise ConfigError(f"pos_weight needs {n_classes} values, got {len(pos_weight)}")

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target.float(), pos_weight=self._pos_weight)


def slice_array(image: Image) -> np.ndarray:
    """The (y, x) array the network reads: a HU slice in the lung window, anything else as it is."""
    a = np.asarray(image.array[0], dtype=np.float32)
    if image.units == "HU":
        level, width = LUNG_WINDOW
        a = np.clip(a, level - width / 2, level + width / 2)
    return a


class LoadedMultiLabel:
    """The network with its labels, per-label temperatures and thresholds (what ``LoadedModel`` is for
    the softmax classifiers; :class:`radscribe.models.explain.CamSession` accepts it)."""

    def __init__(self, spec: ModelSpec, module: torch.nn.Module, config: dict, temperatures: np.ndarray,
                 thresholds: np.ndarray, biases: np.ndarray | None = None):
        self.spec = spec
        self.memory_format = torch.channels_last
        self.module = module.eval().requires_grad_(False).to(memory_format=self.memory_format)
        self.config = config
        self.temperatures = np.asarray(temperatures, dtype=np.float64)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.biases = np.zeros(len(self.temperatures)) if biases is None else np.asarray(biases, dtype=np.float64)
        self.target_layer = "features"

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    def as_input(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float().contiguous(memory_format=self.memory_format)

    def preprocess(self, image: Image) -> torch.Tensor:
        """One 2D Image -> (3, S, S) network input (lung window for HU, then as in training)."""
        from radscribe.data.datasets import prepare_2d

        return torch.from_numpy(prepare_2d(slice_array(image), self.spec.input_size))

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """sigmoid(logits / T + bias) per label, (B, L) (bias 0: temperature scaling; else Platt)."""
        z = np.asarray(logits, dtype=np.float64) / self.temperatures + self.biases
        return 1.0 / (1.0 + np.exp(-z))

    def predict_proba(self, batch: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.calibrated(self.module(self.as_input(batch)).numpy())


def load_multilabel(spec: ModelSpec, weights_dir: Path | None = None) -> LoadedMultiLabel:
    """Build the network of ``spec`` and load its weights, config and calibration; ConfigError when a file
    is missing or does not match (labels, input size, tensor shapes)."""
    from safetensors.torch import load_file

    wdir = Path(weights_dir) if weights_dir else spec.weights_dir
    wfile, cfile, calfile = wdir / "model.safetensors", wdir / "config.yaml", wdir / "calibration.json"
    for f in (wfile, cfile, calfile):
        if not f.is_file():
            raise ConfigError(f"no trained weights for {spec.name!r}: {f} is missing; train them with "
                              f"`radscribe train-ct-slice radscribe/train/configs/{spec.name}.yaml`")
    config = _read_yaml(cfile)
    try:
        cal = json.loads(calfile.read_text())
        labels = tuple(cal["labels"])
        temps = np.array([cal["per_label"][lbl]["temperature"] for lbl in labels], dtype=np.float64)
        thr = np.array([cal["per_label"][lbl]["threshold"] for lbl in labels], dtype=np.float64)
        bias = np.array([cal["per_label"][lbl].get("bias", 0.0) for lbl in labels], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{calfile} is not a per-label calibration file: {exc}") from exc
    if labels != spec.labels or tuple(config.get("kept_labels") or ()) != spec.labels:
        raise ConfigError(f"{wdir}: labels {labels} / {config.get('kept_labels')} do not match the detector's "
                          f"{spec.labels}")
    if int((config.get("data") or {}).get("input_size", -1)) != spec.input_size:
        raise ConfigError(f"{cfile}: input_size does not match the detector's {spec.input_size}")
    if not (np.all(temps > 0) and np.all((thr > 0) & (thr < 1))):
        raise ConfigError(f"{calfile}: temperatures must be > 0 and thresholds in (0, 1)")
    mcfg = {k: v for k, v in (config.get("model") or {}).items()
            if k in ("dropout", "drop_connect")}
    module = MultiLabelEfficientNet(len(labels), pretrained=False, **mcfg)
    try:
        module.load_state_dict(load_file(str(wfile)), strict=True)
    except (RuntimeError, OSError) as exc:
        raise ConfigError(f"weights {wfile} do not match config {cfile}: {str(exc).splitlines()[0]}") from exc
    return LoadedMultiLabel(spec, module, config, temps, thr, bias)
