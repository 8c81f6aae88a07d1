"""Fleischner Society 2017 (MacMahon et al., Radiology 2017;284:228-243, Table 1) at its size boundaries.

Size = mean of long and short axis, rounded to the nearest millimetre; solid bands < 6 mm, 6-8 mm,
> 8 mm; subsolid bands < 6 mm and >= 6 mm; single vs multiple nodules.
"""

from __future__ import annotations

import pytest

from radscribe.knowledge.fleischner import recommend

SOLID = [  # (mean diameter mm, multiple, category, low-risk advice, high-risk advice)
    (5.4, False, "solid single < 6 mm", "No routine follow-up.", "Optional CT at 12 months."),
    (5.6, False, "solid single 6-8 mm", "CT at 6-12 months, then consider CT at 18-24 months.",
     "CT at 6-12 months, then CT at 18-24 months."),
    (8.4, False, "solid single 6-8 mm", "CT at 6-12 months", "CT at 6-12 months"),
    (8.6, False, "solid single > 8 mm", "Consider CT at 3 months, PET/CT, or tissue sampling.",
     "Consider CT at 3 months, PET/CT, or tissue sampling."),
    (5.4, True, "solid multiple < 6 mm", "No routine follow-up.", "Optional CT at 12 months."),
    (5.6, True, "solid multiple 6-8 mm", "CT at 3-6 months, then consider CT at 18-24 months.",
     "CT at 3-6 months, then at 18-24 months."),
    (8.4, True, "solid multiple 6-8 mm", "CT at 3-6 months", "CT at 3-6 months"),
    (8.6, True, "solid multiple > 8 mm", "CT at 3-6 months, then consider CT at 18-24 months.",
     "CT at 3-6 months, then at 18-24 months."),
]


@pytest.mark.parametrize("d,multiple,category,low,high", SOLID)
def test_solid_nodules_at_the_6_and_8_mm_boundaries(d, multiple, category, low, high):
    r = recommend(d, "solid", multiple=multiple)
    assert r.category == category
    assert r.low_risk.startswith(low) and r.high_risk.startswith(high)


@pytest.mark.parametrize("density", ["ground_glass", "part_solid"])
def test_single_subsolid_nodules_at_6_mm(density):
    small, big = recommend(5.4, density), recommend(5.6, density)
    assert small.low_risk == small.high_risk == "No routine follow-up."
    assert "< 6 mm" in small.category and ">= 6 mm" in big.category and "single" in big.category
    if density == "ground_glass":
        assert big.low_risk.startswith("CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years")
    else:
        assert big.low_risk.startswith("CT at 3-6 months to confirm persistence")
        assert "solid component remains < 6 mm, annual CT for 5 years" in big.low_risk
    # 8 mm is no boundary for subsolid nodules
    assert recommend(8.4, density).low_risk == recommend(8.6, density).low_risk == big.low_risk


@pytest.mark.parametrize("density", ["ground_glass", "part_solid"])
def test_multiple_subsolid_nodules_at_6_mm(density):
    small, big = recommend(5.4, density, multiple=True), recommend(5.6, density, multiple=True)
    assert small.low_risk == "CT at 3-6 months; if stable, consider CT at 2 and 4 years."
    assert big.low_risk.startswith("CT at 3-6 months; subsequent management based on the most suspicious nodule")


def test_calcified_nodules_need_no_fleischner_follow_up():
    assert recommend(12.0, "calcified") is None


@pytest.mark.parametrize("d,expected", [(5.5, "solid single 6-8 mm"), (8.5, "solid single > 8 mm")])
def test_half_millimetres_round_up(d, expected):
    """'rounded to the nearest millimetre': 5.5 -> 6 and 8.5 -> 9. Python's round() rounds half to
    even (round(8.5) == 8); size_band rounds halves up, so 8.5 mm is > 8 mm."""
    assert recommend(d, "solid").category == expected
