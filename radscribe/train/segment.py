"""Cross-validated 2D segmentation training: ``radscribe train-seg CONFIG (--fold K | --folds all) --out DIR``.

One fold = train on the other folds of :mod:`radscribe.data.brain_seg` (slices with a usable mask and
slices without a tumour), for a fixed number of epochs (AdamW, warm-up + cosine), keep the last epoch.
After every epoch the held-out fold is scored at network resolution (Dice over the tumour slices, presence
AUC of the largest tumour probability) for the learning curve only; no epoch is selected on it.

Run folder::

    DIR/config.yaml                  the config + the exact command
    DIR/folds.json                   fold of every file (fixed seed), data notes
    DIR/fold<K>/last.safetensors     weights after the latest epoch; last_state.pt: optimizer, schedule, history
    DIR/fold<K>/history.json|csv     per-epoch train loss, held-out Dice / AUC, seconds
    DIR/fold<K>/model.safetensors    the fold's final weights (written when the fold is complete)
    DIR/fold<K>/metrics.json         final held-out figures at network resolution, wall seconds
    DIR/summary.json                 mean +- std over the completed folds

``--resume`` continues every fold from its last completed epoch (and skips completed folds), so an
interrupted run, resumed, ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radscribe.errors import ConfigError, OutputExistsError
from radscribe.train.segment_config import SegRunConfig, dump_seg_config, load_seg_config


def _save(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)


def _load(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)), strict=True)


def build_from_seg_config(cfg: SegRunConfig) -> torch.nn.Module:
    from radscribe.models.seg_networks import arch_kwargs, build_segnet

    arch, kw = arch_kwargs(cfg.model.model_dump())
    return build_segnet(arch, **kw)


def heldout_scores(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, tumour: np.ndarray,
                   batch: int = 32) -> dict[str, float]:
    """Network-resolution Dice (mean over slices with a usable mask), and presence AUC of max probability."""
    from sklearn.metrics import roc_auc_score

    from radscribe.models.seg_networks import tumour_probability

    probs = torch.cat([tumour_probability(model, torch.from_numpy(x[i:i + batch]))
                       for i in range(0, len(x), batch)]).numpy()
    pred = probs >= 0.5
    dice = []
    for p, t in zip(pred, y[:, 0]):
        if t.max() == 1 and t.max() != 255:
            tb = t == 1
            dice.append(2 * float((p & tb).sum()) / max(float(p.sum() + tb.sum()), 1.0))
    score = probs.reshape(len(probs), -1).max(1)
    auc = float(roc_auc_score(tumour, score)) if len(set(tumour.tolist())) == 2 else float("nan")
    return {"dice": float(np.mean(dice)) if dice else float("nan"), "presence_auc": auc, "n": int(len(x)),
            "n_masked": len(dice)}


def _lr_factor(cfg: SegRunConfig, steps_per_epoch: int):
    total = max(1, cfg.train.epochs * steps_per_epoch)
    warm = int(cfg.train.warmup_epochs * steps_per_epoch)

    def f(step: int) -> float:
        if warm and step < warm:
            return 0.02 + 0.98 * step / warm
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def _write_history(d: Path, history: list[dict]) -> None:
    (d / "history.json").write_text(json.dumps(history, indent=1))
    if history:
        with open(d / "history.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(history[0]))
            w.writeheader()
            w.writerows(history)


def train_fold(cfg: SegRunConfig, fold: int, x: np.ndarray, y: np.ndarray, tumour: np.ndarray, folds: np.ndarray,
               fold_dir: Path, progress: bool = True) -> dict:
    """Train one fold (resuming from ``fold_dir/last_state.pt`` when present); returns its metrics."""
    from tqdm import tqdm

    from radscribe.models.seg_networks import SegLoss, count_parameters
    from radscribe.train.segment_augment import augment_batch, make_seg_augment

    fold_dir.mkdir(parents=True, exist_ok=True)
    if (fold_dir / "metrics.json").is_file() and (fold_dir / "model.safetensors").is_file():
        return json.loads((fold_dir / "metrics.json").read_text())
    usable = y.reshape(len(y), -1).max(1) != 255  # tumour slices without a usable mask are not trained on
    tr = np.flatnonzero((folds != fold) & usable)
    ho = np.flatnonzero(folds == fold)
    torch.manual_seed(cfg.seed * 1000 + fold)
    model = build_from_seg_config(cfg)
    loss_fn = SegLoss(cfg.train.dice_weight, cfg.train.ce_weight)
    n, bs = len(tr), min(cfg.train.batch_size, len(tr))
    steps = n // bs if n % bs < 2 else n // bs + 1  # never a last batch of 1 (BatchNorm / InstanceNorm)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(cfg, steps))
    start, history = 1, []
    state_file = fold_dir / "last_state.pt"
    if state_file.is_file() and (fold_dir / "last.safetensors").is_file():
        st = torch.load(state_file, map_location="cpu", weights_only=False)
        _load(model, fold_dir / "last.safetensors")
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start, history = st["epoch"] + 1, st["history"]
    tf = make_seg_augment(cfg.data.input_size) if cfg.data.augment else None
    for epoch in range(start, cfg.train.epochs + 1):
        t0, c0 = time.time(), time.process_time()
        torch.manual_seed(cfg.seed * 1009 + fold * 101 + epoch)
        g = np.random.default_rng(cfg.seed * 7919 + fold * 31 + epoch)
        order = tr[g.permutation(n)]
        model.train()
        tot = 0.0
        bar = tqdm(range(steps), desc=f"fold {fold} epoch {epoch}/{cfg.train.epochs}", disable=not progress,
                   leave=False, file=sys.stderr)
        for s in bar:
            idx = order[s * bs:(s + 1) * bs]
            if tf is not None:
                xb, yb = augment_batch(tf, x[idx], y[idx], int(g.integers(2**31 - 1)))
            else:
                xb, yb = torch.from_numpy(x[idx]), torch.from_numpy(y[idx]).long()
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.item()) * len(idx)
            bar.set_postfix(loss=f"{tot / ((s + 1) * bs):.4f}")
        train_s = time.time() - t0
        sc = heldout_scores(model, x[ho], y[ho], tumour[ho])
        row = {"epoch": epoch, "train_loss": round(tot / (steps * bs), 5), "heldout_dice": round(sc["dice"], 4),
               "heldout_presence_auc": round(sc["presence_auc"], 4), "lr": sched.get_last_lr()[0],
               "train_seconds": round(train_s, 1), "epoch_seconds": round(time.time() - t0, 1),
               "epoch_cpu_seconds": round(time.process_time() - c0, 1)}
        history.append(row)
        _save(model, fold_dir / "last.safetensors")
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
                    "history": history}, state_file)
        _write_history(fold_dir, history)
        if progress:
            print(f"fold {fold} epoch {epoch}: train loss {row['train_loss']:.4f} | held-out Dice {sc['dice']:.4f} "
                  f"AUC {sc['presence_auc']:.4f} | {row['epoch_seconds']:.0f} s", file=sys.stderr, flush=True)
    shutil.copyfile(fold_dir / "last.safetensors", fold_dir / "model.safetensors")
    final = heldout_scores(model, x[ho], y[ho], tumour[ho])
    metrics = {"fold": fold, "epochs": cfg.train.epochs, "n_train": int(n), "n_heldout": int(len(ho)),
               "network_resolution": cfg.data.input_size, "parameters": count_parameters(model),
               "heldout_dice_network_res": final["dice"], "heldout_presence_auc": final["presence_auc"],
               "train_wall_seconds": round(sum(h["epoch_seconds"] for h in history), 1)}
    (fold_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def _command(args: Any) -> str:
    parts = ["radscribe", "train-seg", str(args.config)]
    parts += ["--folds", "all"] if args.folds == "all" else ["--fold", str(args.fold)]
    return " ".join(parts + ["--out", str(args.out)])


def _summary(run_dir: Path, cfg: SegRunConfig) -> dict:
    ms = [json.loads(p.read_text()) for p in sorted(run_dir.glob("fold*/metrics.json"))]
    out: dict[str, Any] = {"name": cfg.name, "arch": cfg.model.arch, "folds_done": [m["fold"] for m in ms]}
    for k in ("heldout_dice_network_res", "heldout_presence_auc", "train_wall_seconds"):
        v = np.array([m[k] for m in ms], float)
        if v.size:
            out[k] = {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v)), "per_fold": v.tolist()}
    (run_dir / "summary.json").write_text(json.dumps(out, indent=1))
    return out


def cli_train_seg(args: Any) -> int:
    """``radscribe train-seg``: validate the config and the output folder, then train the requested folds."""
    from radscribe.data.brain_seg import N_FOLDS, load_arrays, load_dataset

    cfg = load_seg_config(args.config)
    if args.folds not in (None, "all"):
        raise ConfigError(f"--folds takes 'all', got {args.folds!r}")
    if (args.fold is None) == (args.folds is None):
        raise ConfigError("give exactly one of --fold K or --folds all")
    fold_list = list(range(N_FOLDS)) if args.folds == "all" else [int(args.fold)]
    if any(not 0 <= k < N_FOLDS for k in fold_list):
        raise ConfigError(f"--fold must be 0..{N_FOLDS - 1}, got {args.fold}")
    run_dir = Path(args.out)
    if run_dir.exists() and any(run_dir.iterdir()) and not (args.resume or args.overwrite):
        raise OutputExistsError(f"run folder {run_dir} exists; pass --resume to continue it or --overwrite")
    if run_dir.exists() and args.overwrite and not args.resume:
        shutil.rmtree(run_dir)
    if args.resume and (run_dir / "config.yaml").is_file():
        saved = load_seg_config(run_dir / "config.yaml")
        if saved.model_dump(exclude={"command"}) != cfg.model_dump(exclude={"command"}):
            raise ConfigError(f"--resume: {args.config} differs from the run's {run_dir / 'config.yaml'}")
    torch.set_num_threads(cfg.train.num_threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg.model_copy(update={"command": _command(args)})
    (run_dir / "config.yaml").write_text(dump_seg_config(cfg))
    t0 = time.time()
    ds = load_dataset()
    x, y = load_arrays(ds, cfg.data.input_size)
    tumour = np.array([r.tumour for r in ds.records], int)
    folds = np.asarray(ds.folds)
    (run_dir / "folds.json").write_text(json.dumps(
        {"seed_note": "radscribe.data.brain_seg.FOLD_SEED", "notes": list(ds.notes),
         "folds": {r.key: int(f) for r, f in zip(ds.records, ds.folds)}}, indent=1))
    for k in fold_list:
        m = train_fold(cfg, k, x, y, tumour, folds, run_dir / f"fold{k}")
        print(f"fold {k} done: held-out Dice {m['heldout_dice_network_res']:.4f} (network resolution), "
              f"presence AUC {m['heldout_presence_auc']:.4f}, {m['train_wall_seconds']:.0f} s", file=sys.stderr)
    s = _summary(run_dir, cfg)
    d = s.get("heldout_dice_network_res", {})
    print(f"{len(s['folds_done'])} fold(s) complete in {run_dir}: Dice {d.get('mean', float('nan')):.4f} +- "
          f"{d.get('std', float('nan')):.4f} | {time.time() - t0:.0f} s", file=sys.stderr)
    return 0
