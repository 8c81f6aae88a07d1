"""The vocabulary's public names, and that the relations between kinds name only known kinds."""

import radscribe.knowledge as knowledge
from radscribe.knowledge import groups, ontology
from radscribe.knowledge.kinds import FINDING_KINDS, STUDY_LEVEL_KINDS


def test_public_names_resolve_to_the_one_definition():
    from radscribe.knowledge import codes, descriptors, kinds, statements

    assert ontology.FINDING_KINDS is kinds.FINDING_KINDS is knowledge.FINDING_KINDS
    assert ontology.ANATOMY is descriptors.ANATOMY and ontology.SIDES is descriptors.SIDES is knowledge.SIDES
    assert ontology.STATEMENT_RULES is statements.STATEMENT_RULES
    assert ontology.kind is kinds.kind and knowledge.anatomy("lungs").label == "lungs"
    assert knowledge.kind_code is codes.kind_code and ontology.size_band(7.4) == "6_to_8mm"
    for name in ontology.__all__:
        assert hasattr(ontology, name), name


def test_groups_and_systems_name_known_kinds():
    known = set(FINDING_KINDS)
    for _system, kinds, _normal in groups.CHEST_SYSTEMS:
        assert set(kinds) <= known
    in_systems = [k for _, ks, _ in groups.CHEST_SYSTEMS for k in ks]
    assert len(in_systems) == len(set(in_systems))   # a kind belongs to one system
    for k, compatible in groups.COMPATIBLE.items():
        assert k in compatible and compatible <= known
    assert groups.COMPATIBLE["opacity"] >= {"consolidation", "atelectasis", "fibrosis"}
    assert "opacity" in groups.COMPATIBLE["nodule"] and "nodule" not in groups.COMPATIBLE["opacity"]  # one way
    assert groups.SIDE_FREE <= known and groups.UNPHRASEABLE <= known
    assert not set(STUDY_LEVEL_KINDS) & known
