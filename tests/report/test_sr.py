"""DICOM SR export: a TID 1500 report that references the source series and holds the measurements.

The dciodvfy tests need Debian's dicom3tools (``apt-get install dicom3tools``) and skip without it.
"""

import shutil
import subprocess

import pydicom
import pytest

from radscribe.knowledge.codes import KIND_CODES, LOCAL_SCHEME
from radscribe.knowledge.kinds import FINDING_KINDS
from radscribe.report.sr import TYPE2_COPIED

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
    assert values["Volume"] == (280.0, "mm3") and values["Certainty of Finding"] == (80.0, "%")
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
    assert "All algorithms succeeded; without findings" in meanings


def _codes(ds):
    """Every (scheme, value, meaning) in the SR content tree."""
    out = []

    def walk(items):
        for it in items:
            for seq in ("ConceptNameCodeSequence", "ConceptCodeSequence", "MeasurementUnitsCodeSequence"):
                for c in getattr(it, seq, []):
                    out.append((c.CodingSchemeDesignator, c.CodeValue, c.CodeMeaning))
            for mv in getattr(it, "MeasuredValueSequence", []):
                for c in mv.MeasurementUnitsCodeSequence:
                    out.append((c.CodingSchemeDesignator, c.CodeValue, c.CodeMeaning))
            walk(getattr(it, "ContentSequence", []))

    walk(ds.ContentSequence)
    return out


def _dciodvfy(path):
    """(errors, warnings) lines of dciodvfy on one file."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (res.stdout + res.stderr).splitlines()
    return [x for x in lines if x.startswith("Error")], [x for x in lines if x.startswith("Warning")]


def _all_coded_kinds(box):
    sides = ("left", "right", "bilateral", None)
    places = ("right_upper_lobe", "left_lung", "lower_zone", None)
    dens = ("solid", "part_solid", "ground_glass", "calcified", None)
    return tuple(Finding(kind=k, detector="test", confidence=0.5 + i / 100, side=sides[i % 4], location=places[i % 4],
                         long_axis=5.0 + i, short_axis=4.0, volume=50.0,
                         attributes={"density": dens[i % 5]} if dens[i % 5] else {}, **box)
                 for i, k in enumerate(k for k, c in KIND_CODES.items() if c is not None))


BOX = dict(box_patient=(-60.0, -10.0, 20.0, -50.0, 0.0, 30.0), center_patient=(-55.0, -5.0, 25.0))
STUDY = StudyInfo("dicom", "CT", "chest", (24, 128, 128), (2.5, 0.7, 0.7))


def test_coded_kinds_use_standard_codes_and_pass_dciodvfy(phantom_series, tmp_path):
    findings = _all_coded_kinds(BOX)
    assert len(findings) == sum(c is not None for c in KIND_CODES.values())
    sr = build_sr(Analysis(study=STUDY, findings=findings, detectors_run=("test",)),
                  series_evidence(phantom_series, None))
    path = tmp_path / "coded.sr.dcm"
    sr.save_as(path)
    used = _codes(pydicom.dcmread(path))
    assert not [c for c in used if c[0] == LOCAL_SCHEME]
    for kind, code in KIND_CODES.items():
        if code is not None:
            assert (code.scheme, code.value, code.meaning) in used, kind
    assert ("UCUM", "mm", "mm") in used and ("SCT", "51440002", "Right and left") in used
    errors, warnings = _dciodvfy(path)
    assert errors == []
    assert not [w for w in warnings if LOCAL_SCHEME in w or "Coding Scheme" in w]


def test_uncoded_kind_falls_back_to_the_local_scheme_only_for_itself(phantom_series, tmp_path):
    uncoded = next(k for k, c in KIND_CODES.items() if c is None and k != "other")
    fs = (Finding(kind="nodule", detector="t", confidence=0.7, **BOX),
          Finding(kind=uncoded, detector="t", confidence=0.6, **BOX))
    path = tmp_path / "mixed.sr.dcm"
    build_sr(Analysis(study=STUDY, findings=fs), series_evidence(phantom_series, None)).save_as(path)
    local = [c for c in _codes(pydicom.dcmread(path)) if c[0] == LOCAL_SCHEME]
    assert local == [(LOCAL_SCHEME, f"RSK-{uncoded}"[:16], FINDING_KINDS[uncoded].label)]
    errors, warnings = _dciodvfy(path)
    assert errors == [] and len([w for w in warnings if LOCAL_SCHEME in w]) == 1


def test_study_without_findings_passes_dciodvfy(phantom_series, tmp_path):
    path = tmp_path / "none.sr.dcm"
    build_sr(Analysis(study=StudyInfo("dicom", "DX", "chest", (1, 128, 128), None), findings=(),
                      detectors_run=("cxr",)), series_evidence(phantom_series, None)).save_as(path)
    back = pydicom.dcmread(path)
    used = _codes(back)
    assert ("LN", "43468-8", "XR unspecified body region") in used   # procedure reported, not a local code
    assert ("DCM", "111241", "All algorithms succeeded; without findings") in used
    assert not [c for c in used if c[0] == LOCAL_SCHEME]
    errors, warnings = _dciodvfy(path)
    assert errors == [] and not [w for w in warnings if LOCAL_SCHEME in w]


def test_deidentified_series_without_type2_attributes_still_gives_an_sr(phantom_series, tmp_path):
    """A de-identification tool deleted the patient/study type 2 attributes: they come out present and empty."""
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    for f in sorted(phantom_series.iterdir()):
        ds = pydicom.dcmread(f)
        for k in TYPE2_COPIED:
            if k in ds:
                delattr(ds, k)
        ds.save_as(stripped / f.name)
    evidence = series_evidence(stripped, None)
    assert not any(k in evidence[0] for k in TYPE2_COPIED)
    nod = Finding(kind="nodule", detector="t", confidence=0.9, side="left", location="left_upper_lobe", **BOX)
    path = tmp_path / "deid.sr.dcm"
    build_sr(Analysis(study=STUDY, findings=(nod,)), evidence).save_as(path)
    assert not any(k in evidence[0] for k in TYPE2_COPIED)  # the caller's headers are not changed
    back = pydicom.dcmread(path)
    for k in TYPE2_COPIED:
        assert k in back and not back[k].value, k
    assert back.StudyInstanceUID == evidence[0].StudyInstanceUID
    errors, _ = _dciodvfy(path)
    assert errors == []
