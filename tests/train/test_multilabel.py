"""Multi-label metrics and calibration: per-label temperatures, val thresholds, binary ECE."""

from __future__ import annotations

import numpy as np
import pytest

from radscribe.train.multilabel import (
    binary_ece, choose_thresholds, fit_label_temperatures, label_report, multilabel_metrics, sigmoid,
)


def _sample(rng, n=4000, t_true=(3.0, 0.5)):
    """Labels drawn from sigmoid(z); logits given to the model are z * T (over- or under-confident)."""
    z = rng.normal(0, 2, (n, len(t_true)))
    y = (rng.random(z.shape) < sigmoid(z)).astype(int)
    return z * np.asarray(t_true), y


def test_each_label_gets_its_own_temperature_and_ece_drops(rng):
    logits, y = _sample(rng)
    t = fit_label_temperatures(logits, y)
    assert t == pytest.approx([3.0, 0.5], rel=0.1)
    before = [binary_ece(sigmoid(logits[:, j]), y[:, j]) for j in range(2)]
    after = [binary_ece(sigmoid(logits[:, j] / t[j]), y[:, j]) for j in range(2)]
    assert all(a < b and a < 0.03 for a, b in zip(after, before))


def test_metrics_and_thresholds_on_a_known_case():
    logits = np.array([[3.0, -2.0], [1.0, -1.0], [-1.0, 2.0], [-3.0, 0.5]])
    y = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    m = multilabel_metrics(logits, y)
    assert m["auc_per_label"] == [1.0, 1.0] and m["acc"] == pytest.approx(7 / 8)  # b: 0.5 > 0 is wrong
    assert m["auc"] == 1.0 and m["n"] == 4
    bce = np.log1p(np.exp(-np.array([3, 1, 1, 3, 2, 1, 2, -0.5])))
    assert m["loss"] == pytest.approx(bce.mean())
    thr = choose_thresholds(sigmoid(logits), y)
    assert 0.5 <= thr[0] <= sigmoid(1.0) and sigmoid(0.5) < thr[1] <= sigmoid(2.0)  # F1 = 1 on both
    rep = label_report(logits, y, ("a", "b"), np.ones(2), thr)
    assert rep["a"]["f1"] == 1.0 and rep["b"]["f1"] == 1.0 and rep["b"]["prevalence"] == 0.25
    assert choose_thresholds(np.full((3, 1), 0.3), np.zeros((3, 1)))[0] == 0.5  # no positive: 0.5
    # a constant (flattened) probability is never a detector: no threshold that flags every image
    assert choose_thresholds(np.full((4, 1), 0.14), np.array([[1], [0], [0], [0]]))[0] == 0.5


def test_platt_fixes_a_shifted_base_rate_and_is_chosen_by_cross_validation(rng):
    from radscribe.train.multilabel import choose_calibration, fit_platt

    z = rng.normal(0, 2, 3000)
    y = (rng.random(3000) < sigmoid(z)).astype(int)
    a, b = fit_platt(z - 2.0, y)                      # the model's logits are 2 too low
    assert a == pytest.approx(1.0, abs=0.1) and b == pytest.approx(2.0, abs=0.2)
    c = choose_calibration(z - 2.0, y)
    assert c["method"] == "platt" and c["cv_nll"]["platt"] < c["cv_nll"]["temperature"]
    c = choose_calibration(z * 3.0, y)                # only over-confident: a temperature suffices
    assert 1 / c["scale"] == pytest.approx(3.0, rel=0.15) and abs(c["bias"]) < 0.2
    assert fit_platt(-z, y)[0] >= 1e-3                # never a reversed ranking
