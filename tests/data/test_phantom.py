"""The synthetic chest CT phantom: content, DICOM geometry read back with pydicom, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage as ndi

from radscribe.cli import main
from radscribe.data.phantom import make_phantom, write_dicom_series
from radscribe.errors import RadscribeInputError
from radscribe.io.image import Image
from radscribe.io.loader import load_study

SMALL = (100, 256, 256)


def read_series(folder: Path) -> Image:
    """Test-side reader (pydicom only): one series sorted along the slice normal -> Image in HU."""
    dss = [pydicom.dcmread(p) for p in sorted(Path(folder).glob("*.dcm"))]
    iop = np.array(dss[0].ImageOrientationPatient, float)
    r, c = iop[:3], iop[3:]
    n = np.cross(r, c)
    dss.sort(key=lambda d: float(np.dot(n, np.array(d.ImagePositionPatient, float))))
    arr = np.stack([d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept)
                    for d in dss])
    p0 = np.array(dss[0].ImagePositionPatient, float)
    sz = float(np.dot(n, np.array(dss[-1].ImagePositionPatient, float) - p0)) / max(len(dss) - 1, 1)
    ps = [float(v) for v in dss[0].PixelSpacing]
    return Image(arr, (sz, ps[0], ps[1]), tuple(p0), np.stack([r, c, n], 1), modality="CT", units="HU")


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(5, shape=SMALL, n_nodules=5)


def test_phantom_content_matches_truth(phantom):
    v = phantom.volume_hu
    assert v.dtype == np.int16 and v.shape == SMALL
    assert phantom.spacing == pytest.approx((3.25, 1.4, 1.4))
    img = phantom.to_image()
    nod = phantom.truth["nodules"]
    assert len(nod) == 5
    for n in nod:
        zyx = np.array(n["center_voxel"])
        # voxel and patient centres agree through the Image geometry
        assert img.voxel_to_patient(zyx) == pytest.approx(n["center_patient"], abs=1e-2)
        assert 3.0 <= n["diameter_mm"] <= 20.0
        assert n["side"] == ("left" if n["center_patient"][0] > 0 else "right")  # LPS +x = left
        z, y, x = np.round(zyx).astype(int)
        centre = v[max(z - 0, 0), y - 1:y + 2, x - 1:x + 2].astype(float).mean()
        if n["density"] in ("solid", "calcified") and n["diameter_mm"] >= 6:
            assert centre > n["hu"] - 150
        if n["density"] == "ground_glass" and n["diameter_mm"] >= 6:
            assert -750 < centre < -300
    # lungs around -850 HU with noise ~30 HU; outside air ~ -1000; body soft tissue ~ 40
    lung_patch = v[50, 120:130, 60:70].astype(float)  # right lung, away from the centre line
    assert abs(np.median(v[50, 0:10, 0:10]) + 1000) < 60
    assert -900 < np.median(lung_patch) < -600
    assert phantom.truth["n_vessel_segments"] > 500
    assert sum(phantom.truth["lung_volume_ml"].values()) == pytest.approx(5000, rel=0.2)


def test_phantom_is_deterministic_and_respects_specs():
    a = make_phantom(11, shape=(40, 96, 96), n_nodules=2)
    b = make_phantom(11, shape=(40, 96, 96), n_nodules=2)
    assert np.array_equal(a.volume_hu, b.volume_hu) and a.truth == b.truth
    c = make_phantom(3, shape=(40, 96, 96), nodules=[{"diameter_mm": 12.0, "density": "calcified", "side": "left"}])
    (n,) = c.truth["nodules"]
    assert (n["diameter_mm"], n["density"], n["side"]) == (12.0, "calcified", "left")
    assert 300 <= n["hu"] <= 600
    with pytest.raises(RadscribeInputError):
        make_phantom(0, shape=(8, 96, 96))


def test_dicom_series_geometry_read_back(phantom, tmp_path):
    paths = write_dicom_series(phantom.volume_hu, phantom.spacing, phantom.origin, tmp_path, seed=5)
    assert len(paths) == SMALL[0]
    dss = [pydicom.dcmread(p) for p in paths]
    d0 = dss[0]
    assert d0.SOPClassUID == pydicom.uid.CTImageStorage and d0.Modality == "CT"
    assert d0.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert d0.BodyPartExamined == "CHEST" and d0.StudyDescription == "CT CHEST PHANTOM"
    assert str(d0.PatientName) == "PHANTOM^SEED5"
    assert [float(v) for v in d0.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert [float(v) for v in d0.PixelSpacing] == pytest.approx([1.4, 1.4])
    assert float(d0.SliceThickness) == pytest.approx(3.25) and float(d0.SpacingBetweenSlices) == pytest.approx(3.25)
    assert float(d0.RescaleSlope) == 1 and float(d0.RescaleIntercept) == -1024
    assert d0.pixel_array.dtype == np.uint16 and d0.BitsAllocated == 16
    assert len({d.SOPInstanceUID for d in dss}) == len(dss)
    assert len({d.SeriesInstanceUID for d in dss}) == 1 and len({d.StudyInstanceUID for d in dss}) == 1
    z = np.array([float(d.ImagePositionPatient[2]) for d in dss])
    assert np.diff(z) == pytest.approx(np.full(len(z) - 1, 3.25), abs=1e-3)
    assert [float(v) for v in d0.ImagePositionPatient] == pytest.approx(list(phantom.origin), abs=1e-3)
    img = read_series(tmp_path)
    assert img.shape == SMALL and img.spacing == pytest.approx(phantom.spacing, abs=1e-4)
    assert np.array_equal(img.array, phantom.volume_hu.astype(np.float32))
    n = phantom.truth["nodules"][0]
    assert img.voxel_to_patient(n["center_voxel"]) == pytest.approx(n["center_patient"], abs=1e-2)


def test_cli_phantom_writes_refuses_and_overwrites(tmp_path, capsys):
    out = tmp_path / "ph"
    args = ["phantom", "--out", str(out), "--seed", "2", "--shape", "24,64,64", "--n-nodules", "1"]
    assert main(args) == 0
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) == 24
    truth = json.loads((out / "truth.json").read_text())
    assert truth["seed"] == 2 and truth["shape"] == [24, 64, 64]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "exists" in err
    assert main(args + ["--overwrite"]) == 0
    assert main(["phantom", "--out", str(tmp_path / "bad"), "--shape", "1,2"]) == 2
    assert not (tmp_path / "bad").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_load_study_reads_the_phantom(phantom, tmp_path):
    write_dicom_series(phantom.volume_hu, phantom.spacing, phantom.origin, tmp_path / "dicom", seed=5)
    img = load_study(tmp_path / "dicom").image
    assert img.shape == SMALL
    assert img.spacing == pytest.approx(phantom.spacing, abs=1e-3)
    assert np.allclose(img.array, phantom.volume_hu, atol=0.5)
    n = phantom.truth["nodules"][0]
    assert img.voxel_to_patient(n["center_voxel"]) == pytest.approx(n["center_patient"], abs=0.05)


def test_masses_leave_the_nodules_and_noise_alone_and_have_truth():
    shape = (48, 128, 128)  # 6.8 mm slices, 2.8 mm pixels: enough for the truth geometry, fast
    plain = make_phantom(4, shape=shape, n_nodules=3)
    specs = [{"site": "pleura", "side": "right", "diameter_mm": 50.0, "margin": "lobulated"},
             {"site": "mediastinum", "side": "left", "diameter_mm": 40.0, "margin": "spiculated"},
             {"site": "hilum", "side": "right", "diameter_mm": 45.0}]
    ph = make_phantom(4, shape=shape, n_nodules=3, masses=specs)
    assert ph.truth["nodules"] == plain.truth["nodules"] and plain.truth["masses"] == []
    assert plain.mass_labels is None and ph.mass_labels.shape == shape
    # away from the masses (and their spicules) every voxel, noise included, is unchanged
    far = ~ndi.binary_dilation(ph.mass_labels > 0, iterations=6)
    assert np.array_equal(ph.volume_hu[far], plain.volume_hu[far])
    expected = {"pleura": ["pleura"], "mediastinum": ["mediastinum"], "hilum": ["mediastinum", "hilum"]}
    img = ph.to_image()
    for k, (m, spec) in enumerate(zip(ph.truth["masses"], specs), start=1):
        assert (m["site"], m["side"]) == (spec["site"], spec["side"])
        assert m["abuts"] == expected[m["site"]], m
        assert m["side"] == ("left" if m["center_patient"][0] > 0 else "right")
        assert img.voxel_to_patient(m["center_voxel"]) == pytest.approx(m["center_patient"], abs=1e-2)
        assert 25.0 <= m["long_axis_mm"] <= spec["diameter_mm"] + 8 and m["short_axis_mm"] <= m["long_axis_mm"]
        body = ph.mass_labels == k
        assert m["volume_mm3"] == pytest.approx(body.sum() * np.prod(ph.spacing), rel=0.15)
        assert -50 <= np.median(ph.volume_hu[body]) <= 80  # solid soft tissue (partial volume on 6.8 mm slices)
    assert ph.truth["masses"][1]["n_spicules"] >= 10
    with pytest.raises(RadscribeInputError):
        make_phantom(0, shape=shape, masses=[{"site": "liver"}])
