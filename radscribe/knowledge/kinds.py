"""Finding kinds: every abnormality radscribe can name, with its words, CheXpert label, MeSH heads and code.

Ids are lower-case snake_case and never change once released: detectors name their labels with these
ids, the writers phrase them with these words, and the report labeler reads reports back with these
synonyms. Each kind carries its standard code (``code``, from :mod:`radscribe.knowledge.codes`; None
where no verified SNOMED CT / RadLex / DICOM code exists).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from radscribe.knowledge.codes import KIND_CODES, Code


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
    code: Code | None = None        # SNOMED CT (or RadLex / DICOM) concept; None when none is verified


def _k(id, label, region, category, synonyms=(), chexpert=None, mesh=(), plural=None, countable=True):
    return FindingKind(id, label, region, category, tuple(synonyms), chexpert, tuple(mesh), plural, countable)


#: The tortuous-aorta phrases (label first): the kind's synonyms, and subjects of the aortic calcification rule.
TORTUOUS_AORTA_PHRASES = ("tortuous aorta", "tortuous thoracic aorta", "tortuous descending aorta", "tortuosity of the aorta",
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
    # The COVID-19 label of COV-CTR (a case diagnosis read off a chest CT slice by the ct-chest-slice detector).
    _k("covid19_pneumonia", "COVID-19 pneumonia", "chest", "airspace",
       ["covid-19 pneumonia", "covid pneumonia", "covid-19", "covid 19", "covid", "sars-cov-2 pneumonia",
        "novel coronavirus pneumonia", "coronavirus pneumonia", "coronavirus disease 2019"], countable=False),
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
    _k("tortuous_aorta", "tortuous aorta", "chest", "cardiac", TORTUOUS_AORTA_PHRASES[1:],
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
    # Enlarged or prominent hila (IU MeSH "Lung/hilum/.../enlarged|prominent", "Pulmonary Artery/enlarged"): on a
    # radiograph the cause (nodes or vessels) is often not decidable, so it is not lymphadenopathy. No CheXpert label.
    _k("hilar_enlargement", "hilar enlargement", "chest", "cardiac",
       ["enlarged hilum", "enlarged hila", "hilar prominence", "prominent hilum", "prominent hila", "hilar fullness",
        "hilar enlargement", "enlarged hilar", "prominent hilar", "bulky hila", "bulky hilum",
        "enlarged pulmonary artery", "enlarged pulmonary arteries", "prominent pulmonary artery",
        "prominent pulmonary arteries", "pulmonary artery enlargement"],
       mesh=["lung/hilum", "pulmonary artery"], countable=False),
    # A coded abnormality with no kind of its own (e.g. an IU MeSH term such as "Deformity/ribs/right"):
    # the original term is kept in Finding.attributes["mesh"]. The labeler never emits it.
    _k("other", "other finding", "any", "other"),
]}
# every kind gets its code from the one code table (a test checks that the table lists exactly these kinds)
FINDING_KINDS = {k: replace(v, code=KIND_CODES.get(k)) for k, v in FINDING_KINDS.items()}

#: Pseudo kinds of the report labeler and the guard: study-level statements, never a finding of an image.
STUDY_LEVEL_KINDS = ("normal", "no_finding")

#: CheXpert's 14 labels, in their usual order.
CHEXPERT_LABELS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)


def kind(kind_id: str) -> FindingKind:
    """Look up a finding kind by id; raises KeyError with the known ids if it does not exist."""
    try:
        return FINDING_KINDS[kind_id]
    except KeyError:
        raise KeyError(f"unknown finding kind {kind_id!r}; known: {sorted(FINDING_KINDS)}") from None
