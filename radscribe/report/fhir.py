"""FHIR R5 export: one DiagnosticReport with a contained Observation per finding.

The report carries no patient identifiers (radscribe never reads them); a receiving system links it
to its Patient and ImagingStudy. Every code comes from :mod:`radscribe.knowledge.codes`: the finding
kind as its SNOMED CT (or DICOM) concept, followed by radscribe's own kind id in radscribe's code system
(the only coding of a kind without a standard concept); body site and laterality as SNOMED CT; sizes
in UCUM units (mm, mm3).
"""

from __future__ import annotations

import base64
from typing import Any

from radscribe.findings.model import Analysis, Finding
from radscribe.knowledge.descriptors import ANATOMY
from radscribe.knowledge.codes import LOCAL_URI, anatomy_code, kind_code, side_code, unit_code
from radscribe.knowledge.kinds import FINDING_KINDS


def _quantity(value: float, unit: str) -> dict[str, Any]:
    ucum = unit_code(unit)
    return {"value": round(float(value), 3), "unit": unit, "system": ucum.system, "code": ucum.value}


def _kind_concept(kind: str, label: str) -> dict[str, Any]:
    """The kind's standard coding (when it has one) and radscribe's own id, with the label as text."""
    coding = [{"system": LOCAL_URI, "code": kind, "display": label}]
    std = kind_code(kind) if kind in FINDING_KINDS else None
    return {"coding": ([std.fhir()] if std else []) + coding, "text": label}


def _component(text: str, **value: Any) -> dict[str, Any]:
    return {"code": {"text": text}, **value}


def finding_observation(f: Finding, obs_id: str) -> dict[str, Any]:
    k = FINDING_KINDS.get(f.kind)
    label = k.label if k else f.kind.replace("_", " ")
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "preliminary",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "imaging", "display": "Imaging"}]}],
        "code": _kind_concept(f.kind, label),
        "valueCodeableConcept": {"text": "present" if f.present else "absent"},
        "method": {"text": f.detector},
    }
    if f.location in ANATOMY:
        site = anatomy_code(f.location)
        obs["bodySite"] = {"text": ANATOMY[f.location].label, **({"coding": [site[0].fhir()]} if site else {})}
    comps = [_component("confidence", valueQuantity=_quantity(f.confidence, "1")),
             _component("confidence type", valueString=f.confidence_type)]
    unit = "mm" if f.size_unit == "mm" else "px"
    if f.long_axis is not None:
        comps.append(_component("long axis diameter", valueQuantity=_quantity(f.long_axis, unit)))
    if f.short_axis is not None:
        comps.append(_component("short axis diameter", valueQuantity=_quantity(f.short_axis, unit)))
    if f.volume is not None and unit == "mm":
        comps.append(_component("volume", valueQuantity=_quantity(f.volume, "mm3")))
    side = side_code(f.side)
    if side is not None:
        comps.append(_component("laterality", valueCodeableConcept={"coding": [side.fhir()], "text": f.side}))
    for name, value in sorted(f.attributes.items()):
        if isinstance(value, (str, int, float, bool)):
            comps.append(_component(name, valueString=str(value)))
    if f.center_patient is not None:
        comps.append(_component("centre (LPS mm)", valueString=", ".join(f"{v:.1f}" for v in f.center_patient)))
    obs["component"] = comps
    return obs


def to_fhir(analysis: Analysis, report_markdown: str) -> dict[str, Any]:
    """The DiagnosticReport resource (a dict ready for ``json.dumps``)."""
    observations = [finding_observation(f, f"finding-{i + 1}") for i, f in enumerate(analysis.findings)]
    s = analysis.study
    doc: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "status": "preliminary",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD",
                                  "display": "Radiology"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4",
                             "display": "Diagnostic imaging study"}],
                 "text": f"{s.modality} {s.body_region} (radscribe {analysis.radscribe_version})"},
        "contained": observations,
        "result": [{"reference": f"#{o['id']}"} for o in observations],
        "presentedForm": [{"contentType": "text/markdown",
                           "data": base64.b64encode(report_markdown.encode()).decode(),
                           "title": "radscribe report"}],
    }
    if analysis.report is not None:
        doc["conclusion"] = analysis.report.impression
    return doc
