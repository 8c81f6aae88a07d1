"""The vocabulary of radscribe, in one place.

Finding kinds, anatomy, attributes and synonyms live here and nowhere else: detectors name their
labels with these ids, the writers phrase them with these words, and the report labeler reads
reports back with these synonyms. Ids are lower-case snake_case and never change once released.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FindingKind:
    id: str
    label: str                      # how a report names it ("pleural effusion")
    region: str                     # body region it belongs to: chest / abdomen / brain / any
    category: str                   # lesion / airspace / pleural / cardiac / bone / device / other
    synonyms: tuple[str, ...] = ()  # lower-case phrases the labeler matches (the label is implied)
    chexpert: str | None = None     # CheXpert label it maps to, if any
    mesh: tuple[str, ...] = ()      # IU X-ray MeSH heads (lower-case) that code this kind
    plural: str | None = None
    countable: bool = True          # "a nodule" vs "consolidation"


def _k(id, label, region, category, synonyms=(), chexpert=None, mesh=(), plural=None, countable=True):
    return FindingKind(id, label, region, category, tuple(synonyms), chexpert, tuple(mesh), plural, countable)


FINDING_KINDS: dict[str, FindingKind] = {k.id: k for k in [
    # --- chest: lesions
    _k("nodule", "nodule", "chest", "lesion",
       ["nodules", "nodular opacity", "nodular opacities", "nodular density", "pulmonary nodule", "lung nodule"],
       chexpert="Lung Lesion", mesh=["nodule", "pulmonary nodule"]),
    _k("mass", "mass", "any", "lesion", ["masses", "mass lesion"], chexpert="Lung Lesion", mesh=["mass"]),
    _k("calcified_granuloma", "calcified granuloma", "chest", "lesion",
       ["calcified granulomas", "granuloma", "granulomas", "granulomatous disease", "calcified nodule",
        "calcified nodules", "granulomatous", "calcified lymph node", "calcified lymph nodes"],
       chexpert="Lung Lesion", mesh=["calcified granuloma", "granulomatous disease", "granuloma"]),
    _k("calcification", "calcification", "any", "lesion", ["calcifications", "calcified"], mesh=["calcinosis"]),
    _k("cyst", "cyst", "any", "lesion", ["cysts", "cystic lesion"], mesh=["cysts"]),
    _k("stone", "stone", "abdomen", "lesion",
       ["stones", "calculus", "calculi", "nephrolithiasis", "urolithiasis", "renal stone", "kidney stone"]),
    _k("tumour", "tumour", "any", "lesion",
       ["tumor", "tumors", "tumours", "neoplasm", "malignancy", "renal mass", "kidney tumour"]),
    _k("glioma", "glioma", "brain", "lesion", ["gliomas", "glioblastoma", "astrocytoma", "intra-axial mass"]),
    _k("meningioma", "meningioma", "brain", "lesion", ["meningiomas", "extra-axial mass", "dural-based mass"]),
    _k("pituitary_tumour", "pituitary tumour", "brain", "lesion",
       ["pituitary tumor", "pituitary adenoma", "pituitary macroadenoma", "sellar mass", "pituitary lesion"]),
    _k("adrenal_mass", "adrenal mass", "abdomen", "lesion",
       ["adrenal nodule", "adrenal adenoma", "adrenal lesion", "adrenal tumour", "adrenal tumor"]),
    _k("haemorrhage", "haemorrhage", "brain", "other",
       ["hemorrhage", "haematoma", "hematoma", "bleed", "intracranial hemorrhage"], countable=False),
    # --- chest: airspace and interstitium
    _k("consolidation", "consolidation", "chest", "airspace",
       ["consolidations", "consolidative opacity", "airspace consolidation", "airspace disease",
        "air space disease", "focal airspace disease", "infiltrate", "infiltrates", "infiltration"],
       chexpert="Consolidation", mesh=["consolidation", "infiltrate"], countable=False),
    _k("ground_glass_opacity", "ground-glass opacity", "chest", "airspace",
       ["ground-glass opacities", "ground glass opacity", "ground glass opacities", "ground-glass",
        "ground glass", "ground glass shadow", "ground glass shadows", "ground-glass shadows", "ggo"],
       chexpert="Lung Opacity", countable=False),
    _k("opacity", "opacity", "chest", "airspace",
       ["opacities", "opacification", "density", "densities", "airspace opacity", "hazy opacity",
        "patchy opacity", "streaky opacity", "increased markings", "shadow", "shadows", "patchy shadows"],
       chexpert="Lung Opacity", mesh=["opacity", "density", "lung/hypoinflation"]),
    _k("atelectasis", "atelectasis", "chest", "airspace",
       ["atelectatic", "atelectases", "subsegmental atelectasis", "volume loss", "collapse", "scarring",
        "scar", "scars", "linear atelectasis", "discoid atelectasis", "plate-like atelectasis"],
       chexpert="Atelectasis", mesh=["atelectasis", "pulmonary atelectasis", "cicatrix"], countable=False),
    _k("pneumonia", "pneumonia", "chest", "airspace",
       ["pneumonias", "infection", "infectious process", "bronchopneumonia", "pneumonitis"],
       chexpert="Pneumonia", mesh=["pneumonia"], countable=False),
    _k("edema", "pulmonary oedema", "chest", "airspace",
       ["edema", "oedema", "pulmonary edema", "vascular congestion", "pulmonary vascular congestion",
        "interstitial edema", "congestive heart failure", "chf", "fluid overload"],
       chexpert="Edema", mesh=["pulmonary edema", "pulmonary congestion", "edema"], countable=False),
    _k("emphysema", "emphysema", "chest", "airspace",
       ["emphysematous", "hyperinflation", "hyperinflated", "hyperexpanded", "hyperexpansion", "copd",
        "chronic obstructive pulmonary disease", "bullae", "bulla", "bullous"],
       mesh=["emphysema", "pulmonary emphysema", "pulmonary disease, chronic obstructive", "bullous emphysema",
             "lung/hyperdistention"], countable=False),
    _k("fibrosis", "fibrosis", "chest", "airspace",
       ["fibrotic", "interstitial fibrosis", "pulmonary fibrosis", "fibrotic changes", "interstitial disease",
        "interstitial lung disease", "interstitial markings", "reticular opacities"],
       mesh=["pulmonary fibrosis", "fibrosis"], countable=False),
    # --- pleura
    _k("effusion", "pleural effusion", "chest", "pleural",
       ["effusions", "pleural effusions", "pleural fluid", "fluid", "blunting of the costophrenic angle",
        "costophrenic blunting", "blunted costophrenic angle", "hydrothorax"],
       chexpert="Pleural Effusion", mesh=["pleural effusion"], countable=False),
    _k("pneumothorax", "pneumothorax", "chest", "pleural", ["pneumothoraces", "ptx"],
       chexpert="Pneumothorax", mesh=["pneumothorax"], countable=False),
    _k("pleural_thickening", "pleural thickening", "chest", "pleural",
       ["pleural thickenings", "thickened pleura", "pleural plaque", "pleural plaques"],
       chexpert="Pleural Other", mesh=["pleural thickening"], countable=False),
    # --- heart and mediastinum
    _k("cardiomegaly", "cardiomegaly", "chest", "cardiac",
       ["enlarged heart", "heart is enlarged", "enlarged cardiac silhouette", "cardiac enlargement",
        "cardiac silhouette is enlarged", "heart size is enlarged", "enlargement of the cardiac silhouette",
        "heart size is mildly enlarged", "cardiomediastinal enlargement"],
       chexpert="Cardiomegaly", mesh=["cardiomegaly"], countable=False),
    _k("enlarged_cardiomediastinum", "widened mediastinum", "chest", "cardiac",
       ["mediastinal widening", "widened mediastinum", "enlarged mediastinum", "mediastinal enlargement",
        "tortuous aorta", "aortic ectasia", "enlarged cardiomediastinal silhouette"],
       chexpert="Enlarged Cardiomediastinum", mesh=["aorta, thoracic", "aorta/tortuous", "mediastinum"],
       countable=False),
    _k("lymphadenopathy", "lymphadenopathy", "chest", "other",
       ["enlarged lymph nodes", "enlarged lymph node", "lymph node enlargement", "adenopathy",
        "hilar enlargement", "mediastinal lymphadenopathy", "enlarged nodes"], countable=False),
    _k("hiatal_hernia", "hiatal hernia", "chest", "other", ["hiatus hernia"], mesh=["hernia, hiatal"]),
    # --- bones and devices
    _k("fracture", "fracture", "any", "bone", ["fractures", "fractured", "broken"],
       chexpert="Fracture", mesh=["fractures, bone"]),
    _k("degenerative_change", "degenerative change", "chest", "bone",
       ["degenerative changes", "degenerative disease", "spondylosis", "osteophytes", "osteophyte",
        "arthritic changes", "arthritis"],
       mesh=["spine/degenerative", "thoracic vertebrae/degenerative", "osteophyte", "spondylosis"],
       countable=False),
    _k("support_device", "support device", "chest", "device",
       ["catheter", "line", "tube", "pacemaker", "pacer", "port", "picc", "sternotomy wires",
        "surgical clips", "clips", "stent", "endotracheal tube", "hardware", "wires", "electrodes"],
       chexpert="Support Devices", mesh=["catheters, indwelling", "medical device", "surgical instruments",
                                         "implanted medical device", "sutures", "pacemaker, artificial"]),
]}

#: CheXpert's 14 labels, in their usual order.
CHEXPERT_LABELS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)


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
    _a("right_middle_lobe", "right middle lobe", "chest", "right_lung", "right", ["rml", "lingula"]),
    _a("right_lower_lobe", "right lower lobe", "chest", "right_lung", "right", ["rll"]),
    _a("left_upper_lobe", "left upper lobe", "chest", "left_lung", "left", ["lul"]),
    _a("left_lower_lobe", "left lower lobe", "chest", "left_lung", "left", ["lll"]),
    _a("upper_zone", "upper zone", "chest", "lungs", None, ["apex", "apices", "apical", "upper lobe", "upper lung"]),
    _a("middle_zone", "middle zone", "chest", "lungs", None, ["mid lung", "midlung", "perihilar", "hilar", "middle lobe"]),
    _a("lower_zone", "lower zone", "chest", "lungs", None, ["base", "bases", "basal", "basilar", "lower lobe", "lower lung"]),
    _a("pleura", "pleura", "chest", "chest", synonyms=["pleural space", "costophrenic angle"]),
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


def kind(kind_id: str) -> FindingKind:
    """Look up a finding kind by id; raises KeyError with the known ids if it does not exist."""
    try:
        return FINDING_KINDS[kind_id]
    except KeyError:
        raise KeyError(f"unknown finding kind {kind_id!r}; known: {sorted(FINDING_KINDS)}") from None


def anatomy(anatomy_id: str) -> Anatomy:
    try:
        return ANATOMY[anatomy_id]
    except KeyError:
        raise KeyError(f"unknown anatomy {anatomy_id!r}; known: {sorted(ANATOMY)}") from None


def size_band(diameter_mm: float) -> str:
    """Fleischner 2017 size band from the average diameter (mm), rounded to the nearest mm."""
    d = round(diameter_mm)
    if d < 6:
        return "lt_6mm"
    if d <= 8:
        return "6_to_8mm"
    return "gt_8mm"
