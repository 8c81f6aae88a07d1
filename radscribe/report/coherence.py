"""The guard's reading of a report as a whole: no two sentences may disagree, no word is said twice.

:func:`radscribe.report.consistency.guard` first judges each sentence against the findings. What a
sentence-by-sentence check cannot see is a denial that another sentence (or a finding the guard is about
to add) contradicts: "There is no focal airspace opacity in the right lung base." beside "Consolidation
is present in the right lower zone."; "The lungs are clear." beside a nodule; "No acute cardiopulmonary
abnormality." beside pulmonary oedema. :func:`conflicting_denials` finds those sentences so that the
guard drops them: the assertion is what the findings hold, so the denial goes (a narrow denial, "no
*focal* opacity" beside a patchy one, goes too: the report must read unambiguously).

Which denial contradicts which finding is knowledge (:data:`radscribe.knowledge.groups.DENIES`,
``CLEAR_LUNGS_DENY``, ``NO_ACUTE_DENY``); sides and zones must be compatible ("no effusion on the
right" stands beside a left effusion).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from radscribe.knowledge.groups import CLEAR_LUNGS_DENY, DENIES, NO_ACUTE_DENY, NORMAL_STUDY_ALLOWS
from radscribe.knowledge.kinds import FINDING_KINDS

#: A negation restricted to the rest of an organ ("the lungs are otherwise clear", "no other opacity") does
#: not deny a finding described elsewhere in the report.
RESTRICTED_NEGATION = re.compile(r"\b(otherwise|remainder|remaining|rest of the|elsewhere|no other|no new|no additional|"
                                 r"no further|except|aside from|apart from|besides)\b", re.IGNORECASE)
#: A negation qualified by size or certainty ("no large pleural effusion", "no definite effusion") does
#: not deny a small or borderline finding of that kind.
QUALIFIED_NEGATION = re.compile(r"\b(no|without|nor|or)\s+(large|larger|significant|sizable|sizeable|substantial|"
                                r"definite|definitive|large volume|moderate or large|appreciable|gross)\b", re.IGNORECASE)
#: Qualifier word -> the coded severity (0..3) from which a finding is no longer excused by it: "no large
#: effusion" stands beside a small one but not beside a large one; "no definite ..." beside any.
QUALIFIER_LEVEL = {"large": 3, "larger": 3, "sizable": 3, "sizeable": 3, "substantial": 3, "large volume": 3,
                   "gross": 3, "moderate or large": 2, "significant": 2, "appreciable": 2, "definite": 9,
                   "definitive": 9}
#: "The lungs are clear" (any lung subject, also "hyperexpanded but clear"; "clear" not narrowed by
#: "clear of ..."), "clear lungs", "the lungs are free of airspace disease"; group 1 is a side.
CLEAR_LUNGS = re.compile(r"\b(?:(right|left)\s+)?(?:lungs?|lung fields?|lung parenchyma)\b(?:\s+\w+){0,2}?\s+"
                         r"(?:is|are|appear|appears|remain|remains)\b(?:[^.;]{0,40}?\bclear\b(?!\s+of\b)|"
                         r"\s+(?:\w+\s+)?(?:clear|free) of\b)|\bclear\s+lungs?\b", re.IGNORECASE)
#: "free of airspace disease", "no focal airspace process": the labeler's consolidation, phrased so that it
#: denies any airspace opacity ...
AIRSPACE_DISEASE = re.compile(r"\bair\s?space (?:disease|process)", re.IGNORECASE)
#: ... but not nodular (granulomatous) densities
NODULAR = frozenset({"round", "nodular", "multiple nodular", "calcified"})
#: A whole-study normal ("Normal chest x-ray.") rather than "no acute ... abnormality".
NORMAL_STUDY = re.compile(r"\b(normal|unremarkable|negative)\s+(chest|exam|examination|study|radiographs?)\b",
                          re.IGNORECASE)
#: A study-level "no acute cardiopulmonary abnormality" opens its sentence; "no acute infiltrate" or
#: "bony structures reveal no acute abnormalities" are narrower (the labeler reads them as its own kinds).
NO_ACUTE_STUDY = re.compile(r"^\s*(?:there is\s+|there are\s+)?(?:no|without)\s+(?:radiographic\s+|definite\s+|"
                            r"significant\s+)?(?:evidence\s+of\s+)?(?:an\s+)?(?:acute|active)\s+(?:cardiopulmonary\s+|"
                            r"pulmonary\s+|intrathoracic\s+|chest\s+|thoracic\s+|cardiac or pulmonary\s+|"
                            r"pulmonary or pleural\s+|radiographic\s+)*(?:disease|abnormalit\w*|process\w*|"
                            r"findings?|pathology|changes?|cardiopulmonary)\b", re.IGNORECASE)
_LOBE_ZONE = {"right_upper_lobe": "upper_zone", "left_upper_lobe": "upper_zone", "right_middle_lobe": "middle_zone",
              "lingula": "middle_zone", "right_lower_lobe": "lower_zone", "left_lower_lobe": "lower_zone"}
_STUTTER = re.compile(r"\b([A-Za-z]{2,}(?:\s+[A-Za-z]{2,})?)(\s+\1\b)+", re.IGNORECASE)


@dataclass(frozen=True)
class Claim:
    """Something the report (or a finding about to be stated) asserts: a kind, on a side, in a zone."""

    kind: str
    side: str | None
    zone: str | None
    source: int = -1  # index of the sentence that makes it; -1 for a present finding
    severity: int | None = None  # 0 minimal .. 3 severe, when known
    looks: tuple[str, ...] = ()  # descriptors of a coded finding ("round", "patchy")


def zone_of(location: str | None) -> str | None:
    """The lung zone of an anatomy id ("right_lower_lobe" -> "lower_zone"), None when it names none."""
    if not location:
        return None
    if location in _LOBE_ZONE:
        return _LOBE_ZONE[location]
    return location if location.endswith("_zone") else None


_SIDE_WORD = re.compile(r"\b(left|right|bilateral|bilaterally|both)\b", re.IGNORECASE)
_ZONE_WORD = re.compile(r"\b(upper|middle|mid|lower)\s+(?:zones?|lobes?|lungs?)\b|\b(apex|apices|apical|bases?|basal|"
                        r"basilar|bibasilar)\b", re.IGNORECASE)
_ZONE_NAME = {"upper": "upper_zone", "middle": "middle_zone", "mid": "middle_zone", "lower": "lower_zone",
              "apex": "upper_zone", "apices": "upper_zone", "apical": "upper_zone", "base": "lower_zone",
              "bases": "lower_zone", "basal": "lower_zone", "basilar": "lower_zone", "bibasilar": "lower_zone"}


def sentence_place(sentence: str) -> tuple[str | None, str | None]:
    """(side, zone) a sentence names when the labeler attached none to its mention ("An opacity is seen in
    the left lower zone": the clause ends at "is seen"); None where it names none or several."""
    sides = {w.lower() for w in _SIDE_WORD.findall(sentence)}
    side = "bilateral" if sides & {"bilateral", "bilaterally", "both"} or {"left", "right"} <= sides else \
        (sides.pop() if len(sides) == 1 else None)
    zones = {_ZONE_NAME[(a or b).lower()] for a, b in _ZONE_WORD.findall(sentence)}
    return side, (zones.pop() if len(zones) == 1 else None)


def fix_stutter(sentence: str) -> str:
    """A word or word pair said twice in a row once ("bilateral bilateral" -> "bilateral"; "mild mild mild
    mild" -> "mild")."""
    while True:
        fixed = _STUTTER.sub(lambda m: m.group(1), sentence)
        if fixed == sentence:
            return fixed
        sentence = fixed


def _norm(sentence: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", sentence.lower()).strip()


def unique_sentences(sentences: Iterable[str]) -> tuple[list[str], list[str]]:
    """(sentences in order without stutters and without repeats, the repeats dropped)."""
    out, repeats, seen = [], [], set()
    for s in sentences:
        s = fix_stutter(s.strip())
        key = _norm(s)
        if not key:
            continue
        if key in seen:
            repeats.append(s)
            continue
        seen.add(key)
        out.append(s)
    return out, repeats


def _sides_meet(denied: str | None, claimed: str | None) -> bool:
    return denied in (None, "bilateral") or claimed in (None, "bilateral", denied)


def _zones_meet(denied: str | None, claimed: str | None) -> bool:
    return denied is None or claimed is None or denied == claimed


def _phrases(kind: str) -> list[str]:
    k = FINDING_KINDS.get(kind)
    return [] if k is None else [k.label, *k.synonyms, *((k.plural,) if k.plural else ())]


def qualifier_level(kind: str, sentence: str) -> int | None:
    """The level of a size / certainty qualifier on the denial of ``kind`` ("no pneumothorax or large
    effusion": 3 for the effusion, None for the pneumothorax), None when the denial is plain."""
    low = sentence.lower()
    segments = re.split(r"(?=\b(?:no|without|nor|or)\s)", low)
    words = [p.lower() for p in _phrases(kind)]
    own = [seg for seg in segments if any(re.search(rf"\b{re.escape(w)}\b", seg) for w in words)] or [low]
    levels = []
    for seg in own:
        m = QUALIFIED_NEGATION.search(seg)
        if m:
            levels.append(QUALIFIER_LEVEL.get(m.group(2).lower(), 3))
    return max(levels) if levels else None


def denial_scope(mention, sentence: str) -> frozenset[str]:
    """The kinds one mention of a sentence denies (empty for an assertion or a narrowed denial)."""
    if RESTRICTED_NEGATION.search(sentence):
        return frozenset()
    if mention.kind == "normal" and mention.status == "positive":
        if NORMAL_STUDY.search(sentence):
            return frozenset(k for k in FINDING_KINDS if k not in NORMAL_STUDY_ALLOWS)
        return NO_ACUTE_DENY if NO_ACUTE_STUDY.search(sentence) else frozenset()
    if mention.status != "negative" or mention.kind in ("normal", "no_finding"):
        return frozenset()
    if mention.kind in ("opacity", "consolidation") and CLEAR_LUNGS.search(sentence):
        return CLEAR_LUNGS_DENY
    if mention.kind == "consolidation" and AIRSPACE_DISEASE.search(sentence):
        return DENIES["opacity"]
    return DENIES.get(mention.kind, frozenset({mention.kind}))


def _denials(sentence: str, mentions: Sequence) -> list[tuple[str, frozenset[str], str | None, str | None, int | None]]:
    """(what, kinds denied, side, zone, qualifier level) for each denial a sentence makes."""
    out = []
    for m in mentions:
        scope = denial_scope(m, sentence)
        if scope:
            what = "a normal study" if m.kind == "normal" else m.kind
            if m.kind == "consolidation" and AIRSPACE_DISEASE.search(sentence):
                what = "airspace disease"
            side = None if m.kind == "normal" else m.side
            zone = None if m.kind == "normal" else zone_of(m.location)
            level = None if m.kind == "normal" or scope is CLEAR_LUNGS_DENY else qualifier_level(m.kind, sentence)
            out.append((what, scope, side, zone, level))
    clear = CLEAR_LUNGS.search(sentence)
    if clear and not RESTRICTED_NEGATION.search(sentence) and not any(d[1] is CLEAR_LUNGS_DENY for d in out):
        # "the lungs are hyperexpanded but clear": the labeler's clause ends at "but"; the statement stands
        out.append(("clear lungs", CLEAR_LUNGS_DENY, (clear.group(1) or "").lower() or None, None, None))
    return out


def conflicting_denials(sentences: Sequence[str], mentions: Sequence[Sequence], claims: Sequence[Claim]
                        ) -> dict[int, str]:
    """Index -> reason for every sentence that denies what a claim asserts on a compatible side and zone.

    ``mentions[i]`` are the labeler's mentions of ``sentences[i]``; ``claims`` are the present findings
    (source -1) and the assertions of the sentences (source = their index); a sentence never
    contradicts its own assertions ("No right effusion; small left effusion"). A qualified denial ("no
    large effusion") stands beside a smaller finding."""
    out: dict[int, str] = {}
    for i, (sent, ms) in enumerate(zip(sentences, mentions)):
        own = {m.kind for m in ms if m.status in ("positive", "uncertain")}  # "markings, the lungs otherwise clear"
        for what, scope, side, zone, level in _denials(sent, ms):
            for c in claims:
                if c.source == i or c.kind not in scope or c.kind in own:
                    continue
                if level is not None and (c.severity is None or c.severity < level):
                    continue
                if what == "airspace disease" and c.kind == "opacity" and NODULAR & set(c.looks):
                    continue  # "no focal airspace disease" beside round (granulomatous) densities
                if _sides_meet(side, c.side) and _zones_meet(zone, c.zone):
                    where = " ".join(x for x in (c.side, (c.zone or "").replace("_", " ")) if x)
                    out[i] = f"denies {what} but the report states {c.kind}" + (f" ({where})" if where else "")
                    break
            if i in out:
                break
    return out
