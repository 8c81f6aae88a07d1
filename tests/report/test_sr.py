"""DICOM SR export: a TID 1500 report that references the source series and holds the measurements."""

import pydicom
import pytest

from radscribe.findings.model import Analysis, Finding, Report, StudyInfo
from radscribe.report.sr import build_sr, series_evidence


@pytest.fixture(scope="module")
def phantom_series(tmp_path_factory):
    from radscribe.data.phantom import make_phantom, write_dicom_series

    out = tmp_path_factory.mktemp("ph") / "dicom"
    ph = make_phantom(1, shape=(24, 128, 128), n_nodules=1)
    write_dicom_series(ph.volume_hu, ph.spacing, ph.origin, out, seed=1)
    return out


def test_sr_references_every_slice_and_carries_measurements(phantom_series, tmp_path):
    evidence = series_evidence(phantom_series, None)
    assert len(evidence) == 24
    nod = Finding(kind="nodule", detector="lung-nodule-classic", confidence=0.8, side="right",
                  location="right_lung", long_axis=9.0, short_axis=7.5, volume=280.0,
                  attributes={"density": "solid"}, box_patient=(-60.0, -10.0, 20.0, -50.0, 0.0, 30.0),
                  center_patient=(-55.0, -5.0, 25.0))
    a = Analysis(study=StudyInfo("dicom", "CT", "chest", (24, 128, 128), (2.5, 0.7, 0.7)), findings=(nod,),
                 report=Report("A nodule.", "Nodule.", "structured"), detectors_run=("lung-nodule-classic",),
                 radscribe_version="0.1.0")
    sr = build_sr(a, evidence)
    path = tmp_path / "report.sr.dcm"
    sr.save_as(path)
    back = pydicom.dcmread(path)
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert back.StudyInstanceUID == evidence[0].StudyInstanceUID
    assert back.PatientName == evidence[0].PatientName
    refs = {i.ReferencedSOPInstanceUID for s in back.CurrentRequestedProcedureEvidenceSequence
            for se in s.ReferencedSeriesSequence for i in se.ReferencedSOPSequence}
    assert refs == {ds.SOPInstanceUID for ds in evidence}
    values = {}

    def walk(items):
        for it in items:
            if it.ValueType == "NUM":
                values[it.ConceptNameCodeSequence[0].CodeMeaning] = (
                    float(it.MeasuredValueSequence[0].NumericValue),
                    it.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue)
            if it.ValueType == "SCOORD3D":
                values["region"] = [float(v) for v in it.GraphicData]
            walk(getattr(it, "ContentSequence", []))

    walk(back.ContentSequence)
    assert values["Long axis"] == (9.0, "mm") and values["Short axis"] == (7.5, "mm")
    assert values["Volume"] == (280.0, "mm3") and values["Detector confidence"] == (0.8, "1")
    assert values["region"][:3] == [-60.0, -10.0, 25.0]  # polygon on the key slice, LPS mm


def test_sr_without_findings_references_the_images(phantom_series, tmp_path):
    evidence = series_evidence(phantom_series, None)
    a = Analysis(study=StudyInfo("dicom", "CT", "chest", (24, 128, 128), (2.5, 0.7, 0.7)), findings=(),
                 report=Report("No nodule.", "No nodule.", "structured"), detectors_run=("lung-nodule-classic",))
    sr = build_sr(a, evidence)
    sr.save_as(tmp_path / "empty.sr.dcm")
    back = pydicom.dcmread(tmp_path / "empty.sr.dcm")
    assert back.Modality == "SR" and back.StudyInstanceUID == evidence[0].StudyInstanceUID
    meanings = []

    def walk(items):
        for it in items:
            if it.ValueType == "CODE":
                meanings.append(it.ConceptCodeSequence[0].CodeMeaning)
            walk(getattr(it, "ContentSequence", []))

    walk(back.ContentSequence)
    assert "No localised finding detected" in meanings
