"""Segmentation training configs (pydantic-validated YAML, saved beside the weights): ``radscribe train-seg``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from radscribe.train.config import read_yaml, validate_config


class SegDataConfig(BaseModel):
    """``input_size``: side in pixels of the brain-cropped square the network reads."""

    model_config = ConfigDict(extra="forbid")
    dataset: Literal["brain_tumor_seg"] = "brain_tumor_seg"
    input_size: int = Field(default=128, ge=32, le=512)
    augment: bool = True


class SegModelConfig(BaseModel):
    """Keyword options of :func:`radscribe.models.seg_networks.build_segnet`."""

    model_config = ConfigDict(extra="forbid")
    arch: Literal["unet", "dynunet", "attention-unet"]
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    num_res_units: int = Field(default=2, ge=0, le=4)
    deep_supr_num: int = Field(default=2, ge=0, le=4)
    dropout: float = Field(default=0.0, ge=0, lt=1)


class SegTrainConfig(BaseModel):
    """AdamW, linear warm-up then cosine decay, a fixed number of epochs; the last epoch is kept
    (no epoch is selected on the held-out fold, so its metrics are an honest estimate)."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(ge=1, le=1000)
    batch_size: int = Field(default=16, ge=2, le=256)
    lr: float = Field(default=2e-3, gt=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    warmup_epochs: float = Field(default=2.0, ge=0)
    dice_weight: float = Field(default=1.0, ge=0)
    ce_weight: float = Field(default=1.0, ge=0)
    num_threads: int = Field(default=1, ge=1, le=16)


class SegRunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    seed: int = 0
    data: SegDataConfig = SegDataConfig()
    model: SegModelConfig
    train: SegTrainConfig
    #: The exact command that produced the run (filled in by ``radscribe train-seg``).
    command: str | None = None


def load_seg_config(path: Path) -> SegRunConfig:
    """Read and validate a YAML segmentation config; ConfigError naming the bad field(s) otherwise."""
    return validate_config(SegRunConfig, read_yaml(path), str(path))


def dump_seg_config(cfg: SegRunConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
