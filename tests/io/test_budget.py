"""Memory bounded by what a header declares, for every reader: a small file whose header declares
a large volume fails from the header and the file size (or a streamed count of its compressed
bytes) before any voxel array is allocated; the byte cap counts bytes per voxel."""

from __future__ import annotations

import bz2
import gzip
import struct
import time
import zlib

import nibabel as nib
import numpy as np
import pytest

from radscribe.errors import ImageTooLargeError, UnreadableFileError
from radscribe.io.budget import MAX_DECODED_BYTES, check_decoded_bytes, require_stream_bytes, zlib_chunks
from radscribe.io.loader import load_study

#: 1024 x 1024 x 300 float64: 2.34 GiB stored + 1.17 GiB float32, under the 4 GiB cap.
UNDER_CAP = (1024, 1024, 300)


def _nifti_header(shape, dtype=np.float64) -> bytes:
    h = nib.Nifti1Header()
    h.set_data_shape(shape)
    h.set_data_dtype(dtype)
    h.set_zooms((1.0,) * len(shape))
    return h.binaryblock + b"\0" * 4  # 348-byte header + empty extension flag; voxels start at 352


def _fast(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def test_byte_cap_counts_bytes_not_voxels():
    n = 2048 * 2048 * 200  # under the voxel cap
    assert check_decoded_bytes(n, 1, "x", "uint8") == n  # 0.78 GiB stored + 3.1 GiB float32: fits
    with pytest.raises(ImageTooLargeError, match=r"x declares .* float64.*GiB.*above the cap of 4.00 GiB"):
        check_decoded_bytes(n, 8, "x", "2048x2048x200 float64")
    assert MAX_DECODED_BYTES == 4 * 1024**3


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_header_declaring_gigabytes_fails_fast(tmp_path, suffix):
    p = tmp_path / f"bomb{suffix}"
    data = _nifti_header(UNDER_CAP) + b"\0" * 4096
    p.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    assert p.stat().st_size < 5000

    def load():
        with pytest.raises(UnreadableFileError, match=r"bomb.*2,516,582,400 bytes.*truncated or its header is wrong"):
            load_study(p)

    assert _fast(load) < 2.0  # was ~21 s and 2.5 GB resident before the check


def test_nifti_above_the_byte_cap(tmp_path):
    p = tmp_path / "huge64.nii"
    p.write_bytes(_nifti_header((2048, 2048, 200)) + b"\0" * 64)  # voxel count under the cap, bytes over
    with pytest.raises(ImageTooLargeError, match=r"huge64.nii declares 2048x2048x200 float64.*above the cap"):
        load_study(p)


def test_nifti_gz_with_the_declared_bytes_still_reads(tmp_path):
    a = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    p = tmp_path / "ok.nii.gz"
    nib.save(nib.Nifti1Image(a, np.eye(4)), p)
    im = load_study(p).image
    assert np.array_equal(im.array, a.transpose(2, 1, 0).astype(np.float32))


def _mhd(tmp_path, name, extra, data_name, data: bytes):
    (tmp_path / data_name).write_bytes(data)
    hdr = (f"ObjectType = Image\nNDims = 3\nDimSize = {' '.join(map(str, UNDER_CAP))}\nElementType = MET_DOUBLE\n"
           f"ElementSpacing = 1 1 1\n{extra}ElementDataFile = {data_name}\n")
    p = tmp_path / name
    p.write_text(hdr)
    return p


def test_metaimage_raw_shorter_than_declared(tmp_path):
    p = _mhd(tmp_path, "short.mhd", "", "short.raw", b"\0" * 1000)
    with pytest.raises(UnreadableFileError, match=r"short.mhd \(data file short.raw\).*2,516,582,400 bytes.*holds 1,000"):
        load_study(p)


def test_metaimage_zraw_streamed(tmp_path):
    p = _mhd(tmp_path, "packed.mhd", "CompressedData = True\n", "packed.zraw", zlib.compress(b"\0" * 100_000))

    def load():
        with pytest.raises(UnreadableFileError, match=r"packed.mhd.*compressed stream holds 100,000"):
            load_study(p)

    assert _fast(load) < 2.0


def test_mha_local_data_truncated(tmp_path):
    p = tmp_path / "local.mha"
    p.write_bytes((f"ObjectType = Image\nNDims = 3\nDimSize = {' '.join(map(str, UNDER_CAP))}\n"
                   "ElementType = MET_DOUBLE\nElementDataFile = LOCAL\n").encode() + b"\0" * 512)
    with pytest.raises(UnreadableFileError, match=r"local.mha.*holds 512"):
        load_study(p)


@pytest.mark.parametrize("encoding,pack", [("raw", lambda b: b), ("gzip", gzip.compress), ("bzip2", bz2.compress)])
def test_nrrd_attached_data_short(tmp_path, encoding, pack):
    p = tmp_path / f"vol_{encoding}.nrrd"
    hdr = (f"NRRD0004\ntype: double\ndimension: 3\nsizes: {' '.join(map(str, UNDER_CAP))}\n"
           f"encoding: {encoding}\nendian: little\n\n")
    p.write_bytes(hdr.encode() + pack(b"\0" * 2000))
    with pytest.raises(UnreadableFileError, match=rf"vol_{encoding}.nrrd.*(holds 2,000|stream holds 2,000)"):
        load_study(p)


def test_nrrd_small_and_complete_reads(tmp_path):
    a = np.arange(24, dtype="<f8")
    p = tmp_path / "small.nrrd"
    hdr = "NRRD0004\ntype: double\ndimension: 3\nsizes: 2 3 4\nencoding: gzip\nendian: little\n\n"
    p.write_bytes(hdr.encode() + gzip.compress(a.tobytes()))
    im = load_study(p).image
    assert im.shape == (4, 3, 2) and np.array_equal(im.array.ravel(), a.astype(np.float32))


def _png(w, h, idat: bytes) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)  # 16-bit RGB: 6 bytes a pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_png_declaring_more_than_its_data(tmp_path):
    """(Above ~179 M pixels Pillow's own DecompressionBombError answers first: test_raster.py.)"""
    p = tmp_path / "thin.png"
    p.write_bytes(_png(9000, 9000, zlib.compress(b"\0" * 50_000)))
    with pytest.raises(UnreadableFileError, match=r"thin.png.*486,000,000 bytes.*stream holds 50,000"):
        load_study(p)


def test_zlib_chunks_are_bounded(tmp_path):
    p = tmp_path / "z.bin"
    p.write_bytes(zlib.compress(b"\0" * (40 * 1024**2)))  # 40 MiB of zeros in ~40 KiB
    with open(p, "rb") as fh:
        sizes = [len(c) for c in zlib_chunks(fh)]
    assert sum(sizes) == 40 * 1024**2 and max(sizes) <= 16 * 1024**2
    with open(p, "rb") as fh, pytest.raises(UnreadableFileError, match="holds 41,943,040"):
        require_stream_bytes(zlib_chunks(fh), 41 * 1024**2, "z.bin")
