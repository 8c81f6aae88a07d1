"""Lung segmentation on the phantom (known lungs) and on the real chest CT series."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

from radscribe.data.phantom import make_phantom
from radscribe.preprocess.lung import segment_lungs
from tests.data.test_phantom import read_series


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(21, shape=(100, 256, 256), n_nodules=4)


@pytest.fixture(scope="module")
def seg(phantom):
    return segment_lungs(phantom.to_image())


def test_phantom_lung_volumes_and_sides(phantom, seg):
    truth = phantom.truth["lung_volume_ml"]
    assert seg.volume_ml == pytest.approx(truth["left"] + truth["right"], rel=0.05)
    assert seg.left_ml == pytest.approx(truth["left"], rel=0.05)
    assert seg.right_ml == pytest.approx(truth["right"], rel=0.05)
    assert not (seg.left & seg.right).any() and np.array_equal(seg.mask, seg.left | seg.right)
    img = phantom.to_image()
    # the left lung lies at patient +x (LPS)
    for m, sign in ((seg.left, 1), (seg.right, -1)):
        com = np.array([np.mean(v) for v in np.nonzero(m)])
        assert np.sign(img.voxel_to_patient(com)[0]) == sign


def test_nodules_inside_and_airways_outside(phantom, seg):
    img = phantom.to_image()
    for n in phantom.truth["nodules"]:
        z, y, x = np.round(n["center_voxel"]).astype(int)
        assert seg.mask[z, y, x], n
        assert (seg.left if n["side"] == "left" else seg.right)[z, y, x]
    # trachea centre (LPS x=0, y=25 mm) at 20 mm above the carina: air, but not lung
    zyx = np.round(img.patient_to_voxel([0.0, 25.0, 55.0])).astype(int)
    assert img.array[tuple(zyx)] < -800
    assert not seg.mask[tuple(zyx)]
    assert any("trachea" in n for n in seg.notes)


def test_sides_follow_geometry_not_array_index(phantom, seg):
    """Mirror the columns and say so in the direction: the patient's left lung stays 'left'."""
    img = phantom.to_image()
    nx = img.shape[2]
    flipped_origin = tuple(img.voxel_to_patient([0, 0, nx - 1]))
    d = np.eye(3)
    d[:, 0] = [-1, 0, 0]
    flipped = img.with_array(img.array[:, :, ::-1].copy(), origin=flipped_origin, direction=d)
    seg2 = segment_lungs(flipped)
    assert np.array_equal(seg2.left[:, :, ::-1], seg.left)
    assert np.array_equal(seg2.right[:, :, ::-1], seg.right)


def test_real_series_lungs(shared_dataset):
    folder = shared_dataset("chest_ct_series") / "dicom"
    img = read_series(folder)
    t0 = time.perf_counter()
    seg = segment_lungs(img)
    elapsed = time.perf_counter() - t0
    assert 2000 <= seg.volume_ml <= 8000
    assert seg.left_ml > 800 and seg.right_ml > 800
    # the right lung is on the patient's right (LPS x < 0 relative to the left lung)
    xl = img.voxel_to_patient(np.array([np.mean(v) for v in np.nonzero(seg.left[::2, ::4, ::4])]) * [2, 4, 4])[0]
    xr = img.voxel_to_patient(np.array([np.mean(v) for v in np.nonzero(seg.right[::2, ::4, ::4])]) * [2, 4, 4])[0]
    assert xl > xr
    # nothing outside the body: the outer ring of every slice is not lung
    assert not seg.mask[:, :8, :].any() and not seg.mask[:, :, :8].any()
    assert elapsed < 10.0  # measured ~1 s on 2 cores; the bound only catches pathological slowness


def test_repair_puts_a_juxtapleural_mass_into_the_mask_without_leaks(phantom, seg):
    ph = make_phantom(21, shape=(100, 256, 256), n_nodules=0,
                      masses=[{"site": "pleura", "side": "left", "diameter_mm": 45.0, "margin": "lobulated"}])
    img = ph.to_image()
    body = ph.mass_labels == 1
    before = segment_lungs(img, repair=False)
    after = segment_lungs(img)
    assert before.mask[body].mean() < 0.6  # the HU mask goes around the mass ...
    assert after.mask[body].mean() > 0.95 and after.left[body].mean() > 0.95  # ... the repaired one holds it
    assert any("lesion repair" in n for n in after.notes)
    vox_ml = float(np.prod(img.spacing)) / 1000
    near = ndimage.binary_dilation(body, iterations=2)
    assert (after.repaired & ~near).sum() * vox_ml < 10.0  # chest wall beyond the mass stays out
    # a normal phantom: nothing (heart, mediastinum, chest wall) is added
    assert seg.repaired is None or seg.repaired.sum() * vox_ml < 2.0
