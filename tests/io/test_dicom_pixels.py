"""DICOM pixel values through pydicom's LUT functions (Modality LUT Sequence, rescale, VOI LUT
Sequence, MONOCHROME1) and the header-vs-file byte checks made before any pixel is decoded."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.sequence import Sequence

from radscribe.errors import ImageTooLargeError, UnreadableFileError
from radscribe.io.loader import load_study


def _raw(name):
    return pydicom.dcmread(get_testdata_file(name))


def test_modality_lut_sequence_is_honoured():
    """pydicom-data's mlut_18.dcm stores -2048..2047 and maps them through a Modality LUT Sequence
    to 0..65535: the image holds the mapped values, not the stored ones."""
    ds = _raw("mlut_18.dcm")
    assert "ModalityLUTSequence" in ds and "RescaleSlope" not in ds
    stored = ds.pixel_array
    want = apply_modality_lut(stored, ds).astype(np.float32)
    im = load_study(get_testdata_file("mlut_18.dcm")).image
    assert np.array_equal(im.array[0], want)
    assert im.array.min() == 0 and im.array.max() == 65535
    assert stored.min() == -2048 and not np.array_equal(im.array[0], stored.astype(np.float32))


def test_nonlinear_modality_lut_on_a_ct_gives_hu(tmp_path):
    """A CT whose rescale is replaced by a non-linear Modality LUT Sequence typed HU."""
    ds = _raw("CT_small.dcm")
    stored = ds.pixel_array
    first = int(stored.min())
    n = int(stored.max()) - first + 1
    lut = (np.sqrt(np.arange(n)) * 40).astype(np.uint16)  # not a straight line
    item = Dataset()
    item.LUTDescriptor = [n, first, 16]
    item.ModalityLUTType = "HU"
    item.add_new(0x00283006, "US", [int(v) for v in lut])  # LUTData
    del ds.RescaleSlope, ds.RescaleIntercept
    ds.ModalityLUTSequence = Sequence([item])
    p = tmp_path / "lut_ct.dcm"
    ds.save_as(p)
    im = load_study(p).image
    assert im.units == "HU"
    assert np.array_equal(im.array[0], lut[stored - first].astype(np.float32))


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR2_UNCR.dcm", "693_UNCR.dcm"])
def test_rescale_equals_pydicom_modality_lut(name):
    """The float32 in-place rescale gives pydicom's apply_modality_lut values (float64, then float32)."""
    ds = _raw(name)
    want = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    got = load_study(get_testdata_file(name)).image.array[0]
    assert np.allclose(got, want, rtol=1e-6, atol=1e-3)
    if float(ds.get("RescaleSlope", 1)) == 1.0:
        assert np.array_equal(got, want)


def test_voi_lut_sequence_applied_to_projection_image():
    ds = _raw("vlut_04.dcm")
    want = apply_voi_lut(ds.pixel_array, ds).astype(np.float32)
    st = load_study(get_testdata_file("vlut_04.dcm"))
    assert np.array_equal(st.image.array[0], want)
    assert not np.array_equal(want, ds.pixel_array.astype(np.float32))
    assert any("VOI LUT" in n for n in st.notes)


def test_voi_window_never_applied_to_ct():
    """693_UNCR.dcm carries a 40/100 window: the image keeps the full HU range, not 0..255."""
    ds = _raw("693_UNCR.dcm")
    assert ds.WindowCenter is not None
    im = load_study(get_testdata_file("693_UNCR.dcm")).image
    assert im.array.min() < -1000 and im.array.max() > 1000


@pytest.mark.parametrize("side", [128, 512])  # 32 KiB read with the header; 512 KiB deferred
def test_native_pixel_data_shorter_than_the_header_declares(tmp_path, side):
    ds = _raw("CT_small.dcm")
    ds.Rows = ds.Columns = side
    ds.PixelData = np.zeros((side, side), np.int16).tobytes()
    ds.Rows, ds.Columns = 4096, 4096  # 32 MiB declared
    p = tmp_path / "short.dcm"
    ds.save_as(p)
    with pytest.raises(UnreadableFileError, match=r"short.dcm.*declares 33,554,432 bytes.*truncated"):
        load_study(p)


def test_compressed_frames_missing(tmp_path):
    ds = _raw("emri_small_RLE.dcm")
    ds.NumberOfFrames = 1000
    p = tmp_path / "frames.dcm"
    ds.save_as(p)
    with pytest.raises(UnreadableFileError, match=r"declares 1000 frame\(s\).*10 fragment"):
        load_study(p)


def test_decoded_bytes_cap_counts_bytes_per_pixel(tmp_path):
    """8192 x 8192 x 12 voxels pass the voxel cap; as 64-bit floats they pass the byte cap."""
    ds = _raw("CT_small.dcm")
    ds.Rows, ds.Columns, ds.NumberOfFrames = 8192, 8192, 12
    ds.BitsAllocated = 64
    p = tmp_path / "wide.dcm"
    ds.save_as(p)
    with pytest.raises(ImageTooLargeError, match=r"wide.dcm.*GiB.*above the cap"):
        load_study(p)
