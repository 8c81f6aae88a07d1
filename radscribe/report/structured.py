"""The deterministic structured writer: findings in, a radiology-style report out.

Every word comes from the knowledge module (finding labels, anatomy labels, attribute words) and
every number from the findings themselves, so the text can never assert something the findings do
not hold. Sentences follow the order a radiologist reads a study: for the chest, lungs, pleura,
heart and mediastinum, bones, devices; then the impression, most important first.

Pertinent negatives come from two sources: findings with ``present=False`` (a detector that is
confident a study is normal), and, for chest studies written in radiograph style, the systems no
finding mentions ("No pleural effusion or pneumothorax."). The latter is only used when the caller
says the findings are complete for those systems (``assume_complete=True``, as for an oracle
finding set); a detector that only looks for nodules must not imply the heart is normal.
"""

from __future__ import annotations

from collections.abc import Sequence

from radscribe.findings.model import Finding, Report, StudyInfo
from radscribe.knowledge.fleischner import APPLICABILITY, recommend
from radscribe.knowledge.descriptors import ANATOMY, ATTRIBUTE_WORDS
from radscribe.knowledge.groups import CHEST_SYSTEMS
from radscribe.knowledge.kinds import FINDING_KINDS, STUDY_LEVEL_KINDS

WRITER_NAME = "structured"

#: Findings read from text (MeSH coding, the clinical indication) rather than made by a model from the
#: image: they carry no meaningful confidence, so the text does not quote one.
TEXT_SOURCES = frozenset({"mesh-oracle", "indication", "labeler-indication", ""})


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"


def _num(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}".rstrip("0").rstrip(".")


def location_phrase(f: Finding) -> str:
    """'in the right upper lobe' / 'in the left lower zone' / 'on the right' / ''."""
    loc = ANATOMY.get(f.location) if f.location else None
    side = f.side
    if loc is not None:
        label = loc.label
        if loc.side is None and side in ("left", "right") and loc.id not in ("lungs",):
            label = f"{side} {label}"
        elif loc.side is None and side == "bilateral":
            label = f"bilateral {label}s" if not label.endswith("s") else f"bilateral {label}"
        return f"in the {label}"
    if side in ("left", "right"):
        return f"on the {side}"
    if side == "bilateral":
        return "bilaterally"
    return ""


def size_phrase(f: Finding) -> str:
    if f.long_axis is None:
        return ""
    unit = "mm" if f.size_unit == "mm" else "pixels"
    if f.short_axis is not None and abs(f.short_axis - f.long_axis) >= 0.5:
        return f"measuring {_num(f.long_axis)} x {_num(f.short_axis)} {unit}"
    return f"measuring {_num(f.long_axis)} {unit}"


def noun_phrase(f: Finding, with_margin: bool = True) -> str:
    """The finding's noun phrase: severity, density (unless the label says it) and margin words + label."""
    k = FINDING_KINDS.get(f.kind)
    label = k.label if k else f.kind.replace("_", " ")
    keys = ("severity", "density", "margin") if with_margin else ("severity", "density")
    words = [ATTRIBUTE_WORDS.get(v, str(v)) for key in keys
             if (v := f.attributes.get(key)) and not (key == "density" and v in label)]
    return " ".join(words + [label])


def _plural(noun: str) -> bool:
    """Whether a mass-noun phrase reads as plural ("low lung volumes", "degenerative changes")."""
    last = noun.split()[-1].lower() if noun.split() else ""
    return last.endswith("s") and not last.endswith(("ss", "is", "us", "sis"))


def describe_finding(f: Finding) -> str:
    """One sentence for one present finding."""
    k = FINDING_KINDS.get(f.kind)
    noun = noun_phrase(f, with_margin=True)
    where = location_phrase(f)
    size = size_phrase(f)
    countable = k.countable if k else True
    model_made = f.detector not in TEXT_SOURCES
    conf = f" (confidence {f.confidence:.2f}, {f.detector})" if model_made else ""
    if countable:
        body = f"{_article(noun)} {noun}"
        parts = [body]
        if size:
            parts.append(size)
        if where:
            parts.append(f"is seen {where}")
        else:
            parts.append("is seen")
        text = " ".join(parts)
    else:
        verb = "are" if _plural(noun) else "is"
        text = f"{noun[:1].upper()}{noun[1:]}" + (f" {verb} present {where}" if where else f" {verb} present")
    text = text[:1].upper() + text[1:]
    return f"{text}{conf}.{attention_phrase(f)}"


def attention_phrase(f: Finding) -> str:
    """' The model's attention is over the left kidney.' for a classifier's heatmap side (which is not
    accurate enough to state as the finding's side), else ''."""
    side = f.attributes.get("attention_side")
    if side not in ("left", "right"):
        return ""
    loc = ANATOMY.get(f.attributes.get("attention_location") or "")
    where = loc.label if loc is not None and loc.side == side else f"{side} side"
    return f" The model's attention is over the {where}."


def _impression_line(f: Finding) -> str:
    head = noun_phrase(f, with_margin=False)
    where = location_phrase(f)
    size = ""
    if f.long_axis is not None:
        mean = f.long_axis if f.short_axis is None else (f.long_axis + f.short_axis) / 2
        unit = "mm" if f.size_unit == "mm" else "px"
        size = f", {_num(mean)} {unit}" + (" mean diameter" if f.short_axis is not None else "")
    line = f"{head} {where}".strip() + size
    if f.detector not in TEXT_SOURCES:
        line += f" (confidence {f.confidence:.2f})"
    return line[:1].upper() + line[1:] + "."


def _nodule_recommendation(nodules: Sequence[Finding]) -> str | None:
    """Fleischner 2017 follow-up for the dominant (largest) non-calcified nodule, with its caveat."""
    candidates = [n for n in nodules if n.attributes.get("density") != "calcified" and n.long_axis is not None
                  and n.size_unit == "mm"]
    if not candidates:
        return None
    dom = max(candidates, key=lambda n: n.long_axis or 0.0)
    mean = dom.long_axis if dom.short_axis is None else (dom.long_axis + dom.short_axis) / 2
    rec = recommend(mean, dom.attributes.get("density", "solid"), multiple=len(candidates) > 1)
    if rec is None:
        return None
    if rec.low_risk == rec.high_risk:
        advice = rec.low_risk
    else:
        advice = f"Low-risk patient: {rec.low_risk} High-risk patient: {rec.high_risk}"
    return f"Fleischner 2017 ({rec.category}): {advice} {APPLICABILITY}"


def _negative_sentence(f: Finding) -> str:
    k = FINDING_KINDS.get(f.kind)
    label = k.label if k else f.kind.replace("_", " ")
    if f.kind in STUDY_LEVEL_KINDS:
        return f"No abnormality identified by {f.detector} (confidence {f.confidence:.2f} normal)."
    return f"No {label} identified (confidence {f.confidence:.2f} normal, {f.detector})."


def write_structured(
    findings: Sequence[Finding],
    study: StudyInfo | None = None,
    *,
    region: str | None = None,
    modality: str | None = None,
    detectors_run: Sequence[str] = (),
    notes: Sequence[str] = (),
    assume_complete: bool = False,
) -> Report:
    """Write Findings and Impression text.

    ``detectors_run`` lists what looked at the study: with none, the report says that no detector
    applies instead of implying normality. ``assume_complete`` (chest only) adds standard normal
    statements for systems no finding mentions - right for an oracle finding list, wrong for a
    single-purpose detector.
    """
    region = region or (study.body_region if study else "chest")
    modality = modality or (study.modality if study else None)
    present = [f for f in findings if f.present]
    negatives = [f for f in findings if not f.present]

    if not detectors_run and not assume_complete and not findings:
        what = f"{modality or 'this'} {region} study".replace("unknown ", "")
        text = (f"No automated detector in radscribe applies to this {what}; no findings are reported. "
                "This is not a statement that the study is normal.")
        extra = " ".join(notes)
        return Report(findings=(text + (" " + extra if extra else "")).strip(),
                      impression="No automated assessment available for this study type.", writer=WRITER_NAME)

    sentences: list[str] = []
    impression: list[str] = []

    if region == "chest" and assume_complete:
        for system, kinds, normal in CHEST_SYSTEMS:
            here = [f for f in present if f.kind in kinds]
            sentences.extend(describe_finding(f) for f in here)
            if not here and normal:
                sentences.append(normal)
        others = [f for f in present if not any(f.kind in kinds for _, kinds, _ in CHEST_SYSTEMS)]
        sentences.extend(describe_finding(f) for f in others)
    else:
        sentences.extend(describe_finding(f) for f in present)

    sentences.extend(_negative_sentence(f) for f in negatives)

    nodules = [f for f in present if f.kind == "nodule"]
    if "lung-nodule-classic" in detectors_run and not nodules:
        sentences.append("No pulmonary nodule is identified by the nodule detector.")

    impression.extend(_impression_line(f) for f in present)
    rec = _nodule_recommendation(nodules)
    if rec:
        impression.append(rec)
    if not present:
        if region == "chest" and (assume_complete or "lung-nodule-classic" in detectors_run):
            impression.append("No acute cardiopulmonary abnormality." if assume_complete
                              else "No pulmonary nodule detected.")
        elif negatives:
            impression.append("No abnormality detected by the applicable model(s).")
        else:
            impression.append("No abnormality detected.")

    sentences.extend(notes)
    if len(impression) == 1:
        imp_text = impression[0]
    else:
        imp_text = "\n".join(f"{i}. {line}" for i, line in enumerate(impression, 1))
    return Report(findings=" ".join(sentences), impression=imp_text, writer=WRITER_NAME)
