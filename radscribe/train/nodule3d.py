"""Cross-validated training of the 3D nodule network on the LIDC cubes:
``radscribe train-nodule3d CONFIG --fold K [--out DIR] [--resume | --overwrite]``.

One fold trains :class:`radscribe.models.nodule3d.Nodule3DNet` on the other four folds of
:func:`radscribe.data.lidc.make_folds` (grouped by case, stratified by texture) for a fixed number of epochs
(AdamW, warm-up + cosine; the last epoch is kept, no epoch is chosen on the held-out fold), with MONAI 3D
augmentation: flips on every axis, 90-degree in-plane rotations, a small affine (rotation, scale,
shift), a random 48^3 crop (centre jitter) and intensity jitter. Single-threaded by default.

Run folder::

    DIR/config.yaml                 the config + the exact command
    DIR/folds.json                  fold of every cube, the HU mapping
    DIR/fold<K>/last.safetensors    weights after the latest epoch; last_state.pt: optimizer, schedule, history
    DIR/fold<K>/history.json        per-epoch losses, held-out Dice (every ``eval_every`` epochs), seconds
    DIR/fold<K>/model.safetensors   final weights; config.json: what :func:`load_nodule3d` needs
    DIR/fold<K>/predictions.json    held-out predictions per cube (Dice, texture probabilities, ratings)
    DIR/fold<K>/metrics.json        the fold's held-out figures (see :mod:`radscribe.train.nodule3d_eval`)

``--resume`` continues a fold from its last completed epoch; a resumed run ends with the weights an
uninterrupted one would (every epoch reseeds its shuffling and augmentation).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from radscribe.errors import ConfigError, OutputExistsError
from radscribe.train.config import read_yaml, validate_config


class N3ModelConfig(BaseModel):
    """Keyword options of :class:`radscribe.models.nodule3d.Nodule3DNet`."""

    model_config = ConfigDict(extra="forbid")
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    num_res_units: int = Field(default=1, ge=0, le=3)
    features: int = Field(default=16, ge=4, le=64)
    hidden: int = Field(default=64, ge=8, le=512)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    head_dropout: float = Field(default=0.3, ge=0, lt=1)


class N3TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(ge=1, le=1000)
    batch_size: int = Field(default=4, ge=2, le=64)
    lr: float = Field(default=2e-3, gt=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    warmup_epochs: float = Field(default=2.0, ge=0)
    head_weight: float = Field(default=0.3, ge=0)
    knowledge_weight: float = Field(default=2.0, ge=0)
    augment: bool = True
    eval_every: int = Field(default=5, ge=1)
    num_threads: int = Field(default=1, ge=1, le=16)


class N3RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    seed: int = 0
    model: N3ModelConfig = N3ModelConfig()
    train: N3TrainConfig
    #: The exact command that produced the run (filled in by ``radscribe train-nodule3d``).
    command: str | None = None


def load_n3_config(path: Path) -> N3RunConfig:
    return validate_config(N3RunConfig, read_yaml(path), str(path))


def dump_n3_config(cfg: N3RunConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def make_augment(size: int):
    """MONAI ``Compose`` over {"image", "label"} (1, D, D, D) float arrays, voxel order (z, y, x)."""
    from monai.transforms import (
        Compose, RandAffined, RandFlipd, RandGaussianNoised, RandRotate90d, RandScaleIntensityd,
        RandShiftIntensityd, RandSpatialCropd,
    )

    keys = ("image", "label")
    return Compose([
        RandFlipd(keys, prob=0.5, spatial_axis=0), RandFlipd(keys, prob=0.5, spatial_axis=1),
        RandFlipd(keys, prob=0.5, spatial_axis=2),
        RandRotate90d(keys, prob=0.75, spatial_axes=(1, 2)),  # in-plane only: the slice axis is coarser
        RandAffined(keys, prob=0.5, rotate_range=(math.radians(15), math.radians(5), math.radians(5)),
                    scale_range=(0.1, 0.1, 0.1), translate_range=(1.5, 1.5, 1.5), mode=("bilinear", "nearest"),
                    padding_mode="border"),
        RandSpatialCropd(keys, (size, size, size), random_size=False),
        RandScaleIntensityd("image", factors=0.1, prob=0.5),
        RandShiftIntensityd("image", offsets=0.04, prob=0.5),
        RandGaussianNoised("image", std=0.01, prob=0.2),
    ])


def augment_batch(tf, x: np.ndarray, y: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment (B, D, D, D) cubes (0..1) and masks; returns (B, 1, S, S, S) float images and long masks."""
    from monai.data import set_track_meta

    set_track_meta(False)
    tf.set_random_state(seed)
    xs, ys = [], []
    for xi, yi in zip(x, y):
        d = tf({"image": xi[None].astype(np.float32), "label": yi[None].astype(np.float32)})
        xs.append(torch.as_tensor(np.asarray(d["image"])).clamp(0, 1))
        ys.append(torch.as_tensor(np.asarray(d["label"])) > 0.5)
    return torch.stack(xs).float(), torch.stack(ys).long()


def _save(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)


def _lr_factor(epochs: int, warmup_epochs: float, steps_per_epoch: int):
    total, warm = max(1, epochs * steps_per_epoch), int(warmup_epochs * steps_per_epoch)

    def f(step: int) -> float:
        if warm and step < warm:
            return 0.02 + 0.98 * step / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
    return f


def texture_class_weights(cls: np.ndarray) -> torch.Tensor:
    """Inverse class frequencies normalised to mean 1 (a missing class gets weight 1)."""
    counts = np.bincount(cls, minlength=3).astype(float)
    w = np.where(counts > 0, counts.sum() / (3 * np.maximum(counts, 1)), 1.0)
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def train_fold(cfg: N3RunConfig, fold: int, data, folds: np.ndarray, hu_mapping, fold_dir: Path,
               progress: bool = True, stop_after_epochs: int | None = None) -> dict:
    """Train one fold (resuming from ``fold_dir/last_state.pt``); returns its held-out metrics, or
    ``{"stopped_at": epoch}`` when ``stop_after_epochs`` ended this call early (continue by calling again)."""
    from safetensors.torch import load_file
    from tqdm import tqdm

    from radscribe.data.lidc import ASSUMED_SPACING_MM, ORDINAL_RATINGS
    from radscribe.models.nodule3d import INPUT_SIZE, Nodule3DLoss, build_nodule3d, predict_cubes
    from radscribe.train.nodule3d_eval import fold_predictions, heldout_dice, write_fold_results

    fold_dir.mkdir(parents=True, exist_ok=True)
    if (fold_dir / "metrics.json").is_file() and (fold_dir / "model.safetensors").is_file():
        return json.loads((fold_dir / "metrics.json").read_text())
    tr, ho = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
    x = data.volumes.astype(np.float32) / 255.0
    y = data.masks
    tex = torch.from_numpy(data.texture_class).long()
    ratings = torch.from_numpy(np.stack([data.ratings[k] for k in ORDINAL_RATINGS], 1)).float()
    torch.manual_seed(cfg.seed * 1000 + fold)
    model = build_nodule3d(cfg.model.model_dump())
    tc = cfg.train
    loss_fn = Nodule3DLoss(tc.head_weight, tc.knowledge_weight, texture_class_weights(data.texture_class[tr]))
    n, bs = len(tr), min(tc.batch_size, len(tr))
    steps = n // bs if n % bs < 2 else n // bs + 1  # never a last batch of 1
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(tc.epochs, tc.warmup_epochs, steps))
    start, history = 1, []
    state_file = fold_dir / "last_state.pt"
    if state_file.is_file() and (fold_dir / "last.safetensors").is_file():
        st = torch.load(state_file, map_location="cpu", weights_only=False)
        model.load_state_dict(load_file(str(fold_dir / "last.safetensors")), strict=True)
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start, history = st["epoch"] + 1, st["history"]
    tf = make_augment(INPUT_SIZE) if tc.augment else None
    o = (x.shape[-1] - INPUT_SIZE) // 2
    for epoch in range(start, tc.epochs + 1):
        t0 = time.time()
        torch.manual_seed(cfg.seed * 1009 + fold * 101 + epoch)
        g = np.random.default_rng(cfg.seed * 7919 + fold * 31 + epoch)
        order = tr[g.permutation(n)]
        model.train()
        sums: dict[str, float] = {}
        bar = tqdm(range(steps), desc=f"fold {fold} epoch {epoch}/{tc.epochs}", disable=not progress,
                   leave=False, file=sys.stderr)
        for s in bar:
            idx = order[s * bs:(s + 1) * bs]
            if tf is not None:
                xb, yb = augment_batch(tf, x[idx], y[idx], int(g.integers(2**31 - 1)))
            else:
                c = slice(o, o + INPUT_SIZE)
                xb = torch.from_numpy(x[idx][:, None, c, c, c])
                yb = torch.from_numpy(y[idx][:, None, c, c, c]).long()
            loss, parts = loss_fn(model(xb), yb, tex[idx], ratings[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            bar.set_postfix(loss=f"{sums['total'] / min((s + 1) * bs, n):.4f}")
        row: dict[str, Any] = {"epoch": epoch, **{f"train_{k}": round(v / n, 5) for k, v in sums.items()},
                               "lr": sched.get_last_lr()[0]}
        if epoch % tc.eval_every == 0 or epoch == tc.epochs:
            pr = predict_cubes(model, x[ho], tta=False)
            row["heldout_dice"] = round(float(np.mean(heldout_dice(pr["mask"], y[ho]))), 4)
        row["epoch_seconds"] = round(time.time() - t0, 1)
        history.append(row)
        _save(model, fold_dir / "last.safetensors")
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
                    "history": history}, state_file)
        (fold_dir / "history.json").write_text(json.dumps(history, indent=1))
        if progress:
            print(f"fold {fold} epoch {epoch}: loss {row['train_total']:.4f} (seg {row['train_seg']:.4f}) "
                  f"held-out Dice {row.get('heldout_dice', float('nan')):.4f} | {row['epoch_seconds']:.0f} s",
                  file=sys.stderr, flush=True)
        if stop_after_epochs is not None and epoch - start + 1 >= stop_after_epochs and epoch < tc.epochs:
            return {"stopped_at": epoch}
    t_ev = time.time()
    pr = predict_cubes(model, x[ho], tta=True)
    preds = fold_predictions(data, ho, pr)
    shutil.copyfile(fold_dir / "last.safetensors", fold_dir / "model.safetensors")
    spec = {"name": cfg.name, "fold": fold, "model": cfg.model.model_dump(mode="json"),
            "hu_mapping": hu_mapping.to_dict(), "spacing_mm": list(ASSUMED_SPACING_MM),
            "cube_size": int(x.shape[-1]), "input_size": INPUT_SIZE, "command": cfg.command,
            "heldout_cases": sorted({data.cases[i] for i in ho})}
    (fold_dir / "config.json").write_text(json.dumps(spec, indent=1))
    extra = {"epochs": tc.epochs, "n_train": int(n), "n_heldout": int(len(ho)),
             "parameters": int(sum(p.numel() for p in model.parameters())),
             "train_wall_seconds": round(sum(h["epoch_seconds"] for h in history), 1),
             "eval_seconds": round(time.time() - t_ev, 1)}
    return write_fold_results(fold_dir, fold, preds, extra)


def _command(args: Any) -> str:
    return " ".join(["radscribe", "train-nodule3d", str(args.config), "--fold", str(args.fold), "--out", str(args.out)])


def cli_train_nodule3d(args: Any) -> int:
    """``radscribe train-nodule3d``: validate the config and output folder, then train one fold."""
    from radscribe.data.lidc import N_FOLDS, estimate_hu_mapping, load_lidc, make_folds

    cfg = load_n3_config(Path(args.config))
    if not 0 <= int(args.fold) < N_FOLDS:
        raise ConfigError(f"--fold must be 0..{N_FOLDS - 1}, got {args.fold}")
    if args.out is None:
        args.out = f"runs/{cfg.name}"
    run_dir, fold_dir = Path(args.out), Path(args.out) / f"fold{int(args.fold)}"
    if fold_dir.exists() and any(fold_dir.iterdir()) and not (args.resume or args.overwrite):
        raise OutputExistsError(f"fold folder {fold_dir} exists; pass --resume to continue it or --overwrite")
    if (run_dir / "config.yaml").is_file():
        saved = load_n3_config(run_dir / "config.yaml")
        if saved.model_dump(exclude={"command"}) != cfg.model_dump(exclude={"command"}) and not args.overwrite:
            raise ConfigError(f"{args.config} differs from the run's {run_dir / 'config.yaml'}; use another --out")
    if fold_dir.exists() and args.overwrite and not args.resume:
        shutil.rmtree(fold_dir)
    torch.set_num_threads(cfg.train.num_threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg.model_copy(update={"command": _command(args)})
    (run_dir / "config.yaml").write_text(dump_n3_config(cfg))
    data = load_lidc()
    hu = estimate_hu_mapping(data.volumes)
    folds = make_folds(data.cases, data.texture_class)
    (run_dir / "folds.json").write_text(json.dumps(
        {"seed_note": "radscribe.data.lidc.FOLD_SEED (StratifiedGroupKFold by case, texture class)",
         "hu_mapping": hu.to_dict(), "folds": {nm: int(f) for nm, f in zip(data.names, folds)}}, indent=1))
    t0 = time.time()
    m = train_fold(cfg, int(args.fold), data, folds, hu, fold_dir)
    print(f"fold {args.fold} done: Dice {m['dice_mean']:.4f}, texture macro-F1 {m['texture_macro_f1']:.4f}, "
          f"malignancy AUC {m['malignancy_auc']:.4f} | {time.time() - t0:.0f} s", file=sys.stderr)
    return 0
