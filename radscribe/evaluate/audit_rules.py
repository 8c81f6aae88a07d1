"""The second reader's own reading of a report: sentences, clauses and the findings they state or deny.

Written apart from :mod:`radscribe.knowledge.labeler` on purpose (issue 19): the audit must not share
the guard's decisions, so its phrase lists, negation cues and statement patterns are its own and
deliberately small. Only the finding-kind ids come from :mod:`radscribe.knowledge.ontology`, so that a
mention can be compared with coded findings.

A :class:`Mention` is one phrase of :data:`PHRASES` in one clause, with its polarity (``asserted``,
``hedged``, ``denied``), the side and zone named in the clause, the severity words next to it
(0 minimal .. 3 severe), and the qualifiers that narrow a denial (``focal``, ``large``, ``acute``,
``restricted`` for "otherwise"/"no other"). Statements ("the lungs are clear", "heart size is normal",
"the heart is enlarged") are read by :data:`STATEMENTS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from radscribe.knowledge.ontology import FINDING_KINDS

#: concept -> (finding kind it codes, phrases). Concepts are finer than kinds where a radiologist keeps
#: them apart ("vascular congestion" is not denied by "no edema"; "scarring" is not an airspace opacity).
PHRASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "opacity": ("opacity", ("opacity", "opacities", "opacification", "opacifications", "density", "densities",
                            "airspace opacity", "airspace opacities", "air space opacity", "air space opacities",
                            "haziness", "hazy opacity")),
    "consolidation": ("consolidation", ("consolidation", "consolidations", "consolidative", "infiltrate",
                                        "infiltrates", "infiltration", "airspace disease", "air space disease",
                                        "airspace consolidation", "air space consolidation")),
    "pneumonia": ("pneumonia", ("pneumonia", "pneumonias", "pneumonitis", "bronchopneumonia")),
    "atelectasis": ("atelectasis", ("atelectasis", "atelectatic", "atelectases", "volume loss", "collapse")),
    "scarring": ("atelectasis", ("scarring", "scar", "scars", "fibrotic scarring")),
    "edema": ("edema", ("edema", "oedema", "pulmonary edema", "interstitial edema", "kerley b lines")),
    "congestion": ("edema", ("vascular congestion", "pulmonary vascular congestion", "venous congestion",
                             "pulmonary congestion", "cephalization", "vascular markings are mildly prominent",
                             "vascular prominence", "prominence of the central vasculature")),
    "nodule": ("nodule", ("nodule", "nodules", "nodular opacity", "nodular opacities", "nodular density",
                          "nodular densities", "micronodules")),
    "mass": ("mass", ("mass", "masses")),
    "granuloma": ("calcified_granuloma", ("granuloma", "granulomas", "granulomata", "calcified granuloma",
                                          "calcified granulomas", "granulomatous disease", "calcified nodule",
                                          "calcified nodules")),
    "effusion": ("effusion", ("effusion", "effusions", "pleural effusion", "pleural effusions", "pleural fluid",
                              "pleural space opacification")),
    # blunted angles are how IU's coders code many effusions; not denied by "no effusion" (it may be scarring)
    "blunting": ("effusion", ("costophrenic blunting", "blunting of the costophrenic", "blunted costophrenic",
                              "costophrenic angle blunting", "costophrenic angles are blunted", "blunting",
                              "blunted")),
    "pericardial_effusion": ("pericardial_effusion", ("pericardial effusion", "pericardial fluid")),
    "pneumothorax": ("pneumothorax", ("pneumothorax", "pneumothoraces")),
    "pleural_thickening": ("pleural_thickening", ("pleural thickening", "apical capping", "pleural plaque",
                                                  "pleural plaques", "pleural-parenchymal scarring")),
    "cardiomegaly": ("cardiomegaly", ("cardiomegaly", "enlarged heart", "cardiac enlargement",
                                      "enlarged cardiac silhouette", "enlargement of the cardiac silhouette")),
    "emphysema": ("emphysema", ("emphysema", "emphysematous", "hyperinflation", "hyperinflated", "hyperexpanded",
                                "hyperexpansion", "copd", "hyperaerated", "hyperlucent")),
    "fibrosis": ("fibrosis", ("fibrosis", "fibrotic", "fibrotic changes", "interstitial lung disease")),
    "hilar_enlargement": ("hilar_enlargement", ("hilar enlargement", "enlarged hilum", "enlarged hila",
                                              "hilar prominence", "prominent hilum", "prominent hila",
                                              "hilar adenopathy", "lymphadenopathy", "adenopathy",
                                              "enlarged lymph nodes", "enlarged lymph node")),
    "fracture": ("fracture", ("fracture", "fractures", "fractured")),
    "hiatal_hernia": ("hiatal_hernia", ("hiatal hernia", "hiatus hernia")),
    "markings": ("increased_markings", ("interstitial markings", "increased markings", "prominent markings",
                                        "bronchovascular markings", "increased lung markings",
                                        "interstitial lung markings", "interstitial prominence",
                                        "bronchovascular crowding", "crowding", "vascular crowding")),
    # read only to tell whether a coded finding is stated (no contradiction rule uses them)
    "calcification": ("calcification", ("calcification", "calcifications", "calcified lymph nodes",
                                        "calcified nodes", "calcified lymph node", "calcified mediastinal lymph",
                                        "calcified hilar lymph", "calcified mediastinal", "calcified hilar",
                                        "calcified subcarinal")),
    "atherosclerosis": ("atherosclerosis", ("atherosclerosis", "atherosclerotic", "aortic calcification",
                                            "aortic calcifications", "calcified aorta", "vascular calcification",
                                            "vascular calcifications", "calcifications of the aortic",
                                            "calcification of the aortic", "calcified aortic",
                                            "calcification of the aorta", "calcification of the thoracic aorta",
                                            "calcifications of the aorta", "calcifications of the thoracic aorta",
                                            "calcifications of the abdominal aorta", "aortic knob calcification")),
    "tortuous_aorta": ("tortuous_aorta", ("tortuous", "tortuosity", "ectatic", "ectasia", "unfolded", "unfolding")),
    "degenerative": ("degenerative_change", ("degenerative", "spondylosis", "osteophytes", "osteophyte",
                                             "spurring", "arthritis", "arthritic")),
    "scoliosis": ("scoliosis", ("scoliosis", "levoscoliosis", "dextroscoliosis", "curvature", "levocurvature",
                                "dextrocurvature", "scoliotic")),
    "kyphosis": ("kyphosis", ("kyphosis", "kyphotic")),
    "hypoinflation": ("hypoinflation", ("low lung volumes", "low lung volume", "hypoinflation", "hypoinflated",
                                        "low volumes", "poor inspiration", "shallow inspiration",
                                        "diminished lung volumes", "decreased lung volumes", "reduced lung volumes",
                                        "lung volumes are low", "lung volumes are diminished", "lower lung volumes")),
    "device": ("support_device", ("support device", "support devices", "pacemaker", "catheter", "sternotomy", "wires", "clips", "tube", "port",
                                  "stent", "stents", "leads", "picc", "hardware", "fusion", "prosthesis",
                                  "valve replacement", "central line", "prosthetic")),
    "elevated_diaphragm": ("elevated_diaphragm", ("elevated hemidiaphragm", "hemidiaphragm elevation", "eventration",
                                                  "elevated diaphragm", "elevated right hemidiaphragm",
                                                  "elevated left hemidiaphragm", "elevation of the right hemidiaphragm",
                                                  "hemidiaphragm is elevated", "hemidiaphragm is mildly elevated",
                                                  "elevation of the left hemidiaphragm")),
    "osteopenia": ("osteopenia", ("osteopenia", "osteopenic", "osteoporosis", "demineralization")),
}
assert all(kind in FINDING_KINDS for kind, _ in PHRASES.values())

#: The lung concepts "the lungs are clear" denies. Scarring, granulomas, emphysema and fibrosis are written
#: beside "clear lungs" by careful readers ("clear" = no airspace disease); atelectasis, fibrosis or increased
#: markings beside it read ambiguously.
CLEAR_LUNG_DENIES = frozenset({"opacity", "consolidation", "pneumonia", "edema", "nodule", "mass"})
CLEAR_LUNG_AMBIGUOUS = frozenset({"atelectasis", "fibrosis", "markings"})

#: A denied concept -> the asserted concepts it contradicts. "No consolidation" does not deny an opacity
#: (which may be atelectasis), but "no airspace opacity" denies a consolidation.
DENIES: dict[str, frozenset[str]] = {
    "opacity": frozenset({"opacity", "consolidation", "pneumonia"}),
    "consolidation": frozenset({"consolidation", "pneumonia"}),
    "pneumonia": frozenset({"pneumonia"}),
    "nodule": frozenset({"nodule", "mass"}),
    "mass": frozenset({"mass"}),
    "edema": frozenset({"edema"}),
    "effusion": frozenset({"effusion"}),
    "cardiomegaly": frozenset({"cardiomegaly"}),
    "hilar_enlargement": frozenset({"hilar_enlargement"}),
}

#: Kinds that stand for one another when a mention is compared with coded findings (side, severity, stated).
SAME_PICTURE: tuple[frozenset[str], ...] = (
    frozenset({"opacity", "consolidation", "pneumonia", "atelectasis", "edema", "ground_glass_opacity"}),
    frozenset({"nodule", "mass", "calcified_granuloma", "calcification"}),
    frozenset({"nodule", "opacity"}),   # "nodular densities" for a coded density
    frozenset({"effusion", "pleural_thickening"}),
    frozenset({"cardiomegaly", "enlarged_cardiomediastinum"}),
    frozenset({"hilar_enlargement", "lymphadenopathy"}),
    frozenset({"fibrosis", "atelectasis", "increased_markings"}),
)

SIDE_WORDS = {"left": "left", "right": "right", "bilateral": "bilateral", "bilaterally": "bilateral",
              "both": "bilateral", "bibasilar": "bilateral", "bibasal": "bilateral", "biapical": "bilateral",
              "lingula": "left", "lingular": "left", "left-sided": "left", "right-sided": "right"}
ZONE_WORDS = {"base": "lower", "bases": "lower", "basal": "lower", "basilar": "lower", "bibasilar": "lower",
              "bibasal": "lower", "lower": "lower", "upper": "upper", "apex": "upper", "apices": "upper",
              "apical": "upper", "biapical": "upper", "middle": "middle", "mid": "middle", "lingula": "middle",
              "lingular": "middle", "midlung": "middle", "perihilar": "middle", "retrocardiac": "lower"}
#: severity words -> 0 minimal .. 3 severe (the scale of coded severity and extent)
SEVERITY_WORDS = {"minimal": 0, "minimally": 0, "trace": 0, "tiny": 0, "mild": 1, "mildly": 1, "small": 1,
                  "slight": 1, "slightly": 1, "borderline": 1, "subtle": 1, "moderate": 2, "moderately": 2,
                  "large": 3, "severe": 3, "severely": 3, "marked": 3, "markedly": 3, "extensive": 3,
                  "massive": 3}
CODED_SEVERITY = {"minimal": 0, "mild": 1, "small": 1, "moderate": 2, "severe": 3, "large": 3}

_NEG_PRE = re.compile(r"\b(no|without|negative for|free of|absence of|resolution of|resolved|clear of|nor)\b")
_NEG_POST = re.compile(r"\b(?:(?:is|are|was|were)\s+)?(?:not|no longer)\s+(?:\w+\s+)?(?:seen|identified|present|"
                       r"visualized|demonstrated|evident|appreciated|noted|detected|visible)\b|\b(?:has|have)\s+"
                       r"(?:resolved|cleared)\b")
_HEDGE_PRE = re.compile(r"\b(may|might|could|possible|possibly|probable|probably|likely|questionable|suspicious|"
                        r"suggest\w*|concerning|cannot exclude|versus|vs|differential|presumably|equivocal)\b|\?")
_HEDGE_POST = re.compile(r"\b(cannot be (?:excluded|ruled out)|not (?:be )?excluded|is possible|is suspected|"
                         r"versus|vs)\b|\?")
_RESTRICT = re.compile(r"\b(otherwise|elsewhere|remainder|remaining|rest of|no other|no new|no additional|"
                       r"no further|except|aside from|apart from|besides)\b")
_LARGE_Q = re.compile(r"\b(no|without)\s+(?:\w+\s+)?(large|larger|significant|sizable|substantial|definite|"
                      r"definitive|convincing|appreciable|gross|moderate or large|moderate|dense)\b")
_QUAL = (r"large|larger|significant|sizable|substantial|definite|definitive|convincing|appreciable|gross|"
         r"moderate or large|moderate|dense")
_LARGE_NEAR = re.compile(rf"\b({_QUAL})\s+(?:[a-z]+\s+)?$")       # "... pneumothorax or large pleural effusion"
_FOCAL_NEAR = re.compile(r"\bfocal\s+(?:[a-z]+\s+){0,2}$")
_LOCATIVE = re.compile(r"\b(?:in|at|within|involving)\s+(?:the\s+)?(.*)$")
_FOCAL_Q = re.compile(r"\b(no|without)\s+(?:\w+\s+){0,2}focal\b|\bno\s+(?:\w+\s+)?confluent\b")
_ACUTE_Q = re.compile(r"\b(no|without)\s+(?:\w+\s+)?acute\b")
NON_FOCAL = re.compile(r"\b(patchy|streaky|interstitial|diffuse|hazy|reticular|reticulonodular|linear|scattered|"
                       r"multifocal|ill-defined|faint|subtle|bibasilar|perihilar)\b")
_EXPLAINED = re.compile(r"\b(atelectasis|atelectatic|scar|scarring|fat|overlap|overlying|overlies|nipples?|"
                        r"artifacts?|summation|soft tissues?|vessels?|vascular|piercings?|breast|external)\b")
_PSEUDO = re.compile(r"\b(?:no|without)\s+(?:significant\s+|interval\s+|appreciable\s+)?change(?:s)?(?:\s+in)?\b")
_OWN_VERB = re.compile(r"\b(is|are|was|were|seen|noted|present|identified|demonstrated)\b")
_SIZED = re.compile(r"\d\s*(mm|cm)\b")
CHRONIC = re.compile(r"\b(chronic|old|healed|remote|stable|unchanged|calcified|prior|previous|residual)\b")
#: clause boundaries inside a sentence; a comma only when a new statement starts after it. Not "which": "opacity in
#: the left base which may represent atelectasis" keeps its side
_CLAUSE = re.compile(r";|:|\band\s+(?=there\b)|\bbut\b(?!\s+clear\b)|\bhowever\b|\balthough\b|\bwhereas\b|\bwhile\b|\bwith the exception\b|"
                     r",\s*(?=(?:the|there|a|an|heart|lungs?|mild|moderate|small|large|minimal|stable|unchanged|"
                     r"with|likely|possibly|probably|consistent|and the|and there|and a|and an)\b)")

# statements: (name, regex over a clause). Order matters: the first that matches a clause wins per subject.
_HEART = r"(?:heart|heart size|cardiac silhouette|cardiac size|cardiac shadow|cardiomediastinal silhouette|" \
         r"cardiac contours?|cardiomediastinal contours?|cardiac and mediastinal contours)"
STATEMENTS: tuple[tuple[str, re.Pattern], ...] = (
    ("heart_borderline", re.compile(_HEART + r"\b.{0,40}?\b(upper limits? of normal|upper normal|top normal|"
                                    r"borderline|high normal|upper range of normal|upper limits normal)")),
    ("heart_normal", re.compile(_HEART + r"\b.{0,40}?\b(normal|within normal limits|unremarkable|not enlarged|"
                                r"negative)\b")),
    ("heart_enlarged", re.compile(_HEART + r"\b(?:\s+\w+){0,4}?\s+(?:is|are|appears?|remains?|)\s*(?:\w+\s+)?"
                                  r"(enlarged|increased|large|prominent)\b")),
    ("lungs_clear", re.compile(r"\b(?:(?:the|both|right|left)\s+)?(?:lungs?|lung fields?|lung parenchyma)\b"
                               r"(?:\s+\w+){0,5}?\s+(?:is|are|appear|appears|remain|remains)\s+(?:\w+\s+){0,3}?"
                               r"(?:clear|free of (?:focal )?(?:airspace disease|consolidation|infiltrates?))\b|"
                               r"\bclear (?:lungs?|lung fields?)\b|\blungs? (?:are|is|appear|remain) [a-z]+ but clear\b")),
    ("hila_normal", re.compile(r"\b(?:hila|hilar contours?|hilum|hilar structures)\b(?:\s+\w+){0,4}?\s+"
                               r"(?:is|are|appear|appears)\s+(?:\w+\s+)?(normal|unremarkable|within normal limits)")),
    ("angles_clear", re.compile(r"\bcostophrenic (?:angles?|sulci|recesses)\b(?:\s+\w+){0,3}?\s+(?:is|are|appear|"
                                r"appears|remain)\s+(?:\w+\s+)?(clear|sharp|sharply defined|preserved)")),
)

_PHRASE_INDEX = {p: c for c, (_, ps) in PHRASES.items() for p in ps}
_PHRASE_RE = re.compile(r"(?<![\w-])(" + "|".join(sorted(map(re.escape, _PHRASE_INDEX), key=len, reverse=True))
                        + r")(?![\w-])")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


@dataclass(frozen=True)
class Mention:
    """One concept in one clause of one sentence (``sentence`` is the index in the report)."""

    concept: str
    kind: str
    polarity: str                  # asserted / hedged / denied
    side: str | None
    zone: str | None
    severity: tuple[int, ...]      # severity words next to the phrase, 0..3
    sentence: int
    clause: str
    focal_only: bool = False       # "no focal ..." denies only a focal one
    large_only: bool = False       # "no large / significant / definite ..." denies only a large or certain one
    acute_only: bool = False       # "no acute ..." denies only an acute one
    restricted: bool = False       # "otherwise", "no other": denies nothing already stated
    non_focal: bool = False        # an asserted "patchy / streaky / interstitial ..." one
    explained: bool = False        # an opacity the sentence explains as atelectasis, scar, fat, overlap
    sized: bool = False            # a size in mm/cm in the clause: a nodule-like density, not airspace disease


def split_sentences(text: str) -> list[str]:
    """Sentences at '.', '!' or '?' followed by a space or the end, and at line breaks (not in "1.5 cm")."""
    out = []
    for para in re.split(r"[\r\n]+", text or ""):
        for piece in re.split(r"(?<=[.!?])\s+", para):
            piece = re.sub(r"^\s*\d+[.)]\s+", "", piece).strip()
            if re.search(r"[A-Za-z]", piece):
                out.append(piece)
    return out


def clauses(sentence: str) -> list[str]:
    """Lower-cased clauses of a sentence (see :data:`_CLAUSE`)."""
    return [c.strip() for c in _CLAUSE.split(sentence.lower()) if c and c.strip()]


def _side_zone(text: str, first: bool = False, last: bool = False) -> tuple[str | None, str | None]:
    """Side and zone words of ``text``. ``first`` / ``last``: only the first / last side and zone word ("the
    right base compared to the left"; "...the left which may be right basilar airspace disease"), unless
    the text says both sides ("bilateral", "right and left")."""
    words = _WORD.findall(text)
    sides = [SIDE_WORDS[w] for w in words if w in SIDE_WORDS]
    zones = [ZONE_WORDS[w] for w in words if w in ZONE_WORDS]
    if "bilateral" in sides or re.search(r"\b(right and left|left and right)\b", text):
        side = "bilateral"
    elif first or last:
        side = (sides[0] if first else sides[-1]) if sides else None
    else:
        side = "bilateral" if {"left", "right"} <= set(sides) else (sides[0] if sides else None)
    zone = (zones[-1] if last else zones[0]) if zones else None
    return side, zone


def _severity(words: list[str]) -> tuple[int, ...]:
    return tuple(sorted({SEVERITY_WORDS[w] for w in words if w in SEVERITY_WORDS}))


def _post_negated(after: str) -> bool:
    """A post-negation cue later in the clause ("Consolidation and atelectasis have cleared") applies unless
    the phrase has its own verb before it ("pneumothorax is present and effusion is not seen")."""
    m = _NEG_POST.search(after)
    return bool(m) and not _OWN_VERB.search(after[:m.start()])


def _phrase_mentions(clause: str, sentence: str, i: int, restricted: bool) -> list[Mention]:
    out = []
    found = list(_PHRASE_RE.finditer(clause))
    explained = bool(_EXPLAINED.search(sentence))
    for j, m in enumerate(found):
        concept = _PHRASE_INDEX[m.group(1)]
        before, after = clause[:m.start()], clause[m.end():]
        if concept == "effusion" and re.search(r"pericardial\s*$", before):
            continue
        if concept in ("opacity", "consolidation") and re.search(r"\b(calcified|calcific|nodular)(?:[\s-]+\w+)?[\s-]*$",
                                                                 before):
            continue  # "calcified density" is a granuloma, "nodular (like) density" a nodule
        # side, zone and severity: the words between the previous phrase and this one, else the first ones up to
        # the next phrase ("right basal opacity and bibasal atelectasis"; "opacity of the right base")
        lo = found[j - 1].end() if j else 0
        hi = found[j + 1].start() if j + 1 < len(found) else len(clause)
        if concept == "nodule" and re.search(r"\bcalcified\b", clause[lo:m.start()]):
            concept = "granuloma"   # "small calcified right upper lobe nodule"
        side, zone = _side_zone(clause[lo:m.start()], last=True)
        if side is None or zone is None:
            s2, z2 = _side_zone(clause[m.end():hi], first=True)
            side, zone = side or s2, zone or z2
        loc = _LOCATIVE.search(after)
        if (side is None or zone is None) and loc:  # a list under one place: "X, Y and Z in the left lower lobe"
            s3, z3 = _side_zone(loc.group(1), first=True)
            side, zone = side or s3, zone or z3
        before = _PSEUDO.sub(" ", before)   # "no change in the large hiatus hernia" states the hernia
        denied = bool(_NEG_PRE.search(before)) or _post_negated(after)
        hedged = bool(_HEDGE_PRE.search(before)) or bool(_HEDGE_POST.search(after[:40]))
        near = _WORD.findall(clause[lo:m.start()])[-4:] + _WORD.findall(clause[m.end():hi])[:2]
        pol = "denied" if denied else "hedged" if hedged else "asserted"
        neg = _NEG_PRE.search(before)
        # "No XXXX infiltrates": the masked word may have narrowed the denial
        masked = bool(neg and re.search(r"x{3,}", before[neg.end():]))
        out.append(Mention(concept, PHRASES[concept][0], pol, side, zone, _severity(near), i, clause,
                           focal_only=bool(_FOCAL_Q.search(before) or _FOCAL_NEAR.search(before)),
                           large_only=bool(_LARGE_Q.search(before) or _LARGE_NEAR.search(before)) or masked,
                           acute_only=bool(_ACUTE_Q.search(before)), restricted=restricted,
                           non_focal=bool(NON_FOCAL.search(clause)), explained=explained,
                           sized=bool(_SIZED.search(clause))))
    return out


def _statement_mentions(clause: str, i: int, restricted: bool) -> list[Mention]:
    out = []
    side, zone = _side_zone(clause)
    found = [(name, rx.search(clause)) for name, rx in STATEMENTS]
    heart = [(m.end(), name, m) for name, m in found if m and name.startswith("heart")]
    # of the heart statements, the one whose predicate comes first ("enlarged, with normal vasculature")
    keep = {min(heart)[1]} if heart else set()
    for name, m in found:
        if not m or (name.startswith("heart") and name not in keep):
            continue
        if name == "heart_enlarged" and re.search(r"\bnot\b|\bno\b", clause[:m.end()]):
            name = "heart_normal"
        sev = _severity(_WORD.findall(m.group(0)))
        if name == "heart_borderline":
            out.append(Mention("cardiomegaly", "cardiomegaly", "hedged", None, None, (1,), i, clause))
        elif name == "heart_normal":
            out.append(Mention("cardiomegaly", "cardiomegaly", "denied", None, None, (), i, clause,
                               restricted=restricted))
        elif name == "heart_enlarged":
            out.append(Mention("cardiomegaly", "cardiomegaly", "asserted", None, None, sev, i, clause))
        elif name == "lungs_clear":
            out.append(Mention("clear_lungs", "", "denied", side, None, (), i, clause, restricted=restricted,
                               focal_only=bool(re.search(r"\b(?:clear|free) of (?:\w+ )?focal\b", clause))))
        elif name == "hila_normal":
            out.append(Mention("hilar_enlargement", "hilar_enlargement", "denied", side, None, (), i, clause,
                               restricted=restricted))
        elif name == "angles_clear":
            out.append(Mention("effusion", "effusion", "denied", side, "lower", (), i, clause, restricted=restricted))
    return out


def read_mentions(sentences: list[str]) -> list[Mention]:
    """Every mention of every sentence, in reading order."""
    out: list[Mention] = []
    for i, s in enumerate(sentences):
        restricted = bool(_RESTRICT.search(s.lower()))   # "Otherwise, the lungs are clear."
        for c in clauses(s):
            stm = _statement_mentions(c, i, restricted)
            covered = {m.concept for m in stm}
            out.extend(stm)
            out.extend(m for m in _phrase_mentions(c, s.lower(), i, restricted) if m.concept not in covered)
    return out


def same_picture(kind_a: str, kind_b: str) -> bool:
    return kind_a == kind_b or any(kind_a in g and kind_b in g for g in SAME_PICTURE)
