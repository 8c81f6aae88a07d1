"""Train the ``ct-chest-slice`` multi-label detector on COV-CTR: ``radscribe train-ct-slice CONFIG``.

One run (the generic :func:`radscribe.train.loop.fit`: AdamW, warm-up + cosine, EMA, checkpoints,
resume, early stop on val), then on the selected (EMA) checkpoint: one temperature per label fitted
on val (or Platt scaling where it cross-validates better within val), one threshold per label chosen
on val (max F1 of the calibrated probability), and the test
split scored once (per-label AUC / F1 / prevalence, COVID accuracy, ECE before and after).

Labels: the config's ``labels`` are candidates; those with fewer than ``data.min_positives`` training
positives are dropped (printed with the prevalence table, and saved as ``kept_labels`` /
``dropped_labels`` in the exported config). Augmentation ``ct``: small rotation / scale / shift and
intensity jitter, never a left-right flip (the reports' sides depend on it).

Run folder (default ``runs/ct-chest-slice``): the loop's files plus ``prevalence.json``,
``calibration.json``, ``val_metrics.json``, ``test_metrics.json``. With ``export: true`` the weights,
config, calibration and test metrics go to ``radscribe/models/weights/ct-chest-slice/``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from radscribe.data.cov_ctr import (
    CANDIDATE_LABELS, COVID_LABEL, cov_ctr_splits, format_prevalence, kept_labels, prevalence, read_entries,
)
from radscribe.data.paths import dataset_dir
from radscribe.errors import ConfigError, OutputExistsError
from radscribe.io.output import atomic_file
from radscribe.train.augment import make_batch_transform
from radscribe.train.config import TrainConfig, read_yaml, validate_config
from radscribe.train.loop import fit, load_weights, predict_logits
from radscribe.train.multilabel import (
    choose_calibration, choose_thresholds, label_report, multilabel_metrics, sigmoid,
)


class CtSliceData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str = "cov_ctr"
    input_size: int = Field(default=224, ge=32, le=512)
    augment: Literal["none", "ct"] = "ct"
    #: Candidate labels with fewer training positives are dropped.
    min_positives: int = Field(default=10, ge=1)


class CtSliceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    arch: Literal["effnet-lite0"] = "effnet-lite0"
    pretrained: bool = True
    dropout: float = Field(default=0.2, ge=0, lt=1)
    drop_connect: float = Field(default=0.0, ge=0, lt=1)
    freeze_blocks: int = Field(default=0, ge=0, le=16)
    #: Up-weight each label's positives by sqrt(negatives / positives) in training (train split counts).
    balance_positives: bool = False


class CtSliceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["ct-chest-slice"] = "ct-chest-slice"
    labels: tuple[str, ...] = CANDIDATE_LABELS
    seed: int = 0
    data: CtSliceData = CtSliceData()
    model: CtSliceModel = CtSliceModel()
    train: TrainConfig
    export: bool = False
    command: str | None = None
    #: Filled in by the run: the labels trained (head order) and the dropped ones with their train positives.
    kept_labels: tuple[str, ...] | None = None
    dropped_labels: dict[str, int] | None = None


def load_ct_config(path: Path) -> CtSliceConfig:
    cfg = validate_config(CtSliceConfig, read_yaml(path), str(path))
    from radscribe.knowledge.ontology import FINDING_KINDS

    bad = [lbl for lbl in cfg.labels if lbl not in FINDING_KINDS]
    if bad:
        raise ConfigError(f"{path}: labels {bad} are not knowledge FINDING_KINDS ids")
    return cfg


def _dump(cfg: CtSliceConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def build_network(cfg: CtSliceConfig, labels: tuple[str, ...], train_targets: np.ndarray) -> torch.nn.Module:
    from radscribe.models.ct_slice_net import MultiLabelEfficientNet

    pos_weight = None
    if cfg.model.balance_positives:
        pos = train_targets.sum(0).clip(min=1)
        pos_weight = np.sqrt((len(train_targets) - pos) / pos).round(4).tolist()
    return MultiLabelEfficientNet(len(labels), pretrained=cfg.model.pretrained, dropout=cfg.model.dropout,
                                  drop_connect=cfg.model.drop_connect, freeze_blocks=cfg.model.freeze_blocks,
                                  pos_weight=pos_weight)


def calibration_file(labels: tuple[str, ...], val_logits: np.ndarray, val_y: np.ndarray) -> dict:
    """What ``calibration.json`` holds: per label p = sigmoid(z / temperature + bias), the method
    (temperature scaling or Platt, by 6-fold CV NLL within val), the val threshold and val ECE."""
    per = [choose_calibration(val_logits[:, j], val_y[:, j]) for j in range(len(labels))]
    temps = np.array([1.0 / c["scale"] for c in per])
    biases = np.array([c["bias"] for c in per])
    thr = choose_thresholds(sigmoid(val_logits / temps + biases), val_y)
    rep = label_report(val_logits, val_y, labels, temps, thr, biases)
    return {"labels": list(labels), "split": "val", "n": int(len(val_y)), "n_bins": 15,
            "per_label": {lbl: {"method": per[j]["method"], "temperature": round(float(temps[j]), 6),
                                "bias": round(float(biases[j]), 6), "threshold": float(thr[j]),
                                "cv_nll": per[j]["cv_nll"],
                                "ece_before": round(rep[lbl]["ece_raw"], 6),
                                "ece_after": round(rep[lbl]["ece_calibrated"], 6),
                                "val_f1": round(rep[lbl]["f1"], 4), "val_auc": round(rep[lbl]["auc"], 4)}
                          for j, lbl in enumerate(labels)},
            "method": "p = sigmoid(z / temperature + bias) per label: temperature scaling (bias 0) or Platt "
                      "scaling, whichever has the lower 6-fold cross-validated NLL within val, refitted on all "
                      "of val; threshold = max val F1 of the calibrated probability (grid 0.05..0.95, ties "
                      "nearest 0.5)"}


def _arrays(cal: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    per = cal["per_label"]
    return tuple(np.array([per[lbl].get(k, 0.0) for lbl in cal["labels"]])  # type: ignore[return-value]
                 for k in ("temperature", "threshold", "bias"))


def split_figures(logits: np.ndarray, y: np.ndarray, cal: dict) -> dict:
    """Per-label figures of one split, plus COVID accuracy at the val threshold and at 0.5."""
    labels = tuple(cal["labels"])
    temps, thr, biases = _arrays(cal)
    rep = label_report(logits, y, labels, temps, thr, biases)
    if COVID_LABEL in labels:
        j = labels.index(COVID_LABEL)
        p = sigmoid(logits[:, j] / temps[j] + biases[j])
        rep["covid"] = {"accuracy": rep[COVID_LABEL]["accuracy"], "auc": rep[COVID_LABEL]["auc"],
                        "accuracy_at_0.5": float(((p >= 0.5) == (y[:, j] == 1)).mean())}
    return rep


def _command(args: Any) -> str:
    parts = ["radscribe", "train-ct-slice", str(args.config)]
    if getattr(args, "out", None):
        parts += ["--out", str(args.out)]
    return " ".join(parts)


def cli_train_ct_slice(args: Any) -> int:
    """``radscribe train-ct-slice CONFIG [--out DIR] [--resume] [--overwrite] [--stop-after-epochs N]``."""
    from radscribe.models.ct_slice import WEIGHTS_DIR

    cfg = load_ct_config(args.config).model_copy(update={"command": _command(args)})
    run_dir = Path(args.out) if getattr(args, "out", None) else Path("runs") / cfg.name
    if run_dir.exists() and any(run_dir.iterdir()) and not args.resume:
        if not args.overwrite:
            raise OutputExistsError(f"run folder {run_dir} exists; pass --resume to continue or --overwrite")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.train.num_threads)
    entries = read_entries(dataset_dir(cfg.data.dataset))
    prev = prevalence(entries, cfg.labels)
    labels, dropped = kept_labels(entries, cfg.labels, cfg.data.min_positives)
    print(format_prevalence(prev, cfg.labels), file=sys.stderr)
    print(f"kept {len(labels)} labels {labels}; dropped (< {cfg.data.min_positives} train positives): "
          + (", ".join(f"{k} ({v})" for k, v in dropped.items()) or "none"), file=sys.stderr)
    if len(labels) < 1:
        raise ConfigError("no label has enough training positives")
    cfg = cfg.model_copy(update={"kept_labels": labels, "dropped_labels": dropped})
    (run_dir / "config.yaml").write_text(_dump(cfg))
    (run_dir / "prevalence.json").write_text(json.dumps(prev, indent=1))
    data = cov_ctr_splits(labels, cfg.data.input_size, entries=entries)
    transform = make_batch_transform(cfg.data.augment, 2)
    model = build_network(cfg, labels, data["train"].labels)
    stop_after = getattr(args, "stop_after_epochs", None)
    res = fit(model, data["train"], data["val"], cfg.train, run_dir, transform, cfg.seed, args.resume,
              stop_after=stop_after, metrics=multilabel_metrics)
    if stop_after is not None and res.epochs_run < cfg.train.epochs and not res.stopped_early:
        print(f"stopped after epoch {res.epochs_run}; continue with `{cfg.command} --resume`", file=sys.stderr)
        return 0
    load_weights(model, run_dir / "best.safetensors")
    vl, vy = predict_logits(model, data["val"], transform)
    cal = calibration_file(labels, vl, vy)
    (run_dir / "calibration.json").write_text(json.dumps(cal, indent=1))
    summary = {"name": cfg.name, "labels": list(labels), "dropped_labels": dropped, "best_epoch": res.best_epoch,
               "epochs_run": res.epochs_run, "stopped_early": res.stopped_early,
               "val": split_figures(vl, vy, cal), "train_wall_seconds": round(
                   sum(h["epoch_seconds"] for h in res.history), 1), "command": cfg.command}
    tl, ty = predict_logits(model, data["test"], transform)
    test = {"split": "test", **split_figures(tl, ty, cal)}
    summary["wall_seconds"] = round(time.time() - t0, 1)
    (run_dir / "val_metrics.json").write_text(json.dumps(summary, indent=1))
    np.savez(run_dir / "logits.npz", val_logits=vl, val_labels=vy, test_logits=tl, test_labels=ty,
             labels=np.array(labels))
    (run_dir / "test_metrics.json").write_text(json.dumps(test, indent=1))
    print(f"best epoch {res.best_epoch}: test macro AUC {test['macro']['auc']:.4f} F1 {test['macro']['f1']:.4f}"
          + (f" | COVID acc {test['covid']['accuracy']:.4f} auc {test['covid']['auc']:.4f}" if "covid" in test
             else "") + f" | {time.time() - t0:.0f} s", file=sys.stderr)
    if cfg.export:
        export(cfg, run_dir, WEIGHTS_DIR, test)
        print(f"exported to {WEIGHTS_DIR}", file=sys.stderr)
    return 0


def export(cfg: CtSliceConfig, run_dir: Path, weights_dir: Path, test: dict) -> None:
    """Weights, config, calibration and test metrics of a finished run into ``weights_dir``."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "best.safetensors", weights_dir / "model.safetensors.tmp")
    (weights_dir / "model.safetensors.tmp").replace(weights_dir / "model.safetensors")
    for name, text in (("config.yaml", _dump(cfg)), ("calibration.json", (run_dir / "calibration.json").read_text()),
                       ("metrics.json", json.dumps(test, indent=1))):
        with atomic_file(weights_dir / name) as f:
            f.write(text)
        (weights_dir / name).chmod(0o644)
