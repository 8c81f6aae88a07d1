"""Validation of ``findings.json`` against the shipped JSON Schema."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema


@lru_cache(maxsize=1)
def findings_schema() -> dict[str, Any]:
    return json.loads(resources.files("radscribe.findings").joinpath("findings.schema.json").read_text())


def validate_findings(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``doc`` does not follow the schema."""
    jsonschema.Draft202012Validator(findings_schema()).validate(doc)
