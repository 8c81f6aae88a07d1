"""Tests for radscribe/data/lidc.py: texture classes, the HU mapping estimate, grouped stratified folds."""

from __future__ import annotations

import numpy as np
import pytest

from radscribe.data.lidc import (
    HUMapping, case_of, estimate_hu_mapping, load_lidc, make_folds, mapping_checks, texture_class,
)
from radscribe.data.paths import shared_data_dir
from radscribe.errors import RadscribeInputError

LIDC = shared_data_dir() / "lidc_nodules" / "lidc_nodules.npz"


def test_texture_class_groups_like_source():
    assert texture_class(np.array([1, 2, 3, 4, 5.0])).tolist() == [0, 1, 1, 2, 2]
    with pytest.raises(RadscribeInputError):
        texture_class(np.array([0.0, 3.0]))


def test_case_of_name():
    assert case_of("12_nod3_ann1") == "12"
    with pytest.raises(RadscribeInputError):
        case_of("scan12")


def _cubes_from_mapping(slope: float, intercept: float, seed: int = 0) -> np.ndarray:
    """Synthetic cubes: 70 % lung at -860 HU, 30 % soft tissue at +40 HU (noise 25 HU), quantised to uint8."""
    g = np.random.default_rng(seed)
    hu = np.where(g.random(200_000) < 0.7, -860.0, 40.0) + g.normal(0, 25, 200_000)
    return np.clip(np.rint((hu - intercept) / slope), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("slope,intercept", [(1600 / 255, -1200.0), (1400 / 255, -1000.0)])
def test_hu_mapping_recovers_a_known_window(slope, intercept):
    m = estimate_hu_mapping(_cubes_from_mapping(slope, intercept))
    assert m.slope == pytest.approx(slope, rel=0.03)
    assert m.intercept == pytest.approx(intercept, abs=15)
    lo, hi = m.window_hu
    assert hi == pytest.approx(slope * 255 + intercept, abs=25)
    assert float(m.to_hu(m.to_intensity(-500.0))) == pytest.approx(-500.0, abs=1e-3)
    assert HUMapping.from_dict(m.to_dict()) == m


def test_hu_mapping_refuses_a_single_peak():
    with pytest.raises(RadscribeInputError):
        estimate_hu_mapping(np.full(1000, 60, np.uint8))


def test_folds_are_grouped_by_case_and_stratified():
    g = np.random.default_rng(1)
    cases = [str(i // 2) for i in range(100)]  # two annotations per case
    cls = np.repeat(g.integers(0, 3, 50), 2)
    folds = make_folds(cases, cls)
    assert set(folds.tolist()) == {0, 1, 2, 3, 4}
    for c in set(cases):
        assert len({folds[i] for i in range(100) if cases[i] == c}) == 1
    for k in range(5):
        assert set(cls[folds == k].tolist()) == {0, 1, 2}
    assert np.array_equal(folds, make_folds(cases, cls))  # fixed seed


@pytest.mark.skipif(not LIDC.is_file(), reason="needs /work/shared/data/lidc_nodules (LIDC cubes)")
def test_real_cubes_load_in_zyx_and_map_to_a_lung_window():
    d = load_lidc()
    assert d.volumes.shape == (134, 51, 51, 51) and d.masks.dtype == bool
    ext = np.array([np.ptp(np.argwhere(m), 0) + 1 for m in d.masks], float)
    assert np.median(ext[:, 1] / ext[:, 0]) > 1.2  # the slice axis (coarser voxels) is now axis 0
    hu = estimate_hu_mapping(d.volumes)
    lo, hi = hu.window_hu
    assert -1250 < lo < -1150 and 350 < hi < 450
    chk = mapping_checks(d, hu)
    assert any(-150 < h < -50 for _, h in chk["histogram_maxima"])  # the fat peak, not used in the fit
    assert -700 < chk["ground_glass_interior_hu"]["median"] < -500
    folds = make_folds(d.cases, d.texture_class)
    assert np.bincount(folds).min() >= 24
