"""Finding / Analysis JSON round trip and the shipped JSON Schema."""

import jsonschema
import pytest

from radscribe.findings.model import Analysis, Finding, Report, StudyInfo
from radscribe.findings.schema import validate_findings


def _analysis(**finding_kw):
    f = Finding(kind="nodule", detector="lung-nodule-classic", confidence=0.81234567, side="right",
                location="right_upper_lobe", long_axis=7.25, short_axis=6.0, volume=160.0,
                attributes={"density": "solid"}, box_voxel=(10, 20, 30, 13, 30, 41),
                box_patient=(1, 2, 3, 4, 5, 6), center_voxel=(11.5, 25, 35.5),
                center_patient=(2.5, 3.5, 4.5), features={"sphericity": 0.9}, **finding_kw)
    study = StudyInfo(source_format="dicom-series", modality="CT", body_region="chest", shape=(130, 512, 512),
                      spacing_mm=(2.5, 0.7, 0.7), series_uid_hash="abcdef012345", notes=("picked series 1",))
    return Analysis(study=study, findings=(f,), report=Report("A nodule.", "Nodule.", "structured"),
                    detectors_run=("lung-nodule-classic",), timings={"read": 0.5}, radscribe_version="0.1.0")


def test_round_trip_keeps_every_field():
    a = _analysis()
    d = a.to_dict()
    b = Analysis.from_dict(d)
    assert b.findings[0].box_voxel == (10, 20, 30, 13, 30, 41)
    assert b.findings[0].side == "right" and b.findings[0].attributes == {"density": "solid"}
    assert b.study.spacing_mm == (2.5, 0.7, 0.7) and b.study.shape == (130, 512, 512)
    assert b.report.writer == "structured"
    assert b.to_dict() == d


def test_schema_accepts_a_real_document_and_rounds_numbers():
    d = _analysis().to_dict()
    validate_findings(d)
    assert d["findings"][0]["confidence"] == 0.8123


@pytest.mark.parametrize("mutate", [
    lambda d: d["findings"][0].update(side="up"),
    lambda d: d["findings"][0].update(confidence=1.5),
    lambda d: d["findings"][0].update(box_voxel=[1, 2, 3]),
    lambda d: d["study"].update(body_region="moon"),
    lambda d: d["study"].update(patient_name="DOE^JOHN"),  # identifiers are not allowed in study
    lambda d: d.pop("report"),
])
def test_schema_rejects_malformed_documents(mutate):
    d = _analysis().to_dict()
    mutate(d)
    with pytest.raises(jsonschema.ValidationError):
        validate_findings(d)
