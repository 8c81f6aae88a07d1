"""Lung masses on phantoms: one per site found with side, zone, abuts and size; none without a mass."""

from __future__ import annotations

import numpy as np
import pytest

from radscribe.data.phantom import make_phantom
from radscribe.io.image import Image
from radscribe.knowledge.descriptors import ANATOMY, LIST_ATTRIBUTES, ZONES
from radscribe.models.builtin_detectors import ClassicNoduleDetector, run_lung_lesions, sensitivity_notes
from radscribe.models.lung_mass import DETECTOR, detect_masses
from radscribe.preprocess.lung import segment_lungs
from tests.data.test_phantom import read_series

SHAPE = (100, 256, 256)  # 3.25 mm slices, 1.4 mm pixels
MASSES = [{"site": "pleura", "side": "right", "diameter_mm": 48.0, "margin": "lobulated"},
          {"site": "mediastinum", "side": "left", "diameter_mm": 40.0, "margin": "spiculated"},
          {"site": "hilum", "side": "right", "diameter_mm": 36.0, "margin": "lobulated"},
          {"site": "pleura", "side": "left", "diameter_mm": 26.0, "margin": "lobulated"}]  # < 30 mm: a nodule


@pytest.fixture(scope="module")
def case():
    ph = make_phantom(3, shape=SHAPE, n_nodules=3, masses=MASSES)
    img = ph.to_image()
    return ph, img, run_lung_lesions(img)


def _match(truth, findings):
    c = np.array(truth["center_patient"])
    d = [float(np.linalg.norm(np.array(f.center_patient) - c)) for f in findings]
    return findings[int(np.argmin(d))] if d and min(d) <= truth["long_axis_mm"] / 2 else None


def test_each_site_found_with_side_zone_abuts_and_long_axis(case):
    ph, img, (lungs, masses, nodules, _) = case
    assert len(masses.findings) == len(MASSES) == len(masses.masks)
    for t in ph.truth["masses"]:
        f = _match(t, masses.findings)
        assert f is not None, t
        if t["long_axis_mm"] <= 30:  # against the wall, too large for the nodule rules: reported as a nodule
            assert f.kind == "nodule" and f.attributes["abuts"] == t["abuts"] == ["pleura"]
            assert f.long_axis == pytest.approx(t["long_axis_mm"], rel=0.15) and "size_band" in f.attributes
            continue
        assert f.kind == "mass" and f.detector == DETECTOR and f.side == t["side"]
        assert f.location == f"{t['side']}_lung" and ANATOMY[f.location].side == f.side
        assert f.attributes["zone"] == t["zone"] and f.attributes["zone"] in ZONES
        assert f.attributes["abuts"] == t["abuts"], (t["site"], f.attributes, f.features)
        assert set(f.attributes["abuts"]) <= set(LIST_ATTRIBUTES["abuts"])
        assert f.long_axis == pytest.approx(t["long_axis_mm"], rel=0.10), t
        assert f.short_axis == pytest.approx(t["short_axis_mm"], rel=0.15), t
        assert f.attributes["craniocaudal_mm"] == pytest.approx(t["craniocaudal_mm"], rel=0.2)
        assert f.volume == pytest.approx(t["volume_mm3"], rel=0.2)
        assert f.long_axis > 30 and f.attributes["density"] == "solid" and 0 < f.confidence < 1
    for f, m in zip(masses.findings, masses.masks):
        assert m.shape == img.shape and m.sum() * np.prod(img.spacing) == pytest.approx(f.volume, abs=0.1)
        z0, y0, x0, z1, y1, x1 = f.box_voxel
        assert m[z0:z1, y0:y1, x0:x1].sum() == m.sum()
    # no nodule is reported inside a mass, and the candidates there say why
    union = np.logical_or.reduce(masses.masks)
    assert not any(union[tuple(int(round(v)) for v in n.center_voxel)] for n in nodules.findings)
    assert any(c["reason"] == "inside a mass" for c in nodules.candidates)


def test_no_mass_on_a_mass_free_phantom():
    ph = make_phantom(8, shape=SHAPE, n_nodules=6)
    img = ph.to_image()
    res = detect_masses(img, segment_lungs(img))
    assert res.findings == () and res.masks == ()


def test_detector_contract_and_reduced_sensitivity_notes(case):
    ph, img, _ = case
    det = ClassicNoduleDetector()
    assert "mass" in det.kinds and "nodule" in det.kinds
    d = det.detect(img)
    kinds = [f.kind for f in d.findings]
    assert kinds.count("mass") == sum(t["long_axis_mm"] > 30 for t in ph.truth["masses"]) == 3
    assert set(d.masks) == set(range(len(MASSES)))  # the masses and the wall nodule come first, with masks
    assert "mass_candidates.json" in d.side_files and "mass_detection" in d.timings
    assert sensitivity_notes(img) == ()
    thick = Image(array=np.zeros((10, 8, 8), np.float32), spacing=(7.5, 0.7, 0.7), modality="CT", units="HU",
                  meta={"missing_slices": 2})
    notes = sensitivity_notes(thick)
    assert len(notes) == 2 and "7.5 mm" in notes[0] and "2 missing" in notes[1]
    assert all("reduced sensitivity" in n for n in notes)


def test_real_series_has_no_mass(shared_dataset):
    """CPTAC C3N-00247: the lesion in the right lung is a ~2 cm spiculated nodule (looked at), not a mass."""
    img = read_series(shared_dataset("chest_ct_series") / "dicom")
    res = detect_masses(img, segment_lungs(img))
    assert res.findings == ()
