"""NIfTI / MetaImage / NRRD: nibabel's real test files, and the real CT round-tripped through SimpleITK."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from radscribe.errors import ImageTooLargeError, InvalidVoxelsError, UnreadableFileError
from radscribe.io.loader import load_study

NIB_DATA = Path(nib.__file__).parent / "tests" / "data"


def _check_affine(path: Path):
    im = load_study(path).image
    ras = nib.load(str(path)).affine
    lps = np.diag([-1, -1, 1, 1]) @ ras
    # Voxel (i, j, k) of nibabel is (z=k, y=j, x=i) here: compare both mappings at a few voxels.
    for ijk in ([0, 0, 0], [1, 2, 3], [3, 1, 2]):
        want = (lps @ np.array(ijk + [1.0]))[:3]
        assert np.allclose(im.voxel_to_patient(ijk[::-1]), want, atol=1e-4)
    return im


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz", "standard.nii.gz", "example_nifti2.nii.gz"])
def test_nibabel_files_affine_to_lps(name):
    im = _check_affine(NIB_DATA / name)
    data = np.asarray(nib.load(str(NIB_DATA / name)).dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    assert np.array_equal(im.array, data.transpose(2, 1, 0))
    assert np.allclose(np.linalg.norm(im.direction, axis=0), 1.0)


def test_anatomical_nii_known_geometry():
    # anatomical.nii: RAS affine diag(-2, 2, 2) with offset (32, -40, -16) -> LPS: x axis +2 mm to the left.
    im = load_study(NIB_DATA / "anatomical.nii").image
    assert im.spacing == pytest.approx((2.0, 2.0, 2.0))
    assert np.allclose(im.origin, (-32.0, 40.0, -16.0))
    assert np.allclose(im.direction, np.diag([1.0, -1.0, 1.0]))
    assert im.patient_left_is_increasing_x()


def test_4d_note():
    st = load_study(NIB_DATA / "example4d.nii.gz")
    assert any("first of 2 volumes" in n for n in st.notes)


def _to_sitk(im, crop):
    (z0, z1), (y0, y1), (x0, x1) = crop
    arr = im.array[z0:z1, y0:y1, x0:x1].astype(np.int16)
    s = sitk.GetImageFromArray(arr)
    s.SetSpacing(tuple(float(v) for v in im.spacing[::-1]))
    s.SetOrigin(tuple(float(v) for v in im.voxel_to_patient([z0, y0, x0])))
    s.SetDirection(tuple(float(v) for v in np.asarray(im.direction).ravel()))
    return s, arr


@pytest.mark.parametrize("suffix", [".nii.gz", ".mhd", ".mha", ".nrrd"])
def test_real_ct_round_trip(chest_ct, tmp_path, suffix):
    src = chest_ct.image
    crop = ((40, 52), (100, 400), (60, 460))
    s, arr = _to_sitk(src, crop)
    out = tmp_path / f"ct{suffix}"
    sitk.WriteImage(s, str(out), True)
    im = load_study(out).image
    assert im.shape == arr.shape
    assert np.array_equal(im.array, arr.astype(np.float32))  # HU survive
    assert im.spacing == pytest.approx(src.spacing, abs=1e-5)
    assert np.allclose(im.origin, src.voxel_to_patient([40, 100, 60]), atol=1e-3)
    assert np.allclose(im.direction, src.direction, atol=1e-6)
    # Same voxel, same patient position as in the DICOM series.
    assert np.allclose(im.voxel_to_patient([5, 7, 9]), src.voxel_to_patient([45, 107, 69]), atol=1e-3)


def test_oblique_round_trip(tmp_path):
    """A rotated, anisotropic grid written by SimpleITK as NIfTI comes back with the same geometry."""
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    s = sitk.GetImageFromArray(arr)
    th = np.radians(30)
    d = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    s.SetDirection(tuple(d.ravel()))
    s.SetSpacing((0.7, 0.9, 2.5))
    s.SetOrigin((10.0, -20.0, 30.0))
    for suffix in (".nii", ".nrrd"):
        p = tmp_path / f"obl{suffix}"
        sitk.WriteImage(s, str(p))
        im = load_study(p).image
        assert np.array_equal(im.array, arr)
        assert im.spacing == pytest.approx((2.5, 0.9, 0.7), abs=1e-5)
        assert np.allclose(im.direction, d, atol=1e-5) and np.allclose(im.origin, (10, -20, 30), atol=1e-4)
        idx = np.array([3, 4, 5])
        want = s.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in idx[::-1]))
        assert np.allclose(im.voxel_to_patient(idx), want, atol=1e-4)


def test_nan_voxels_rejected_with_count(tmp_path):
    a = np.zeros((4, 5, 6), dtype=np.float32)
    a[1, 2, 3] = np.nan
    a[0, 0, 0] = np.nan
    p = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(a, np.eye(4)), str(p))
    with pytest.raises(InvalidVoxelsError, match="nan.nii.gz has 2 NaN"):
        load_study(p)


def test_huge_nifti_header_rejected_before_decoding(tmp_path):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((4096, 4096, 4096))
    hdr.set_data_dtype(np.int16)
    p = tmp_path / "huge.nii"
    img = nib.Nifti1Image(np.zeros((1, 1, 1), np.int16), np.eye(4), header=hdr)
    hdr_bytes = img.header.copy()
    hdr_bytes.set_data_shape((4096, 4096, 4096))
    with open(p, "wb") as fh:
        hdr_bytes.write_to(fh)
        fh.write(b"\0" * 1024)  # far fewer bytes than declared: must fail before reading them
    with pytest.raises(ImageTooLargeError, match="huge.nii"):
        load_study(p)


def test_truncated_nifti(tmp_path):
    p = tmp_path / "t.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 20, 20)).astype(np.float32), np.eye(4)), str(p))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableFileError, match="t.nii.gz"):
        load_study(p)


def test_not_gzip_nifti(tmp_path):
    p = tmp_path / "bad.nii.gz"
    p.write_bytes(gzip.compress(b"hello, not a nifti header"))
    with pytest.raises(UnreadableFileError, match="bad.nii.gz"):
        load_study(p)


def test_mhd_without_raw(tmp_path):
    s = sitk.GetImageFromArray(np.zeros((3, 4, 5), np.int16))
    p = tmp_path / "vol.mhd"
    sitk.WriteImage(s, str(p))
    (tmp_path / "vol.raw").unlink()
    with pytest.raises(UnreadableFileError, match="vol.raw"):
        load_study(p)


def test_metaimage_modality_tag(tmp_path):
    """A MetaImage header line 'Modality = MET_MOD_CT' becomes modality CT; without it, OT."""
    s = sitk.GetImageFromArray(np.full((3, 4, 5), -1000, np.int16))
    plain = tmp_path / "plain.mha"
    sitk.WriteImage(s, str(plain))
    assert load_study(plain).image.modality == "OT"
    data = plain.read_bytes()
    tagged = tmp_path / "ct.mha"
    tagged.write_bytes(data.replace(b"NDims = 3\n", b"NDims = 3\nModality = MET_MOD_CT\n", 1))
    im = load_study(tagged).image
    assert im.modality == "CT" and np.all(im.array == -1000)
