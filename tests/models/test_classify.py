"""classify: a finding's organ comes from its ModelSpec, its sided part from the knowledge module's anatomy."""

from __future__ import annotations

import pytest

from radscribe.knowledge.ontology import ANATOMY
from radscribe.models.classify import sided_location
from radscribe.models.registry import get_spec, list_specs


@pytest.mark.parametrize("loc,side,expected", [
    ("lungs", "right", "right_lung"), ("lungs", "left", "left_lung"),
    ("kidneys", "right", "right_kidney"), ("kidneys", "left", "left_kidney"),
    ("adrenal", "left", "left_adrenal"),
    ("brain", "left", "brain"),                 # no sided brain entry: the organ stays
    ("lungs", None, "lungs"), ("lungs", "bilateral", "lungs"), (None, "left", None),
])
def test_sided_location_from_anatomy(loc, side, expected):
    assert sided_location(loc, side) == expected


def test_every_spec_names_its_anatomy():
    for s in list_specs():
        assert s.location in ANATOMY, s.name
        for label in s.finding_labels:
            assert s.location_of(label) in ANATOMY
    brain = get_spec("mri-brain-tumor")
    assert brain.location_of("pituitary_tumour") == "sella" and "pituitary_tumour" in brain.unsided_labels
    assert brain.location_of("glioma") == "cerebral_hemisphere"
    assert get_spec("ct-kidney").location_of("stone") == "kidneys"
