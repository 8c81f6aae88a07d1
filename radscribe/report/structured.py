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

import re
from collections.abc import Sequence
from dataclasses import replace

from radscribe.findings.model import Finding, Report, StudyInfo
from radscribe.knowledge.fleischner import APPLICABILITY, recommend
from radscribe.knowledge.descriptors import ANATOMY, ATTRIBUTE_WORDS
from radscribe.knowledge.groups import CHEST_SYSTEMS, IMPRESSION_ORDER, UNPHRASEABLE
from radscribe.knowledge.kinds import FINDING_KINDS, STUDY_LEVEL_KINDS

WRITER_NAME = "structured"

#: Findings read from text (MeSH coding, the clinical indication) rather than made by a model from the
#: image: they carry no meaningful confidence, so the text does not quote one.
TEXT_SOURCES = frozenset({"mesh-oracle", "indication", "labeler-indication", ""})


#: Descriptor words of coded findings (IU MeSH qualifiers) the prose keeps.
LOOK_WORDS = ("round", "patchy", "streaky", "interstitial", "nodular", "linear", "reticular", "diffuse", "hazy",
              "ill-defined", "irregular", "cystic")
_NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
#: The lung sides a mass or nodule lies in, as its location ids.
_LUNG_OF = {"right": "right_lung", "left": "left_lung"}
#: Kinds whose label names where they are ("hilar enlargement"): the side is an adjective, no zone is added.
_SITED_LABEL = ("hilar", "mediastin", "pericardial", "hiatal", "aortic", "adrenal", "pituitary")


def _article(word: str) -> str:
    """"A" or "An" before a word or a number ("an 8 mm", "an 11 mm", "a 10 mm")."""
    digits = re.match(r"\d+", word)
    if digits:
        return "An" if digits.group().startswith("8") or digits.group() in ("11", "18") else "A"
    return "An" if word[:1].lower() in "aeiou" else "A"


def _num(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}".rstrip("0").rstrip(".")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _zone_id(f: Finding) -> str | None:
    """The lung zone of a finding: its ``zone`` attribute ("upper" or "upper_zone") or a zone location."""
    z = (f.attributes or {}).get("zone")
    if z:
        z = str(z)
        return z if z.endswith("_zone") else f"{z}_zone"
    return f.location if f.location and f.location.endswith("_zone") else None


def location_phrase(f: Finding) -> str:
    """'in the right upper lobe' / 'in the left lower zone' / 'on the right' / ''."""
    zone = _zone_id(f)
    loc = ANATOMY.get(f.location) if f.location else None
    side = f.side if f.side in ("left", "right", "bilateral") else (loc.side if loc is not None else None)
    if zone in ANATOMY and (loc is None or loc.id in ("lungs", "right_lung", "left_lung") or loc.id == zone):
        label = ANATOMY[zone].label
        if side in ("left", "right"):
            return f"in the {side} {label}"
        return f"in both {label}s" if side == "bilateral" else f"in the {label}"
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
    """'10 x 8 mm' (long x short axis) / '10 mm' / ''."""
    if f.long_axis is None:
        return ""
    unit = "mm" if f.size_unit == "mm" else "pixels"
    if f.short_axis is not None and abs(f.short_axis - f.long_axis) >= 0.5:
        return f"{_num(f.long_axis)} x {_num(f.short_axis)} {unit}"
    return f"{_num(f.long_axis)} {unit}"


def noun_phrase(f: Finding, with_margin: bool = True) -> str:
    """The finding's noun phrase: severity or extent, margin and density words (unless the label says
    them) + label: "lobulated solid mass", "large pleural effusion"."""
    k = FINDING_KINDS.get(f.kind)
    label = k.label if k else f.kind.replace("_", " ")
    attrs = f.attributes or {}
    keys = ("severity", "extent", "margin", "density") if with_margin else ("severity", "extent", "density")
    words = []
    for key in keys:
        v = attrs.get(key)
        if not v or (key == "extent" and attrs.get("severity")):
            continue
        w = ATTRIBUTE_WORDS.get(v, str(v))
        if w.lower() not in label.lower() and w not in words:
            words.append(w)
    # how a coded finding looks ("patchy", "round"): a reader needs it to tell a granuloma from airspace disease
    words += [d for d in attrs.get("descriptors", ()) if d in LOOK_WORDS and d not in words and d not in label]
    return " ".join(words + [label])


def _plural(noun: str) -> bool:
    """Whether a mass-noun phrase reads as plural ("low lung volumes", "degenerative changes")."""
    last = noun.split()[-1].lower() if noun.split() else ""
    return last.endswith("s") and not last.endswith(("ss", "is", "us", "sis"))


def _abuts(f: Finding) -> str:
    """', abutting the pleura and the mediastinum' from ``attributes["abuts"]``."""
    parts = [f"the {a}" for a in (f.attributes or {}).get("abuts") or () if a]
    if not parts:
        return ""
    return ", abutting " + (parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1])


def _craniocaudal(f: Finding) -> str:
    cc = (f.attributes or {}).get("craniocaudal_mm")
    return f" (craniocaudal {_num(float(cc))} mm)" if isinstance(cc, (int, float)) and cc > 0 else ""


def describe_finding(f: Finding) -> str:
    """One sentence for one present finding, without model detail (confidence and detector are the Method's):
    "A 46 x 38 mm lobulated solid mass in the right upper zone, abutting the pleura (craniocaudal 41 mm).",
    "A nodule is seen in the left upper zone.", "Mild cardiomegaly is present."."""
    k = FINDING_KINDS.get(f.kind)
    noun = noun_phrase(f, with_margin=True)
    where = location_phrase(f)
    loc = ANATOMY.get(f.location or "")
    if loc is not None and any(w.startswith(loc.label) for w in noun.split()[:-1]):
        # the label names the place: "Pleural thickening is present on the right." (not "in the right pleura")
        where = f"on the {f.side}" if f.side in ("left", "right") else ("bilaterally" if f.side == "bilateral" else "")
    size = size_phrase(f)
    countable = k.countable if k else True
    if any(w in noun for w in _SITED_LABEL) and f.side in ("left", "right", "bilateral"):
        sided = f"{'bilateral' if f.side == 'bilateral' else f.side} {noun}"
        return f"{_cap(sided)} {'are' if _plural(noun) else 'is'} present."
    if countable and size:  # measured: the radiologist's verbless form, size first
        return f"{_article(size)} {size} {noun}" + (f" {where}" if where else "") + f"{_abuts(f)}{_craniocaudal(f)}."
    if countable:
        return f"{_article(noun)} {noun} is seen" + (f" {where}" if where else "") + f"{_abuts(f)}."
    verb = "are" if _plural(noun) else "is"
    return f"{_cap(noun)} {verb} present" + (f" {where}" if where else "") + "."


def _group_key(f: Finding) -> tuple:
    """Findings described together: same kind, side and look; unmeasured ones (read from text, where the
    location is all the reader gets) also in the same place."""
    attrs = f.attributes or {}
    return (f.kind, f.side, attrs.get("density"), attrs.get("margin"), f.location if f.long_axis is None else None)


def plural_of(kind_id: str) -> str:
    """The plural of a kind's label ("nodules", "opacities", "masses")."""
    k = FINDING_KINDS.get(kind_id)
    label = k.label if k else kind_id.replace("_", " ")
    if k and k.plural:
        return k.plural
    if label.endswith("y") and label[-2:-1] not in "aeiou":
        return label[:-1] + "ies"
    return label + ("es" if label.endswith(("s", "x", "sh", "ch")) else "s")


def describe_group(fs: Sequence[Finding]) -> str:
    """One sentence for related findings (same kind, side and look): "Three solid nodules in the right
    lung, the largest 20 x 15 mm in the lower zone."; a single finding is :func:`describe_finding`."""
    if len(fs) == 1:
        return describe_finding(fs[0])
    f0 = fs[0]
    k = FINDING_KINDS.get(f0.kind)
    noun = noun_phrase(f0, with_margin=True)
    label = k.label if k else f0.kind.replace("_", " ")
    plural = (noun[: -len(label)] if noun.endswith(label) else "") + plural_of(f0.kind)
    count = _NUMBER_WORDS.get(len(fs), str(len(fs)))
    if f0.side in ("left", "right"):
        where = f"in the {f0.side} lung"
    elif f0.side == "bilateral":
        where = "in both lungs"
    else:
        where = ""
    head = f"{_cap(count)} {plural}" + (f" {where}" if where else "")
    sized = [f for f in fs if f.long_axis is not None]
    if not sized:
        spot = location_phrase(f0) if f0.location else ""
        return f"{head} are seen" + (f" {spot}" if spot and not where else "") + "."
    big = max(sized, key=lambda f: f.long_axis or 0.0)
    zone = _zone_id(big)
    loc = ANATOMY.get(zone or big.location or "")
    spot = ""
    if loc is not None and loc.id not in ("lungs", "right_lung", "left_lung", "chest"):
        spot = " in the " + (loc.label.split(" ", 1)[1] if loc.side and where else loc.label)
    return f"{head}, the largest {size_phrase(big)}{spot}{_abuts(big)}."


def attention_phrase(f: Finding) -> str:
    """'the model's attention is over the left kidney' for a classifier's heatmap side (which is not
    accurate enough to state as the finding's side: it goes to the Method section), else ''."""
    side = (f.attributes or {}).get("attention_side")
    if side not in ("left", "right"):
        return ""
    loc = ANATOMY.get((f.attributes or {}).get("attention_location") or "")
    where = loc.label if loc is not None and loc.side == side else f"{side} side"
    return f"the model's attention is over the {where}"


def method_lines(findings: Sequence[Finding], detectors_run: Sequence[str] = ()) -> list[str]:
    """The Method section: which detectors looked, and each model-made finding's detector and confidence
    (the prose carries neither)."""
    lines = [f"Detectors run: {', '.join(detectors_run)}." if detectors_run else "No image detector was run."]
    for i, f in enumerate(findings, 1):
        if f.detector in TEXT_SOURCES:
            continue
        k = FINDING_KINDS.get(f.kind)
        label = k.label if k else f.kind.replace("_", " ")
        what = "confidence" if f.present else "confidence of absence"
        kind_of = "calibrated probability" if f.confidence_type == "calibrated_probability" else "heuristic score"
        line = (f"Finding {i} ({label}{'' if f.present else ', absent'}): {f.detector}, {what} "
                f"{f.confidence:.2f} ({kind_of})")
        att = attention_phrase(f)
        lines.append(line + (f"; {att} (not a statement of side)." if att else "."))
    return lines


def _rank(f: Finding) -> tuple[int, float]:
    order = IMPRESSION_ORDER.index(f.kind) if f.kind in IMPRESSION_ORDER else len(IMPRESSION_ORDER)
    return order, -(f.long_axis or 0.0)


def _where_short(f: Finding) -> str:
    """'right upper zone' / 'left lower lobe' / 'bilateral lower zone' / 'right' / '' for an impression line."""
    where = location_phrase(f)
    if where.startswith("in both ") and where.endswith("s"):
        return "bilateral " + where.removeprefix("in both ")[:-1]
    return where.removeprefix("in the ").removeprefix("on the ").removeprefix("in ")


def _mass_line(f: Finding) -> str:
    where = _where_short(f)
    size = f" {_num(f.long_axis)} mm" if f.long_axis is not None and f.size_unit == "mm" else ""
    head = (f"{where} lung mass" if where else "Lung mass") if f.location in (None, "right_lung", "left_lung",
                                                                               "lungs") or _zone_id(f) else "Mass"
    return (f"{_cap(head)}{size}{_abuts(f)}; further characterisation (e.g. contrast CT / tissue sampling) "
            "recommended.")


def _impression_line(fs: Sequence[Finding]) -> str:
    """One impression line for a group of related findings: what, where, how big; no model detail."""
    f = max(fs, key=lambda x: x.long_axis or 0.0)
    if f.kind == "mass" and len(fs) == 1:
        return _mass_line(f)
    if len(fs) > 1:  # "Three solid right lung nodules, the largest 20 x 18 mm."
        k = FINDING_KINDS.get(f.kind)
        label = k.label if k else f.kind.replace("_", " ")
        noun = noun_phrase(f, with_margin=False)
        words = noun[: -len(label)].strip() if noun.endswith(label) else ""
        plural = plural_of(f.kind)
        side = {"left": "left lung", "right": "right lung", "bilateral": "bilateral"}.get(f.side or "", "")
        count = _NUMBER_WORDS.get(len(fs), str(len(fs)))
        largest = f", the largest {size_phrase(f)}" if f.long_axis is not None else ""
        return _cap(" ".join(x for x in (count, words, side, plural) if x)) + largest + "."
    k = FINDING_KINDS.get(f.kind)
    label = k.label if k else f.kind.replace("_", " ")
    attrs = f.attributes or {}
    degree = attrs.get("severity") or attrs.get("extent")
    look = noun_phrase(replace(f, attributes={k2: v for k2, v in attrs.items() if k2 == "density"}),
                       with_margin=False)
    where = _where_short(f)
    if any(w in label for w in _SITED_LABEL):  # "left hilar enlargement": the label names the place
        where = f.side if f.side in ("left", "right", "bilateral") else ""
    size = f", {size_phrase(f)}" if f.long_axis is not None else ""
    degree_word = ATTRIBUTE_WORDS.get(degree, str(degree)) if degree else ""
    if where == "lungs" or not where:  # "Pneumonia." (the lungs go without saying)
        return _cap(" ".join(x for x in (degree_word, look) if x) + size) + "."
    if where.split()[0] in ("left", "right", "bilateral") or where.endswith(("zone", "lobe", "lingula")):
        return _cap(" ".join(x for x in (degree_word, where, look) if x) + size) + "."  # "Mild left lower zone opacity."
    return _cap(" ".join(x for x in (degree_word, look) if x) + f" in the {where}" + size) + "."  # "Stone in the kidneys."


def _nodule_recommendation(nodules: Sequence[Finding], with_mass: bool = False) -> str | None:
    """Fleischner 2017 follow-up for the dominant (largest) non-calcified nodule, with its caveat."""
    candidates = [n for n in nodules if n.attributes.get("density") != "calcified" and n.long_axis is not None
                  and n.size_unit == "mm"]
    if not candidates:
        return None
    if with_mass:
        return "Fleischner 2017 follow-up of the nodules does not apply while the lung mass is characterised."
    dom = max(candidates, key=lambda n: n.long_axis or 0.0)
    mean = dom.long_axis if dom.short_axis is None else (dom.long_axis + dom.short_axis) / 2
    rec = recommend(mean, dom.attributes.get("density", "solid"), multiple=len(candidates) > 1)
    if rec is None:
        return None
    if rec.low_risk == rec.high_risk:
        advice = rec.low_risk
    else:
        advice = f"Low-risk patient: {rec.low_risk} High-risk patient: {rec.high_risk}"
    return f"Fleischner 2017 ({rec.category}, {_num(mean)} mm mean diameter): {advice} {APPLICABILITY}"


def _negative_sentence(f: Finding) -> str:
    k = FINDING_KINDS.get(f.kind)
    label = k.label if k else f.kind.replace("_", " ")
    if f.kind in STUDY_LEVEL_KINDS:
        return "No abnormality is identified."
    return f"No {label} is identified."


def grouped(present: Sequence[Finding]) -> list[list[Finding]]:
    """Present findings in groups of related ones (same countable kind, side and look; others alone), in
    input order."""
    groups: dict[tuple, list[Finding]] = {}
    out: list[list[Finding]] = []
    for f in present:
        k = FINDING_KINDS.get(f.kind)
        if k is not None and k.countable and f.kind not in ("other", "support_device"):
            key = _group_key(f)
            if key in groups:
                groups[key].append(f)
                continue
            groups[key] = [f]
            out.append(groups[key])
        else:
            out.append([f])
    return out


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
    single-purpose detector. Related findings are described together (:func:`describe_group`); the
    impression ranks them (:data:`radscribe.knowledge.groups.IMPRESSION_ORDER`: a mass first, then
    acute findings, nodules with their Fleischner advice, chronic and incidental ones last, summarised).
    Confidences and detector names are not in the prose: :func:`method_lines` has them.
    """
    region = region or (study.body_region if study else "chest")
    modality = modality or (study.modality if study else None)
    present = [f for f in findings if f.present and f.kind not in UNPHRASEABLE]
    negatives = [f for f in findings if not f.present]

    if not detectors_run and not assume_complete and not findings:
        what = f"{modality or 'this'} {region} study".replace("unknown ", "")
        text = (f"No automated detector in radscribe applies to this {what}; no findings are reported. "
                "This is not a statement that the study is normal.")
        extra = " ".join(notes)
        return Report(findings=(text + (" " + extra if extra else "")).strip(),
                      impression="No automated assessment available for this study type.", writer=WRITER_NAME)

    sentences: list[str] = []
    if region == "chest" and assume_complete:
        for system, kinds, normal in CHEST_SYSTEMS:
            here = [f for f in present if f.kind in kinds]
            sentences.extend(describe_group(g) for g in grouped(here))
            if not here and normal:
                sentences.append(normal)
        others = [f for f in present if not any(f.kind in kinds for _, kinds, _ in CHEST_SYSTEMS)]
        sentences.extend(describe_group(g) for g in grouped(others))
    else:
        sentences.extend(describe_group(g) for g in grouped(present))
    sentences.extend(_negative_sentence(f) for f in negatives)
    sentences = list(dict.fromkeys(sentences))  # two sutures and a clip are "a support device" once

    nodules = [f for f in present if f.kind == "nodule"]
    masses = [f for f in present if f.kind == "mass"]
    nodule_detector = "lung-nodule-classic" in detectors_run
    if nodule_detector and not nodules and not masses:
        sentences.append(NO_NODULE_SENTENCE)

    impression = _impression(present, assume_complete)
    rec = _nodule_recommendation(nodules, with_mass=bool(masses))
    if rec:
        at = max((i + 1 for i, line in enumerate(impression) if "nodule" in line.lower()), default=len(impression))
        impression.insert(at, rec)
    if not present:
        if region == "chest" and (assume_complete or nodule_detector):
            impression.append("No acute cardiopulmonary abnormality." if assume_complete
                              else "No pulmonary nodule or mass of 4 mm or more detected.")
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


#: The pertinent negative of the lung nodule detector: what it assessed, nothing more.
NO_NODULE_SENTENCE = "No pulmonary nodule or mass of 4 mm or more is detected."
#: Kinds the impression only lists ("Also: ..."), after the findings that matter.
_MINOR = frozenset({"calcified_granuloma", "calcification", "tortuous_aorta", "atherosclerosis", "scoliosis",
                    "kyphosis", "osteopenia", "degenerative_change", "support_device", "hypoinflation",
                    "increased_markings", "elevated_diaphragm"})


def _impression(present: Sequence[Finding], assume_complete: bool) -> list[str]:
    """Impression lines, most important first; minor chronic findings summarised in one line."""
    groups = sorted(grouped(present), key=lambda g: min(_rank(f) for f in g))
    major = [g for g in groups if g[0].kind not in _MINOR]
    minor = [g for g in groups if g[0].kind in _MINOR]
    lines = list(dict.fromkeys(_impression_line(g) for g in major))
    if minor:
        names = list(dict.fromkeys(noun_phrase(g[0], with_margin=False) for g in minor))
        if major or not assume_complete:
            lines.append(_cap(", ".join(names)) + ".")
        else:  # only chronic findings on an oracle list: the study has no acute abnormality
            lines.append("No acute cardiopulmonary abnormality. " + _cap(", ".join(names)) + ".")
    return lines
