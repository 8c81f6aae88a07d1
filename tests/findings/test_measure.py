"""Mask measurements on synthetic discs and boxes with known answers."""

import math

import numpy as np
import pytest

from radscribe.findings.measure import feret, mask_box, measure_2d, measure_3d, midline_column


def disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2


def head(shape=(200, 200), margin=20):
    h = np.zeros(shape, bool)
    h[margin:-margin, margin:-margin] = True
    return h


@pytest.mark.parametrize("r", [10, 20, 30])
def test_disc_area_box_diameter(r):
    cy, cx = 100.3, 140.3  # off the pixel lattice: the digitised disc's area is within 1 % of pi r^2
    m = disc((200, 200), cy, cx, r)
    res = measure_2d(m)
    assert abs(res.area_px - math.pi * r * r) / (math.pi * r * r) < 0.02
    assert res.box == (math.ceil(cy - r), math.ceil(cx - r), math.floor(cy + r) + 1, math.floor(cx + r) + 1)
    assert res.centroid == pytest.approx((cy, cx), abs=0.1)
    assert abs(res.long_axis_px - 2 * r) <= 1.5  # outer pixel corners: 2r + up to ~1 px
    assert abs(res.short_axis_px - 2 * r) <= 1.5
    assert res.area_mm2 is None and res.side is None


def test_spacing_scales_area_and_diameters():
    m = disc((200, 200), 100, 100, 20)
    a = measure_2d(m, spacing=(0.5, 0.5))
    assert a.area_mm2 == pytest.approx(a.area_px * 0.25)
    assert a.long_axis_mm == pytest.approx(a.long_axis_px * 0.5, rel=1e-6)


def test_anisotropic_spacing_long_axis_follows_mm():
    m = np.zeros((100, 100), bool)
    m[40:60, 30:50] = True  # 20 x 20 pixels; rows 2 mm, columns 1 mm -> 40 mm x 20 mm
    a = measure_2d(m, spacing=(2.0, 1.0))
    assert a.long_axis_mm == pytest.approx(math.hypot(40, 20), rel=1e-6)
    assert a.short_axis_mm < a.long_axis_mm


def test_side_radiological_convention_and_flipped():
    # column 140 is right of the image centre: with image left = patient right it is the patient's LEFT
    m = disc((200, 200), 100, 140, 15)
    h = head()
    a = measure_2d(m, head=h)
    assert a.side == "left" and a.left_fraction == pytest.approx(1.0)
    assert a.distance_from_midline_px == pytest.approx(140 - midline_column(h), abs=0.5)
    assert not a.crosses_midline
    b = measure_2d(m, head=h, left_is_increasing_x=False)
    assert b.side == "right" and b.left_fraction == pytest.approx(0.0)
    c = measure_2d(disc((200, 200), 100, 60, 15), head=h)
    assert c.side == "right"


def test_midline_lesion_and_brain_fraction():
    h = head()
    m = disc((200, 200), 100, 99.5, 10)
    a = measure_2d(m, head=h, spacing=(1.0, 1.0))
    assert a.side == "midline" and a.crosses_midline
    assert a.brain_fraction == pytest.approx(a.area_px / h.sum())
    assert a.distance_from_midline_mm == pytest.approx(a.distance_from_midline_px)


def test_empty_mask_gives_none():
    assert measure_2d(np.zeros((10, 10), bool)) is None
    assert measure_3d(np.zeros((3, 10, 10), bool)) is None
    assert mask_box(np.zeros((4, 4), bool)) is None
    assert feret(np.zeros((4, 4), bool)) == (0.0, 0.0)


def test_single_pixel():
    m = np.zeros((10, 10), bool)
    m[3, 4] = True
    a = measure_2d(m)
    assert a.area_px == 1 and a.box == (3, 4, 4, 5)
    assert a.long_axis_px == pytest.approx(math.sqrt(2))


def test_sphere_volume_and_extents():
    r, s = 10, (2.0, 1.0, 1.0)  # z spacing 2 mm: sphere of radius 10 mm -> 5 slices each side
    zz, yy, xx = np.mgrid[:30, :40, :40]
    m = ((zz - 15) * s[0]) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 <= r ** 2
    res = measure_3d(m, s)
    expected_ml = 4 / 3 * math.pi * r ** 3 / 1000
    assert res.volume_ml == pytest.approx(expected_ml, rel=0.03)
    assert res.extent_mm == pytest.approx((22.0, 21.0, 21.0), abs=2.0)
    assert res.slices == tuple(range(10, 21))
    assert res.box == (10, 10, 10, 21, 31, 31)
