"""The nodule false-positive reducer: isotropic cube extraction (geometry in mm), loading errors, a tiny training run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radscribe.errors import RadscribeInputError
from radscribe.io.image import Image
from radscribe.models.nodule_fpr import FPRModel, extract_cubes

torch = pytest.importorskip("torch")
pytest.importorskip("monai")


def _sphere_volume(spacing=(2.5, 0.7, 0.7), shape=None, centre_mm=(50.0, 42.0, 40.0), r_mm=6.0):
    shape = shape or tuple(int(np.ceil(100.0 / s)) for s in spacing)  # a 100 mm cube of tissue
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    d = np.sqrt((z - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (x - centre_mm[2]) ** 2)
    arr = np.where(d <= r_mm, 40.0, -850.0).astype(np.float32)
    img = Image(array=arr, spacing=spacing, origin=(0.0, 0.0, 0.0), direction=np.eye(3), modality="CT", units="HU")
    return img, np.array(centre_mm) / np.array(spacing)


def test_cube_is_isotropic_in_mm_whatever_the_voxel_size():
    for spacing in ((2.5, 0.7, 0.7), (1.0, 1.0, 1.0), (5.0, 0.9, 0.9)):
        img, c = _sphere_volume(spacing=spacing)
        cube = extract_cubes(img, c[None])[0, 0]  # 1 mm scale
        assert cube.shape == (32, 32, 32)
        inside = (cube * 1400 - 1000) > -405  # halfway between lung and soft tissue
        # the 12 mm sphere spans ~12 voxels of 1 mm along every axis through the centre
        for profile in (inside[:, 15:17, 15:17].any(axis=(1, 2)), inside[15:17, :, 15:17].any(axis=(0, 2)),
                        inside[15:17, 15:17, :].any(axis=(0, 1))):
            assert abs(int(profile.sum()) - 12) <= 2 + (spacing[0] >= 5.0) * 2, (spacing, int(profile.sum()))
        ctx = extract_cubes(img, c[None])[0, 1]  # 2 mm scale: the same sphere is half as wide
        assert abs(int(((ctx * 1400 - 1000) > -405)[15:17, 15:17, :].any(axis=(0, 1)).sum()) - 6) <= 2


def test_outside_the_volume_reads_as_air():
    img, _ = _sphere_volume()
    cube = extract_cubes(img, np.array([[-500.0, 0.0, 0.0]]))
    assert cube.shape == (1, 2, 32, 32, 32) and float(cube.max()) == 0.0


def test_missing_or_corrupt_weights_are_user_errors(tmp_path):
    with pytest.raises(RadscribeInputError, match="no trained weights"):
        FPRModel.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"channels": [8, 16], "scales_mm": [1.0, 2.0], "cube": 32,
                                                      "hu_range": [-1000, 400], "platt": [1, 0], "threshold": 0.5}))
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(RadscribeInputError, match="corrupt or do not match"):
        FPRModel.load(tmp_path)


def test_tiny_training_run_writes_a_loadable_calibrated_model(tmp_path):
    from radscribe.train.nodule_fpr import train_fpr

    rng = np.random.default_rng(0)

    def make(n, seed0):
        cubes, labels = [], []
        for k in range(n):
            img, c = _sphere_volume(spacing=(1.0, 1.0, 1.0), shape=(40, 40, 40), centre_mm=(20, 20, 20),
                                    r_mm=float(rng.uniform(3, 7)))
            if k % 2:  # a negative: a tube (vessel) through the centre instead of a sphere
                a = img.array
                a[:] = -850.0
                a[:, 18:22, 18:22] = 40.0
            cubes.append(np.rint(extract_cubes(img, c[None])[0] * 255).astype(np.uint8))
            labels.append(1 - k % 2)
        return {"cubes": np.stack(cubes), "labels": np.array(labels, np.uint8),
                "diameter_mm": np.zeros(n, np.float32), "seed": np.full(n, seed0), "from_candidate": np.ones(n, bool),
                "stage2": np.ones(n, bool),
                "hu_range": np.array([-1000.0, 400.0])}

    np.savez(tmp_path / "tr.npz", **make(8, 1))
    np.savez(tmp_path / "va.npz", **make(6, 2))
    cfg = train_fpr(tmp_path / "tr.npz", tmp_path / "va.npz", tmp_path / "run", epochs=1, steps_per_epoch=2, batch=4,
                    channels=(4, 8))
    assert 0.0 <= cfg["threshold"] <= 1.0 and cfg["train_seeds"] == [1] and cfg["val_seeds"] == [2]
    model = FPRModel.load(tmp_path / "run")
    img, c = _sphere_volume(spacing=(1.0, 1.0, 1.0), shape=(40, 40, 40), centre_mm=(20, 20, 20))
    p = model.score(img, c[None])
    assert p.shape == (1,) and 0.0 <= float(p[0]) <= 1.0
    with pytest.raises(RadscribeInputError, match="share phantom seeds"):
        train_fpr(tmp_path / "tr.npz", tmp_path / "tr.npz", tmp_path / "run2", epochs=1, steps_per_epoch=1, batch=4)
