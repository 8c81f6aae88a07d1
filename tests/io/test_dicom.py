"""Single DICOM files: pydicom's and pydicom-data's real test files (geometry, HU, codecs, MONOCHROME1,
enhanced multi-frame)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from radscribe.errors import NoPixelDataError, UnreadableFileError
from radscribe.io.loader import load_study


def _load(name):
    return load_study(get_testdata_file(name))


def _raw(name):
    return pydicom.dcmread(get_testdata_file(name))


def test_ct_small_geometry_and_hu():
    st = _load("CT_small.dcm")
    im, ds = st.image, _raw("CT_small.dcm")
    assert im.shape == (1, 128, 128) and im.units == "HU" and im.modality == "CT"
    ps = [float(x) for x in ds.PixelSpacing]
    assert im.spacing[1:] == pytest.approx(ps)
    assert im.spacing[0] == pytest.approx(float(ds.SliceThickness))
    assert np.allclose(im.origin, [float(x) for x in ds.ImagePositionPatient])
    iop = np.array([float(x) for x in ds.ImageOrientationPatient])
    assert np.allclose(im.direction[:, 0], iop[:3]) and np.allclose(im.direction[:, 1], iop[3:])
    # HU = stored * slope + intercept.
    expect = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.array_equal(im.array[0], expect.astype(np.float32))
    assert -1100 < im.array.min() < -800 and 0 < np.median(im.array) < 200  # air and soft tissue present
    # Voxel (row 10, col 20) sits at IPP + 20*col_spacing*row_dir + 10*row_spacing*col_dir.
    want = np.array(im.origin) + 20 * ps[1] * iop[:3] + 10 * ps[0] * iop[3:]
    assert np.allclose(im.voxel_to_patient([0, 10, 20]), want)
    assert any("single slice" in n for n in st.notes)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm"])
def test_mr_small_codecs_decode_identically(name):
    ref = _load("MR_small.dcm").image
    im = _load(name).image
    assert np.array_equal(im.array, ref.array)
    assert im.spacing == ref.spacing and im.origin == ref.origin and im.modality == "MR"
    assert im.units == "arbitrary"


@pytest.mark.parametrize("comp,ref,tol", [
    ("693_J2KR.dcm", "693_UNCR.dcm", 0.0),           # JPEG 2000 lossless, CT (pydicom-data)
    ("693_J2KI.dcm", "693_UNCI.dcm", 0.0),
    ("RG1_J2KR.dcm", "RG1_UNCR.dcm", 0.0),           # JPEG 2000 lossless, CR, MONOCHROME1
    ("JPEG2000.dcm", "JPEG2000_UNC.dcm", 0.0),       # JPEG 2000 (part 1)
    ("MR2_J2KR.dcm", "MR2_UNCR.dcm", 0.0),
    ("emri_small_RLE.dcm", "emri_small.dcm", 0.0),    # multi-frame RLE
    ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm", 0.0),
    ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm", 0.0),
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb.dcm", 0.0),      # JPEG lossless (process 14), RGB
    ("SC_rgb_rle.dcm", "SC_rgb.dcm", 0.0),
    ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb.dcm", 3.0),     # JPEG baseline (lossy) -> close
])
def test_compressed_matches_uncompressed(comp, ref, tol):
    a, b = _load(comp).image, _load(ref).image
    assert a.shape == b.shape
    assert np.abs(a.array - b.array).max() <= tol


def test_ct_hu_after_jpeg2000():
    im = _load("693_J2KR.dcm").image
    assert im.units == "HU" and im.array.min() < -1000 and im.array.max() > 1000


def test_monochrome1_inverted():
    ds = _raw("RG1_UNCR.dcm")
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    st = _load("RG1_UNCR.dcm")
    raw = ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    assert np.array_equal(st.image.array[0], raw.max() + raw.min() - raw)
    assert any("MONOCHROME1" in n for n in st.notes)
    # 0.0 PixelSpacing is a placeholder: spacing falls back to ImagerPixelSpacing or is marked unknown.
    assert all(s > 0 for s in st.image.spacing)


def test_enhanced_ct_multiframe_geometry():
    ds = _raw("eCT_Supplemental.dcm")
    im = _load("eCT_Supplemental.dcm").image
    assert im.shape == (2, 512, 512) and im.units == "HU"
    sh = ds.SharedFunctionalGroupsSequence[0]
    ps = [float(x) for x in sh.PixelMeasuresSequence[0].PixelSpacing]
    iop = np.array([float(x) for x in sh.PlaneOrientationSequence[0].ImageOrientationPatient])
    assert im.spacing[1:] == pytest.approx(ps)
    pos = [np.array([float(x) for x in f.PlanePositionSequence[0].ImagePositionPatient])
           for f in ds.PerFrameFunctionalGroupsSequence]
    assert im.spacing[0] == pytest.approx(np.linalg.norm(pos[1] - pos[0]))
    assert np.allclose(im.direction[:, 0], iop[:3]) and np.allclose(im.direction[:, 1], iop[3:])
    # Every frame's position is the patient position of its slice index (in some order).
    got = [im.voxel_to_patient([k, 0, 0]) for k in range(2)]
    for p in pos:
        assert any(np.allclose(p, g) for g in got)
    # Rescale from the functional groups: stored 0 -> -1024 HU.
    assert im.array.min() == pytest.approx(-1024.0)


def test_enhanced_mr_multiframe_frames():
    im = _load("emri_small.dcm").image
    raw = _raw("emri_small.dcm").pixel_array
    assert im.shape == (10, 64, 64) and np.array_equal(im.array, raw.astype(np.float32))


def test_colour_becomes_gray_with_note():
    st = _load("US1_J2KR.dcm")  # YBR_RCT, JPEG 2000 lossless, ultrasound
    assert st.image.shape == (1, 480, 640)
    assert any("converted to gray" in n for n in st.notes)


def test_no_pixel_data():
    with pytest.raises(NoPixelDataError, match="test-SR.dcm.*without pixel data"):
        load_study(get_testdata_file("test-SR.dcm"))


def test_truncated_pixel_data():
    with pytest.raises(UnreadableFileError, match="MR_truncated.dcm"):
        load_study(get_testdata_file("MR_truncated.dcm"))


def test_truncated_copy(tmp_path):
    src = get_testdata_file("CT_small.dcm")
    data = open(src, "rb").read()
    p = tmp_path / "cut.dcm"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableFileError, match="cut.dcm"):
        load_study(p)


@pytest.mark.parametrize("name", ["CT_small.dcm", "eCT_Supplemental.dcm", "emri_small.dcm", "MR_small.dcm"])
def test_no_identifiers_leave_the_reader(name):
    ds = _raw(name)
    st = _load(name)
    secrets = [str(ds.get(k)) for k in ("PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                                        "SOPInstanceUID", "AccessionNumber", "InstitutionName")
               if ds.get(k) not in (None, "")]
    secrets += [str(ds.get(k)) for k in ("StudyDate", "PatientBirthDate") if ds.get(k)]
    text = repr(st.header) + repr(st.image.meta) + repr(st.series) + repr(st.notes)
    # (MR_small's InstitutionName is its manufacturer's name, which is kept as Manufacturer.)
    secrets = [s for s in secrets if s not in str(ds.get("Manufacturer"))]
    assert secrets
    for s in secrets:
        assert s not in text, s
    assert st.header["SeriesUIDHash"] == st.series[0].uid_hash and len(st.series[0].uid_hash) == 12


def test_every_small_pydicom_test_file_reads_or_fails_cleanly():
    """All of pydicom's (and pydicom-data's) test files under 120 kB: an image or a RadscribeInputError."""
    import os

    from radscribe.errors import RadscribeInputError

    from pathlib import Path

    # List the two folders directly: get_testdata_files() tries (and here fails) to download more.
    dirs = {Path(get_testdata_file("CT_small.dcm")).parent, Path(get_testdata_file("693_J2KR.dcm")).parent}
    files = [str(f) for d in dirs for f in sorted(d.iterdir())
             if f.is_file() and f.suffix not in (".py", ".json", ".txt", ".md") and f.stat().st_size < 120_000]
    assert len(files) > 80
    ok = 0
    for f in files:
        try:
            st = load_study(f)
        except RadscribeInputError as e:
            assert os.path.basename(f) in str(e)
            continue
        ok += 1
        assert np.isfinite(st.image.array).all() and st.image.array.ndim == 3
    assert ok > 50
