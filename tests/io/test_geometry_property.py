"""Property test: any orientation, spacing, origin and file order -> the same voxel-to-patient mapping
as the DICOM headers state (ImagePositionPatient of every slice, PixelSpacing, orientation)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from radscribe.errors import GeometryError
from radscribe.io.loader import load_study


def _rotation(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def write_series(folder: Path, rot, spacing, origin, n, rows, cols, order, slope=1.0, intercept=-1024.0,
                 positions=None):
    """Write ``n`` CT slices; slice k holds stored value 100*k + row + col. Returns the IPPs by slice k."""
    from pydicom.dataset import FileDataset

    series = generate_uid()
    r, c, nrm = rot[:, 0], rot[:, 1], rot[:, 2]
    dz, dy, dx = spacing
    ipps = positions if positions is not None else [np.asarray(origin) + k * dz * nrm for k in range(n)]
    for file_no, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = "CT", series, file_no + 1
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in list(r) + list(c)]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in ipps[k]]
        ds.PixelSpacing = [f"{dy:.6f}", f"{dx:.6f}"]
        ds.SliceThickness = f"{dz:.6f}"
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope}", f"{intercept}"
        yy, xx = np.mgrid[:rows, :cols]
        ds.PixelData = (100 * k + yy + xx).astype("<u2").tobytes()
        ds.save_as(folder / f"f{file_no:03d}.dcm", enforce_file_format=True)
    return ipps


quat = st.tuples(*[st.floats(-1, 1) for _ in range(4)]).filter(lambda q: np.linalg.norm(q) > 0.2)


@settings(max_examples=25, deadline=None)
@given(q=quat, spacing=st.tuples(st.floats(0.5, 5), st.floats(0.3, 2), st.floats(0.3, 2)),
       origin=st.tuples(*[st.floats(-300, 300) for _ in range(3)]), n=st.integers(2, 6),
       rows=st.integers(3, 7), cols=st.integers(3, 7), seed=st.integers(0, 1000))
def test_any_geometry_round_trips(q, spacing, origin, n, rows, cols, seed):
    rot = _rotation(q)
    order = list(np.random.default_rng(seed).permutation(n))
    folder = Path(tempfile.mkdtemp())
    try:
        ipps = write_series(folder, rot, spacing, origin, n, rows, cols, order)
        im = load_study(folder).image
    finally:
        shutil.rmtree(folder)
    assert im.shape == (n, rows, cols)
    assert im.spacing == pytest.approx(spacing, rel=1e-5)
    # the slice axis comes from the stored positions: 6 decimals (5e-7 mm) over a 0.5 mm step leave up to
    # ~2e-6 in the third column (hypothesis found q=(0.625, 0.5625, 0.668, 0.625), dz=0.5: 1.7e-6)
    assert np.allclose(im.direction, rot, atol=5e-6)
    for k in range(n):
        assert np.allclose(im.voxel_to_patient([k, 0, 0]), ipps[k], atol=1e-4)
        # HU: stored 100k + row + col, intercept -1024.
        assert im.array[k, rows - 1, cols - 1] == 100 * k + rows + cols - 2 - 1024
    p = np.array([n - 1, rows - 1, cols - 1], float)
    want = ipps[-1] + (rows - 1) * spacing[1] * rot[:, 1] + (cols - 1) * spacing[2] * rot[:, 0]
    assert np.allclose(im.voxel_to_patient(p), want, atol=1e-4)


def test_two_missing_slices_are_interpolated(tmp_path):
    rot = np.eye(3)
    pos = [np.array([0.0, 0.0, z]) for z in (0, 2, 4, 10, 12)]  # 6 and 8 missing
    write_series(tmp_path, rot, (2.0, 1.0, 1.0), (0, 0, 0), 5, 4, 4, [0, 1, 2, 3, 4], positions=pos)
    st_ = load_study(tmp_path)
    assert st_.image.shape == (7, 4, 4) and st_.image.meta["missing_slices"] == 2
    assert any("2 slice(s) missing between positions 4.0 and 10.0" in n for n in st_.notes)
    a = st_.image.array
    assert np.allclose(a[3], a[2] + (a[5] - a[2]) / 3) and np.allclose(a[4], a[2] + 2 * (a[5] - a[2]) / 3)
    assert np.allclose(st_.image.voxel_to_patient([6, 0, 0]), [0, 0, 12])


def test_gantry_tilt_uses_true_stacking_direction(tmp_path):
    rot = np.eye(3)
    pos = [np.array([0.0, 0.5 * k, 2.0 * k]) for k in range(4)]  # 14 degrees off the normal
    write_series(tmp_path, rot, (2.0, 1.0, 1.0), (0, 0, 0), 4, 4, 4, [3, 1, 0, 2], positions=pos)
    st_ = load_study(tmp_path)
    assert any("gantry tilt" in n for n in st_.notes)
    for k in range(4):
        assert np.allclose(st_.image.voxel_to_patient([k, 0, 0]), pos[k])


def test_duplicate_positions_keep_first(tmp_path):
    pos = [np.array([0.0, 0.0, z]) for z in (0, 2, 2, 4)]
    write_series(tmp_path, np.eye(3), (2.0, 1.0, 1.0), (0, 0, 0), 4, 4, 4, [0, 1, 2, 3], positions=pos)
    st_ = load_study(tmp_path)
    assert st_.image.shape == (3, 4, 4) and any("share a position" in n for n in st_.notes)


def test_half_step_is_a_geometry_error(tmp_path):
    pos = [np.array([0.0, 0.0, z]) for z in (0, 2, 4, 5, 7)]
    write_series(tmp_path, np.eye(3), (2.0, 1.0, 1.0), (0, 0, 0), 5, 4, 4, list(range(5)), positions=pos)
    with pytest.raises(GeometryError, match="inconsistent"):
        load_study(tmp_path)
