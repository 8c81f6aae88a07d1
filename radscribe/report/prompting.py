"""Serialise findings into the compact inputs the learned report writers consume.

Three views of the same finding list, all deterministic (findings are sorted first, so the same
set gives the same input whatever order a detector produced them in):

* :func:`finding_tokens` - a flat token sequence for the from-scratch decoder's encoder
  (``cardiomegaly sev:mild ; opacity side:left loc:lower_zone ; no:pneumothorax``);
* :func:`finding_features` - a set of features for nearest-neighbour retrieval (kind, and kind
  combined with side / location / severity);
* :func:`findings_prompt` - a short plain-English prompt for a language model.

Only the vocabulary in :mod:`radscribe.knowledge.ontology` is used to phrase things.
"""

from __future__ import annotations

from typing import Sequence

from radscribe.findings.model import Finding
from radscribe.knowledge.ontology import ANATOMY, ATTRIBUTE_WORDS, FINDING_KINDS, size_band

#: Token for a study with no present finding.
NORMAL_TOKEN = "normal"
#: Separates one finding's tokens from the next in :func:`finding_tokens`.
SEP_TOKEN = ";"
#: Attribute names carried into the tokens / prompt, in this order.
_ATTRS = ("severity", "extent", "density", "size_band", "margin", "shape")


def _sort_key(f: Finding) -> tuple:
    return (not f.present, f.kind, f.side or "", f.location or "", str(sorted(f.attributes.items())))


def sorted_findings(findings: Sequence[Finding]) -> list[Finding]:
    """Present findings first, then pertinent negatives; each group sorted by kind, side, location."""
    return sorted(findings, key=_sort_key)


def _attr_values(f: Finding) -> list[tuple[str, str]]:
    out = []
    attrs = dict(f.attributes)
    if "size_band" not in attrs and f.long_axis is not None and f.size_unit == "mm":
        diam = f.long_axis if f.short_axis is None else (f.long_axis + f.short_axis) / 2.0
        attrs["size_band"] = size_band(diam)
    for name in _ATTRS:
        v = attrs.get(name)
        if isinstance(v, str) and v:
            out.append((name, v))
    return out


def finding_tokens(findings: Sequence[Finding]) -> list[str]:
    """Token sequence for one study: per present finding ``kind [side:..] [loc:..] [attr:..]``,
    separated by ``;``, then ``no:<kind>`` per pertinent negative; ``["normal"]`` when nothing
    is present and nothing is negated."""
    toks: list[str] = []
    for f in sorted_findings(findings):
        if not f.present:
            toks += [SEP_TOKEN, f"no:{f.kind}"] if toks else [f"no:{f.kind}"]
            continue
        if toks:
            toks.append(SEP_TOKEN)
        toks.append(f.kind)
        if f.side:
            toks.append(f"side:{f.side}")
        if f.location:
            toks.append(f"loc:{f.location}")
        toks += [f"{name[:4]}:{v}" for name, v in _attr_values(f)]
    if not any(f.present for f in findings):
        toks = [NORMAL_TOKEN] + ([SEP_TOKEN] + toks if toks else [])
    return toks


def finding_features(findings: Sequence[Finding]) -> dict[str, float]:
    """Weighted features of the present findings for set-similarity retrieval.

    The kind itself weighs 1.0; kind+side, kind+location and kind+attribute weigh 0.5 each, so a
    report with the right finding on the wrong side still beats one without the finding. A study
    with no present finding has the single feature ``normal``.
    """
    feats: dict[str, float] = {}
    for f in findings:
        if not f.present:
            continue
        feats[f.kind] = 1.0
        if f.side:
            feats[f"{f.kind}|side:{f.side}"] = 0.5
        if f.location:
            feats[f"{f.kind}|loc:{f.location}"] = 0.5
        for name, v in _attr_values(f):
            feats[f"{f.kind}|{name}:{v}"] = 0.5
    return feats or {NORMAL_TOKEN: 1.0}


def finding_phrase(f: Finding) -> str:
    """Plain words for one finding: ``mild cardiomegaly``, ``left lower zone opacity``."""
    k = FINDING_KINDS.get(f.kind)
    label = k.label if k else f.kind.replace("_", " ")
    words = [ATTRIBUTE_WORDS.get(v, v.replace("_", " ")) for name, v in _attr_values(f) if name != "size_band"]
    if f.side and not (f.location and ANATOMY.get(f.location) and ANATOMY[f.location].side == f.side):
        words.append(f.side)
    if f.location:
        words.append(ANATOMY[f.location].label if f.location in ANATOMY else f.location.replace("_", " "))
    words.append(label)
    phrase = " ".join(words)
    if f.long_axis is not None:
        phrase += f" ({f.long_axis:.0f} {f.size_unit})"
    return phrase


def findings_prompt(findings: Sequence[Finding], indication: str | None = None) -> str:
    """A compact English prompt: indication, present findings, pertinent negatives."""
    present = [finding_phrase(f) for f in sorted_findings(findings) if f.present]
    absent = [finding_phrase(f) for f in sorted_findings(findings) if not f.present]
    lines = []
    if indication and indication.strip():
        lines.append(f"Indication: {indication.strip()}")
    lines.append("Findings: " + ("; ".join(present) if present else "none (normal study)") + ".")
    if absent:
        lines.append("Absent: " + "; ".join(absent) + ".")
    return "\n".join(lines)
