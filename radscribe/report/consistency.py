"""Consistency guard: a generated report may only say what its findings say.

The report labeler reads every generated sentence back. A sentence is dropped when it

* asserts (positive or uncertain) a finding kind that is not among the present findings,
* negates a kind that is present (on the side the sentence names, if it names one), or
* puts a present kind on the wrong side;

and every present finding that no kept sentence mentions gets one sentence added, phrased by the
structured writer (:func:`radscribe.report.structured.describe_finding`). Negated absent kinds
("No pneumothorax.") are the normal statements of the reference style and stay. Study-level
"normal" mentions are not judged: "no acute cardiopulmonary abnormality" is routinely written next
to chronic findings.

Kinds close enough that a radiologist uses them for the same picture (an ``opacity`` called
"airspace disease", a ``calcified_granuloma`` called a "calcified nodule") are treated as the same
finding through :data:`COMPATIBLE` when judging contradictions; without it, the guard would "correct"
correct references (measured in docs/parts/generators.md). To *state* a present finding, a sentence
must name it as the same observation: its own kind, or a compatible kind of the same CheXpert label
(:func:`_covers`): "left basilar atelectasis" does not state a coded left basal opacity, so the guard
adds it (chosen on IU val, benchmarks/iu_reports/guard_coverage.py; figures in docs/parts/generators.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from radscribe.findings.model import Finding
from radscribe.knowledge.groups import COMPATIBLE, SIDE_FREE, UNPHRASEABLE
from radscribe.knowledge.kinds import FINDING_KINDS, STUDY_LEVEL_KINDS
from radscribe.knowledge.labeler import label_text, split_sentences
from radscribe.knowledge.statements import STATEMENT_RULES
from radscribe.report.structured import describe_finding

#: A negation restricted to the rest of an organ ("the lungs are otherwise clear", "no other
#: opacity") does not deny a finding described elsewhere in the report.
RESTRICTED_NEGATION = re.compile(r"\b(otherwise|remainder|remaining|rest of the|elsewhere|no other|no new|no additional|"
                                 r"no further)\b", re.IGNORECASE)
#: A negation qualified by size or certainty ("no large pleural effusion", "no definite effusion") does
#: not deny a small or borderline finding of that kind.
QUALIFIED_NEGATION = re.compile(r"\b(no|without|nor|or)\s+(large|larger|significant|sizable|sizeable|substantial|"
                                r"definite|definitive|large volume|moderate or large|appreciable|gross)\b", re.IGNORECASE)
#: "No focal consolidation" is written beside diffuse, interstitial or streaky opacities; it denies only a
#: focal one, so it does not contradict a finding described as non-focal.
FOCAL_NEGATION = re.compile(r"\b(no|without|nor)\s+(\w+\s+)?focal\b", re.IGNORECASE)
NON_FOCAL = frozenset({"diffuse", "interstitial", "streaky", "linear", "reticular", "patchy", "scattered", "hazy"})
#: "Heart size is at the upper limits of normal" hedges about a normal heart: the labeler reads it as
#: uncertain cardiomegaly (CheXpert's convention, the ontology's statement rule) but it does not
#: contradict a study without one. The phrases are the rule's own, spaces or hyphens between words.
BORDERLINE_HEART = re.compile(
    r"\b(" + "|".join(sorted({r"[- ]".join(map(re.escape, re.split(r"[- ]", p)))
                               for rule in STATEMENT_RULES if rule.kinds == ("cardiomegaly",)
                               for p in rule.uncertain}, key=len, reverse=True)) + r")\b", re.IGNORECASE)
@dataclass(frozen=True)
class GuardResult:
    """The guarded text and what changed: sentences kept, dropped (with the reason) and added."""

    text: str
    kept: tuple[str, ...]
    dropped: tuple[tuple[str, str], ...]
    added: tuple[str, ...]
    n_corrections: int


def _kinds_for(kind: str) -> frozenset[str]:
    return COMPATIBLE.get(kind, frozenset({kind}))


def _covers(mention_kind: str, finding_kind: str) -> bool:
    """Whether a sentence asserting ``mention_kind`` states a present ``finding_kind``.

    Looser kinds (:data:`COMPATIBLE`) only keep a sentence from being a contradiction; to *state* a
    finding, the sentence must name it as the same observation: the same kind, or a compatible kind of
    the same CheXpert label ("calcified nodule" for a calcified granuloma). "Left basilar atelectasis"
    does not state a coded left basal opacity: a reader (and the CE labeler) hears atelectasis only.
    Kinds without a CheXpert label keep the compatible groups."""
    if mention_kind == finding_kind:
        return True
    if finding_kind not in _kinds_for(mention_kind):
        return False
    label = FINDING_KINDS[finding_kind].chexpert if finding_kind in FINDING_KINDS else None
    return label is None or (mention_kind in FINDING_KINDS and FINDING_KINDS[mention_kind].chexpert == label)


def _side_ok(mention_side: str | None, finding_sides: Sequence[str | None]) -> bool:
    """Whether a mention's side fits at least one present finding of its kind."""
    if mention_side is None:
        return True
    for s in finding_sides:
        if s is None or s == mention_side or s == "bilateral":
            return True
    return False


def _judge(mention, present: dict[str, list[Finding]]) -> str | None:
    """Why a mention contradicts the findings, or None when it is consistent."""
    if mention.kind in STUDY_LEVEL_KINDS:
        return None
    if mention.kind in SIDE_FREE:
        mention = _Unsided(mention.kind, mention.status)
    exact = present.get(mention.kind, [])
    related = [f for k in _kinds_for(mention.kind) for f in present.get(k, [])]
    side = f" ({mention.side})" if mention.side else ""
    if mention.status in ("positive", "uncertain"):
        if (not related and mention.status == "uncertain" and mention.kind == "cardiomegaly"
                and BORDERLINE_HEART.search(mention.sentence or "")):
            return None
        if not related:
            return f"asserts {mention.kind}{side} ({mention.status}) but the findings have no {mention.kind}"
        if not _side_ok(mention.side, [f.side for f in related]):
            sides = sorted({f.side for f in related if f.side})
            return f"puts {mention.kind} on the {mention.side} but the findings have it {'/'.join(sides)}"
        return None
    # negative: contradicts only a present finding of exactly this kind on the side it names
    sentence = mention.sentence or ""
    if FOCAL_NEGATION.search(sentence):
        exact = [f for f in exact if not NON_FOCAL & set((f.attributes or {}).get("descriptors", ()))]
    if exact and not RESTRICTED_NEGATION.search(sentence) and not QUALIFIED_NEGATION.search(sentence):
        if mention.side is None or any(f.side in (None, mention.side, "bilateral") for f in exact) \
                or mention.side == "bilateral":
            return f"negates {mention.kind}{side} but the findings have it present"
    return None


@dataclass(frozen=True)
class _Unsided:
    kind: str
    status: str
    side: None = None
    sentence: str = ""


def _mentions(sentence: str):
    return label_text(sentence)


def guard(text: str, findings: Sequence[Finding], *, strict_coverage: bool = True) -> GuardResult:
    """Check ``text`` sentence by sentence against ``findings`` and correct it (see module doc).

    ``strict_coverage=False`` counts a finding as stated by any compatible kind (the rule before
    session 3, kept for the ablation in benchmarks/iu_reports/guard_coverage.py)."""
    present: dict[str, list[Finding]] = {}
    for f in findings:
        if f.present:
            present.setdefault(f.kind, []).append(f)

    kept: list[str] = []
    kept_mentions: list = []
    dropped: list[tuple[str, str]] = []
    for sent in split_sentences(text or ""):
        sent = sent.strip()
        if not sent:
            continue
        mentions = _mentions(sent)
        reasons = [r for r in (_judge(m, present) for m in mentions) if r]
        if reasons:
            dropped.append((sent, "; ".join(dict.fromkeys(reasons))))
        else:
            kept.append(sent)
            kept_mentions.extend(m for m in mentions if m.status in ("positive", "uncertain"))

    added: list[str] = []
    for kind, fs in present.items():
        if kind in UNPHRASEABLE or kind not in FINDING_KINDS:
            continue
        for f in fs:
            covered = any(
                (_covers(m.kind, f.kind) if strict_coverage else f.kind in _kinds_for(m.kind))
                and (m.side is None or f.side is None or m.side == f.side or f.side == "bilateral"
                     or f.kind in SIDE_FREE)
                for m in kept_mentions)
            if not covered:
                s = describe_finding(f)
                if s not in added:
                    added.append(s)
    # a kept sentence without an end mark (a cut-off answer) must not run into an added sentence:
    # "No other abnormal" + "An opacity is seen." would read as a negation of the opacity
    out = " ".join([k if k.endswith((".", "!", "?")) else k + "." for k in kept] + added)
    return GuardResult(text=out, kept=tuple(kept), dropped=tuple(dropped), added=tuple(added),
                       n_corrections=len(dropped) + len(added))
