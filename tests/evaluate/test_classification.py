"""Classifier metrics (known answers) and `radscribe evaluate` end to end on a tiny synthetic dataset."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import yaml
from PIL import Image as PILImage

from radscribe.cli import main
from radscribe.evaluate.classification import classification_metrics
from radscribe.models import registry


def test_binary_metrics_known_answer():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    p1 = np.array([0.1, 0.2, 0.7, 0.9, 0.8, 0.6, 0.4, 0.95])
    m = classification_metrics(("normal", "pneumonia"), y, np.stack([1 - p1, p1], 1))
    assert m["n"] == 8 and m["accuracy"] == pytest.approx(6 / 8)
    assert m["sensitivity"] == pytest.approx(4 / 5) and m["specificity"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((4 / 5 + 2 / 3) / 2)
    # AUC: 13 of the 15 (pos, neg) pairs are ordered right (0.6 and 0.4 fall below the negative 0.7)
    assert m["auc"] == pytest.approx(13 / 15) and m["positive_label"] == "pneumonia"
    assert m["confusion_matrix"] == [[2, 1], [1, 4]]
    assert m["per_class"]["pneumonia"]["precision"] == pytest.approx(4 / 5)


def test_multiclass_metrics():
    y = np.array([0, 1, 2, 2, 1, 0])
    probs = np.eye(3)[[0, 1, 2, 1, 1, 0]] * 0.8 + 0.2 / 3
    m = classification_metrics(("a", "b", "normal"), y, probs, normal_label="normal")
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["per_class"]["normal"]["recall"] == pytest.approx(0.5)
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert set(m["auc_per_class"]) == {"a", "b", "normal"} and m["auc_per_class"]["a"] == pytest.approx(1.0)
    assert 0.5 < m["auc"] <= 1


CLASS_DIRS = {"normal": "Normal", "cyst": "Cyst", "stone": "Stone", "tumour": "Tumor"}


def _dataset(root, rng):
    """ct_kidney layout; in each class one test image is a near copy (brightness + 3) of a training image,
    and one training image is an exact copy of a test image (the training config drops it)."""
    for c, sub in enumerate(CLASS_DIRS.values()):
        tr, te = root / "ct_kidney" / "Training" / sub, root / "ct_kidney" / "Testing" / sub
        tr.mkdir(parents=True)
        te.mkdir(parents=True)
        imgs = []
        for i in range(6):
            a = (rng.random((64, 64)) * 80 + 40 * c).astype(np.uint8)
            PILImage.fromarray(a).save(tr / f"{sub}-{i}.png")
            imgs.append(a)
        PILImage.fromarray(imgs[0] + 3).save(te / f"{sub}-near.png")
        for i in range(2):
            a = (rng.random((64, 64)) * 80 + 40 * c).astype(np.uint8)
            PILImage.fromarray(a).save(te / f"{sub}-t{i}.png")
        PILImage.fromarray(a).save(tr / f"{sub}-leaked.png")


def _weights(wdir):
    from safetensors.torch import save_file

    spec = registry.get_spec("ct-kidney")
    m = registry.build_model("ct-kidney", pretrained=False)
    wdir.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(wdir / "model.safetensors"))
    cfg = {"name": "ct-kidney", "labels": list(spec.labels), "seed": 0,
           "data": {"format": "folder", "dataset": "ct_kidney", "train_dir": "Training", "test_dir": "Testing",
                    "class_dirs": CLASS_DIRS, "input_size": spec.input_size, "val_fraction": 0.2, "augment": "ct"},
           "model": {"arch": "effnet-lite0", "pretrained": False}, "train": {"epochs": 1}}
    (wdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    (wdir / "calibration.json").write_text('{"temperature": 1.5}')


def test_evaluate_end_to_end(tmp_path, monkeypatch, rng, capsys):
    _dataset(tmp_path / "data", rng)
    monkeypatch.setenv("RADSCRIBE_DATA", str(tmp_path / "data"))
    wdir = tmp_path / "weights"
    _weights(wdir)
    monkeypatch.setitem(registry._SPECS, "ct-kidney", dataclasses.replace(registry.get_spec("ct-kidney"),
                                                                          weights_dir=wdir))
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", "ct-kidney", "--split", "test", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == "ct-kidney" and m["split"] == "test" and m["temperature"] == 1.5
    mm = m["metrics"]
    assert mm["n"] == 12 and np.array(mm["confusion_matrix"]).sum() == 12
    for k in ("accuracy", "balanced_accuracy", "auc", "per_class", "auc_per_class"):
        assert k in mm
    assert set(m["calibration"]) >= {"ece_before", "ece_after", "nll_before", "nll_after"}
    dup = m["duplicates"]
    assert dup["test_images_with_exact_train_copy"] == 0 and "dropped_identical_to_test': 4" in dup["reference"]
    assert dup["test_images_with_exact_or_near_train_copy"] == 4 and m["without_train_duplicates"]["n"] == 8
    page = (out / "index.html").read_text()
    for png in ("roc.png", "pr.png", "confusion.png", "reliability.png"):
        assert f'src="{png}"' in page and (out / png).stat().st_size > 1000
    for h in m["heatmaps"]:
        assert (out / h["file"]).is_file()
    assert json.loads((wdir / "metrics.json").read_text())["metrics"]["n"] == 12   # copied for `radscribe models`
    assert not list(tmp_path.glob(".eval.tmp-*"))                                  # atomic: no leftovers
    # existing output without --overwrite: error, exit 2, untouched
    assert main(["evaluate", "--model", "ct-kidney", "--split", "test", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["evaluate", "--model", "ct-kidney", "--split", "val", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text())["split"] == "val"
