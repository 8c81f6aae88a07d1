"""The FHIR export validates against FHIR R5 (fhir.resources) and carries every finding."""

import base64

from fhir.resources.diagnosticreport import DiagnosticReport

from radscribe.findings.model import Analysis, Finding, Report, StudyInfo
from radscribe.report.fhir import to_fhir


def test_diagnostic_report_is_valid_r5_and_complete():
    nod = Finding(kind="nodule", detector="lung-nodule-classic", confidence=0.8, side="left",
                  location="left_upper_lobe", long_axis=9.0, short_axis=7.0, volume=300.0,
                  attributes={"density": "part_solid"}, center_patient=(50.0, -20.0, 100.0))
    neg = Finding(kind="pneumonia", detector="cxr-pneumonia", confidence=0.95, present=False)
    a = Analysis(study=StudyInfo("dicom-series", "CT", "chest", (10, 20, 20), (2.5, 0.7, 0.7)),
                 findings=(nod, neg), report=Report("A nodule.", "Part-solid nodule.", "structured"),
                 detectors_run=("lung-nodule-classic",), radscribe_version="0.1.0")
    doc = to_fhir(a, "# report\n")
    r = DiagnosticReport.model_validate(doc)  # raises on any schema violation
    assert r.status == "preliminary" and r.conclusion == "Part-solid nodule."
    assert [x.reference for x in r.result] == ["#finding-1", "#finding-2"]
    obs = doc["contained"][0]
    comps = {c["code"]["text"]: c for c in obs["component"]}
    assert comps["long axis diameter"]["valueQuantity"] == {"value": 9.0, "unit": "mm", "system": "http://unitsofmeasure.org", "code": "mm"}
    assert comps["laterality"]["valueCodeableConcept"]["coding"][0]["code"] == "7771000"  # SNOMED left
    assert comps["density"]["valueString"] == "part_solid"
    assert comps["confidence type"]["valueString"] == "heuristic_score"
    assert obs["bodySite"]["text"] == "left upper lobe"
    assert doc["contained"][1]["valueCodeableConcept"]["text"] == "absent"
    assert base64.b64decode(doc["presentedForm"][0]["data"]).decode() == "# report\n"


def test_kinds_carry_their_standard_code_and_radscribe_id():
    from radscribe.knowledge.codes import KIND_CODES, LOCAL_URI
    from radscribe.knowledge.kinds import FINDING_KINDS

    findings = tuple(Finding(kind=k, detector="t", confidence=0.5, side="bilateral", location="right_lower_lobe")
                     for k in FINDING_KINDS)
    a = Analysis(study=StudyInfo("dicom", "DX", "chest", (1, 64, 64), None), findings=findings)
    doc = to_fhir(a, "")
    DiagnosticReport.model_validate(doc)
    for f, obs in zip(findings, doc["contained"]):
        codings = obs["code"]["coding"]
        std = KIND_CODES[f.kind]
        assert codings[-1] == {"system": LOCAL_URI, "code": f.kind, "display": FINDING_KINDS[f.kind].label}
        if std is None:
            assert len(codings) == 1
        else:
            assert codings[0] == {"system": std.system, "code": std.value, "display": std.meaning}
        assert obs["bodySite"]["coding"] == [{"system": "http://snomed.info/sct", "code": "90572001",
                                              "display": "Lower lobe of lung"}]
        lat = next(c for c in obs["component"] if c["code"]["text"] == "laterality")
        assert lat["valueCodeableConcept"]["coding"][0] == {"system": "http://snomed.info/sct", "code": "51440002",
                                                            "display": "Right and left"}
    nodule = doc["contained"][0]["code"]["coding"][0]
    assert (nodule["system"], nodule["code"]) == ("http://snomed.info/sct", "27925004")
