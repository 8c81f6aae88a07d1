"""Report statements the labeler reads: subject + predicate ("heart size is normal") and whole-study normals."""

from __future__ import annotations

from dataclasses import dataclass

from radscribe.knowledge.kinds import TORTUOUS_AORTA_PHRASES

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
    StatementRule(("atherosclerosis",), _AORTA + TORTUOUS_AORTA_PHRASES,
                  positive=("calcified", "calcification", "calcifications", "atherosclerotic", "atherosclerosis",
                            "atherosclerotic calcification", "atherosclerotic calcifications", "calcific",
                            "atherosclerotic changes", "atherosclerotic disease", "calcific atherosclerosis")),
    StatementRule(("hilar_enlargement",), ("hila", "hilum", "hilar contours", "hilar contour", "hilar structures",
                                           "hilar regions", "hilar shadows", "pulmonary arteries", "pulmonary artery",
                                           "hilar and mediastinal contours", "mediastinal and hilar contours"),
                  positive=("enlarged", "enlargement", "prominent", "prominence", "full", "fullness", "bulky"),
                  negative=_NORMAL_WORDS),
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
