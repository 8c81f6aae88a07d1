"""Tests for the nodule measurements of radscribe/findings/measure.py on synthetic spheres and ellipsoids."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radscribe.findings.measure import axes_2d, measure_nodule


def ellipsoid(shape, spacing, radii_mm, centre_shift=(0.0, 0.0, 0.0)):
    """Boolean ellipsoid (z, y, x) with semi-axes radii_mm, voxel centres inside, centred with a sub-voxel shift."""
    g = np.indices(shape).astype(float)
    c = [(s - 1) / 2 + d for s, d in zip(shape, centre_shift)]
    return sum(((g[i] - c[i]) * spacing[i] / radii_mm[i]) ** 2 for i in range(3)) <= 1.0


def _shape(radii, spacing):
    return tuple(int(2 * r / s) + 6 for r, s in zip(radii, spacing))


@pytest.mark.parametrize("spacing", [(1.0, 0.7, 0.7), (2.5, 0.6, 0.6), (0.7, 0.7, 0.7), (1.25, 0.8, 0.8)])
@pytest.mark.parametrize("diameter", [4.0, 6.5, 11.0, 24.0])
def test_sphere_axes_and_volume(spacing, diameter):
    r = diameter / 2
    shift = tuple(np.random.default_rng(int(diameter * 10)).uniform(-0.4, 0.4, 3))
    m = measure_nodule(ellipsoid(_shape((r,) * 3, spacing), spacing, (r,) * 3, shift), spacing)
    assert m.long_axis_mm == pytest.approx(diameter, abs=0.5)
    assert m.short_axis_mm == pytest.approx(diameter, abs=0.5)
    true_ml = 4 / 3 * math.pi * r ** 3 / 1000
    assert m.volume_ml == pytest.approx(true_ml, rel=0.12 if diameter < 6 else 0.05)
    assert m.mean_hu is None and m.solid_long_axis_mm is None


@pytest.mark.parametrize("spacing", [(1.0, 0.7, 0.7), (2.0, 0.65, 0.65)])
def test_ellipsoid_long_and_short_axis_in_the_axial_plane(spacing):
    radii = (5.0, 4.0, 9.0)  # z, y, x semi-axes: 18 x 8 mm in the axial plane, 10 mm tall
    shape = _shape(radii, spacing)
    shape = (shape[0] | 1, *shape[1:])  # an odd slice count: one slice through the equator
    # a sub-voxel in-plane offset (voxel-centre digitisation loses up to a pixel per end in the worst case)
    mask = ellipsoid(shape, spacing, radii, (0.0, 0.3, -0.2))
    m = measure_nodule(mask, spacing)
    assert m.long_axis_mm == pytest.approx(18.0, abs=0.5)
    assert m.short_axis_mm == pytest.approx(8.0, abs=0.5)
    assert m.mean_diameter_mm == pytest.approx(13.0, abs=0.5)
    assert abs(m.axial_slice - (mask.shape[0] - 1) / 2) <= 1  # the widest slice is the middle one


def test_oblique_ellipse_axes():
    yy, xx = np.mgrid[:80, :80].astype(float) * 0.7
    u, v = (yy - 28) * math.cos(0.6) + (xx - 28) * math.sin(0.6), -(yy - 28) * math.sin(0.6) + (xx - 28) * math.cos(0.6)
    long_, short = axes_2d((u / 10) ** 2 + (v / 4) ** 2 <= 1, (0.7, 0.7))
    assert long_ == pytest.approx(20.0, abs=0.5) and short == pytest.approx(8.0, abs=0.5)


def test_part_solid_component_and_mean_hu():
    sp = (1.0, 0.7, 0.7)
    outer = ellipsoid((30, 40, 40), sp, (7.0,) * 3)
    core = ellipsoid((30, 40, 40), sp, (3.0,) * 3)
    hu = np.full(outer.shape, -850.0)
    hu[outer] = -600.0
    hu[core] = 30.0
    m = measure_nodule(outer, sp, hu)
    assert m.long_axis_mm == pytest.approx(14.0, abs=0.5)
    assert m.solid_long_axis_mm == pytest.approx(6.0, abs=0.5)
    frac = core.sum() / outer.sum()
    assert m.solid_fraction == pytest.approx(frac)
    assert m.mean_hu == pytest.approx(-600 * (1 - frac) + 30 * frac, abs=1e-3)
    gg = measure_nodule(outer, sp, np.where(outer, -600.0, -850.0))
    assert gg.solid_fraction == 0.0 and gg.solid_long_axis_mm is None


def test_empty_mask_and_mismatched_hu():
    assert measure_nodule(np.zeros((5, 5, 5), bool), (1, 1, 1)) is None
    with pytest.raises(ValueError):
        measure_nodule(np.ones((5, 5, 5), bool), (1, 1, 1), np.zeros((4, 5, 5)))
