"""Knowledge base: finding kinds, anatomy, attributes, synonyms and reporting rules."""

from radscribe.knowledge.ontology import (
    ANATOMY, ATTRIBUTES, BODY_REGIONS, CHEXPERT_LABELS, FINDING_KINDS, anatomy, kind, size_band,
)

__all__ = ["ANATOMY", "ATTRIBUTES", "BODY_REGIONS", "CHEXPERT_LABELS", "FINDING_KINDS", "anatomy", "kind", "size_band"]
