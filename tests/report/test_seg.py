"""DICOM Segmentation export: the SEG written for a brain MR series references it and round-trips the mask."""

import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from radscribe.io.loader import load_study
from radscribe.report.seg import build_seg, read_back, write_seg
from radscribe.report.sr import series_evidence


def write_mr_series(folder, n=5, size=48, spacing=(3.0, 0.9, 0.9), shuffle_files=True):
    """A tiny axial MR series (LPS, z increasing with the instance number); files written in shuffled order."""
    folder.mkdir(parents=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    order = list(range(n))
    if shuffle_files:
        order = order[::-1]
    for k in order:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"im{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.BodyPartExamined, ds.PatientID, ds.PatientName = "MR", "BRAIN", "X1", "Test^Patient"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = \
            "20260101", "120000", "A1", "", "1"
        ds.PatientBirthDate, ds.PatientSex, ds.SeriesNumber, ds.InstanceNumber = "", "O", 1, k + 1
        ds.ImagePositionPatient = [-20.0, -20.0, k * spacing[0]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = spacing[0]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        arr = (np.arange(size * size).reshape(size, size) % 97 * 10 + k).astype(np.uint16)
        ds.PixelData = arr.tobytes()
        ds.save_as(folder / f"im{k}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture(scope="module")
def mr_series(tmp_path_factory):
    return write_mr_series(tmp_path_factory.mktemp("mr") / "series")


def test_seg_round_trip_references_the_source(mr_series, tmp_path):
    image = load_study(mr_series).image
    assert image.shape == (5, 48, 48)
    mask = np.zeros(image.shape, bool)
    mask[1:4, 10:20, 25:35] = True   # slices 1-3, on the patient's left (larger x)
    mask[2, 30:33, 5:8] = True
    evidence = series_evidence(mr_series, None)
    out = write_seg(tmp_path / "report.seg.dcm", {"glioma": mask}, image, evidence)
    ds = pydicom.dcmread(out)
    assert ds.Modality == "SEG" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert ds.StudyInstanceUID == evidence[0].StudyInstanceUID and ds.PatientID == "X1"
    back = read_back(out, evidence)
    assert back["labels"] == ["glioma"] and back["all_sources_referenced"]
    # the frames come back in the order of the evidence; map each to its slice by position
    z = [int(round(float(e.ImagePositionPatient[2]) / 3.0)) for e in evidence]
    got = back["masks"]["glioma"]
    assert got.shape == (5, 48, 48)
    for frame, zi in enumerate(z):
        assert np.array_equal(got[frame], mask[zi])


def test_seg_for_study_uses_the_finding_masks(mr_series, tmp_path):
    from radscribe.findings.model import Finding
    from radscribe.report.seg import write_seg_for_study

    image = load_study(mr_series).image
    m = np.zeros(image.shape, bool)
    m[2, 5:9, 5:9] = True
    fs = [Finding(kind="tumour", detector="x", confidence=0.2, present=False),
          Finding(kind="meningioma", detector="x", confidence=0.9)]
    assert write_seg_for_study(tmp_path / "a.dcm", mr_series, None, image, fs, {}) is None
    out = write_seg_for_study(tmp_path / "b.dcm", mr_series, None, image, fs, {1: m})
    back = read_back(out, series_evidence(mr_series, None))
    assert back["labels"] == ["meningioma"] and int(back["masks"]["meningioma"].sum()) == 16


def test_seg_refuses_a_mismatched_grid(mr_series):
    image = load_study(mr_series).image
    evidence = series_evidence(mr_series, None)
    small = image.with_array(image.array[:, :32, :32])
    with pytest.raises(ValueError, match="does not match"):
        build_seg({"glioma": np.ones(small.shape, bool)}, small, evidence)
    with pytest.raises(ValueError, match="at least one mask"):
        build_seg({}, image, evidence)


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian package dicom3tools) not installed")
def test_seg_passes_dciodvfy(mr_series, tmp_path):
    image = load_study(mr_series).image
    mask = np.zeros(image.shape, bool)
    mask[2, 10:20, 10:20] = True
    out = write_seg(tmp_path / "report.seg.dcm", {"tumour": mask}, image, series_evidence(mr_series, None))
    res = subprocess.run(["dciodvfy", str(out)], capture_output=True, text=True)
    errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
    assert not errors, "\n".join(errors)
