"""Masks and heatmaps as files: PNG for 2D images, NIfTI with the study geometry for volumes; the viewer's strided layers."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from radscribe.findings.model import Finding
from radscribe.io.image import Image
from radscribe.io.layer_files import layer_bytes, read_layer
from radscribe.pipeline.layers import write_layers


def _volume(shape=(6, 20, 24), spacing=(2.5, 0.8, 0.7), direction=None) -> Image:
    return Image(array=np.zeros(shape, np.float32), spacing=spacing, origin=(-10.0, 5.0, 30.0),
                 direction=np.eye(3) if direction is None else direction, modality="CT", units="HU")


def test_nifti_mask_keeps_geometry_and_values():
    nib = pytest.importorskip("nibabel")
    flip = np.diag([1.0, -1.0, 1.0])
    image = _volume(direction=flip)
    mask = np.zeros(image.shape, bool)
    mask[2:4, 5:9, 10:15] = True
    suffix, data = layer_bytes(mask, image, is_mask=True)
    assert suffix == ".nii.gz"
    nii = nib.Nifti1Image.from_bytes(gzip.decompress(data))
    assert nii.get_data_dtype() == np.uint8
    # voxel (z=2, y=5, x=10) sits at the same world point in the NIfTI (RAS) as in the image (LPS)
    lps = image.voxel_to_patient(np.array([2.0, 5.0, 10.0]))
    ras = nii.affine @ np.array([10.0, 5.0, 2.0, 1.0])
    assert np.allclose(ras[:3], lps * np.array([-1, -1, 1]))
    back = np.asarray(nii.dataobj).transpose(2, 1, 0)
    assert np.array_equal(back.astype(bool), mask)


def test_heatmap_round_trip_png_and_nifti(tmp_path):
    pytest.importorskip("nibabel")
    image = _volume()
    heat = np.linspace(0, 1, int(np.prod(image.shape)), dtype=np.float32).reshape(image.shape)
    suffix, data = layer_bytes(heat, image, is_mask=False)
    (tmp_path / f"h{suffix}").write_bytes(data)
    assert np.abs(read_layer(tmp_path / f"h{suffix}") - heat).max() <= 0.5 / 255 + 1e-6
    flat = Image(array=np.zeros((1, 20, 24), np.float32), spacing=(1.0, 0.5, 0.5), origin=(0.0, 0.0, 0.0),
                 direction=np.eye(3), modality="DX")
    suffix2, data2 = layer_bytes(heat[0][None], flat, is_mask=False)
    assert suffix2 == ".png" and data2[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "h2.png").write_bytes(data2)
    back = read_layer(tmp_path / "h2.png")
    assert back.shape == (1, 20, 24) and np.abs(back[0] - heat[0]).max() <= 0.5 / 255 + 1e-6


def test_write_layers_names_files_and_keeps_a_detectors_own(tmp_path):
    pytest.importorskip("nibabel")
    image = _volume()
    m = np.zeros(image.shape, bool)
    m[1:3, 2:6, 3:8] = True
    fs = [Finding(kind="nodule", detector="d", confidence=0.9),
          Finding(kind="mass", detector="d", confidence=0.9, artifacts={"mask": "own.nii.gz"}),
          Finding(kind="nodule", detector="d", confidence=0.1, present=False)]
    out = write_layers(image, fs, {0: m, 1: m, 2: m}, {0: m.astype(np.float32) * 0.5}, tmp_path)
    assert out[0].artifacts == {"mask": "masks/finding_01_nodule.nii.gz", "heatmap": "heatmaps/finding_01_nodule.nii.gz"}
    assert out[1].artifacts == {"mask": "own.nii.gz"} and out[2].artifacts == {}
    assert np.array_equal(read_layer(tmp_path / out[0].artifacts["mask"]) > 0.5, m)
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["finding_01_nodule.nii.gz"]


def test_viewer_layers_are_strided_by_block_maximum(tmp_path):
    pytest.importorskip("nibabel")
    from radscribe.serve.viewer import _layers

    image = _volume(shape=(4, 10, 10))
    m = np.zeros(image.shape, bool)
    m[1, 3, 3] = True  # one voxel: a plain [::2] stride would drop it
    fs = write_layers(image, [Finding(kind="nodule", detector="d", confidence=0.9)], {0: m}, {}, tmp_path)
    doc = [json.loads(json.dumps(f.to_dict())) for f in fs]
    meta, blob = _layers(doc, tmp_path, (4, 10, 10), (1, 2, 2), (4, 5, 5))
    assert meta == [{"finding": 0, "type": "mask", "offset": 0}]
    arr = np.frombuffer(blob, np.uint8).reshape(4, 5, 5)
    assert arr[1, 1, 1] == 255 and int((arr > 0).sum()) == 1
    # a layer that is not on the study grid is left out, not drawn in the wrong place
    meta2, blob2 = _layers(doc, tmp_path, (4, 12, 10), (1, 2, 2), (4, 6, 5))
    assert meta2 == [] and blob2 == b""
