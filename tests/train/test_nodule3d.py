"""Tests for radscribe/train/nodule3d.py and nodule3d_eval.py: a resumed fold ends with the weights of an
uninterrupted one, fold figures from predictions, the HU-rule texture on synthetic nodules, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radscribe.data.lidc import HUMapping, LidcData, texture_class
from radscribe.train.nodule3d import N3RunConfig, train_fold
from radscribe.train.nodule3d_eval import heldout_dice, hu_rule_texture, score_predictions

HU = HUMapping(1600 / 255, -1200.0, 53.0, 197.0)


def _synthetic_data(n: int = 8) -> LidcData:
    g = np.random.default_rng(0)
    zz, yy, xx = np.indices((51, 51, 51))
    vols, masks = [], []
    tex = np.array([1, 5, 3, 5, 1, 4, 2, 5][:n], np.float32)
    for i in range(n):
        r = 4 + i % 4
        m = (zz - 25) ** 2 + ((yy - 25) * 0.7) ** 2 + ((xx - 25) * 0.7) ** 2 <= r * r
        v = np.full((51, 51, 51), 53.0) + g.normal(0, 4, (51, 51, 51))
        v[m] = 100.0 if tex[i] == 1 else 190.0
        vols.append(np.clip(v, 0, 255).astype(np.uint8))
        masks.append(m)
    ratings = {k: np.array(g.integers(1, 6, n), np.float32) for k in
               ("malignancy", "spiculation", "lobulation", "margin", "sphericity", "subtlety")}
    ratings["texture"] = tex
    names = tuple(f"{i}_nod1_ann0" for i in range(n))
    return LidcData(names, tuple(str(i) for i in range(n)), np.stack(vols), np.stack(masks), ratings, texture_class(tex))


def _cfg(epochs: int) -> N3RunConfig:
    return N3RunConfig.model_validate({
        "name": "tiny", "model": {"channels": [4, 8, 16], "num_res_units": 0, "features": 4, "hidden": 8},
        "train": {"epochs": epochs, "batch_size": 3, "eval_every": 1}})


def test_resumed_fold_matches_uninterrupted(tmp_path):
    from safetensors.torch import load_file

    data = _synthetic_data()
    folds = np.array([0, 1, 0, 1, 1, 1, 1, 1])
    m = train_fold(_cfg(2), 0, data, folds, HU, tmp_path / "a", progress=False)
    d = tmp_path / "b"
    assert train_fold(_cfg(2), 0, data, folds, HU, d, progress=False, stop_after_epochs=1) == {"stopped_at": 1}
    m2 = train_fold(_cfg(2), 0, data, folds, HU, d, progress=False)
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(d / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)
    assert m["n_heldout"] == 2 and m2["epochs"] == 2 and m2["dice_mean"] == pytest.approx(m["dice_mean"])
    spec = json.loads((tmp_path / "a" / "config.json").read_text())
    assert spec["hu_mapping"]["slope"] == pytest.approx(HU.slope) and spec["spacing_mm"] == [1.0, 0.7, 0.7]
    preds = json.loads((tmp_path / "a" / "predictions.json").read_text())
    assert [p["name"] for p in preds] == ["0_nod1_ann0", "2_nod1_ann0"]
    hist = json.loads((d / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2] and "heldout_dice" in hist[-1]


def test_dice_and_fold_scores():
    a = np.zeros((2, 4, 4, 4), bool)
    b = a.copy()
    a[0, :2] = True
    b[0, :1] = True
    assert heldout_dice(a, b).tolist() == pytest.approx([2 * 16 / 48, 1.0])
    rec = lambda t, p, mal, pm: {"dice": 0.8, "texture_true": t, "texture_prob": p, "p_malignancy_ge3": pm,
                                 "ratings_true": {"malignancy": mal, "spiculation": 1, "lobulation": 2, "margin": 5},
                                 "ratings_pred": {"malignancy": mal + 0.5, "spiculation": 1, "lobulation": 2, "margin": 4}}
    s = score_predictions([rec(0, [0.9, 0.05, 0.05], 1, 0.2), rec(1, [0.1, 0.8, 0.1], 4, 0.9),
                           rec(2, [0.1, 0.1, 0.8], 2, 0.4), rec(2, [0.2, 0.7, 0.1], 5, 0.7)])
    assert s["texture_accuracy"] == 0.75 and s["texture_macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert s["malignancy_auc"] == 1.0 and s["mae_malignancy"] == pytest.approx(0.5) and s["mae_margin"] == 1.0


def _hu_cube(kind: str, diameter_mm: float = 12.0, spacing=(1.0, 0.7, 0.7)):
    g = np.random.default_rng(3)
    zz, yy, xx = np.indices((51, 51, 51)).astype(float)
    d2 = sum(((a - 25) * s) ** 2 for a, s in zip((zz, yy, xx), spacing))
    a = -860.0 + g.normal(0, 15, (51, 51, 51))
    a[d2 <= (diameter_mm / 2) ** 2] = 30.0 if kind == "solid" else -550.0
    if kind == "part_solid":
        a[d2 <= 2.5 ** 2] = 30.0
    return a.astype(np.float32)


@pytest.mark.parametrize("kind,cls", [("solid", 2), ("ground_glass", 0), ("part_solid", 1)])
def test_hu_rule_texture_on_synthetic_nodules(kind, cls):
    r_eq = 6.0
    res = hu_rule_texture(_hu_cube(kind), (1.0, 0.7, 0.7), r_eq)
    assert res["density"] == kind and res["class"] == cls
    assert res["region"][25, 25, 25]


def test_cli_bad_fold_and_config(tmp_path):
    from radscribe.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrain: {epochs: 0}\n")
    assert main(["train-nodule3d", str(bad), "--fold", "0", "--out", str(tmp_path / "run")]) == 2
    good = tmp_path / "good.yaml"
    good.write_text("name: x\ntrain: {epochs: 1}\n")
    assert main(["train-nodule3d", str(good), "--fold", "7", "--out", str(tmp_path / "run")]) == 2
    assert main(["evaluate-nodule3d", str(tmp_path / "nothing")]) == 2


def test_stage2_fits_on_training_cubes_and_is_stored(tmp_path):
    from radscribe.models.nodule3d import load_nodule3d
    from radscribe.models.nodule3d_stage2 import FEATURES
    from radscribe.train.nodule3d_eval import fit_stage2

    data = _synthetic_data()
    folds = np.array([0, 1, 0, 1, 1, 1, 1, 1])
    train_fold(_cfg(1), 0, data, folds, HU, tmp_path / "f0", progress=False)
    m = fit_stage2(tmp_path / "f0", data, folds, HU)
    assert m["n_train"] == 6 and m["n_heldout"] == 2 and 0.0 <= m["texture_accuracy"] <= 1.0
    s2 = json.loads((tmp_path / "f0" / "stage2.json").read_text())
    assert len(s2["stage2"]["texture"]["mean"]) == len(FEATURES)
    mdl = load_nodule3d(tmp_path / "f0")
    assert mdl.config["stage2"]["malignancy"]["classes"] == [0, 1]
    assert all(0.0 <= p["p_malignancy_ge3"] <= 1.0 for p in s2["predictions"])
