"""``radscribe evaluate --model NAME --split test --out DIR [--overwrite]``: classifier metrics + an HTML page.

Writes (atomically) ``DIR/metrics.json``, ``DIR/index.html`` and PNG plots beside it (ROC, PR,
confusion matrix, reliability before/after temperature scaling, sample Grad-CAM heatmaps). On the
test split the metrics are also copied to ``radscribe/models/weights/<name>/metrics.json`` so
``radscribe models`` shows them.

Metrics use the *calibrated* probabilities (``softmax(logits / T)``, T fitted on validation):
accuracy, balanced accuracy, per-class precision/recall/F1, AUC (binary: of the positive class;
multi-class: macro one-vs-rest, plus per class), ECE (15 bins, top label) and NLL before/after
calibration, the confusion matrix (rows = truth) and n. On the test split the same metrics are
also computed without the test images that have an exact or near (pHash) copy in the training
folder (:mod:`radscribe.data.duplicates`); both are reported, nothing is dropped silently.
"""

from __future__ import annotations

import html
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.metrics import (balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support,
                             roc_auc_score)

from radscribe.data.datasets import dedupe_against_test, list_folder
from radscribe.data.duplicates import NPZ_DATASETS, dataset_hashes, find_duplicates, hash_files
from radscribe.data.paths import dataset_dir
from radscribe.errors import RadscribeInputError
from radscribe.evaluate.plots import plot_confusion, plot_heatmap, plot_pr, plot_reliability, plot_roc
from radscribe.io.image import Image
from radscribe.io.loader import load_study
from radscribe.io.output import atomic_dir, atomic_file, check_output_dir
from radscribe.models.classify import classify_image
from radscribe.models.registry import load_model
from radscribe.train.augment import make_batch_transform
from radscribe.train.calibration import nll, probs_from_logits, reliability_bins
from radscribe.train.config import parse_config
from radscribe.train.loop import build_datasets, predict_logits


def classification_metrics(labels: Sequence[str], y: np.ndarray, probs: np.ndarray,
                           normal_label: str = "normal") -> dict:
    """Metrics of calibrated ``probs`` (n, C) against integer truth ``y`` (n,) for class names ``labels``."""
    y = np.asarray(y).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    C = len(labels)
    pred = probs.argmax(1)
    n = int(len(y))
    out: dict[str, Any] = {"n": n}
    if n == 0:
        return out
    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=list(range(C)), zero_division=0)
    out["accuracy"] = float((pred == y).mean())
    out["balanced_accuracy"] = float(balanced_accuracy_score(y, pred)) if len(np.unique(y)) > 1 else float("nan")
    out["per_class"] = {lbl: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                              "support": int(sup[i])} for i, lbl in enumerate(labels)}
    out["macro_f1"] = float(np.mean(f1))
    present = np.unique(y)
    if C == 2:
        pos = 1 if labels[0] == normal_label else 0
        out["positive_label"] = labels[pos]
        out["auc"] = float(roc_auc_score(y == pos, probs[:, pos])) if len(present) == 2 else float("nan")
        tp = int(((pred == pos) & (y == pos)).sum())
        tn = int(((pred != pos) & (y != pos)).sum())
        out["sensitivity"] = tp / max(int((y == pos).sum()), 1)
        out["specificity"] = tn / max(int((y != pos).sum()), 1)
    else:
        per = {}
        for i, lbl in enumerate(labels):
            yi = (y == i).astype(int)
            per[lbl] = float(roc_auc_score(yi, probs[:, i])) if 0 < yi.sum() < n else float("nan")
        out["auc_per_class"] = per
        out["auc"] = float(roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=list(range(C)))) \
            if len(present) == C else float(np.nanmean(list(per.values())))
    out["confusion_matrix"] = confusion_matrix(y, pred, labels=list(range(C))).tolist()
    return out


def rounded(o):
    if isinstance(o, float):
        return None if o != o else round(o, 5)
    if isinstance(o, dict):
        return {k: rounded(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [rounded(v) for v in o]
    return o


def _duplicate_keys(cfg, names: Sequence[str]) -> tuple[dict, set[int]] | None:
    """Duplicate summary and the indices (into ``names``) of test images with a copy in the data the
    model was developed on (train + val: the training folder after the config's de-duplication)."""
    ds = cfg.data.dataset
    root = dataset_dir(ds)
    if cfg.data.format == "folder":
        train_all = list_folder(root, cfg.data.train_dir, cfg.data.class_dirs, cfg.labels)
        test = list_folder(root, cfg.data.test_dir, cfg.data.class_dirs, cfg.labels)
        reference = f"{ds}/{cfg.data.train_dir} (train + val)"
        if getattr(cfg.data, "dedupe", False):
            train_all, dropped = dedupe_against_test(train_all, test)
            reference += f" after the training config dropped files identical to test files ({dropped})"
        tr = hash_files([Path(s.path) for s in train_all], root, "hash train")
        te = hash_files([Path(s.path) for s in test], root, "hash test")
        exact_only = False
    elif ds in NPZ_DATASETS and cfg.data.npz_file in NPZ_DATASETS[ds]:
        tr, te = dataset_hashes(ds, progress=False, npz_file=cfg.data.npz_file)
        reference = f"{ds}/{cfg.data.npz_file} train + val"
        # a pHash of a 3D shape mask's projection is not a meaningful near-duplicate test: exact only
        exact_only = True
    else:
        return None
    rep = find_duplicates(tr, te)
    bad = rep.test_keys_exact if exact_only else rep.test_keys_any
    idx = set()
    for i, nm in enumerate(names):
        if ":" in nm and not Path(nm).exists():   # npz name "file:split:i"
            _, split, j = nm.rsplit(":", 2)
            key = f"{split}/{j}"
        else:
            try:
                key = str(Path(nm).relative_to(root))
            except ValueError:
                key = nm
        if key in bad:
            idx.add(i)
    summary = rep.summary()
    summary["reference"] = reference
    summary["excluded_from_without_duplicates"] = "exact copies" if exact_only else "exact or near copies"
    summary["examples_exact"] = [list(p) for p in rep.exact[:5]]
    summary["examples_near"] = [[t, r, d, round(c, 3)] for t, r, d, c in rep.near[:5]]
    return summary, idx


def _sample_heatmaps(loaded, ds, names, y, probs, out: Path, max_n: int = 8) -> list[dict]:
    """Grad-CAM overlays for correctly predicted non-normal test images (up to 2 per class)."""
    spec = loaded.spec
    pred = probs.argmax(1)
    chosen: list[int] = []
    for c, lbl in enumerate(spec.labels):
        if lbl == spec.normal_label:
            continue
        idx = np.flatnonzero((y == c) & (pred == c))
        chosen += idx[: max(1, max_n // max(len(spec.finding_labels), 1))].tolist()
    items = []
    for k, i in enumerate(chosen[:max_n]):
        nm = names[i]
        if Path(nm).is_file():
            img = load_study(nm).image
        else:  # npz: the cached (resized) volume
            img = Image(array=ds.images[i].astype(np.float32) / 255.0)
        res = classify_image(loaded, img)
        f = [f for f in res.findings if f.present]
        if not f or f[0].kind not in res.heatmaps:
            continue
        h = res.heatmaps[f[0].kind]
        if img.is_volume:
            zc = int(h.sum(axis=(1, 2)).argmax())
            base, hm = img.array[zc], h[zc]
            bv = f[0].box_voxel
            box = None if bv is None or not (bv[0] <= zc < bv[3]) else (bv[1], bv[2], bv[4], bv[5])
        else:
            base, hm = img.array[0], h
            bv = f[0].box_voxel
            box = None if bv is None else (bv[1], bv[2], bv[4], bv[5])
        fn = f"heatmap_{k:02d}.png"
        title = f"{Path(nm).name}: {f[0].kind} p={f[0].confidence:.2f}" + (f", side {f[0].side}" if f[0].side else "")
        plot_heatmap(base, hm, out / fn, box=box, title=title)
        items.append({"file": fn, "source": str(nm), "kind": f[0].kind, "confidence": round(f[0].confidence, 4),
                      "side": f[0].side, "box_voxel": list(bv) if bv else None})
    return items


def _fmt(v) -> str:
    if isinstance(v, float):
        return "-" if v != v else f"{v:.4f}"
    return html.escape(str(v))


def _html(report: dict, plots: dict[str, str], heatmaps: list[dict]) -> str:
    m = report["metrics"]
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(m.get(k))}</td>"
                   f"<td>{_fmt(report.get('without_train_duplicates', {}).get(k, float('nan')))}</td></tr>"
                   for k in ("n", "accuracy", "balanced_accuracy", "macro_f1", "auc", "sensitivity", "specificity")
                   if k in m)
    cal = report["calibration"]
    cal_rows = "".join(f"<tr><td>{k}</td><td>{_fmt(v)}</td></tr>" for k, v in cal.items())
    per = "".join(f"<tr><td>{html.escape(lbl)}</td><td>{_fmt(d['precision'])}</td><td>{_fmt(d['recall'])}</td>"
                  f"<td>{_fmt(d['f1'])}</td><td>{d['support']}</td>"
                  f"<td>{_fmt(m.get('auc_per_class', {}).get(lbl, float('nan')))}</td></tr>"
                  for lbl, d in m.get("per_class", {}).items())
    imgs = "".join(f'<figure><img src="{p}" alt="{html.escape(k)}"><figcaption>{html.escape(k)}</figcaption></figure>'
                   for k, p in plots.items())
    hm = "".join(f'<figure><img src="{h["file"]}" alt="heatmap"><figcaption>{html.escape(h["kind"])} '
                 f'p={h["confidence"]}</figcaption></figure>' for h in heatmaps)
    dup = report.get("duplicates")
    if not dup:
        dup_html = "<p>No duplicate check for this split.</p>"
    elif dup.get("excluded_from_without_duplicates") == "exact copies":
        dup_html = (f"<p>{dup['test_images_with_exact_train_copy']} of {dup['n_test']} test volumes have an exact copy "
                    f"in {html.escape(dup.get('reference', 'the training data'))}; the right-hand column excludes "
                    "them (perceptual near-duplicates are not meaningful for 3D shape masks).</p>")
    else:
        dup_html = (f"<p>{dup['test_images_with_exact_train_copy']} of {dup['n_test']} test images have an exact "
                    f"pixel copy and {dup['test_images_with_exact_or_near_train_copy']} an exact or near (pHash "
                    f"Hamming &le; {dup['max_hamming_distance']}) copy in "
                    f"{html.escape(dup.get('reference', 'the training data'))}. The right-hand column excludes them.</p>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(report['model'])} - {report['split']}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
figure{{display:inline-block;margin:6px}}img{{max-width:340px}}</style></head><body>
<h1>{html.escape(report['model'])} on the {report['split']} split</h1>
<p>{html.escape(report['description'])}<br>Dataset: {html.escape(report['dataset'])}; n = {m['n']};
temperature T = {report['temperature']:.4f} (fitted on validation). Command: <code>{html.escape(report['command'])}</code>;
{report['wall_s']} s on {html.escape(report['machine'])}.</p>
<h2>Summary (calibrated probabilities)</h2><table><tr><th>metric</th><th>all</th><th>without train duplicates</th></tr>{rows}</table>
<h2>Per class</h2><table><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>n</th><th>AUC (one-vs-rest)</th></tr>{per}</table>
<h2>Calibration on this split</h2><table>{cal_rows}</table>
<h2>Train/test duplicates</h2>{dup_html}
<h2>Plots</h2>{imgs}
<h2>Sample Grad-CAM heatmaps (correct non-normal predictions; box = largest region &ge; 0.5 of max)</h2>{hm}
</body></html>
"""


def evaluate_model(name: str, split: str, out: Path, overwrite: bool = False, *, heatmaps: int = 8,
                   check_duplicates: bool = True) -> dict:
    """Evaluate registered model ``name`` on ``split``; writes DIR atomically and returns the report dict."""
    out = Path(out)
    check_output_dir(out, overwrite)
    if split not in ("train", "val", "test"):
        raise RadscribeInputError(f"split must be train, val or test, got {split!r}")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.perf_counter()
    loaded = load_model(name)
    spec = loaded.spec
    cfg = parse_config(loaded.config, str(spec.weights_dir / "config.yaml"))
    ds = build_datasets(cfg, (split,))[split]
    transform = make_batch_transform(cfg.data.augment, spec.dims)
    logits, y = predict_logits(loaded.module, ds, transform, progress=True)
    p_raw, p_cal = probs_from_logits(logits), probs_from_logits(logits, loaded.temperature)
    metrics = classification_metrics(spec.labels, y, p_cal, spec.normal_label)
    b_raw, b_cal = reliability_bins(p_raw, y), reliability_bins(p_cal, y)
    calib = {"temperature": loaded.temperature, "ece_before": b_raw.ece, "ece_after": b_cal.ece,
             "nll_before": nll(logits, y), "nll_after": nll(logits, y, loaded.temperature),
             "accuracy_uncalibrated": float((p_raw.argmax(1) == y).mean())}
    report: dict[str, Any] = {
        "model": spec.name, "split": split, "labels": list(spec.labels), "description": spec.description,
        "dataset": f"{cfg.data.dataset} ({'official ' + split if split == 'test' else split} split)",
        "temperature": loaded.temperature, "metrics": metrics, "calibration": calib,
        "command": f"radscribe evaluate --model {spec.name} --split {split} --out {out}",
        "machine": f"{platform.machine()} {platform.system()}, torch threads {torch.get_num_threads()}",
    }
    if check_duplicates and split == "test":
        d = _duplicate_keys(cfg, ds.names)
        if d is not None:
            report["duplicates"], bad = d
            keep = np.array([i not in bad for i in range(len(y))], dtype=bool)
            report["without_train_duplicates"] = classification_metrics(spec.labels, y[keep], p_cal[keep],
                                                                        spec.normal_label)
    with atomic_dir(out, overwrite) as tmp:
        plots = {
            "ROC": plot_roc(spec.labels, p_cal, y, tmp / "roc.png", spec.normal_label).name,
            "Precision-recall": plot_pr(spec.labels, p_cal, y, tmp / "pr.png", spec.normal_label).name,
            "Confusion matrix": plot_confusion(spec.labels, np.asarray(metrics["confusion_matrix"]),
                                               tmp / "confusion.png").name,
            "Reliability": plot_reliability([("before (T=1)", b_raw), (f"after (T={loaded.temperature:.2f})", b_cal)],
                                            tmp / "reliability.png", title=f"{spec.name} {split}").name,
        }
        hm = _sample_heatmaps(loaded, ds, ds.names, y, p_cal, tmp, heatmaps) if heatmaps else []
        report["heatmaps"] = hm
        report["wall_s"] = round(time.perf_counter() - t0, 1)
        report = rounded(report)
        (tmp / "metrics.json").write_text(json.dumps(report, indent=1))
        (tmp / "index.html").write_text(_html(report, plots, hm))
    if split == "test":
        with atomic_file(spec.weights_dir / "metrics.json") as fh:
            json.dump(report, fh, indent=1)
        (spec.weights_dir / "metrics.json").chmod(0o644)  # package data: readable by everyone
    return report


def cli_evaluate(args: Any) -> int:
    r = evaluate_model(args.model, args.split, args.out, args.overwrite)
    m = r["metrics"]
    msg = (f"{r['model']} {r['split']}: n={m['n']} accuracy {m['accuracy']:.4f} balanced {m['balanced_accuracy']:.4f} "
           f"AUC {m['auc']:.4f} ECE {r['calibration']['ece_before']:.4f} -> {r['calibration']['ece_after']:.4f}")
    if "without_train_duplicates" in r:
        w = r["without_train_duplicates"]
        msg += (f" | without train duplicates: n={w['n']}"
                + (f" accuracy {w['accuracy']:.4f} AUC {_fmt(w.get('auc'))}" if w["n"] else ""))
    print(msg + f" | {r['wall_s']} s -> {args.out}/index.html", file=sys.stderr)
    return 0


# --- Grad-CAM localisation against real tumour masks -------------------------------------------------
