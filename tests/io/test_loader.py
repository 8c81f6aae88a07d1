"""load_study on bad input: every case a RadscribeInputError subclass naming the file; no tracebacks."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from radscribe.errors import (
    ImageTooLargeError,
    InvalidVoxelsError,
    NoPixelDataError,
    RadscribeInputError,
    UnknownFormatError,
    UnreadableFileError,
)
from radscribe.io.loader import load_study


def test_missing_path(tmp_path):
    with pytest.raises(UnreadableFileError, match="no such file or folder: .*nothing.dcm"):
        load_study(tmp_path / "nothing.dcm")


@pytest.mark.parametrize("name", ["empty.dcm", "empty.png", "empty.nii.gz", "empty"])
def test_empty_file(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"")
    with pytest.raises(UnreadableFileError, match=f"{name} is empty"):
        load_study(p)


def test_empty_folder(tmp_path):
    with pytest.raises(UnreadableFileError, match="is empty"):
        load_study(tmp_path)


def test_folder_without_dicom(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.csv").write_text("1,2")
    with pytest.raises(UnreadableFileError, match="holds no DICOM image series"):
        load_study(tmp_path)


def test_unknown_format(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("a radiology report, not an image")
    with pytest.raises(UnknownFormatError, match="notes.txt is not in a format radscribe reads"):
        load_study(p)


def test_text_named_dcm(tmp_path):
    p = tmp_path / "fake.dcm"
    p.write_text("not dicom at all " * 20)
    with pytest.raises(UnreadableFileError, match="fake.dcm"):
        load_study(p)


def test_sr_without_pixels():
    with pytest.raises(NoPixelDataError):
        load_study(get_testdata_file("test-SR.dcm"))


def _edited_ct(tmp_path, **changes):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for k, v in changes.items():
        setattr(ds, k, v)
    p = tmp_path / "edited.dcm"
    ds.save_as(p)
    return p


def test_absurd_dicom_size_rejected_before_decoding(tmp_path):
    p = _edited_ct(tmp_path, Rows=60000, Columns=60000)
    with pytest.raises(ImageTooLargeError, match="edited.dcm.*60000x60000"):
        load_study(p)


def test_too_many_voxels(tmp_path):
    p = _edited_ct(tmp_path, Rows=8000, Columns=8000, NumberOfFrames=300)
    with pytest.raises(ImageTooLargeError, match="above the cap"):
        load_study(p)


def test_zero_size_dicom(tmp_path):
    p = _edited_ct(tmp_path, Rows=0)
    with pytest.raises(UnreadableFileError, match="0x128"):
        load_study(p)


def test_float_dicom_with_nan(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    a = ds.pixel_array.astype(np.float32)
    a[3, 4] = np.nan
    del ds.PixelData
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
    del ds.PixelRepresentation
    ds.FloatPixelData = a.tobytes()
    p = tmp_path / "float.dcm"
    ds.save_as(p)
    with pytest.raises(InvalidVoxelsError, match="1 NaN"):
        load_study(p)


def test_single_file_in_folder_of_volumes(tmp_path):
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "only")
    assert load_study(tmp_path).image.shape == (1, 128, 128)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=600), suffix=st.sampled_from([".dcm", ".png", ".jpg", ".nii", ".nii.gz",
                                                                          ".mha", ".nrrd", ""]))
def test_random_bytes_never_traceback(tmp_path, data, suffix):
    """Whatever the bytes, the answer is an Image or a RadscribeInputError, never another exception."""
    p = tmp_path / f"junk{suffix}"
    p.write_bytes(data)
    try:
        load_study(p)
    except RadscribeInputError as e:
        assert "junk" in str(e)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=1, max_value=99))
def test_truncated_dicom_never_traceback(tmp_path, cut):
    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    p = tmp_path / "cut.dcm"
    p.write_bytes(data[: len(data) * cut // 100])
    with pytest.raises(RadscribeInputError, match="cut.dcm"):
        load_study(p)


def test_folder_of_pictures_names_one(tmp_path):
    from PIL import Image as PILImage

    for i in range(2):
        PILImage.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / f"p{i}.png")
    (tmp_path / "meta.json").write_text("{}")
    with pytest.raises(UnreadableFileError, match="2 other image file.*p0.png"):
        load_study(tmp_path)
    for f in ("p1.png", "meta.json"):
        (tmp_path / f).unlink()
    assert load_study(tmp_path).image.shape == (1, 4, 4)  # a folder with one picture reads it
