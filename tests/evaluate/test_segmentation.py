"""Segmentation metrics on synthetic masks with known answers; calibration; overlay; export; CLI errors."""

import json

import numpy as np
import pytest

from radscribe.evaluate.segmentation import ece, export_weights, fit_platt, overlay_png, slice_scores


def _sq(y0, x0, s, shape=(64, 64)):
    m = np.zeros(shape, bool)
    m[y0:y0 + s, x0:x0 + s] = True
    return m


def test_slice_scores_known_overlap():
    gt = _sq(10, 10, 20)
    pred = _sq(10, 20, 20)  # half overlap: 200 px of 400 + 400
    s = slice_scores(pred, gt)
    assert s["dice"] == pytest.approx(0.5)
    assert s["iou"] == pytest.approx(200 / 600)
    assert s["box_iou"] == pytest.approx(200 / 600)
    assert s["hd95_px"] == pytest.approx(10, abs=1.0)
    same = slice_scores(gt, gt)
    assert same["dice"] == pytest.approx(1.0) and same["hd95_px"] == pytest.approx(0.0) and same["box_iou"] == 1.0


def test_empty_prediction_scores_zero_and_no_hd():
    s = slice_scores(np.zeros((64, 64), bool), _sq(5, 5, 10))
    assert s["dice"] == 0.0 and s["box_iou"] == 0.0 and np.isnan(s["hd95_px"])


def test_platt_and_ece():
    g = np.random.default_rng(0)
    y = g.integers(0, 2, 400)
    s = np.clip(np.where(y == 1, 0.9, 0.6) + g.normal(0, 0.08, 400), 0.01, 0.99)  # over-confident scores
    a, b = fit_platt(s, y)
    z = np.log(s / (1 - s))
    p = 1 / (1 + np.exp(-(a * z + b)))
    assert ece(p, y) < ece(s, y)
    assert ece(np.full(10, 0.5), np.array([0, 1] * 5)) == pytest.approx(0.0)


def test_overlay_png(tmp_path):
    from PIL import Image

    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    overlay_png(img, _sq(10, 10, 20), _sq(12, 12, 20), tmp_path / "o.png")
    rgb = np.asarray(Image.open(tmp_path / "o.png"))
    assert rgb.shape == (64, 64, 3)
    assert tuple(rgb[10, 15]) == (40, 220, 40) and tuple(rgb[31, 20]) == (240, 40, 40)


def test_export_weights(tmp_path):
    run, ev, w = tmp_path / "run", tmp_path / "ev", tmp_path / "w"
    (run / "fold0").mkdir(parents=True)
    ev.mkdir()
    (run / "fold0" / "model.safetensors").write_bytes(b"x")
    (run / "config.yaml").write_text("name: x\n")
    (ev / "calibration.json").write_text(json.dumps({"a": 1, "b": 0}))
    (ev / "metrics.json").write_text(json.dumps({"per_fold": {"0": {"dice": 0.8}}, "mean_std_over_folds": {},
                                                 "folds": [0], "calibration": {}}))
    export_weights(run, ev, w, 0)
    assert json.loads((w / "metrics.json").read_text())["test"] == {"dice": 0.8}
    assert (w / "model.safetensors").read_bytes() == b"x"


def test_cli_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    from radscribe.cli import main

    assert main(["evaluate-seg", "--run", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a train-seg run" in err and not (tmp_path / "o").exists()
