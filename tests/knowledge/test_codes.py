"""The code table: every kind listed, every code well-formed, DICOM-sourced codes as DICOM defines them."""

import pytest
from pydicom.sr._concepts_dict import concepts

from radscribe.knowledge import codes as kc
from radscribe.knowledge.descriptors import ANATOMY, SIDES
from radscribe.knowledge.kinds import FINDING_KINDS, kind

# Verhoeff check digit (SNOMED CT identifiers end with one; PS3.16 and SNOMED's own docs use it)
_D = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
      [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
      [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
      [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
_P1 = [1, 5, 7, 6, 2, 8, 3, 0, 9, 4]
_P = [list(range(10))]
for _ in range(7):
    _P.append([_P1[x] for x in _P[-1]])


def verhoeff_ok(digits: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][int(ch)]]
    return c == 0


def all_codes():
    out = [("kind", k, c) for k, c in kc.KIND_CODES.items() if c is not None]
    out += [("side", k, c) for k, c in kc.SIDE_CODES.items()]
    out += [("anatomy", k, c) for k, (c, _) in kc.ANATOMY_CODES.items()]
    out += [("attribute", k, c) for k, c in kc.ATTRIBUTE_CODES.items()]
    out += [("procedure", k, c) for k, c in kc.PROCEDURE_CODES.items()]
    out += [("concept", n, getattr(kc, n)) for n in ("LONG_AXIS", "SHORT_AXIS", "VOLUME", "CERTAINTY_OF_FINDING",
                                                    "LESION_DENSITY", "SUMMARY_OF_DETECTIONS",
                                                    "ALL_SUCCEEDED_WITHOUT_FINDINGS", "IMAGING_PROCEDURE")]
    return out


def _ps316() -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for scheme, by_name in concepts.items():
        for entries in by_name.values():
            for value, (meaning, _cids) in entries.items():
                out.setdefault((scheme, value), set()).add(meaning.lower())
    return out


#: SNOMED CT codes taken from outside PS3.16 (each entry's comment in codes.py names the source).
NOT_IN_PS316 = {"95570007", "393566004", "237783006", "95436008", "46621007", "233604007", "87433001", "51615001",
                "8186001", "84089009", "125605004", "298382003", "414564002", "312894000", "840539006"}


def test_every_kind_is_in_the_code_table_and_carries_its_code():
    assert set(kc.KIND_CODES) == set(FINDING_KINDS)
    for k, fk in FINDING_KINDS.items():
        assert fk.code == kc.KIND_CODES[k] == kc.kind_code(k)
    assert kind("nodule").code == kc.Code("27925004", "SCT", "Nodule")
    assert kind("other").code is None


def test_lookups():
    assert kc.kind_code("effusion").fhir() == {"system": "http://snomed.info/sct", "code": "60046008",
                                               "display": "Pleural effusion"}
    with pytest.raises(KeyError, match="unknown finding kind 'nodules'"):
        kc.kind_code("nodules")
    assert [kc.side_code(s).value for s in SIDES] == ["7771000", "24028007", "51440002"]
    assert kc.side_code(None) is None and kc.side_code("front") is None
    assert kc.anatomy_code("left_upper_lobe") == (kc.Code("45653009", "SCT", "Upper lobe of lung"), "left")
    assert kc.anatomy_code("lingula") is None and kc.anatomy_code(None) is None
    assert kc.unit_code("mm3").value == "mm3" and kc.unit_code("px").value == "{pixel}"
    assert kc.unit_code("mm").system == "http://unitsofmeasure.org"
    with pytest.raises(KeyError):
        kc.unit_code("cm")
    assert kc.procedure_code("ct").value == "25045-6" and kc.procedure_code("DX").value == "43468-8"
    assert kc.procedure_code("US") == kc.IMAGING_PROCEDURE and kc.procedure_code(None) == kc.IMAGING_PROCEDURE


def test_anatomy_codes_name_known_anatomy_with_its_side():
    assert set(kc.ANATOMY_CODES) <= set(ANATOMY)
    assert set(ANATOMY) - set(kc.ANATOMY_CODES) == {"lingula"}
    for a, (_code, side) in kc.ANATOMY_CODES.items():
        assert side == ANATOMY[a].side, a


def test_snomed_identifiers_are_well_formed_concept_ids():
    for what, key, c in all_codes():
        if c.scheme == "SCT":
            assert c.value.isdigit() and 6 <= len(c.value) <= 18, (what, key)
            assert c.value[-3:-1] == "00", (what, key)         # partition identifier: an international concept
            assert verhoeff_ok(c.value), (what, key, c.value)  # a typo in a digit fails the check digit


def test_dicom_sourced_codes_match_ps316():
    """Every DCM / LOINC / SCT code not documented as sourced elsewhere is in PS3.16 with that meaning."""
    ps = _ps316()
    outside = set()
    for what, key, c in all_codes():
        if c.scheme == "SCT" and c.value in NOT_IN_PS316:
            assert (c.scheme, c.value) not in ps, f"{key}: now in PS3.16, cite it there"
            outside.add(c.value)
            continue
        assert (c.scheme, c.value) in ps, (what, key, c)
        if not (what == "side" and key == "bilateral"):   # SNOMED's "Right and left" for PS3.16's "Bilateral"
            assert c.meaning.lower() in ps[(c.scheme, c.value)] or any(
                m.startswith(c.meaning.lower()) for m in ps[(c.scheme, c.value)]), (what, key, c)
    assert outside == NOT_IN_PS316


def test_units_are_ucum():
    for unit in ("mm", "mm3", "%", "1"):
        assert ("UCUM", kc.unit_code(unit).value) in _ps316()
