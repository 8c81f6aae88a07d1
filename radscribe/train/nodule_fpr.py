"""Training of the nodule false-positive reducer (:mod:`radscribe.models.nodule_fpr`) on phantom candidates.

Data (``radscribe nodule-fpr-data``): for each phantom seed, the phantom chest CT (:mod:`radscribe.data.phantom`,
random nodules of every texture, 3-20 mm, some on vessels) goes through the lung segmentation and the candidate
stage; every candidate within :func:`radscribe.evaluate.phantom.match_tolerance_mm` of a true nodule is a
positive, plus jittered cubes at each true centre (so a nodule the candidate stage centres badly still teaches
the network); negatives are all candidates that reach stage 2 (the hard ones: vessel forks, wall) and a random
share of the stage-1 candidates. Cubes are stored as uint8 (0..255 over the HU range) in one npz.

Training (``radscribe train-nodule-fpr``): balanced batches, flips on all three axes, 90-degree turns in the
axial plane, intensity jitter; BCE; the epoch with the best validation AUC is kept; Platt scaling and the
operating threshold (the lowest with at most ``max_fp_per_scan`` false positives per validation scan) are fitted
on the validation seeds, which never overlap the training seeds nor the evaluation seeds 0-19 of the benchmarks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from radscribe.data.phantom import parse_seeds
from radscribe.errors import RadscribeInputError

HOLD_OUT = range(0, 20)  # evaluation seeds of benchmarks/phantom_detection.py and nodule_froc.py


def candidate_labels(truth: list[dict], centres_mm: np.ndarray) -> np.ndarray:
    """Index of the true nodule each candidate centre lies within tolerance of, else -1."""
    from radscribe.data.phantom_match import match_tolerance_mm

    lab = np.full(len(centres_mm), -1, int)
    best = np.full(len(centres_mm), np.inf)
    for i, n in enumerate(truth):
        d = np.linalg.norm(centres_mm - np.asarray(n["center_patient"]), axis=1)
        hit = (d <= match_tolerance_mm(n)) & (d < best)
        lab[hit], best[hit] = i, d[hit]
    return lab


def scan_samples(seed: int, *, n_nodules: int = 8, shape=(130, 512, 512), stage1_negatives: int = 60,
                 jitter_per_nodule: int = 3, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Cubes and labels from one phantom (see module doc)."""
    from radscribe.data.phantom import make_phantom
    from radscribe.models.nodule_candidates import detect_nodules
    from radscribe.models.nodule_fpr import HU_RANGE, extract_cubes
    from radscribe.preprocess.lung import segment_lungs

    rng = rng or np.random.default_rng(seed + 7)
    ph = make_phantom(seed, shape=shape, n_nodules=n_nodules)
    img = ph.to_image()
    res = detect_nodules(img, segment_lungs(img))
    truth = ph.truth["nodules"]
    cv = np.array([c["features"]["center_voxel"] for c in res.candidates]).reshape(-1, 3)
    lab = candidate_labels(truth, img.voxel_to_patient(cv)) if len(cv) else np.zeros(0, int)
    stage2 = np.array([not c["reason"].startswith("stage 1") for c in res.candidates], bool)
    pos = np.flatnonzero(lab >= 0)
    neg2 = np.flatnonzero((lab < 0) & stage2)
    neg1 = np.flatnonzero((lab < 0) & ~stage2)
    neg1 = rng.choice(neg1, size=min(stage1_negatives, len(neg1)), replace=False) if len(neg1) else neg1
    chosen = np.concatenate([pos, neg2, neg1]).astype(int)
    centres = [cv[chosen]]
    labels = [(lab[chosen] >= 0).astype(np.uint8)]
    diam = [np.array([truth[k]["diameter_mm"] if k >= 0 else 0.0 for k in lab[chosen]])]
    tvox = np.array([n["center_voxel"] for n in truth]).reshape(-1, 3)
    if len(tvox) and jitter_per_nodule:
        sp = np.asarray(img.spacing)
        jit = np.repeat(tvox, jitter_per_nodule, 0) + rng.uniform(-1.5, 1.5, (len(tvox) * jitter_per_nodule, 3)) / sp
        centres.append(jit)
        labels.append(np.ones(len(jit), np.uint8))
        diam.append(np.repeat([n["diameter_mm"] for n in truth], jitter_per_nodule))
    centres_all = np.concatenate(centres)
    cubes = extract_cubes(img, centres_all)
    return {"cubes": np.rint(cubes * 255).astype(np.uint8), "labels": np.concatenate(labels),
            "diameter_mm": np.concatenate(diam).astype(np.float32), "seed": np.full(len(centres_all), seed),
            "from_candidate": np.r_[np.ones(len(chosen), bool), np.zeros(len(centres_all) - len(chosen), bool)],
            "stage2": np.r_[stage2[chosen], np.zeros(len(centres_all) - len(chosen), bool)],
            "hu_range": np.array(HU_RANGE)}


def cli_fpr_data(args: Any) -> int:
    """``radscribe nodule-fpr-data --seeds A-B --out FILE.npz``: candidate cubes from phantoms (resumable)."""
    from tqdm import tqdm

    seeds = parse_seeds(args.seeds)
    if set(seeds) & set(HOLD_OUT):
        raise RadscribeInputError("seeds 0-19 are the benchmarks' evaluation seeds; train on others (e.g. 2000-2031)")
    out = Path(args.out)
    part_dir = out.with_suffix(".parts")
    part_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for seed in tqdm(seeds, desc="phantoms", unit="scan"):
        part = part_dir / f"seed{seed}.npz"
        if part.exists():
            continue  # resumable: a seed already done is kept
        d = scan_samples(seed, n_nodules=args.n_nodules)
        np.savez(part.with_suffix(".tmp.npz"), **d)
        part.with_suffix(".tmp.npz").replace(part)
    parts = [np.load(part_dir / f"seed{s}.npz") for s in seeds]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in ("cubes", "labels", "diameter_mm", "seed",
                                                                 "from_candidate", "stage2")}
    merged["hu_range"] = parts[0]["hu_range"]
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, **merged)
    tmp.replace(out)
    n_pos = int(merged["labels"].sum())
    print(f"wrote {out}: {len(merged['labels'])} cubes ({n_pos} positive) from {len(seeds)} phantoms "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


def _augment(x, g):
    import torch

    if torch.rand(1, generator=g).item() < 0.5:
        x = x.flip(2)
    if torch.rand(1, generator=g).item() < 0.5:
        x = x.flip(3)
    if torch.rand(1, generator=g).item() < 0.5:
        x = x.flip(4)
    k = int(torch.randint(0, 4, (1,), generator=g).item())
    x = torch.rot90(x, k, dims=(3, 4))
    scale = 1.0 + 0.1 * (torch.rand(x.shape[0], 1, 1, 1, 1, generator=g) - 0.5) * 2
    shift = 0.04 * (torch.rand(x.shape[0], 1, 1, 1, 1, generator=g) - 0.5) * 2
    return (x * scale + shift + 0.01 * torch.randn(x.shape, generator=g)).clamp(0, 1)


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e4, max_iter=1000).fit(logits.reshape(-1, 1), labels)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _load(path: Path) -> dict[str, np.ndarray]:
    try:
        d = np.load(path)
        return {k: d[k] for k in d.files}
    except (OSError, ValueError) as exc:
        raise RadscribeInputError(f"cannot read cube file {path}: {exc}") from None


def train_fpr(train_npz: Path, val_npz: Path, out: Path, *, epochs: int = 8, steps_per_epoch: int = 150,
              batch: int = 32, lr: float = 1e-3, channels=(16, 32, 64), max_fp_per_scan: float = 1.0,
              seed: int = 0, threads: int = 1) -> dict[str, Any]:
    """Train, select on val AUC, calibrate on val; writes OUT/model.safetensors + config.json + history.json."""
    import torch
    from safetensors.torch import save_file
    from sklearn.metrics import roc_auc_score
    from tqdm import tqdm

    from radscribe.models.nodule_fpr import CUBE, HU_RANGE, NAME, SCALES_MM, build_network

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    tr, va = _load(train_npz), _load(val_npz)
    if set(np.unique(tr["seed"])) & set(np.unique(va["seed"])):
        raise RadscribeInputError("training and validation cubes share phantom seeds")
    xt = torch.from_numpy(tr["cubes"])
    yt = tr["labels"].astype(np.float32)
    pos, neg = np.flatnonzero(yt == 1), np.flatnonzero(yt == 0)
    xv = torch.from_numpy(va["cubes"]).float() / 255.0
    yv = va["labels"].astype(int)
    net = build_network(tuple(channels))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.1)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    history, best = [], (-1.0, None, None)
    t0 = time.perf_counter()
    for ep in range(1, epochs + 1):
        net.train()
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {ep}/{epochs}", leave=False)
        for _ in bar:
            idx = np.r_[rng.choice(pos, batch // 2), rng.choice(neg, batch - batch // 2)]
            x = _augment(xt[idx].float() / 255.0, g)
            y = torch.from_numpy(yt[idx]).reshape(-1, 1)
            loss = loss_fn(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        net.eval()
        with torch.inference_mode():
            lv = torch.cat([net(xv[i:i + 128]).reshape(-1) for i in range(0, len(xv), 128)]).numpy()
        auc = float(roc_auc_score(yv, lv))
        history.append({"epoch": ep, "train_loss": float(np.mean(losses)), "val_auc": auc,
                        "s": round(time.perf_counter() - t0, 1)})
        print(f"epoch {ep}: train loss {np.mean(losses):.4f} | val auc {auc:.4f} | {time.perf_counter() - t0:.0f} s",
              flush=True)
        if auc > best[0]:
            best = (auc, {k: v.detach().clone() for k, v in net.state_dict().items()}, lv)
    auc, state, lv = best
    a, b = fit_platt(lv, yv)
    p = 1.0 / (1.0 + np.exp(-(a * lv + b)))
    # operating threshold: the lowest one with <= max_fp_per_scan false positives per validation scan among the
    # candidates that are scored at inference (those reaching stage 2); all of them are in the validation file
    scored_neg = np.sort(p[va["from_candidate"] & va["stage2"] & (yv == 0)])[::-1]
    n_scans = len(np.unique(va["seed"]))
    k = int(max_fp_per_scan * n_scans)
    thr = float(np.nextafter(scored_neg[k], 1.0)) if len(scored_neg) > k else 0.0
    cfg = {"name": NAME, "arch": "monai.networks.nets.Classifier", "channels": list(channels), "cube": CUBE,
           "scales_mm": list(SCALES_MM), "hu_range": list(HU_RANGE), "platt": [a, b], "threshold": thr,
           "threshold_rule": f"lowest with <= {max_fp_per_scan} false positives per validation scan", "val_auc": auc,
           "train_seeds": sorted(int(s) for s in np.unique(tr["seed"])),
           "val_seeds": sorted(int(s) for s in np.unique(va["seed"])),
           "n_train": int(len(yt)), "n_train_pos": int(len(pos)), "epochs": epochs, "steps_per_epoch": steps_per_epoch,
           "batch": batch, "lr": lr, "seed": seed}
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    (out / "history.json").write_text(json.dumps(history, indent=1))
    return cfg


def cli_train_fpr(args: Any) -> int:
    """``radscribe train-nodule-fpr --train A.npz --val B.npz --out DIR``."""
    cfg = train_fpr(Path(args.train), Path(args.val), Path(args.out), epochs=args.epochs,
                    steps_per_epoch=args.steps, seed=args.seed)
    print(f"val AUC {cfg['val_auc']:.4f}; threshold {cfg['threshold']:.3f}; weights in {args.out}")
    return 0
