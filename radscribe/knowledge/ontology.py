"""The vocabulary of radscribe, in one place.

Finding kinds, anatomy, attributes and synonyms live here and nowhere else: detectors name their
labels with these ids, the writers phrase them with these words, and the report labeler reads
reports back with these synonyms. Ids are lower-case snake_case and never change once released.
"""

from __future__ import annotations

from dataclasses import dataclass


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


#: The tortuous-aorta phrases (label first): the kind's synonyms, and subjects of the aortic calcification rule.
_TORTUOUS_AORTA = ("tortuous aorta", "tortuous thoracic aorta", "tortuous descending aorta", "tortuosity of the aorta",
                   "tortuosity of the thoracic aorta", "aortic tortuosity", "ectatic aorta", "ectatic thoracic aorta",
                   "aortic ectasia", "unfolded aorta", "unfolding of the aorta", "uncoiled aorta",
                   "uncoiling of the aorta", "tortuous and ectatic aorta", "torturous aorta")

FINDING_KINDS: dict[str, FindingKind] = {k.id: k for k in [
    # --- chest: lesions
    _k("nodule", "nodule", "chest", "lesion",
       ["nodules", "nodular opacity", "nodular opacities", "nodular density", "pulmonary nodule", "lung nodule",
        "nodular shadow", "nodular shadows", "nodular densities", "pulmonary nodules", "lung nodules",
        "micronodules", "micronodular"],
       chexpert="Lung Lesion", mesh=["nodule", "pulmonary nodule"]),
    _k("mass", "mass", "any", "lesion", ["masses", "mass lesion"], chexpert="Lung Lesion", mesh=["mass"]),
    _k("calcified_granuloma", "calcified granuloma", "chest", "lesion",
       ["calcified granulomas", "granuloma", "granulomas", "granulomatous disease", "calcified nodule",
        "granulomatous infection", "granulomatous process",
        "calcified nodules", "granulomatous", "granulomata", "calcified granulomata"],
       chexpert="Lung Lesion", mesh=["calcified granuloma", "granulomatous disease", "granuloma"]),
    _k("calcification", "calcification", "any", "lesion",
       ["calcifications", "calcified", "calcific", "calcified lymph node", "calcified lymph nodes", "calcified nodes",
        "calcified lymph", "calcific density", "calcific densities", "calcified density", "calcified densities"],
       mesh=["calcinosis"]),
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
        "air space disease", "focal airspace disease", "infiltrate", "infiltrates", "infiltration",
        "solid shadow", "solid shadows", "consolidation shadow", "consolidation shadows", "consolidative opacities",
        "air space consolidation", "air space consolidations", "airspace consolidations"],
       chexpert="Consolidation", mesh=["consolidation", "infiltrate", "airspace disease"], countable=False),
    _k("ground_glass_opacity", "ground-glass opacity", "chest", "airspace",
       ["ground-glass opacities", "ground glass opacity", "ground glass opacities", "ground-glass",
        "ground glass", "ground glass shadow", "ground glass shadows", "ground-glass shadows", "ggo",
        "crazy paving", "crazy-paving", "paving stone sign", "paving stone"],
       chexpert="Lung Opacity", countable=False),
    _k("opacity", "opacity", "chest", "airspace",
       ["opacities", "opacification", "density", "densities", "airspace opacity", "hazy opacity",
        "patchy opacity", "streaky opacity", "shadow", "shadows", "patchy shadows", "nodular opacity",
        "nodular opacities", "nodular density", "nodular densities", "calcific density", "calcific densities",
        "calcified density", "calcified densities", "radiodensity", "hyperdensity", "streakiness",
        "reticular opacities", "reticulonodular opacities", "airspace opacities", "airspace opacity",
        "line shadow", "line shadows", "subpleural line", "subpleural lines", "linear shadow", "linear shadows",
        "striated shadow", "striated shadows", "strip shadow", "strip shadows", "stripe shadow", "stripe shadows",
        "cord shadow", "cord shadows", "cord-like shadow", "cord-like shadows", "lamellar shadow",
        "lamellar shadows", "patchy shadow", "flaky shadow", "flaky shadows"],
       chexpert="Lung Opacity", mesh=["opacity", "density"]),
    _k("atelectasis", "atelectasis", "chest", "airspace",
       ["atelectatic", "atelectases", "subsegmental atelectasis", "volume loss", "collapse", "scarring",
        "scar", "scars", "linear atelectasis", "discoid atelectasis", "plate-like atelectasis"],
       chexpert="Atelectasis", mesh=["atelectasis", "pulmonary atelectasis", "cicatrix", "volume loss"],
       countable=False),
    _k("pneumonia", "pneumonia", "chest", "airspace",
       ["pneumonias", "infection", "infectious process", "bronchopneumonia", "pneumonitis"],
       chexpert="Pneumonia", mesh=["pneumonia"], countable=False),
    _k("edema", "pulmonary oedema", "chest", "airspace",
       ["edema", "oedema", "pulmonary edema", "vascular congestion", "pulmonary vascular congestion",
        "interstitial edema", "congestive heart failure", "chf", "fluid overload", "congestion",
        "vascular prominence", "pulmonary venous hypertension", "venous hypertension", "pulmonary venous congestion",
        "central vascular prominence", "vascular engorgement", "cephalization", "interstitial pulmonary edema",
        "heart failure", "central venous congestion", "vascular congestion", "kerley b lines", "kerley lines",
        "b lines", "septal lines"],
       chexpert="Edema", mesh=["pulmonary edema", "pulmonary congestion", "edema", "heart failure"], countable=False),
    _k("emphysema", "emphysema", "chest", "airspace",
       ["emphysematous", "hyperinflation", "hyperinflated", "hyperexpanded", "hyperexpansion", "copd",
        "chronic obstructive pulmonary disease", "bullae", "bulla", "bullous", "hyperlucent", "overinflated",
        "overinflation", "hyperaerated", "emphysematous changes", "flattened diaphragms", "flattening of the diaphragms",
        "flattened hemidiaphragms", "flattening of the hemidiaphragms"],
       mesh=["emphysema", "pulmonary emphysema", "pulmonary disease, chronic obstructive", "bullous emphysema",
             "lung/hyperdistention", "diaphragm/flattened", "lung, hyperlucent"], countable=False),
    _k("fibrosis", "fibrosis", "chest", "airspace",
       ["fibrotic", "interstitial fibrosis", "pulmonary fibrosis", "fibrotic changes", "interstitial disease",
        "interstitial lung disease", "reticular opacities", "fibrous cord", "fibrous cords", "fibrous cord shadow",
        "fibrous cord shadows", "fibrous stripe", "fibrous stripes", "fibrous strip", "fibrous strips",
        "fibrotic streaks", "fibrous lesions", "fibrous foci"],
       mesh=["pulmonary fibrosis", "fibrosis", "lung diseases, interstitial"], countable=False),
    # --- pleura
    _k("effusion", "pleural effusion", "chest", "pleural",
       ["effusions", "pleural effusions", "pleural fluid", "fluid", "blunting of the costophrenic angle",
        "costophrenic blunting", "blunted costophrenic angle", "hydrothorax"],
       chexpert="Pleural Effusion", mesh=["pleural effusion", "costophrenic angle/blunted"], countable=False),
    _k("pneumothorax", "pneumothorax", "chest", "pleural", ["pneumothoraces", "ptx"],
       chexpert="Pneumothorax", mesh=["pneumothorax"], countable=False),
    _k("pleural_thickening", "pleural thickening", "chest", "pleural",
       ["pleural thickenings", "thickened pleura", "pleural plaque", "pleural plaques", "fissural thickening",
        "fissure thickening", "thickened fissure", "thickening of the fissure", "thickening in the fissure",
        "apical capping", "pleural capping", "apical pleural thickening", "biapical pleural thickening",
        "biapical thickening", "apical thickening", "fibronodular thickening"],
       chexpert="Pleural Other", mesh=["pleural thickening", "thickening/pleura"], countable=False),
    # --- heart and mediastinum
    _k("cardiomegaly", "cardiomegaly", "chest", "cardiac",
       ["enlarged heart", "heart is enlarged", "enlarged cardiac silhouette", "cardiac enlargement",
        "cardiac silhouette is enlarged", "heart size is enlarged", "enlargement of the cardiac silhouette",
        "heart size is mildly enlarged", "cardiomediastinal enlargement", "enlarged cardiomediastinal silhouette"],
       chexpert="Cardiomegaly", mesh=["cardiomegaly", "cardiac shadow/enlarged", "cardiac shadow/borderline"],
       countable=False),
    _k("enlarged_cardiomediastinum", "widened mediastinum", "chest", "cardiac",
       ["mediastinal widening", "widened mediastinum", "enlarged mediastinum", "mediastinal enlargement",
        "enlarged cardiomediastinal silhouette", "cardiomediastinal enlargement"],
       chexpert="Enlarged Cardiomediastinum", mesh=["aorta, thoracic", "mediastinum"],
       countable=False),
    # A tortuous (ectatic, unfolded) thoracic aorta is a common, mostly age-related finding, not a widened
    # mediastinum; 127 of the 141 IU training studies coded with a mediastinal/aortic head are this. No
    # CheXpert label: CheXpert's Enlarged Cardiomediastinum mentions name the mediastinum and the
    # cardiomediastinal contour, never the aorta.
    _k("tortuous_aorta", "tortuous aorta", "chest", "cardiac", _TORTUOUS_AORTA[1:],
       mesh=["aorta/tortuous", "aorta, thoracic/tortuous"], countable=False),
    _k("lymphadenopathy", "lymphadenopathy", "chest", "other",
       ["enlarged lymph nodes", "enlarged lymph node", "lymph node enlargement", "adenopathy",
        "hilar enlargement", "mediastinal lymphadenopathy", "enlarged nodes"], countable=False),
    _k("hiatal_hernia", "hiatal hernia", "chest", "other", ["hiatus hernia"], mesh=["hernia, hiatal"]),
    # --- bones and devices
    _k("fracture", "fracture", "any", "bone", ["fractures", "fractured", "broken"],
       chexpert="Fracture", mesh=["fractures, bone"]),
    _k("degenerative_change", "degenerative change", "chest", "bone",
       ["degenerative changes", "degenerative disease", "spondylosis", "osteophytes", "osteophyte",
        "arthritic changes", "arthritis", "degenerative disc disease", "degenerative endplate changes",
        "endplate changes", "spurring", "degenerative spurring", "syndesmophytes", "dish", "degeneration",
        "degenerated", "osteophytic", "osteophytic changes", "osteophyte formation", "generative changes",
        "degenerative", "spondylotic", "spondylotic changes", "arthropathy", "facet arthropathy",
        "disc space narrowing", "degenerative joint disease", "osteoarthritis", "bridging osteophytes",
        "endplate sclerosis", "endplate osteophytes", "discogenic"],
       mesh=["spine/degenerative", "thoracic vertebrae/degenerative", "osteophyte", "spondylosis", "arthritis",
             "hyperostosis, diffuse idiopathic skeletal", "lumbar vertebrae/degenerative",
             "cervical vertebrae/degenerative", "shoulder/degenerative"],
       countable=False),
    _k("support_device", "support device", "chest", "device",
       ["catheter", "line", "tube", "pacemaker", "pacer", "port", "picc", "sternotomy wires",
        "surgical clips", "clips", "stent", "endotracheal tube", "hardware", "wires", "electrodes",
        "suture", "sutures", "suture material", "stimulator", "neurostimulator", "defibrillator", "aicd",
        "spinal fusion", "cervical fusion", "fusion hardware", "fusion", "prosthetic valve", "valve replacement",
        "leads", "lead", "ekg leads", "monitor leads", "monitoring leads", "device", "devices", "tip", "stents",
        "coronary stents", "shunt", "tips", "staples", "surgical staples", "coil", "coils", "prosthesis",
        "central venous catheter", "nasogastric tube", "enteric tube", "feeding tube", "chest tube", "drain",
        "pacing wires", "pacemaker leads", "catheters", "tubes", "lines", "pacemaker/aicd", "valve prosthesis",
        "artificial valve", "prosthetic", "vascular stent", "tracheostomy", "ports", "picc line"],
       chexpert="Support Devices", mesh=["catheters, indwelling", "medical device", "surgical instruments",
                                         "implanted medical device", "sutures", "pacemaker, artificial",
                                         "tube, inserted", "stents", "spinal fusion"]),
    # --- added for the IU X-ray reports (frequent MeSH heads) and the report labeler
    _k("hypoinflation", "low lung volumes", "chest", "airspace",
       ["hypoinflation", "hypoinflated", "low lung volume", "low lung volumes", "low volumes", "lower lung volumes",
        "low inspiratory volumes", "poor inspiration", "poor inspiratory effort", "shallow inspiration",
        "hypoventilation", "hypoventilatory", "decreased lung volumes", "reduced lung volumes",
        "diminished lung volumes", "hypoexpanded", "hypoexpansion", "underinflated", "underinflation"],
       mesh=["lung/hypoinflation"], countable=False),
    _k("atherosclerosis", "aortic atherosclerosis", "chest", "cardiac",
       ["atherosclerotic", "atherosclerotic disease", "atherosclerotic vascular disease",
        "atherosclerotic calcification", "atherosclerotic calcifications", "vascular calcification",
        "vascular calcifications", "atheromatous", "atherosclerotic changes"],
       mesh=["atherosclerosis", "calcinosis/aorta", "calcinosis/aorta, thoracic", "calcinosis/blood vessels"],
       countable=False),
    _k("elevated_diaphragm", "elevated hemidiaphragm", "chest", "other",
       ["elevated hemidiaphragms", "elevated diaphragm", "hemidiaphragm elevation", "eventration",
        "diaphragmatic eventration"],
       mesh=["diaphragm/elevated", "diaphragmatic eventration"], countable=False),
    _k("scoliosis", "scoliosis", "chest", "bone",
       ["scoliotic", "levoscoliosis", "dextroscoliosis", "levocurvature", "dextrocurvature", "curvature of the spine",
        "spinal curvature", "levoconvex", "dextroconvex", "kyphoscoliosis", "curvature", "spine curvature",
        "s-shaped curvature", "rightward curvature", "leftward curvature", "thoracolumbar curvature"],
       mesh=["scoliosis"], countable=False),
    _k("kyphosis", "kyphosis", "chest", "bone", ["kyphotic", "thoracic kyphosis", "kyphotic curvature"],
       mesh=["kyphosis"], countable=False),
    _k("osteopenia", "osteopenia", "any", "bone",
       ["osteopenic", "osteoporosis", "osteoporotic", "demineralization", "demineralized", "bony demineralization"],
       mesh=["bone diseases, metabolic", "osteoporosis"], countable=False),
    _k("pericardial_effusion", "pericardial effusion", "chest", "cardiac",
       ["pericardial effusions", "pericardial fluid"], mesh=["pericardial effusion"], countable=False),
    _k("subcutaneous_emphysema", "subcutaneous emphysema", "chest", "other",
       ["subcutaneous air", "soft tissue emphysema", "soft tissue air"], mesh=["subcutaneous emphysema"],
       countable=False),
    _k("increased_markings", "increased lung markings", "chest", "airspace",
       ["increased interstitial markings", "prominent interstitial markings", "coarse interstitial markings",
        "increased lung markings", "increased markings", "prominent bronchovascular markings",
        "bronchovascular crowding", "interstitial prominence", "increased bronchovascular markings",
        "coarsened interstitial markings", "prominent markings", "crowding of the bronchovascular markings",
        "crowding", "vascular crowding", "bronchovascular prominence"],
       mesh=["markings"], countable=False),
    # A coded abnormality with no kind of its own (e.g. an IU MeSH term such as "Deformity/ribs/right"):
    # the original term is kept in Finding.attributes["mesh"]. The labeler never emits it.
    _k("other", "other finding", "any", "other"),
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


# --- report statements the labeler reads (subject + predicate), e.g. "heart size is normal" ---------------

@dataclass(frozen=True)
class StatementRule:
    """A finding stated as 'subject is predicate' ("the heart is enlarged", "clear lungs").

    A sentence clause with one of ``subjects`` and one of ``positive`` / ``negative`` / ``uncertain``
    (either order, the nearest predicate wins) states each of ``kinds`` with that status.
    """

    kinds: tuple[str, ...]
    subjects: tuple[str, ...]
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    uncertain: tuple[str, ...] = ()


_NORMAL_WORDS = ("normal", "within normal limits", "unremarkable", "normal size", "normal in size",
                 "within normal limits in size", "normal limits", "grossly normal", "stable and normal",
                 "within limits of normal", "within the limits of normal")
_HEART = ("heart", "heart size", "cardiac silhouette", "cardiac size", "cardiac shadow", "cardiac contour",
          "cardiac contours", "cardiomediastinal silhouette", "cardiomediastinal silhouettes",
          "cardiomediastinal contour", "cardiomediastinal contours", "cardiomediastinal size", "cardiac",
          "heart and mediastinum", "cardiac and mediastinal contours", "cardiac and mediastinal silhouettes",
          "cardiopericardial silhouette", "cardiomediastinal", "heart silhouette", "heart contour", "heart shadow",
          "mediastinal heart shadow", "mediastinal cardiac shadow", "mediastinal shadow", "cardiac shadows")
_MEDIASTINUM = ("mediastinum", "mediastinal contour", "mediastinal contours", "mediastinal silhouette",
                "mediastinal width", "superior mediastinum", "mediastinal", "cardiomediastinal silhouette",
                "cardiomediastinal contour", "cardiomediastinal contours", "heart and mediastinum",
                "cardiac and mediastinal contours", "hilar and mediastinal contours", "mediastinal and hilar contours")
_AORTA = ("aorta", "thoracic aorta", "aortic arch", "aortic knob", "descending aorta", "ascending aorta",
          "aortic contour", "descending thoracic aorta", "aortic")
_DIAPHRAGM = ("hemidiaphragm", "hemidiaphragms", "diaphragm", "diaphragms")
_LUNGS = ("lungs", "lung", "lung fields", "both lungs", "lung parenchyma", "right lung", "left lung", "chest")
_LUNG_VOLUMES = ("lung volumes", "lung volume", "volumes", "inspiratory effort", "inspiration", "inspiratory volumes")

STATEMENT_RULES: tuple[StatementRule, ...] = (
    StatementRule(("cardiomegaly",), _HEART,
                  positive=("enlarged", "enlargement", "large", "increased", "prominent", "borderline enlarged",
                            "borderline", "borderline in size", "mildly enlarged", "moderately enlarged",
                            "markedly enlarged", "severely enlarged", "top normal to mildly enlarged"),
                  negative=_NORMAL_WORDS + ("not enlarged", "small", "normal heart size", "not significantly enlarged",
                                            "not appreciably enlarged"),
                  uncertain=("upper limits of normal", "upper limit of normal", "upper normal", "top normal",
                             "top-normal", "high normal", "upper limits normal", "upper-normal")),
    StatementRule(("enlarged_cardiomediastinum",), _MEDIASTINUM,
                  positive=("widened", "widening", "enlarged", "enlargement", "prominent", "prominence"),
                  negative=_NORMAL_WORDS + ("maintained", "not widened")),
    StatementRule(("tortuous_aorta",), _AORTA,
                  positive=("tortuous", "tortuosity", "torturous", "ectatic", "ectasia", "unfolded", "unfolding",
                            "elongated", "uncoiled", "uncoiling"),
                  negative=_NORMAL_WORDS),
    StatementRule(("enlarged_cardiomediastinum",), _AORTA,
                  positive=("dilated", "dilatation", "dilation", "enlarged", "prominent", "aneurysmal"),
                  negative=_NORMAL_WORDS),
    # "calcified tortuous aorta": the tortuous-aorta phrase is a kind of its own and takes the word
    # "aorta" with it, so it is also a subject of the aortic calcification rule
    StatementRule(("atherosclerosis",), _AORTA + _TORTUOUS_AORTA,
                  positive=("calcified", "calcification", "calcifications", "atherosclerotic", "atherosclerosis",
                            "atherosclerotic calcification", "atherosclerotic calcifications", "calcific",
                            "atherosclerotic changes", "atherosclerotic disease", "calcific atherosclerosis")),
    StatementRule(("elevated_diaphragm",), _DIAPHRAGM,
                  positive=("elevated", "elevation", "raised", "high"), negative=_NORMAL_WORDS),
    StatementRule(("emphysema",), _DIAPHRAGM, positive=("flattened", "flattening", "flat")),
    StatementRule(("effusion",), ("costophrenic angle", "costophrenic angles", "costophrenic sulcus",
                                  "costophrenic sulci", "costophrenic recess", "costophrenic recesses",
                                  "costophrenic"),
                  positive=("blunted", "blunting", "blunt"), negative=("sharp", "clear", "normal", "preserved")),
    StatementRule(("opacity", "consolidation"), _LUNGS,
                  negative=("clear", "grossly clear", "otherwise clear", "clear of", "grossly clear of",
                            "otherwise clear of", "clear bilaterally", "otherwise grossly clear")),
    StatementRule(("emphysema",), _LUNGS + _LUNG_VOLUMES,
                  positive=("hyperinflated", "hyperexpanded", "hyperlucent", "overinflated", "hyperaerated",
                            "hyperinflation", "hyperexpansion")),
    StatementRule(("hypoinflation",), _LUNG_VOLUMES,
                  positive=("low", "lower", "decreased", "reduced", "diminished", "poor", "shallow", "hypoinflated",
                            "hypoexpanded", "underinflated"),
                  negative=("normal", "adequate", "well expanded", "well-expanded", "well inflated",
                            "well-inflated", "well aerated", "well-aerated")),
    StatementRule(("hypoinflation",), _LUNGS,
                  positive=("hypoinflated", "hypoexpanded", "underinflated", "poorly inflated", "poorly expanded",
                            "hypoventilated"),
                  negative=("well expanded", "well-expanded", "well inflated", "well-inflated", "normally inflated",
                            "normally expanded", "expanded", "well aerated", "well-aerated")),
    StatementRule(("fracture",), ("bones", "osseous structures", "bony structures", "skeletal structures",
                                  "osseous", "bony thorax", "visualized osseous structures", "bony",
                                  "skeletal", "osseous and soft tissue structures", "bony structures of the chest"),
                  negative=("intact", "unremarkable", "normal", "grossly intact", "no acute abnormality")),
    StatementRule(("effusion", "pneumothorax"), ("pleural spaces", "pleural space", "pleura"),
                  negative=("clear", "normal", "unremarkable")),
    StatementRule(("increased_markings",), ("interstitial markings", "bronchovascular markings", "lung markings",
                                            "markings", "pulmonary markings", "interstitial lung markings",
                                            "pulmonary interstitial markings", "bronchial markings"),
                  positive=("increased", "prominent", "coarse", "coarsened", "crowding", "crowded", "prominence",
                            "accentuated", "accentuation", "chronic", "irregular", "scattered", "chronic appearing",
                            "coarsening", "increase"),
                  negative=_NORMAL_WORDS),
    StatementRule(("edema",), ("pulmonary vascularity", "pulmonary vasculature", "vascularity", "vasculature",
                               "pulmonary xxxx", "vascular",
                               "pulmonary vessels", "vascular markings", "pulmonary vascular markings",
                               "vascular pattern"),
                  positive=("increased", "prominent", "engorged", "congested", "cephalization", "indistinct",
                            "prominence", "redistribution", "cephalized", "congestion"),
                  negative=_NORMAL_WORDS),
)

#: Whole-report "normal" statements ("No acute cardiopulmonary disease."); the labeler emits kind "normal".
NORMAL_STATEMENTS: tuple[str, ...] = tuple(sorted({
    f"{pre} {mid}{head}".replace("  ", " ")
    for pre in ("no acute", "no active", "no evidence of acute", "without acute", "no radiographic evidence of acute",
                "no definite acute", "no significant acute", "no evidence of active")
    for mid in ("", "cardiopulmonary ", "pulmonary ", "intrathoracic ", "cardiac or pulmonary ", "chest ",
                "cardiopulmonary radiographic ", "radiographic ", "pulmonary or pleural ", "thoracic ")
    for head in ("disease", "abnormality", "abnormalities", "process", "processes", "findings", "finding",
                 "pathology", "change", "changes", "infiltrate", "cardiopulmonary", "cardiopulmonary disease")
} | {"normal chest", "normal chest x-ray", "normal chest radiograph", "normal chest x-xxxx", "normal exam",
       "normal examination", "normal study", "normal radiograph", "normal radiographs", "negative chest",
       "unremarkable chest", "unremarkable examination", "unremarkable exam", "normal chest radiographs",
       "no acute abnormalities", "normal chest exam"}))
