"""Knowledge base: finding kinds, anatomy, attributes, synonyms, standard codes and reporting rules."""

from radscribe.knowledge.ontology import (
    ANATOMY, ATTRIBUTE_WORDS, ATTRIBUTES, BODY_REGIONS, CHEST_SYSTEMS, CHEXPERT_LABELS, COMPATIBLE, FINDING_KINDS,
    SIDE_SYNONYMS, SIDES, STUDY_LEVEL_KINDS, Code, anatomy, anatomy_code, kind, kind_code, side_code, size_band,
    unit_code,
)

__all__ = ["ANATOMY", "ATTRIBUTES", "ATTRIBUTE_WORDS", "BODY_REGIONS", "CHEST_SYSTEMS", "CHEXPERT_LABELS", "COMPATIBLE",
           "Code", "FINDING_KINDS", "SIDES", "SIDE_SYNONYMS", "STUDY_LEVEL_KINDS", "anatomy", "anatomy_code", "kind",
           "kind_code", "side_code", "size_band", "unit_code"]
