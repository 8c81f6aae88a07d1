"""How kinds relate: organ systems in reading order, near-synonymous groups, and kinds with special handling.

The structured writer walks :data:`CHEST_SYSTEMS` to order its sentences; the consistency guard uses
:data:`COMPATIBLE` to decide which kinds a sentence may stand for.
"""

from __future__ import annotations

#: Chest organ systems in the order a radiologist reads a study: (system, kinds, the normal sentence a
#: report uses when no kind of the system is present; "" when silence is the normal statement).
CHEST_SYSTEMS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("lungs", ("consolidation", "pneumonia", "opacity", "ground_glass_opacity", "atelectasis", "edema",
               "nodule", "mass", "calcified_granuloma", "emphysema", "fibrosis"),
     "The lungs are clear, without focal consolidation."),
    ("pleura", ("effusion", "pneumothorax", "pleural_thickening"), "No pleural effusion or pneumothorax."),
    ("heart", ("cardiomegaly", "enlarged_cardiomediastinum", "lymphadenopathy", "hiatal_hernia"),
     "The heart size and mediastinal contours are within normal limits."),
    ("aorta", ("tortuous_aorta",), ""),  # "mediastinal contours within normal limits" stays true beside it
    ("bones", ("fracture", "degenerative_change", "calcification"), "No acute bony abnormality."),
    ("devices", ("support_device",), ""),
)

#: Symmetric groups of near-synonymous descriptions of the same radiographic picture.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("opacity", "consolidation", "pneumonia", "ground_glass_opacity", "atelectasis", "edema"),
    ("nodule", "calcified_granuloma", "calcification", "mass"),
    ("cardiomegaly", "enlarged_cardiomediastinum"),
    ("fibrosis", "atelectasis", "opacity"),
    ("effusion", "pleural_thickening"),
)
#: One-way extras: "a nodular density" (nodule) is how references describe a coded density (opacity).
ONE_WAY_SYNONYMS: dict[str, tuple[str, ...]] = {"nodule": ("opacity",)}


def _compatible() -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for group in SYNONYM_GROUPS:
        for k in group:
            out[k] = out.get(k, frozenset({k})) | frozenset(group)
    for k, extra in ONE_WAY_SYNONYMS.items():
        out[k] = out.get(k, frozenset({k})) | frozenset(extra)
    return out


#: kind asserted by a sentence -> present kinds it may stand for (itself included).
COMPATIBLE: dict[str, frozenset[str]] = _compatible()

#: Kinds whose side a report gives unreliably (a device "overlying the left chest, tip in the right atrium").
SIDE_FREE = frozenset({"support_device"})
#: Kinds a writer cannot phrase as a finding sentence (coded terms without a kind of their own).
UNPHRASEABLE = frozenset({"other"})
