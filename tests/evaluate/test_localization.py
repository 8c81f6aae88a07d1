"""Tests for radscribe/evaluate/localization.py: heatmap boxes and pointing game (known answers), and the
localize command's input check."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from radscribe.evaluate.localization import localization_scores


def test_localization_scores_known_answer():
    mask = np.zeros((100, 100), bool)
    mask[10:30, 70:90] = True                      # the 'tumour', off-centre
    h = np.zeros((100, 100), np.float32)
    h[15:35, 70:90] = 1.0                          # heatmap shifted 5 px down
    h[20, 80] = 1.5                                # peak inside the mask
    s = localization_scores(h, mask)
    assert s["box"] == (15, 70, 35, 90) and s["mask_box"] == (10, 70, 30, 90)
    assert s["iou"] == pytest.approx(15 * 20 / (25 * 20))
    assert s["hit_strict"] and s["hit_tol"]
    assert not s["centre_hit_tol"]                 # centre (50, 50) is ~29 px from the mask
    h2 = np.zeros_like(h)
    h2[39, 80] = 1.0                               # 10 px below the mask: a tolerant hit only
    s2 = localization_scores(h2, mask)
    assert not s2["hit_strict"] and s2["hit_tol"]
    h2[:] = 0
    h2[80, 10] = 1.0
    assert not localization_scores(h2, mask)["hit_tol"]


def test_localize_refuses_a_threshold_outside_0_1():
    p = subprocess.run([sys.executable, "-m", "radscribe", "localize", "--threshold", "1.5"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip() == "error: --threshold must be between 0 and 1, got 1.5"
