"""Training configs as pydantic-validated YAML (one file describes one run; saved beside the weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from radscribe.errors import ConfigError


class DataConfig(BaseModel):
    """Where the images come from and how they are prepared. ``input_size`` in pixels (2D) / voxels (3D)."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["folder", "npz"]
    #: Dataset folder name under the shared data directory (``$RADSCRIBE_DATA`` or ../shared/data).
    dataset: str
    #: For ``npz``: the file inside the dataset folder (official MedMNIST train/val/test split).
    npz_file: str | None = None
    #: For ``folder``: split folders and label -> class folder name.
    train_dir: str = "train"
    test_dir: str = "test"
    class_dirs: dict[str, str] = Field(default_factory=dict)
    input_size: int = Field(ge=16, le=512)
    #: Fraction of each class of the training folder held out for validation (folder format only).
    val_fraction: float = Field(default=0.1, gt=0.0, lt=0.5)
    augment: Literal["none", "cxr", "cxr-gamma", "mri", "ct", "3d", "3d-cube"] = "none"
    #: Folder format: drop training files byte-identical to a test file or repeated within training.
    dedupe: bool = True
    #: How val is carved from the training folder: "random" (stratified by class), "block" (one
    #: contiguous window of numbered files per class: consecutive slices stay together) or "group"
    #: (whole groups by ``group_pattern``, a regex on the file name whose first group is e.g. the patient).
    split: Literal["random", "block", "group"] = "random"
    group_pattern: str | None = None

    @model_validator(mode="after")
    def _check_format(self) -> DataConfig:
        if self.format == "npz" and not self.npz_file:
            raise ValueError("npz_file is required when format is 'npz'")
        if self.split == "group" and not self.group_pattern:
            raise ValueError("group_pattern (regex with one group) is required when split is 'group'")
        if self.group_pattern:
            import re

            try:
                if re.compile(self.group_pattern).groups < 1:
                    raise ValueError("group_pattern needs one capturing group, e.g. '^(person\\d+)'")
            except re.error as exc:
                raise ValueError(f"group_pattern is not a valid regex: {exc}") from None
        if self.format == "folder" and not self.class_dirs:
            raise ValueError("class_dirs (label -> folder) is required when format is 'folder'")
        return self


class ModelConfig(BaseModel):
    """``arch`` plus keyword options of :func:`radscribe.models.classifier.build_classifier`."""

    model_config = ConfigDict(extra="allow")
    arch: Literal["effnet-lite0", "cnn3d"]
    pretrained: bool = False


class TrainConfig(BaseModel):
    """Loop settings: AdamW with linear warm-up then cosine/constant schedule, early stopping."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(ge=1, le=500)
    batch_size: int = Field(default=32, ge=1, le=1024)
    lr: float = Field(default=1e-3, gt=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = Field(default=0.0, ge=0)
    #: Metric on the validation split that selects the best epoch and drives early stopping.
    monitor: Literal["val_auc", "val_acc", "val_loss"] = "val_auc"
    #: Stop after this many epochs without improvement of ``monitor``.
    patience: int = Field(default=3, ge=1)
    #: 1 by default: on a shared, oversubscribed 2-core machine one thread measured 2x faster than two.
    num_threads: int = Field(default=1, ge=1, le=2)
    #: 0: train end to end on augmented images. N >= 1: compute the frozen part of the model
    #: (``model.frozen_forward``: stem + ``freeze_blocks`` blocks) once for N views of every training
    #: image (view 0 clean, the others augmented) and train only ``model.head_forward`` on them -
    #: the frozen early layers are most of the CPU cost per step.
    cache_views: int = Field(default=0, ge=0, le=16)
    #: Evaluate the selected checkpoint once on the official test split at the end.
    eval_test: bool = True
    #: Exponential moving average of the weights (decay per optimizer step); 0 = off. When on,
    #: validation, checkpoint selection and the exported weights use the averaged model.
    ema_decay: float = Field(default=0.0, ge=0.0, lt=1.0)


class RunConfig(BaseModel):
    """One training run. ``name`` is a registry name (then labels/input size must match it) or a
    free name for side experiments (e.g. ``pneumoniamnist-28``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    labels: tuple[str, ...] = Field(min_length=2)
    seed: int = 0
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    #: Copy the selected weights + config + calibration to radscribe/models/weights/<name>/.
    export: bool = False
    #: The exact command that produced the run (filled in by ``radscribe train``).
    command: str | None = None

    @model_validator(mode="after")
    def _check_registry(self) -> RunConfig:
        from radscribe.knowledge.ontology import FINDING_KINDS
        from radscribe.models.registry import _SPECS

        for lbl in self.labels:
            if lbl != "normal" and lbl not in FINDING_KINDS:
                raise ValueError(f"label {lbl!r} is neither 'normal' nor a knowledge FINDING_KINDS id")
        spec = _SPECS.get(self.name)
        if spec is not None:
            if self.labels != spec.labels:
                raise ValueError(f"labels {self.labels} differ from the registry's {spec.labels} for {self.name}")
            if self.data.input_size != spec.input_size:
                raise ValueError(f"data.input_size {self.data.input_size} differs from the registry's "
                                 f"{spec.input_size} for {self.name}")
            if self.model.arch != spec.arch:
                raise ValueError(f"model.arch {self.model.arch!r} differs from the registry's {spec.arch!r}")
        elif self.export:
            raise ValueError(f"export needs a registered model name, {self.name!r} is not one")
        return self


def format_validation_error(exc: ValidationError) -> str:
    """pydantic errors as one line: ``field.path: message; ...``."""
    parts = []
    for e in exc.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{field}: {e['msg']}")
    return "; ".join(parts)


def parse_config(data: dict, source: str = "config") -> RunConfig:
    """Validate a config mapping; ConfigError naming the offending field(s) otherwise."""
    return validate_config(RunConfig, data, source)


def validate_config(model: type[BaseModel], data: object, source: str) -> BaseModel:
    """``model`` validated from a config mapping (any training config class); ConfigError naming the
    offending field(s) otherwise."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source} does not validate: {format_validation_error(exc)}") from None


def read_yaml(path: Path) -> object:
    """The parsed content of a YAML config file; ConfigError when it is missing or not valid YAML."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None


def load_config(path: Path) -> RunConfig:
    """Read and validate a YAML training config."""
    return parse_config(read_yaml(path), str(path))


def dump_config(cfg: RunConfig) -> str:
    """The config as YAML (the form saved beside weights)."""
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
