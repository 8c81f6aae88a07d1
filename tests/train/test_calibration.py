"""Tests for radscribe/train/calibration.py: temperature scaling and ECE on synthetic logits with known
answers (and the reliability diagram of radscribe/evaluate/plots.py drawn from them)."""

from __future__ import annotations

import numpy as np
import pytest

from radscribe.evaluate.plots import reliability_diagram
from radscribe.train.calibration import calibration_summary, ece, fit_temperature, nll, probs_from_logits, reliability_bins


def _overconfident(rng, n=4000, c=3, true_t=3.0):
    """Labels drawn from softmax(z) but logits reported as true_t * z: over-confident by factor true_t."""
    z = rng.normal(0, 1.5, size=(n, c))
    p = probs_from_logits(z)
    y = np.array([rng.choice(c, p=row) for row in p])
    return z * true_t, y


def test_known_answer_ece():
    # two bins used: conf 0.95 (2 samples, 1 correct) and conf 0.6 (2 samples, both correct)
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    # |0.5 - 0.95| * 2/4 + |1.0 - 0.6| * 2/4 = 0.225 + 0.2
    assert ece(probs, y) == pytest.approx(0.425)
    b = reliability_bins(probs, y, n_bins=15)
    assert b.count.sum() == 4 and (b.count > 0).sum() == 2


def test_perfectly_calibrated_has_small_ece(rng):
    z, y = _overconfident(rng, true_t=1.0)
    assert ece(probs_from_logits(z), y) < 0.03


def test_temperature_recovers_overconfidence_and_lowers_nll_and_ece(rng):
    logits, y = _overconfident(rng, true_t=3.0)
    t = fit_temperature(logits, y)
    assert t == pytest.approx(3.0, rel=0.12)
    assert nll(logits, y, t) < nll(logits, y) - 0.1
    before, after = ece(probs_from_logits(logits), y), ece(probs_from_logits(logits, t), y)
    assert before > 0.1 and after < 0.04
    # accuracy is unchanged by a temperature
    assert (probs_from_logits(logits, t).argmax(1) == probs_from_logits(logits).argmax(1)).all()


def test_underconfident_gets_temperature_below_one(rng):
    logits, y = _overconfident(rng, true_t=0.4)
    assert fit_temperature(logits, y) < 0.6


def test_summary_and_diagram(tmp_path, rng):
    logits, y = _overconfident(rng, n=800, true_t=2.0)
    s = calibration_summary(logits, y)
    assert s["split"] == "val" and s["ece_after"] < s["ece_before"] and s["nll_after"] < s["nll_before"]
    out = reliability_diagram(probs_from_logits(logits), y, tmp_path / "rel.png",
                              probs_after=probs_from_logits(logits, s["temperature"]))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_bad_shapes():
    with pytest.raises(ValueError):
        fit_temperature(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError):
        nll(np.zeros((4, 2)), np.zeros(3))


def test_perfect_validation_does_not_sharpen():
    logits = np.array([[3.0, 0.0], [0.0, 2.0], [4.0, 1.0]])
    y = np.array([0, 1, 0])
    assert fit_temperature(logits, y) == 1.0
    assert "not identifiable" in calibration_summary(logits, y)["note"]
