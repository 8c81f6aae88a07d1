"""The vocabulary of radscribe: one import for what :mod:`radscribe.knowledge` defines.

Each concept lives in one module (finding kinds in :mod:`~radscribe.knowledge.kinds`, anatomy, sides
and attributes in :mod:`~radscribe.knowledge.descriptors`, report statements in
:mod:`~radscribe.knowledge.statements`, standard codes in :mod:`~radscribe.knowledge.codes`, organ
systems and synonym groups in :mod:`~radscribe.knowledge.groups`); this module re-exports them so
``from radscribe.knowledge.ontology import FINDING_KINDS`` keeps working.
"""

from __future__ import annotations

from radscribe.knowledge.descriptors import (
    ANATOMY, ATTRIBUTE_WORDS, ATTRIBUTES, BODY_REGIONS, SEVERITY_SYNONYMS, SIDE_SYNONYMS, SIDES, Anatomy, anatomy,
    size_band,
)
from radscribe.knowledge.codes import Code, anatomy_code, kind_code, side_code, unit_code
from radscribe.knowledge.groups import CHEST_SYSTEMS, COMPATIBLE, SIDE_FREE, UNPHRASEABLE
from radscribe.knowledge.kinds import CHEXPERT_LABELS, FINDING_KINDS, STUDY_LEVEL_KINDS, FindingKind, kind
from radscribe.knowledge.statements import NORMAL_STATEMENTS, STATEMENT_RULES, StatementRule

__all__ = [
    "ANATOMY", "ATTRIBUTES", "ATTRIBUTE_WORDS", "Anatomy", "BODY_REGIONS", "CHEST_SYSTEMS", "CHEXPERT_LABELS",
    "COMPATIBLE", "Code", "FINDING_KINDS", "FindingKind", "NORMAL_STATEMENTS", "SEVERITY_SYNONYMS", "SIDES",
    "SIDE_FREE", "SIDE_SYNONYMS", "STATEMENT_RULES", "STUDY_LEVEL_KINDS", "StatementRule", "UNPHRASEABLE",
    "anatomy", "anatomy_code", "kind", "kind_code", "side_code", "size_band", "unit_code",
]
