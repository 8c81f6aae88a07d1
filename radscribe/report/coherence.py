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
#: "The lungs are clear" (any lung subject, "clear" not narrowed by "clear of ...") and "clear lungs".
CLEAR_LUNGS = re.compile(r"\b(lungs?|lung fields?|lung parenchyma)\b[^.;]*?\bclear\b(?!\s+of\b)|\bclear\s+lungs?\b",
                         re.IGNORECASE)
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


def zone_of(location: str | None) -> str | None:
    """The lung zone of an anatomy id ("right_lower_lobe" -> "lower_zone"), None when it names none."""
    if not location:
        return None
    if location in _LOBE_ZONE:
        return _LOBE_ZONE[location]
    return location if location.endswith("_zone") else None


def fix_stutter(sentence: str) -> str:
    """A word or word pair said twice in a row once ("bilateral bilateral" -> "bilateral")."""
    return _STUTTER.sub(lambda m: m.group(1), sentence)


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
    if QUALIFIED_NEGATION.search(sentence):
        return frozenset()
    return DENIES.get(mention.kind, frozenset({mention.kind}))


def conflicting_denials(sentences: Sequence[str], mentions: Sequence[Sequence], claims: Sequence[Claim]
                        ) -> dict[int, str]:
    """Index -> reason for every sentence that denies what a claim asserts on a compatible side and zone.

    ``mentions[i]`` are the labeler's mentions of ``sentences[i]``; ``claims`` are the present findings
    (source -1) and the assertions of the sentences (source = their index); a sentence never
    contradicts its own assertions ("No right effusion; small left effusion")."""
    out: dict[int, str] = {}
    for i, (sent, ms) in enumerate(zip(sentences, mentions)):
        own = {m.kind for m in ms if m.status in ("positive", "uncertain")}  # "markings, the lungs otherwise clear"
        for m in ms:
            scope = denial_scope(m, sent)
            if not scope:
                continue
            side = None if m.kind == "normal" else m.side
            zone = None if m.kind == "normal" else zone_of(m.location)
            for c in claims:
                if c.source != i and c.kind in scope and c.kind not in own and _sides_meet(side, c.side) and _zones_meet(zone, c.zone):
                    where = " ".join(x for x in (c.side, (c.zone or "").replace("_", " ")) if x)
                    what = "a normal study" if m.kind == "normal" else f"{m.kind}"
                    out[i] = f"denies {what} but the report states {c.kind}" + (f" ({where})" if where else "")
                    break
            if i in out:
                break
    return out
