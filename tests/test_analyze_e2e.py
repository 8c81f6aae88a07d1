"""End to end through the user's entry point: a phantom DICOM series -> `radscribe analyze` -> every output.

The phantom's nodules are known, so the assertions are about the right answer (position, size, side,
density), not only that files appeared. This checks the plumbing and geometry end to end on a seed whose
two isolated nodules the classical detector finds; its sensitivity over many seeds is measured by
benchmarks/phantom_detection.py (docs/results.md), not here.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pydicom
import pytest
from fhir.resources.diagnosticreport import DiagnosticReport
from PIL import Image as PILImage

from radscribe.cli import main
from radscribe.data.phantom import make_phantom, write_phantom
from radscribe.findings.schema import validate_findings


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    ph = make_phantom(1, shape=(130, 256, 256), nodules=[
        {"diameter_mm": 12.0, "density": "solid", "side": "right", "touches_vessel": False},
        {"diameter_mm": 10.0, "density": "solid", "side": "left", "touches_vessel": False},
    ])
    write_phantom(ph, root / "phantom", seed=1)
    out = root / "analysis"
    assert main(["analyze", str(root / "phantom" / "dicom"), "--out", str(out)]) == 0
    truth = json.loads((root / "phantom" / "truth.json").read_text())
    return out, truth


def test_findings_match_the_phantom_truth(analysed):
    out, truth = analysed
    doc = json.loads((out / "findings.json").read_text())
    validate_findings(doc)
    assert doc["study"]["modality"] == "CT" and doc["study"]["body_region"] == "chest"
    assert "lung-nodule-classic" in doc["detectors_run"]
    found = [f for f in doc["findings"] if f["present"] and f["kind"] == "nodule"]
    for t in truth["nodules"]:
        c = np.array(t["center_patient"])
        d = [np.linalg.norm(np.array(f["center_patient"]) - c) for f in found]
        assert d and min(d) < 2.0, f"nodule {t} not found within 2 mm ({d})"
        f = found[int(np.argmin(d))]
        mean_diam = (f["long_axis"] + f["short_axis"]) / 2
        assert abs(mean_diam - t["diameter_mm"]) < 2.0
        assert f["side"] == t["side"] and f["attributes"]["density"] == "solid"
        # the patient box contains the centre and agrees with the voxel box through the geometry
        x0, y0, z0, x1, y1, z1 = f["box_patient"]
        assert x0 <= c[0] <= x1 and y0 <= c[1] <= y1 and z0 - 1e-6 <= c[2] <= z1 + 1e-6
    assert len(found) <= len(truth["nodules"]) + 1


def test_learned_stage_keeps_both_nodules_with_a_calibrated_confidence(analysed):
    """The false-positive reducer (shipped weights) scores both true nodules above its operating threshold, and
    their confidence is its calibrated probability."""
    from radscribe.models.nodule_fpr import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "config.json").is_file():
        pytest.skip("the lung-nodule-fpr weights are not installed")
    out, truth = analysed
    doc = json.loads((out / "findings.json").read_text())
    found = [f for f in doc["findings"] if f["present"] and f["kind"] == "nodule"]
    for t in truth["nodules"]:
        c = np.array(t["center_patient"])
        f = min(found, key=lambda f: np.linalg.norm(np.array(f["center_patient"]) - c))
        assert f["confidence_type"] == "calibrated_probability"
        assert f["features"]["fpr_probability"] >= f["features"]["fpr_threshold"], f["features"]
        assert f["confidence"] == pytest.approx(f["features"]["fpr_probability"], abs=1e-4)


def test_report_overlays_fhir_and_sr(analysed):
    out, truth = analysed
    report = (out / "report.md").read_text()
    assert "## Findings" in report and "## Impression" in report
    # each nodule's side with its lung or zone ("A 13 mm solid nodule in the right upper zone.")
    assert re.search(r"\bright (lung|upper|middle|lower)", report) and re.search(r"\bleft (lung|upper|middle|lower)", report)
    assert "Fleischner 2017" in report
    doc = json.loads((out / "findings.json").read_text())
    for f in doc["findings"]:
        if f["present"]:
            png = out / f["artifacts"]["overlay"]
            w, h = PILImage.open(png).size
            assert min(w, h) >= 256
    DiagnosticReport.model_validate(json.loads((out / "report.fhir.json").read_text()))
    sr = pydicom.dcmread(out / "report.sr.dcm")
    assert sr.Modality == "SR" and sr.PatientName == "PHANTOM^SEED1"
    cands = json.loads((out / "candidates.json").read_text())
    assert len(cands) >= len([f for f in doc["findings"] if f["present"]])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".analysis.tmp")]


def test_the_sr_is_built_from_the_headers_the_loader_read(tmp_path, monkeypatch):
    """The DICOM SR reuses the analysed series' headers (no second read of the series)."""
    from radscribe.data.phantom import make_phantom, write_dicom_series
    from radscribe.report import sr

    ph = make_phantom(seed=3, shape=(24, 96, 96), n_nodules=1)
    write_dicom_series(ph.volume_hu, ph.spacing, ph.origin, tmp_path / "dicom", seed=3)

    def no_second_read(*a, **k):
        raise AssertionError("series re-read for the SR")

    monkeypatch.setattr(sr, "series_evidence", no_second_read)
    from radscribe.analyze import analyze

    a = analyze(tmp_path / "dicom", tmp_path / "out", models="none")
    assert (tmp_path / "out" / "report.sr.dcm").is_file()
    assert not any("SR" in n and "not written" in n for n in a.study.notes)
