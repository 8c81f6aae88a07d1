"""The image-classifier registry: one spec per model name, timm-style ``build_model(name)``.

A spec says what a model reads (modality, body region, 2D/3D, input size) and what it says
(labels: ``normal`` or ids of :data:`radscribe.knowledge.ontology.FINDING_KINDS`). Trained weights
live in ``radscribe/models/weights/<name>/``:

* ``model.safetensors`` - the fine-tuned weights (< 25 MB),
* ``config.yaml`` - the training config that produced them, including the exact command,
* ``calibration.json`` - temperature fitted on the validation split,
* ``metrics.json`` - official test-split metrics (written by ``radscribe evaluate``).

Listing the models (``radscribe models``) does not import torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radscribe.errors import ConfigError, RadscribeInputError
from radscribe.knowledge.ontology import ANATOMY, FINDING_KINDS

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch
    from torch import nn

    from radscribe.io.image import Image

WEIGHTS_ROOT = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ModelSpec:
    """What a registered classifier reads and says.

    ``input_size`` is the side in pixels (2D) or voxels (3D) of the network input;
    ``modality`` is a DICOM modality code ("CR" chest X-ray, "MR", "CT").
    """

    name: str
    task: str
    modality: str
    body_region: str
    dims: int
    labels: tuple[str, ...]
    normal_label: str = "normal"
    input_size: int = 224
    weights_dir: Path = WEIGHTS_ROOT
    description: str = ""
    #: Architecture id understood by :func:`radscribe.models.classifier.build_classifier`.
    arch: str = "effnet-lite0"
    #: Anatomy id (:data:`radscribe.knowledge.ontology.ANATOMY`) of the organ the model looks at ...
    location: str | None = None
    #: ... and (label, anatomy id) overrides for labels that sit elsewhere (a pituitary tumour in the sella).
    label_locations: tuple[tuple[str, str], ...] = ()
    #: Labels of midline structures: no side is named for them, whatever the heatmap says.
    unsided_labels: tuple[str, ...] = ()

    @property
    def finding_labels(self) -> tuple[str, ...]:
        """The non-normal labels (each a FINDING_KINDS id)."""
        return tuple(lbl for lbl in self.labels if lbl != self.normal_label)

    def location_of(self, label: str) -> str | None:
        """Anatomy id where a ``label`` finding of this model lies (before the side is known)."""
        return dict(self.label_locations).get(label, self.location)


def _spec(name: str, **kw: Any) -> ModelSpec:
    return ModelSpec(name=name, task="classification", weights_dir=WEIGHTS_ROOT / name, **kw)


_SPECS: dict[str, ModelSpec] = {s.name: s for s in [
    _spec("cxr-pneumonia", modality="CR", body_region="chest", dims=2, labels=("normal", "pneumonia"),
          input_size=224, location="lungs", description="Frontal paediatric chest X-ray: pneumonia vs normal "
          "(EfficientNet-Lite0, ImageNet init; Kermany et al. 2018)."),
    _spec("mri-brain-tumor", modality="MR", body_region="brain", dims=2,
          labels=("glioma", "meningioma", "pituitary_tumour", "normal"), input_size=224, location="brain",
          label_locations=(("pituitary_tumour", "sella"), ("glioma", "cerebral_hemisphere"),
                           ("meningioma", "cerebral_hemisphere")), unsided_labels=("pituitary_tumour",),
          description="Axial brain MR slice: glioma / meningioma / pituitary tumour / no tumour "
          "(EfficientNet-Lite0, ImageNet init; Nickparvar 2021)."),
    _spec("ct-kidney", modality="CT", body_region="abdomen", dims=2, labels=("normal", "cyst", "stone", "tumour"),
          input_size=192, location="kidneys",
          description="Abdominal CT slice through the kidneys: normal / cyst / stone / tumour "
          "(EfficientNet-Lite0, ImageNet init; Islam et al. 2022)."),
    _spec("ct-adrenal3d", modality="CT", body_region="abdomen", dims=3, labels=("normal", "adrenal_mass"),
          input_size=28, arch="cnn3d", location="adrenal", unsided_labels=("adrenal_mass",),
          description="3D adrenal gland shape mask from CT: adrenal mass vs normal "
          "(small 3D CNN from scratch; AdrenalMNIST3D)."),
]}

for _s in _SPECS.values():  # labels and anatomy must come from the knowledge module
    for _lbl in _s.finding_labels:
        assert _lbl in FINDING_KINDS, f"{_s.name}: label {_lbl!r} is not a FINDING_KINDS id"
    for _loc in {_s.location, *dict(_s.label_locations).values()} - {None}:
        assert _loc in ANATOMY, f"{_s.name}: location {_loc!r} is not an ANATOMY id"


def list_specs() -> list[ModelSpec]:
    """All registered specs, in registry order."""
    return list(_SPECS.values())


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name``; RadscribeInputError naming the known models otherwise."""
    try:
        return _SPECS[name]
    except KeyError:
        raise RadscribeInputError(f"unknown model {name!r}; known models: {', '.join(_SPECS)}") from None


def build_model(name: str, **kw: Any) -> nn.Module:
    """Architecture only (no fine-tuned weights). ``kw`` override the architecture defaults
    (e.g. ``pretrained=False`` to skip the ImageNet weights, ``dropout=0.3``)."""
    from radscribe.models.classifier import build_classifier

    spec = get_spec(name)
    return build_classifier(spec.arch, n_classes=len(spec.labels), **kw)


class LoadedModel:
    """A registered model with its fine-tuned weights, config and calibration temperature."""

    def __init__(self, spec: ModelSpec, module: nn.Module, config: dict, temperature: float = 1.0):
        import torch

        self.spec = spec
        # Inference only: no parameter gradients (Grad-CAM differentiates activations, not weights), and
        # 2D convolutions in channels-last layout, ~25% less CPU per image for EfficientNet-Lite0.
        self.memory_format = torch.channels_last if spec.dims == 2 else torch.contiguous_format
        module = module.eval()
        if hasattr(module, "fuse_for_inference"):  # BatchNorm folded into the convolutions (~25 % less CPU)
            module = module.fuse_for_inference()
        self.module = module.requires_grad_(False).to(memory_format=self.memory_format)
        self.config = config
        self.temperature = float(temperature)

    @property
    def target_layer(self) -> str:
        """Name (in ``module.named_modules()``) of the last convolutional feature map, for Grad-CAM."""
        return getattr(self.module, "target_layer", "features")

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    def preprocess(self, image: Image, *, middle_slice: bool = False) -> torch.Tensor:
        """One Image -> network input without batch dim: (3, S, S) for 2D or (1, S, S, S) for 3D.

        Intensities are percentile-normalised (0.5-99.5) to 0..1 exactly as in training, then
        resized to ``spec.input_size``; 2D inputs are repeated to 3 channels and ImageNet-normalised.
        A volume given to a 2D model is refused unless ``middle_slice=True``.
        """
        import torch

        from radscribe.data.datasets import prepare_2d, prepare_3d

        arr = image.array
        if self.spec.dims == 2:
            if arr.shape[0] > 1:
                if not middle_slice:
                    raise RadscribeInputError(
                        f"{self.spec.name} is a 2D model but the image is a volume of {arr.shape[0]} slices; "
                        "pass middle_slice=True to classify its middle slice")
                arr = arr[arr.shape[0] // 2: arr.shape[0] // 2 + 1]
            return torch.from_numpy(prepare_2d(arr[0], self.spec.input_size))
        if arr.shape[0] < 2:
            raise RadscribeInputError(f"{self.spec.name} is a 3D model; got a single 2D image {arr.shape[1:]}")
        return torch.from_numpy(prepare_3d(arr, self.spec.input_size))

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw (uncalibrated) logits of a batch, shape (B, n_labels)."""
        import torch

        with torch.no_grad():
            return self.module(self.as_input(batch))

    def as_input(self, batch: torch.Tensor) -> torch.Tensor:
        """A batch as the module wants it: float32, in the module's memory format."""
        return batch.float().contiguous(memory_format=self.memory_format)

    def predict_proba(self, batch: torch.Tensor) -> np.ndarray:
        """Calibrated probabilities softmax(logits / temperature), shape (B, n_labels)."""
        import torch

        return torch.softmax(self.logits(batch) / self.temperature, dim=1).numpy()


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read model config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"model config {path} is not a mapping")
    return data


def load_model(name: str, weights_dir: Path | None = None) -> LoadedModel:
    """Build ``name`` and load its fine-tuned weights, config and calibration.

    Raises RadscribeInputError (ConfigError) when the weights are missing or do not match the
    config (labels, input size, architecture or tensor shapes).
    """
    from safetensors.torch import load_file

    spec = get_spec(name)
    wdir = Path(weights_dir) if weights_dir else spec.weights_dir
    wfile, cfile = wdir / "model.safetensors", wdir / "config.yaml"
    if not wfile.is_file() or not cfile.is_file():
        raise ConfigError(f"no trained weights for {name!r}: expected {wfile} and {cfile}; "
                          f"train them with `radscribe train radscribe/train/configs/{name}.yaml`")
    config = _read_yaml(cfile)
    labels = tuple(config.get("labels") or ())
    if labels != spec.labels:
        raise ConfigError(f"{cfile}: labels {labels} do not match the registry's {spec.labels}")
    data = config.get("data") or {}
    if int(data.get("input_size", -1)) != spec.input_size:
        raise ConfigError(f"{cfile}: input_size {data.get('input_size')} does not match the registry's "
                          f"{spec.input_size}")
    mcfg = dict(config.get("model") or {})
    arch = mcfg.pop("arch", spec.arch)
    if arch != spec.arch:
        raise ConfigError(f"{cfile}: arch {arch!r} does not match the registry's {spec.arch!r}")
    mcfg.pop("pretrained", None)
    mcfg.pop("freeze_blocks", None)
    from radscribe.models.classifier import build_classifier

    module = build_classifier(arch, n_classes=len(spec.labels), pretrained=False, **mcfg)
    try:
        state = load_file(str(wfile))
        module.load_state_dict(state, strict=True)
    except (RuntimeError, OSError) as exc:
        raise ConfigError(f"weights {wfile} do not match config {cfile}: {str(exc).splitlines()[0]}") from exc
    temperature = 1.0
    cal = wdir / "calibration.json"
    if cal.is_file():
        temperature = float(json.loads(cal.read_text()).get("temperature", 1.0))
        if not temperature > 0:
            raise ConfigError(f"{cal}: temperature must be > 0, got {temperature}")
    return LoadedModel(spec, module, config, temperature)


def _metrics_summary(wdir: Path) -> tuple[str, str]:
    f = wdir / "metrics.json"
    if not f.is_file():
        return "-", "-"
    try:
        m = json.loads(f.read_text())
    except (OSError, ValueError):
        return "?", "?"
    m = m.get("metrics", m) if isinstance(m, dict) else {}

    def fmt(*keys: str) -> str:
        for k in keys:
            v = m.get(k)
            if isinstance(v, (int, float)):
                return f"{v:.3f}"
        return "-"

    return fmt("accuracy", "acc", "ACC"), fmt("auc", "auc_macro", "AUC", "roc_auc")


def cli_models(args: Any) -> int:
    """``radscribe models``: a table of the registered models (no torch import)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="radscribe image classifiers")
    table.add_column("name", no_wrap=True)
    for col in ("modality / region", "dims", "input", "labels", "test ACC", "test AUC", "weights"):
        table.add_column(col, overflow="fold")
    for s in list_specs():
        w = s.weights_dir / "model.safetensors"
        size = f"{w.stat().st_size / 1e6:.1f} MB" if w.is_file() else "not trained"
        acc, auc = _metrics_summary(s.weights_dir)
        table.add_row(s.name, f"{s.modality} / {s.body_region}", f"{s.dims}D", str(s.input_size),
                      ", ".join(s.labels), acc, auc, size)
    from radscribe.models.detector import DETECTORS, get_detector

    others = Table(title="other detectors (radscribe analyze --models NAME)")
    for col in ("name", "finds", "what it reads"):
        others.add_column(col, overflow="fold")
    specs = {s.name for s in list_specs()}
    for name in DETECTORS:
        if name not in specs:
            det = get_detector(name)
            others.add_row(name, ", ".join(det.kinds), getattr(det, "description", ""))
    console = Console()
    if not console.is_terminal:  # piped / captured: do not squeeze the table into 80 columns
        console = Console(width=140)
    console.print(table)
    if others.row_count:
        console.print(others)
    return 0
