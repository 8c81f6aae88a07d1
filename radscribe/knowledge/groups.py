"""How kinds relate: organ systems in reading order, near-synonymous groups, and kinds with special handling.

The structured writer walks :data:`CHEST_SYSTEMS` to order its sentences; the consistency guard uses
:data:`COMPATIBLE` to decide which kinds a sentence may stand for.
"""

from __future__ import annotations

#: Chest organ systems in the order a radiologist reads a study: (system, kinds, the normal sentence a
#: report uses when no kind of the system is present; "" when silence is the normal statement).
CHEST_SYSTEMS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("lungs", ("consolidation", "pneumonia", "opacity", "ground_glass_opacity", "atelectasis", "edema",
               "nodule", "mass", "calcified_granuloma", "emphysema", "fibrosis", "increased_markings"),
     "The lungs are clear, without focal consolidation."),
    ("pleura", ("effusion", "pneumothorax", "pleural_thickening"), "No pleural effusion or pneumothorax."),
    ("heart", ("cardiomegaly", "enlarged_cardiomediastinum", "hilar_enlargement", "lymphadenopathy", "hiatal_hernia"),
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
    ("hilar_enlargement", "lymphadenopathy"),
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


# --- reading a whole report (the guard's second pass, :mod:`radscribe.report.coherence`) -------------------

#: A denied kind -> the present kinds the denial contradicts (itself included). Narrower than
#: :data:`COMPATIBLE`: "no pleural effusion" beside pleural thickening, or "no consolidation" beside an
#: opacity that may be atelectasis, are what radiologists write; "no airspace opacity" beside a
#: consolidation is not. Kinds not listed deny only themselves.
DENIES: dict[str, frozenset[str]] = {
    "opacity": frozenset({"opacity", "consolidation", "pneumonia", "ground_glass_opacity"}),
    "consolidation": frozenset({"consolidation", "pneumonia"}),
    "pneumonia": frozenset({"pneumonia", "consolidation"}),
    "ground_glass_opacity": frozenset({"ground_glass_opacity"}),
    "nodule": frozenset({"nodule", "mass"}),
    "hilar_enlargement": frozenset({"hilar_enlargement", "lymphadenopathy"}),
    "lymphadenopathy": frozenset({"lymphadenopathy", "hilar_enlargement"}),
    "cardiomegaly": frozenset({"cardiomegaly"}),
}
#: What "the lungs are clear" denies: every finding of the lung parenchyma a reader sees on the film
#: (emphysema, granulomas and calcifications are written beside "clear lungs" and stay).
CLEAR_LUNGS_DENY = frozenset({"opacity", "consolidation", "pneumonia", "ground_glass_opacity", "edema", "nodule",
                              "mass", "atelectasis", "fibrosis", "increased_markings"})
#: What "no acute cardiopulmonary abnormality" denies (chronic findings - cardiomegaly, scarring,
#: degenerative change, a tortuous aorta - are written beside it).
NO_ACUTE_DENY = frozenset({"consolidation", "pneumonia", "opacity", "ground_glass_opacity", "edema", "effusion",
                           "pneumothorax", "mass"})
#: Kinds a "normal chest" statement leaves standing (devices are not abnormalities).
NORMAL_STUDY_ALLOWS = frozenset({"support_device"})

#: Order of importance for the impression, most important first (a mass before nodules, acute before
#: chronic); kinds not listed follow in their reading order.
IMPRESSION_ORDER: tuple[str, ...] = (
    "mass", "pneumothorax", "tumour", "glioma", "meningioma", "pituitary_tumour", "haemorrhage", "adrenal_mass",
    "consolidation", "pneumonia", "edema", "effusion", "nodule", "ground_glass_opacity", "opacity",
    "enlarged_cardiomediastinum", "hilar_enlargement", "lymphadenopathy", "cardiomegaly", "pericardial_effusion",
    "fracture", "atelectasis", "fibrosis", "emphysema", "pleural_thickening", "subcutaneous_emphysema",
    "hiatal_hernia", "stone", "cyst", "elevated_diaphragm", "increased_markings", "hypoinflation",
    "calcified_granuloma", "calcification", "tortuous_aorta", "atherosclerosis", "scoliosis", "kyphosis",
    "osteopenia", "degenerative_change", "support_device",
)

#: Coded severity and extent on one scale (0 minimal .. 3 severe); a sentence whose severity word is two or
#: more steps from its finding's disagrees with it ("small" for a severe finding).
SEVERITY_SCALE: dict[str, int] = {"minimal": 0, "mild": 1, "small": 1, "moderate": 2, "severe": 3, "large": 3}
