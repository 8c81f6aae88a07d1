"""The JSON Schema of ``findings.json``: generated from the result classes, shipped, and used to validate.

:func:`build_schema` makes it from :class:`~radscribe.findings.model.Analysis` and the classes it holds
(pydantic's ``TypeAdapter(...).json_schema()`` reads their types, bounds and descriptions), with the
vocabularies from :mod:`radscribe.knowledge` (finding kinds, sides, body regions) as enums. The shipped
copy ``findings.schema.json`` must equal it (a test checks); after changing the classes or the
vocabulary, regenerate it with::

    python -c "from radscribe.findings.schema import write_schema; write_schema()"
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import TypeAdapter

from radscribe.findings.model import SCHEMA_VERSION, SCHEMA_VERSIONS, Analysis
from radscribe.knowledge.descriptors import BODY_REGIONS, SIDES
from radscribe.knowledge.kinds import FINDING_KINDS

SCHEMA_FILE = "findings.schema.json"
#: Fields with a default that every document since schema 1.0 has carried: required, as in 1.0.
_ALSO_REQUIRED = {"Finding": ("present",), "StudyInfo": ("recognized_from",)}


def _strip_titles(node: Any) -> Any:
    """pydantic's generated "title" of every property repeats the field name; drop it."""
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def _nullable_enum(prop: dict[str, Any], values: tuple[str, ...]) -> None:
    """Turn ``anyOf: [string, null]`` into an enum of ``values`` or null."""
    prop.pop("anyOf")
    prop["enum"] = [*values, None]


def build_schema() -> dict[str, Any]:
    """The findings.json schema (JSON Schema 2020-12) as a dict."""
    raw = _strip_titles(TypeAdapter(Analysis).json_schema(by_alias=True))
    defs = raw.pop("$defs")
    for name, d in defs.items():
        d["additionalProperties"] = False
        d["required"] = sorted(set(d.get("required", ())) | set(_ALSO_REQUIRED.get(name, ())),
                               key=list(d["properties"]).index)
    finding, study = defs["Finding"]["properties"], defs["StudyInfo"]["properties"]
    finding["kind"]["enum"] = sorted(FINDING_KINDS)
    _nullable_enum(finding["side"], SIDES)
    study["body_region"]["enum"] = list(BODY_REGIONS)
    props = {"schema_version": {"enum": list(SCHEMA_VERSIONS),
                                "description": f"{SCHEMA_VERSION} is written; earlier versions stay valid"},
             "radscribe_version": raw["properties"].pop("radscribe_version"),
             **raw["properties"]}
    order = ["schema_version", "radscribe_version", "study", "detectors_run", "findings", "report", "timings_s"]
    assert set(order) == set(props), sorted(props)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://radscribe.org/schema/findings/{SCHEMA_VERSION}",
        "title": "radscribe findings.json",
        "description": " ".join(raw["description"].split()),
        "type": "object",
        "required": order,
        "additionalProperties": False,
        "properties": {k: props[k] for k in order},
        "$defs": defs,
    }


def schema_text() -> str:
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: str | Path | None = None) -> Path:
    """Write the generated schema (default: the shipped copy inside the package)."""
    target = Path(path) if path is not None else Path(str(resources.files("radscribe.findings").joinpath(SCHEMA_FILE)))
    target.write_text(schema_text())
    findings_schema.cache_clear()
    return target


@lru_cache(maxsize=1)
def findings_schema() -> dict[str, Any]:
    """The shipped schema."""
    return json.loads(resources.files("radscribe.findings").joinpath(SCHEMA_FILE).read_text())


def validate_findings(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``doc`` does not follow the schema."""
    jsonschema.Draft202012Validator(findings_schema()).validate(doc)
