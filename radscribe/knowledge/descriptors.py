"""Descriptors of a finding: anatomy, laterality, attributes and their words (where it is, what it looks like)."""

from __future__ import annotations

import math

from dataclasses import dataclass


@dataclass(frozen=True)
class Anatomy:
    id: str
    label: str
    region: str
    parent: str | None = None
    side: str | None = None
    synonyms: tuple[str, ...] = ()


def _a(id, label, region, parent=None, side=None, synonyms=()):
    return Anatomy(id, label, region, parent, side, tuple(synonyms))


ANATOMY: dict[str, Anatomy] = {a.id: a for a in [
    _a("chest", "chest", "chest"),
    _a("lungs", "lungs", "chest", "chest", synonyms=["lung", "pulmonary", "lung fields", "both lungs"]),
    _a("right_lung", "right lung", "chest", "lungs", "right", ["right hemithorax"]),
    _a("left_lung", "left lung", "chest", "lungs", "left", ["left hemithorax"]),
    _a("right_upper_lobe", "right upper lobe", "chest", "right_lung", "right", ["rul"]),
    _a("right_middle_lobe", "right middle lobe", "chest", "right_lung", "right", ["rml"]),
    _a("right_lower_lobe", "right lower lobe", "chest", "right_lung", "right", ["rll"]),
    _a("left_upper_lobe", "left upper lobe", "chest", "left_lung", "left", ["lul"]),
    _a("left_lower_lobe", "left lower lobe", "chest", "left_lung", "left", ["lll"]),
    _a("lingula", "lingula", "chest", "left_upper_lobe", "left", ["lingular", "lingual segment", "lingular segment"]),
    _a("upper_zone", "upper zone", "chest", "lungs", None, ["apex", "apices", "apical", "upper lobe", "upper lung",
                                                             "upper lobes", "upper lungs", "biapical", "upper zones"]),
    _a("middle_zone", "middle zone", "chest", "lungs", None, ["mid lung", "midlung", "perihilar", "hilar", "middle lobe",
                                                               "mid lungs", "midlungs", "mid zone", "middle zones"]),
    _a("lower_zone", "lower zone", "chest", "lungs", None, ["base", "bases", "basal", "basilar", "lower lobe", "lower lung",
                                                             "lower lobes", "lower lungs", "bibasilar", "bibasal",
                                                             "lung base", "lung bases", "lower zones"]),
    _a("pleura", "pleura", "chest", "chest", synonyms=["pleural space", "costophrenic angle"]),
    _a("bronchi", "bronchi", "chest", "lungs", synonyms=["bronchus", "bronchial tube", "bronchial tubes", "bronchial"]),
    _a("heart", "heart", "chest", "chest", synonyms=["cardiac silhouette", "cardiac"]),
    _a("mediastinum", "mediastinum", "chest", "chest", synonyms=["mediastinal", "hilum", "hila"]),
    _a("abdomen", "abdomen", "abdomen"),
    _a("right_kidney", "right kidney", "abdomen", "abdomen", "right"),
    _a("left_kidney", "left kidney", "abdomen", "abdomen", "left"),
    _a("kidneys", "kidneys", "abdomen", "abdomen", None, ["kidney", "renal"]),
    _a("right_adrenal", "right adrenal gland", "abdomen", "abdomen", "right"),
    _a("left_adrenal", "left adrenal gland", "abdomen", "abdomen", "left"),
    _a("adrenal", "adrenal gland", "abdomen", "abdomen", None, ["adrenal", "adrenals"]),
    _a("brain", "brain", "brain", synonyms=["intracranial", "cerebral"]),
    _a("cerebral_hemisphere", "cerebral hemisphere", "brain", "brain"),
    _a("frontal_lobe", "frontal lobe", "brain", "cerebral_hemisphere"),
    _a("parietal_lobe", "parietal lobe", "brain", "cerebral_hemisphere"),
    _a("temporal_lobe", "temporal lobe", "brain", "cerebral_hemisphere"),
    _a("occipital_lobe", "occipital lobe", "brain", "cerebral_hemisphere"),
    _a("sella", "sellar region", "brain", "brain", synonyms=["sella turcica", "pituitary fossa", "suprasellar"]),
    _a("cerebellum", "cerebellum", "brain", "brain", synonyms=["posterior fossa"]),
]}

SIDES = ("left", "right", "bilateral")
SIDE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "left": ("left", "l", "left-sided", "left sided", "leftward"),
    "right": ("right", "r", "right-sided", "right sided", "rightward"),
    "bilateral": ("bilateral", "bilaterally", "both", "both lungs", "bibasilar", "bibasal", "bilateral lungs"),
}

#: Attribute name -> allowed values, in increasing order where that means something.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "density": ("ground_glass", "part_solid", "solid", "calcified"),
    "margin": ("smooth", "lobulated", "spiculated", "ill_defined"),
    "severity": ("minimal", "mild", "moderate", "severe"),
    "extent": ("small", "moderate", "large"),
    "shape": ("round", "oval", "irregular", "linear"),
    "size_band": ("lt_6mm", "6_to_8mm", "gt_8mm"),
}

#: Attributes whose value is a list: a subset of these values, in this order. ``abuts``: what a lung mass
#: touches - the costal / diaphragmatic pleura, the mediastinum (heart included), the hilum.
LIST_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "abuts": ("pleura", "mediastinum", "hilum"),
}

#: Cranio-caudal zone of a lung (thirds of its extent), the ``zone`` attribute of nodules and masses.
ZONES = ("upper", "middle", "lower")

#: Words for the values of :data:`LIST_ATTRIBUTES` ("abutting the pleura and the mediastinum").
LIST_ATTRIBUTE_WORDS: dict[str, str] = {
    "pleura": "the pleura", "mediastinum": "the mediastinum", "hilum": "the hilum",
}

ATTRIBUTE_WORDS: dict[str, str] = {
    "ground_glass": "ground-glass", "part_solid": "part-solid", "solid": "solid", "calcified": "calcified",
    "smooth": "smoothly marginated", "lobulated": "lobulated", "spiculated": "spiculated",
    "ill_defined": "ill-defined", "minimal": "minimal", "mild": "mild", "moderate": "moderate",
    "severe": "severe", "small": "small", "large": "large", "round": "round", "oval": "oval",
    "irregular": "irregular", "linear": "linear",
}

SEVERITY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "minimal": ("minimal", "trace", "tiny", "slight", "subtle"),
    "mild": ("mild", "mildly", "small", "borderline", "minor"),
    "moderate": ("moderate", "moderately"),
    "severe": ("severe", "severely", "large", "marked", "markedly", "extensive", "massive"),
}

#: Body regions radscribe recognizes.
BODY_REGIONS = ("chest", "abdomen", "brain", "head", "pelvis", "extremity", "unknown")


def anatomy(anatomy_id: str) -> Anatomy:
    try:
        return ANATOMY[anatomy_id]
    except KeyError:
        raise KeyError(f"unknown anatomy {anatomy_id!r}; known: {sorted(ANATOMY)}") from None


def size_band(diameter_mm: float) -> str:
    """Fleischner 2017 size band from the average diameter (mm), rounded to the nearest mm (halves up:
    8.5 mm is 9 mm, > 8 mm; Python's round() would take it to 8)."""
    d = math.floor(diameter_mm + 0.5)
    if d < 6:
        return "lt_6mm"
    if d <= 8:
        return "6_to_8mm"
    return "gt_8mm"
