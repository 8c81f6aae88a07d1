"""Fleischner Society 2017 guidelines for incidentally detected pulmonary nodules.

MacMahon H. et al., Radiology 2017;284:228-243. Applies to incidental nodules in adults aged 35 or
more; not to lung-cancer screening, patients with known cancer or immunosuppression. Size is the
average of long- and short-axis diameters, rounded to the nearest millimetre.
"""

from __future__ import annotations

from dataclasses import dataclass

from radscribe.knowledge.ontology import size_band

APPLICABILITY = (
    "Fleischner 2017 applies to incidental nodules in adults 35 years or older; it does not apply to "
    "lung-cancer screening, patients with known primary cancer, or immunosuppressed patients."
)


@dataclass(frozen=True)
class Recommendation:
    category: str      # e.g. "solid single 6-8 mm"
    low_risk: str
    high_risk: str


_SOLID = {
    ("single", "lt_6mm"): ("No routine follow-up.", "Optional CT at 12 months."),
    ("single", "6_to_8mm"): ("CT at 6-12 months, then consider CT at 18-24 months.",
                             "CT at 6-12 months, then CT at 18-24 months."),
    ("single", "gt_8mm"): ("Consider CT at 3 months, PET/CT, or tissue sampling.",
                           "Consider CT at 3 months, PET/CT, or tissue sampling."),
    ("multiple", "lt_6mm"): ("No routine follow-up.", "Optional CT at 12 months."),
    ("multiple", "6_to_8mm"): ("CT at 3-6 months, then consider CT at 18-24 months.",
                               "CT at 3-6 months, then at 18-24 months."),
    ("multiple", "gt_8mm"): ("CT at 3-6 months, then consider CT at 18-24 months.",
                             "CT at 3-6 months, then at 18-24 months."),
}

_SUBSOLID = {
    ("single", "ground_glass", False): "No routine follow-up.",
    ("single", "ground_glass", True): "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years.",
    ("single", "part_solid", False): "No routine follow-up.",
    ("single", "part_solid", True): ("CT at 3-6 months to confirm persistence; if unchanged and the solid "
                                     "component remains < 6 mm, annual CT for 5 years."),
    ("multiple", None, False): "CT at 3-6 months; if stable, consider CT at 2 and 4 years.",
    ("multiple", None, True): "CT at 3-6 months; subsequent management based on the most suspicious nodule(s).",
}


def recommend(diameter_mm: float, density: str, multiple: bool = False) -> Recommendation | None:
    """Follow-up recommendation for the dominant nodule; None for calcified (benign) nodules."""
    number = "multiple" if multiple else "single"
    if density == "calcified":
        return None
    if density in ("ground_glass", "part_solid"):
        big = round(diameter_mm) >= 6
        key = (number, density if not multiple else None, big)
        text = _SUBSOLID[key]
        cat = f"subsolid ({density.replace('_', '-')}) {number} {'>= 6 mm' if big else '< 6 mm'}"
        return Recommendation(cat, text, text)
    band = size_band(diameter_mm)
    low, high = _SOLID[(number, band)]
    label = {"lt_6mm": "< 6 mm", "6_to_8mm": "6-8 mm", "gt_8mm": "> 8 mm"}[band]
    return Recommendation(f"solid {number} {label}", low, high)
