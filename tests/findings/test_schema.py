"""The shipped findings.schema.json is the one generated from the result classes and the knowledge module."""

import json
from importlib import resources

import jsonschema
import pytest

from radscribe.findings.model import CONFIDENCE_TYPES, SCHEMA_VERSION, Analysis, Finding, StudyInfo
from radscribe.findings.schema import build_schema, findings_schema, schema_text, validate_findings, write_schema
from radscribe.knowledge import BODY_REGIONS, FINDING_KINDS, SIDES


def test_shipped_schema_is_current():
    shipped = resources.files("radscribe.findings").joinpath("findings.schema.json").read_text()
    assert shipped == schema_text(), ("findings.schema.json is stale: run "
                                      "python -c 'from radscribe.findings.schema import write_schema; write_schema()'")
    assert findings_schema() == build_schema()
    jsonschema.Draft202012Validator.check_schema(build_schema())


def test_enums_come_from_the_knowledge_module():
    d = build_schema()["$defs"]
    assert d["Finding"]["properties"]["kind"]["enum"] == sorted(FINDING_KINDS)
    assert d["Finding"]["properties"]["side"]["enum"] == [*SIDES, None]
    assert d["StudyInfo"]["properties"]["body_region"]["enum"] == list(BODY_REGIONS)
    assert d["Finding"]["properties"]["confidence_type"]["enum"] == list(CONFIDENCE_TYPES)
    assert "calibrated" in d["Finding"]["properties"]["confidence_type"]["description"]
    assert d["Finding"]["required"] == ["kind", "detector", "confidence", "present"]  # as in schema 1.0
    assert build_schema()["properties"]["schema_version"]["enum"][-1] == SCHEMA_VERSION


def test_every_field_of_the_classes_is_in_the_schema():
    from dataclasses import fields

    d = build_schema()["$defs"]
    assert set(d["Finding"]["properties"]) == {f.name for f in fields(Finding)}
    assert set(d["StudyInfo"]["properties"]) == {f.name for f in fields(StudyInfo)}
    doc = Analysis(study=StudyInfo("png", "OT", "chest", (1, 8, 8), None), findings=()).to_dict()
    assert set(build_schema()["properties"]) == set(doc)


def _doc(**kw):
    f = Finding(kind="pneumonia", detector="cxr", confidence=0.7, side="left", **kw)
    return Analysis(study=StudyInfo("png", "DX", "chest", (1, 64, 64), None), findings=(f,),
                    radscribe_version="0.1.0").to_dict()


def test_confidence_type_defaults_to_heuristic_and_round_trips():
    d = _doc()
    assert d["findings"][0]["confidence_type"] == "heuristic_score" and d["schema_version"] == SCHEMA_VERSION
    validate_findings(d)
    c = _doc(confidence_type="calibrated_probability")
    validate_findings(c)
    assert Analysis.from_dict(c).findings[0].confidence_type == "calibrated_probability"


def test_a_schema_1_0_document_still_validates():
    d = _doc()
    d["schema_version"] = "1.0"
    del d["findings"][0]["confidence_type"]
    validate_findings(d)
    assert Analysis.from_dict(d).findings[0].confidence_type == "heuristic_score"


@pytest.mark.parametrize("mutate", [
    lambda d: d["findings"][0].update(kind="unicorn"),
    lambda d: d["findings"][0].update(confidence_type="probability"),
    lambda d: d["findings"][0].update(size_unit="cm"),
    lambda d: d.update(schema_version="2.0"),
    lambda d: d["study"].update(shape=[0, 64, 64]),
    lambda d: d.update(timings_s={"read": -1.0}),
    lambda d: d["findings"][0].pop("present"),
])
def test_schema_rejects(mutate):
    d = _doc()
    mutate(d)
    with pytest.raises(jsonschema.ValidationError):
        validate_findings(d)


def test_write_schema_to_a_path(tmp_path):
    out = write_schema(tmp_path / "s.json")
    assert json.loads(out.read_text()) == build_schema()
