"""Consistency guard: a generated report may only say what its findings say, and must read as one report.

The report labeler reads every generated sentence back. First each sentence on its own: it is dropped when it

* carries a de-identification placeholder ("XXXX", "<unk>": :mod:`radscribe.report.placeholders`),
* asserts (positive or uncertain) a finding kind that is not among the present findings,
* negates a kind that is present (on the side the sentence names, if it names one),
* puts a present kind on the wrong side, or
* gives it a severity two or more steps from the finding's ("small" for a severe one;
  :data:`radscribe.knowledge.groups.SEVERITY_SCALE`).

Then the report as a whole (:mod:`radscribe.report.coherence`): a kept denial that contradicts a present
finding or another kept assertion on a compatible side and zone is dropped, global ones included ("the
lungs are clear", "no acute cardiopulmonary abnormality"; narrow ones such as "no focal opacity" beside a
patchy one too); a word said twice in a row is said once and a repeated sentence goes. Last, every present
finding of a known kind that no kept sentence states gets one sentence added, phrased by the structured
writer (:func:`radscribe.report.structured.describe_finding`). Negated absent kinds ("No pneumothorax.") are
the normal statements of the reference style and stay.

Kinds close enough that a radiologist uses them for the same picture (an ``opacity`` called
"airspace disease", a ``calcified_granuloma`` called a "calcified nodule") are treated as the same
finding through :data:`COMPATIBLE` when judging assertions; without it, the guard would "correct"
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
from radscribe.knowledge.groups import COMPATIBLE, SEVERITY_SCALE, SIDE_FREE, UNPHRASEABLE
from radscribe.knowledge.kinds import FINDING_KINDS, STUDY_LEVEL_KINDS
from radscribe.knowledge.labeler import label_text, split_sentences
from radscribe.knowledge.statements import STATEMENT_RULES
from radscribe.report.coherence import (QUALIFIED_NEGATION, RESTRICTED_NEGATION, Claim, conflicting_denials,
                                        sentence_place, unique_sentences, zone_of)
from radscribe.report.placeholders import has_placeholder
from radscribe.report.structured import describe_finding

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
        return _severity_disagrees(mention, exact or related)
    # negative: contradicts only a present finding of exactly this kind on the side it names ("no *focal*
    # opacity" beside a patchy one included; other kinds it denies are the whole-report check's)
    sentence = mention.sentence or ""
    if exact and not RESTRICTED_NEGATION.search(sentence) and not QUALIFIED_NEGATION.search(sentence):
        if mention.side is None or any(f.side in (None, mention.side, "bilateral") for f in exact) \
                or mention.side == "bilateral":
            return f"negates {mention.kind}{side} but the findings have it present"
    return None


def _coded_severity(f: Finding) -> int | None:
    attrs = f.attributes or {}
    for key in ("severity", "extent"):
        if attrs.get(key) in SEVERITY_SCALE:
            return SEVERITY_SCALE[attrs[key]]
    return None


def _severity_disagrees(mention, findings: Sequence[Finding]) -> str | None:
    """Why a sentence's severity word disagrees with every side-compatible finding it may describe (two or more
    steps apart: "small" for a severe finding), or None (no word, or a finding without a coded severity)."""
    said = SEVERITY_SCALE.get(mention.severity or "")
    if said is None:
        return None
    near = [f for f in findings if _side_ok(mention.side, [f.side])] or list(findings)
    here = [f for f in near if mention.location and f.location == mention.location]
    near = here or near  # "small right pleural space opacification": the pleural finding, not the basal one
    coded = [_coded_severity(f) for f in near]
    if not coded or any(c is None or abs(c - said) < 2 for c in coded):
        return None
    words = sorted({(f.attributes or {}).get("severity") or (f.attributes or {}).get("extent") for f in near})
    return f"calls {mention.kind} {mention.severity} but the findings have it {'/'.join(words)}"


@dataclass(frozen=True)
class _Unsided:
    kind: str
    status: str
    side: None = None
    sentence: str = ""
    severity: str | None = None
    location: str | None = None


def _mentions(sentence: str):
    return label_text(sentence)


def _claim(m, i: int) -> Claim:
    """What a kept sentence's assertion claims; where the labeler attached no side or zone, the sentence's own."""
    side, zone = m.side, zone_of(m.location)
    if side is None or zone is None:
        s_side, s_zone = sentence_place(m.sentence or "")
        side, zone = side or s_side, zone or s_zone
    looks = tuple(w.lower() for w in re.findall(r"\b(nodular|round|calcified)\b", m.sentence or "", re.IGNORECASE))
    return Claim(m.kind, None if m.kind in SIDE_FREE else side, zone, i, SEVERITY_SCALE.get(m.severity or ""), looks)


def guard(text: str, findings: Sequence[Finding], *, strict_coverage: bool = True) -> GuardResult:
    """Check ``text`` against ``findings``, sentence by sentence and as a whole, and correct it (module doc).

    ``strict_coverage=False`` counts a finding as stated by any compatible kind (the rule before
    session 3, kept for the ablation in benchmarks/iu_reports/guard_coverage.py)."""
    present: dict[str, list[Finding]] = {}
    for f in findings:
        if f.present:
            present.setdefault(f.kind, []).append(f)

    sentences, repeats = unique_sentences(split_sentences(text or ""))
    dropped: list[tuple[str, str]] = [(s, "repeats an earlier sentence") for s in repeats]
    kept: list[str] = []
    kept_all: list[list] = []  # every mention of each kept sentence
    for sent in sentences:
        if has_placeholder(sent):
            dropped.append((sent, "carries a de-identification placeholder"))
            continue
        mentions = _mentions(sent)
        reasons = [r for r in (_judge(m, present) for m in mentions) if r]
        if reasons:
            dropped.append((sent, "; ".join(dict.fromkeys(reasons))))
        else:
            kept.append(sent)
            kept_all.append(mentions)

    # the whole report: a denial may not stand beside what a finding or another sentence asserts
    findings_claims = [Claim(f.kind, f.side, zone_of(f.location), -1, _coded_severity(f),
                             tuple((f.attributes or {}).get("descriptors", ()))) for fs in present.values() for f in fs]
    while True:
        claims = findings_claims + [_claim(m, i) for i, ms in enumerate(kept_all) for m in ms
                                    if m.status in ("positive", "uncertain") and m.kind not in STUDY_LEVEL_KINDS]
        bad = conflicting_denials(kept, kept_all, claims)
        if not bad:
            break
        dropped.extend((kept[i], why) for i, why in sorted(bad.items()))
        kept_all = [ms for i, ms in enumerate(kept_all) if i not in bad]
        kept = [s for i, s in enumerate(kept) if i not in bad]
    kept_mentions = [m for ms in kept_all for m in ms if m.status in ("positive", "uncertain")]

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
