"""One thin, generic training loop: ``radscribe train CONFIG [--out DIR] [--resume] [--overwrite]``.

The model defines its loss (``model.loss(logits, y)``); :func:`fit` does epochs, a tqdm bar,
AdamW with warm-up + cosine schedule, per-epoch validation (loss, accuracy, AUC), checkpoints
(``last.safetensors`` + ``last_state.pt`` with optimizer/scheduler state, ``best.safetensors``),
early stopping on the monitored validation metric, and resume. Shuffling, augmentation and
dropout are seeded per epoch, so a resumed run continues exactly as an uninterrupted one would.

Run folder (default ``runs/<name>``): ``config.yaml``, ``history.json``/``history.csv`` (per-epoch
train/val loss and metrics, seconds), checkpoints, ``val_metrics.json``, ``calibration.json``,
``test_metrics.json`` (official test split, computed once for the selected checkpoint).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.metrics import confusion_matrix, roc_auc_score
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from radscribe.data.datasets import folder_splits, npz_splits
from radscribe.data.paths import dataset_dir
from radscribe.errors import ConfigError, OutputExistsError
from radscribe.io.output import atomic_file
from radscribe.models.classifier import build_classifier
from radscribe.models.registry import _SPECS
from radscribe.train import distributed as dd
from radscribe.train.augment import make_batch_transform
from radscribe.train.calibration import calibration_summary, ece, probs_from_logits
from radscribe.train.config import RunConfig, TrainConfig, dump_config, load_config

Transform = Callable[[torch.Tensor, torch.Generator, bool], torch.Tensor]


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    epochs_run: int
    stopped_early: bool
    history: list[dict] = field(default_factory=list)


def _identity(x: torch.Tensor, g: torch.Generator, train: bool) -> torch.Tensor:
    return x


def _batch(ds: Any, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(ds, "images") and hasattr(ds, "labels"):  # CachedDataset fast path
        x = torch.from_numpy(ds.images[idx].astype(np.float32) / 255.0).unsqueeze(1)
        return x, torch.from_numpy(ds.labels[idx])
    items = [ds[int(i)] for i in idx]
    return torch.stack([a for a, _ in items]), torch.stack([torch.as_tensor(b) for _, b in items])


def predict_logits(model: nn.Module, ds: Any, transform: Transform = _identity, batch_size: int = 64,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, C), labels (N,)) of a dataset in eval mode, no augmentation."""
    model.eval()
    g = torch.Generator().manual_seed(0)
    out, ys = [], []
    with torch.no_grad():
        for s in tqdm(range(0, len(ds), batch_size), desc="predict", disable=not progress, leave=False):
            x, y = _batch(ds, np.arange(s, min(s + batch_size, len(ds))))
            out.append(model(transform(x, g, False)).float())
            ys.append(y)
    return torch.cat(out).numpy(), torch.cat(ys).numpy()


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """loss (mean NLL, nats), acc, auc (binary: positive class 1; multi-class: macro one-vs-rest),
    per-class recall and the confusion matrix (rows = truth)."""
    lt = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    y = np.asarray(labels).astype(int)
    n_classes = lt.shape[1]
    loss = float(torch.nn.functional.cross_entropy(lt, torch.from_numpy(y)).item())
    p = torch.softmax(lt, 1).numpy()
    pred = p.argmax(1)
    present = np.unique(y)
    if len(present) < 2:
        auc = float("nan")
    elif n_classes == 2:
        auc = float(roc_auc_score(y, p[:, 1]))
    else:
        auc = float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=list(range(n_classes))))
    cm = confusion_matrix(y, pred, labels=list(range(n_classes)))
    recall = [float(cm[i, i] / cm[i].sum()) if cm[i].sum() else float("nan") for i in range(n_classes)]
    return {"loss": loss, "acc": float((pred == y).mean()), "auc": auc, "recall": recall,
            "confusion": cm.tolist(), "n": len(y)}


def _score(metrics: dict, monitor: str) -> float:
    key = monitor.removeprefix("val_")
    v = metrics[key]
    if key == "auc" and math.isnan(v):
        v = metrics["acc"]
    return -v if key == "loss" else v


def _lr_lambda(tcfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    total = max(1, tcfg.epochs * steps_per_epoch)
    warm = int(tcfg.warmup_epochs * steps_per_epoch)

    def f(step: int) -> float:
        if warm and step < warm:
            return 0.01 + 0.99 * step / warm
        if tcfg.schedule == "constant":
            return 1.0
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def _save_weights(model: nn.Module, path: Path) -> None:
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)


def load_weights(model: nn.Module, path: Path) -> None:
    model.load_state_dict(load_file(str(path)), strict=True)


def _write_history(run_dir: Path, history: list[dict]) -> None:
    (run_dir / "history.json").write_text(json.dumps(history, indent=1))
    if history:
        keys = list(history[0])
        with open(run_dir / "history.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(history)


class _FeatureCache:
    """Frozen-part outputs of every sample for ``views`` views: fp16 (V, N, C, H, W), labels (N,)."""

    def __init__(self, model: nn.Module, ds: Any, transform: Transform, views: int, seed: int, progress: bool,
                 batch_size: int = 64):
        model.eval()
        self.labels = np.asarray(ds.labels if hasattr(ds, "labels") else [int(ds[i][1]) for i in range(len(ds))])
        feats = []
        with torch.no_grad():
            for v in range(views):
                g = torch.Generator().manual_seed(seed * 104729 + v)
                out = []
                for s in tqdm(range(0, len(ds), batch_size), desc=f"caching frozen features, view {v + 1}/{views}",
                              disable=not progress, leave=False, file=sys.stderr):
                    x, _ = _batch(ds, np.arange(s, min(s + batch_size, len(ds))))
                    out.append(model.frozen_forward(transform(x, g, v > 0)).half())
                feats.append(torch.cat(out))
        self.feats = torch.stack(feats)
        self.views = views

    def __len__(self) -> int:
        return len(self.labels)


def _make_ema(model: nn.Module, decay: float) -> Any:
    """An exponential moving average of ``model`` (parameters and BatchNorm buffers), or None when off."""
    if not decay:
        return None

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def fit(model: nn.Module, train_ds: Any, val_ds: Any, tcfg: TrainConfig, run_dir: Path,
        transform: Transform = _identity, seed: int = 0, resume: bool = False, progress: bool = True,
        stop_after: int | None = None, metrics: Callable[[np.ndarray, np.ndarray], dict] | None = None) -> FitResult:
    """Train ``model`` on ``train_ds`` (items (x, y)), select the epoch by ``tcfg.monitor`` on ``val_ds``.

    Writes checkpoints and history into ``run_dir``; ``resume=True`` continues from
    ``run_dir/last_state.pt``; ``stop_after=N`` ends this call after N epochs (the run is then
    continued later with ``resume=True``, e.g. in the next session). Under ``torchrun`` the ranks
    train data-parallel (:mod:`radscribe.train.distributed`). Returns the best epoch (1-based)
    and its score. ``metrics(val_logits, val_labels)`` (default :func:`classification_metrics`) gives the
    dict with loss/acc/auc that validation is scored by (a multi-label model passes its own)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(tcfg.num_threads)
    try:
        return _fit(model, train_ds, val_ds, tcfg, Path(run_dir), transform, seed, resume, progress, stop_after,
                    metrics or classification_metrics)
    finally:
        torch.set_num_threads(threads)


def _fit(model: nn.Module, train_ds: Any, val_ds: Any, tcfg: TrainConfig, run_dir: Path, transform: Transform,
         seed: int, resume: bool, progress: bool, stop_after: int | None = None,
         metrics: Callable = classification_metrics) -> FitResult:
    rank, size = dd.world()
    progress = progress and rank == 0
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    dd.barrier()
    cached = tcfg.cache_views > 0
    if cached and size > 1:
        raise ConfigError("train.cache_views is not supported under torchrun (several processes)")
    if cached and tcfg.ema_decay:
        raise ConfigError("train.ema_decay is not supported with train.cache_views (the head is trained on cached "
                          "features); use one or the other")
    if cached:
        if not hasattr(model, "frozen_forward") or not getattr(model, "freeze_blocks", 0):
            raise ConfigError("train.cache_views needs a model with frozen blocks (model.freeze_blocks > 0)")
        t_cache = time.time()
        train_ds = _FeatureCache(model, train_ds, transform, tcfg.cache_views, seed, progress)
        val_ds = _FeatureCache(model, val_ds, transform, 1, seed, progress)
        cache_seconds = time.time() - t_cache
        forward, transform = model.head_forward, _identity
    else:
        forward, cache_seconds = dd.wrap(model), 0.0
    n = len(train_ds)
    bs = min(tcfg.batch_size, n)
    steps = n // bs if n % bs < 2 * size else n // bs + 1  # never a (per-rank) last batch of 1 (BatchNorm)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(tcfg, steps))
    start, best_score, best_epoch, bad, history = 1, -math.inf, 0, 0, []
    state_file = run_dir / "last_state.pt"
    ema = _make_ema(model, tcfg.ema_decay)
    if resume:
        if not state_file.is_file() or not (run_dir / "last.safetensors").is_file():
            raise ConfigError(f"--resume: no checkpoint (last.safetensors + last_state.pt) in {run_dir}")
        st = torch.load(state_file, map_location="cpu", weights_only=False)
        load_weights(model, run_dir / "last.safetensors")
        if ema is not None:
            if not (run_dir / "last_ema.safetensors").is_file():
                raise ConfigError(f"--resume: train.ema_decay is set but {run_dir} has no last_ema.safetensors")
            load_weights(ema.module, run_dir / "last_ema.safetensors")
            ema.n_averaged.fill_(int(st.get("ema_n_averaged", 1)))
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start, best_score, best_epoch, bad, history = (st["epoch"] + 1, st["best_score"], st["best_epoch"],
                                                       st["bad_epochs"], st["history"])
        if bad >= tcfg.patience:
            return FitResult(best_epoch, best_score, st["epoch"], True, history)
    stopped = False
    epoch = start - 1
    n_val = len(val_ds)
    last_epoch = tcfg.epochs if stop_after is None else min(tcfg.epochs, start - 1 + stop_after)
    for epoch in range(start, last_epoch + 1):
        t0 = time.time()
        torch.manual_seed(seed * 1009 + epoch + 7 * rank)  # dropout / drop-connect
        g = torch.Generator().manual_seed(seed * 7919 + epoch)  # the permutation: the same on every rank
        g_aug = g if size == 1 else torch.Generator().manual_seed((seed * 7919 + epoch) * 31 + rank)
        order = torch.randperm(n, generator=g).numpy()
        model.train()
        tot, seen, correct = 0.0, 0, 0
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{tcfg.epochs}", disable=not progress, leave=False,
                   file=sys.stderr)
        for s in bar:
            idx = dd.shard(order[s * bs: (s + 1) * bs], rank, size)
            if cached:
                view = torch.randint(0, train_ds.views, (1,), generator=g).item()
                x, y = train_ds.feats[view, idx].float(), torch.from_numpy(train_ds.labels[idx])
            else:
                x, y = _batch(train_ds, idx)
            logits = forward(transform(x, g_aug, True))
            loss = model.loss(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            tot += loss.item() * len(y)
            seen += len(y)
            correct += float(((logits > 0) == (y > 0)).float().mean(1).sum()) if y.dim() == 2 \
                else int((logits.argmax(1) == y).sum())  # multi-label (B, L) targets: mean label accuracy
            bar.set_postfix(loss=f"{tot / seen:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
        train_s = time.time() - t0
        tot, seen, correct = dd.sum_all(tot, seen, correct)
        dd.sync_buffers(model)
        if ema is not None:
            dd.sync_buffers(ema.module)
        if cached:
            model.eval()
            with torch.no_grad():
                vl = torch.cat([forward(val_ds.feats[0, i: i + 256].float()) for i in range(0, n_val, 256)]).numpy()
            vy = val_ds.labels
        else:
            vl, vy = predict_logits(model if ema is None else ema.module, val_ds, transform, batch_size=max(bs, 64))
        vm = metrics(vl, vy)
        score = _score(vm, tcfg.monitor)
        improved = score > best_score
        row = {"epoch": epoch, "train_loss": tot / seen, "train_acc": correct / seen, "val_loss": vm["loss"],
               "val_acc": vm["acc"], "val_auc": vm["auc"], "lr": sched.get_last_lr()[0],
               "train_seconds": round(train_s, 1), "epoch_seconds": round(time.time() - t0, 1),
               "cache_seconds": round(cache_seconds if epoch == start else 0.0, 1),
               "best": improved}
        history.append(row)
        selected = model if ema is None else ema.module  # what validation scored is what gets saved
        if improved:
            best_score, best_epoch, bad = score, epoch, 0
        else:
            bad += 1
        if rank == 0:  # every rank holds the same model; one writes
            if improved:
                _save_weights(selected, run_dir / "best.safetensors")
            _save_weights(model, run_dir / "last.safetensors")
            if ema is not None:
                _save_weights(ema.module, run_dir / "last_ema.safetensors")
            torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
                        "best_score": best_score, "best_epoch": best_epoch, "bad_epochs": bad, "history": history,
                        "ema_n_averaged": int(ema.n_averaged) if ema is not None else 0},
                       state_file)
            _write_history(run_dir, history)
        dd.barrier()
        if progress:
            print(f"epoch {epoch}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | val loss "
                  f"{vm['loss']:.4f} acc {vm['acc']:.4f} auc {vm['auc']:.4f} | {row['epoch_seconds']:.0f} s"
                  + (" *" if improved else ""), file=sys.stderr, flush=True)
        if bad >= tcfg.patience:
            stopped = True
            break
    return FitResult(best_epoch, best_score, epoch, stopped, history)


def build_datasets(cfg: RunConfig, splits: tuple[str, ...], progress: bool = True) -> dict:
    """The config's train/val/test CachedDatasets (val carved from training for folder datasets)."""
    root = dataset_dir(cfg.data.dataset)
    if cfg.data.format == "npz":
        return npz_splits(root / cfg.data.npz_file, cfg.data.input_size, splits)
    return folder_splits(root, cfg.labels, cfg.data.class_dirs, cfg.data.train_dir, cfg.data.test_dir,
                         cfg.data.input_size, cfg.data.val_fraction, cfg.seed, splits, progress, cfg.data.dedupe,
                         cfg.data.split, cfg.data.group_pattern)


def build_from_config(cfg: RunConfig) -> nn.Module:
    kw = cfg.model.model_dump()
    arch = kw.pop("arch")
    return build_classifier(arch, n_classes=len(cfg.labels), **kw)


def _command(args: Any) -> str:
    parts = ["radscribe", "train", str(args.config)]
    if getattr(args, "out", None):
        parts += ["--out", str(args.out)]
    return " ".join(parts)


def export_weights(cfg: RunConfig, run_dir: Path, weights_dir: Path) -> None:
    """Copy the selected weights, the config and the calibration into a registry weights folder."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "best.safetensors", weights_dir / "model.safetensors.tmp")
    (weights_dir / "model.safetensors.tmp").replace(weights_dir / "model.safetensors")
    with atomic_file(weights_dir / "config.yaml") as f:
        f.write(dump_config(cfg))
    (weights_dir / "config.yaml").chmod(0o644)  # atomic_file's temporary file is private (0600)
    if (run_dir / "calibration.json").is_file():
        shutil.copyfile(run_dir / "calibration.json", weights_dir / "calibration.json")


def cli_train(args: Any) -> int:
    """``radscribe train CONFIG``: validate, train, select on val, calibrate on val, test once, export.

    Under ``torchrun`` (WORLD_SIZE > 1) every process joins one group and trains data-parallel; rank 0
    alone writes the run folder, evaluates and exports."""
    joined = dd.init_from_env()
    try:
        return _cli_train(args)
    finally:
        if joined:
            dd.shutdown()


def _cli_train(args: Any) -> int:
    cfg = load_config(args.config)
    cfg = cfg.model_copy(update={"command": _command(args)})
    run_dir = Path(args.out) if getattr(args, "out", None) else Path("runs") / cfg.name
    main = dd.is_main()
    if run_dir.exists() and any(run_dir.iterdir()) and not args.resume:
        if not args.overwrite:
            raise OutputExistsError(f"run folder {run_dir} exists; pass --resume to continue or --overwrite")
        dd.barrier()  # every rank has looked before rank 0 deletes
        if main:
            shutil.rmtree(run_dir)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_config(cfg))
    dd.barrier()
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.train.num_threads)
    splits = ("train", "val", "test") if cfg.train.eval_test else ("train", "val")
    data = build_datasets(cfg, splits)
    print("data: " + ", ".join(f"{k} {len(v)}" for k, v in data.items()) + f" {data['train'].notes} "
          f"({time.time() - t0:.0f} s)", file=sys.stderr)
    dims = 3 if cfg.model.arch == "cnn3d" else 2
    transform = make_batch_transform(cfg.data.augment, dims)
    model = build_from_config(cfg)
    stop_after = getattr(args, "stop_after_epochs", None)
    res = fit(model, data["train"], data["val"], cfg.train, run_dir, transform, cfg.seed, args.resume,
              stop_after=stop_after)
    if not main:
        return 0
    if stop_after is not None and res.epochs_run < cfg.train.epochs and not res.stopped_early:
        print(f"stopped after epoch {res.epochs_run} of {cfg.train.epochs} (--stop-after-epochs); continue with "
              f"`radscribe train {args.config} --out {run_dir} --resume`", file=sys.stderr)
        return 0
    load_weights(model, run_dir / "best.safetensors")
    vl, vy = predict_logits(model, data["val"], transform)
    val = classification_metrics(vl, vy)
    cal = calibration_summary(vl, vy)
    (run_dir / "calibration.json").write_text(json.dumps(cal, indent=1))
    summary = {"name": cfg.name, "labels": list(cfg.labels), "data_notes": data["train"].notes,
               "split_sizes": {k: len(v) for k, v in data.items()}, "best_epoch": res.best_epoch,
               "epochs_run": res.epochs_run, "stopped_early": res.stopped_early, "val": val, "calibration": cal,
               "train_wall_seconds": round(sum(h["epoch_seconds"] + h["cache_seconds"] for h in res.history), 1),
               "wall_seconds": round(time.time() - t0, 1), "command": cfg.command}
    (run_dir / "val_metrics.json").write_text(json.dumps(summary, indent=1))
    msg = f"best epoch {res.best_epoch}: val acc {val['acc']:.4f} auc {val['auc']:.4f}, T={cal['temperature']:.3f}"
    if "test" in data:
        tl, ty = predict_logits(model, data["test"], transform)
        test = classification_metrics(tl, ty)

        test["ece_calibrated"] = ece(probs_from_logits(tl, cal["temperature"]), ty)
        test["ece_raw"] = ece(probs_from_logits(tl), ty)
        (run_dir / "test_metrics.json").write_text(json.dumps({"split": "test", **test}, indent=1))
        msg += f" | test acc {test['acc']:.4f} auc {test['auc']:.4f}"
    if cfg.export:
        export_weights(cfg, run_dir, _SPECS[cfg.name].weights_dir)
        msg += f" | exported to {_SPECS[cfg.name].weights_dir}"
    print(msg + f" | {time.time() - t0:.0f} s", file=sys.stderr)
    return 0
