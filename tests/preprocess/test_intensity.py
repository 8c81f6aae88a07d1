"""CT windows and percentile normalisation: ranges, known values, monotonicity (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from radscribe.preprocess.intensity import (
    WINDOWS,
    display_uint8,
    normalize_percentile,
    percentile_unit,
    window,
    window_unit,
)

finite = st.floats(min_value=-4000, max_value=4000, allow_nan=False, width=32)


def test_lung_window_known_values():
    # lung: level -600, width 1500 -> -1350 HU is 0, 150 HU is 255, -600 HU is mid-grey.
    out = window(np.array([-2000.0, -1350.0, -600.0, 150.0, 3000.0]), "lung")
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 128, 255, 255]


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_every_preset_spans_0_255(name):
    level, width = WINDOWS[name]
    out = window(np.array([level - width / 2, level, level + width / 2]), name)
    assert out.tolist() == [0, 128, 255]


def test_brain_window_separates_grey_and_white_matter():
    # grey matter ~40 HU, white matter ~25 HU: 15 HU apart must be ~48 grey levels in an 80 HU window.
    g, w = window(np.array([40.0, 25.0]), "brain")
    assert int(g) - int(w) == pytest.approx(48, abs=1)


def test_custom_window_and_errors():
    assert window(np.array([0.0]), level=0, width=100).tolist() == [128]
    with pytest.raises(ValueError, match="unknown window"):
        window(np.zeros(1), "liver-ish")
    with pytest.raises(ValueError, match="width must be > 0"):
        window(np.zeros(1), level=0, width=0)


def test_nan_maps_to_zero():
    assert window(np.array([np.nan, 0.0]), "abdomen")[0] == 0
    assert normalize_percentile(np.array([np.nan, 1.0, 2.0, 3.0]))[0] == 0


def test_constant_image_is_zero():
    assert np.all(normalize_percentile(np.full((5, 5), 7.0)) == 0)


def test_percentile_clips_outliers():
    x = np.concatenate([np.linspace(0, 1, 1000), [1e6]])
    out = percentile_unit(x, 0.5, 99.5)
    assert out[-1] == 1.0 and out[0] == 0.0 and 0.45 < out[500] < 0.55


def test_display_uint8_dispatches_on_units():
    hu = np.array([-1000.0, 0.0, 500.0])
    assert np.array_equal(display_uint8(hu, "HU", "lung"), window(hu, "lung"))
    assert np.array_equal(display_uint8(hu, "arbitrary"), normalize_percentile(hu))


@settings(max_examples=60, deadline=None)
@given(x=arrays(np.float32, st.integers(1, 200), elements=finite), preset=st.sampled_from(sorted(WINDOWS)))
def test_window_range_and_monotone(x, preset):
    u = window_unit(x, preset)
    assert u.dtype == np.float32 and np.all((u >= 0) & (u <= 1))
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(u[order]) >= 0)
    b = window(x, preset)
    assert np.all(np.diff(b[order].astype(int)) >= 0)


@settings(max_examples=60, deadline=None)
@given(x=arrays(np.float32, st.integers(1, 200), elements=finite),
       lo=st.floats(0, 40), hi=st.floats(60, 100))
def test_percentile_range_and_monotone(x, lo, hi):
    u = percentile_unit(x, lo, hi)
    assert np.all((u >= 0) & (u <= 1))
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(u[order]) >= -1e-7)
    b = normalize_percentile(x, lo, hi)
    assert b.dtype == np.uint8 and np.all(np.diff(b[order].astype(int)) >= 0)
    if np.ptp(x) > 0 and lo == 0 and hi == 100:
        assert b[np.argmin(x)] == 0 and b[np.argmax(x)] == 255
