"""Refit a registered classifier's temperature on its validation split: ``radscribe recalibrate``."""

from __future__ import annotations

import json

import torch

from radscribe.io.output import atomic_file
from radscribe.models.registry import load_model
from radscribe.train.augment import make_batch_transform
from radscribe.train.calibration import calibration_summary
from radscribe.train.config import parse_config
from radscribe.train.loop import build_datasets, predict_logits


def recalibrate(name: str) -> dict:
    """Refit the temperature of registered model ``name`` on its validation split and rewrite
    ``weights/<name>/calibration.json`` (atomically)."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    loaded = load_model(name)
    cfg = parse_config(loaded.config, str(loaded.spec.weights_dir / "config.yaml"))
    ds = build_datasets(cfg, ("val",))["val"]
    logits, y = predict_logits(loaded.module, ds, make_batch_transform(cfg.data.augment, loaded.spec.dims))
    cal = calibration_summary(logits, y)
    with atomic_file(loaded.spec.weights_dir / "calibration.json") as fh:
        json.dump(cal, fh, indent=1)
    (loaded.spec.weights_dir / "calibration.json").chmod(0o644)
    return cal


def cli_recalibrate(args) -> int:
    """``radscribe recalibrate --model NAME``: print the new calibration.json."""
    print(json.dumps(recalibrate(args.model), indent=1))
    return 0
