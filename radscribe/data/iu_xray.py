"""IU X-ray (Open-I, Indiana University) reports with R2Gen's split, and the COV-CTR CT reports.

- :func:`load_iu` joins R2Gen's annotation file (ids like ``CXR3030_IM-1405``: uid 3030; 2,069 / 296 / 590
  train / val / test studies) with ``indiana_reports.csv`` (uid, MeSH, indication, findings, impression).
- :func:`mesh_to_findings` turns the NLM indexers' MeSH coding (``Opacity/lung/base/left/mild;...``) into
  oracle :class:`~radscribe.findings.model.Finding` objects (detector ``mesh-oracle``, confidence 1.0).
  Every MeSH head maps to an ontology kind through ``FindingKind.mesh`` (entries are a head, e.g.
  ``"cardiomegaly"``, or a head/qualifier pair, e.g. ``"lung/hypoinflation"``, which wins over the bare head).
  A head with no kind becomes kind ``"other"`` with the original term kept in ``attributes["mesh"]``, so
  every positive term stays representable; ``normal`` and ``No Indexing`` give no findings.
  Qualifiers become side (left/right/bilateral), location (an anatomy id; lobes and base/apex as zones:
  ``lower_zone``, ``upper_zone``, ``middle_zone``; ``lung`` + a side as ``right_lung``/``left_lung``),
  ``attributes["severity"]`` (mild/moderate/severe; borderline -> mild), ``attributes["extent"]``
  (small/large), ``attributes["count"]`` ("multiple"), and the rest in ``attributes["descriptors"]``.
- :func:`clean_report_r2gen` is R2Gen's IU X-ray report cleaning (``clean_report_iu_xray`` in R2Gen's
  ``modules/tokenizers.py``), reimplemented with the same behaviour, quirks included.
- :func:`clean_placeholders` / :func:`clean_targets` take the de-identification mark "XXXX" out of training
  targets (issue 19), so that no generator learns to write it; evaluation references stay as they are.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from radscribe.errors import RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.knowledge import ontology
from radscribe.knowledge.labeler import label_report

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class IUStudy:
    id: str                              # R2Gen id, e.g. "CXR3030_IM-1405"
    uid: int                             # row of indiana_reports.csv, e.g. 3030
    split: str                           # train / val / test
    reference: str                       # R2Gen's report (findings + impression) from the annotation file
    findings_text: str
    impression: str
    indication: str
    mesh: tuple[str, ...]                # the MeSH terms as coded, e.g. ("Cardiomegaly/borderline",)
    oracle: tuple[Finding, ...]          # findings from the MeSH coding
    from_indication: tuple[Finding, ...]  # what the labeler finds positive in the indication text only


# --- R2Gen cleaning ---------------------------------------------------------------------------------------

# R2Gen strips these characters with re.sub('[.,?;*!%^&_+():-\[\]{}]', ...). Inside that character class
# ":-\[" is a RANGE from ":" to "[" (so < = > @ and A-Z go too, '-' itself stays); the text is lower-cased
# first, so only the punctuation in the range matters. Spelled out here:
_R2GEN_STRIP = re.compile(r"[.,?;*!%^&_+()\[\]{}:;<=>?@A-Z]")


def _r2gen_sentences(text: str) -> list[str]:
    t = text
    for _ in range(3):
        t = t.replace("..", ".")
    t = t.replace("1. ", "")
    for n in "2345":
        t = t.replace(f". {n}. ", ". ")
    for n in "2345":
        t = t.replace(f" {n}. ", ". ")
    return t.strip().lower().split(". ")


def _r2gen_sentence(s: str) -> str:
    s = s.replace('"', "").replace("/", "").replace("\\", "").replace("'", "").strip().lower()
    return _R2GEN_STRIP.sub("", s)


def clean_report_r2gen(text: str) -> str:
    """R2Gen's IU X-ray cleaning: lower-case, sentences joined by " . ", ending with " .".

    Same behaviour as R2Gen, including its quirks: "1. " is deleted anywhere, " 2. " .. " 5. " become
    sentence breaks, hyphens are kept ("x-xxxx"), and empty sentences are NOT dropped (R2Gen's filter
    compares a string with [] and so never fires), e.g. "Normal.." -> "normal ." but "a. . b" -> "a .  . b .".
    """
    return " . ".join(_r2gen_sentence(s) for s in _r2gen_sentences(str(text))) + " ."


# --- de-identification placeholders in training targets -------------------------------------------------

#: IU X-ray's de-identification mark, any case and inside words ("x-XXXX", "XXXX-a-XXXX", "5XXXX")
PLACEHOLDER = re.compile(r"x{3,}", re.IGNORECASE)
#: ``keep``: targets as written (the committed llm-lora and scratch weights were trained so); ``drop``: every
#: sentence with a placeholder goes; ``repair``: fixed collocations whose hidden word is plain from the context
#: are mended first (:data:`_REPAIRS`), then the sentences that still hold one go.
PLACEHOLDER_MODES = ("keep", "drop", "repair")
DEFAULT_PLACEHOLDERS = "repair"
_X = r"x{3,}"
#: (pattern, replacement), applied in order, case-insensitive. Only where the anatomy names the word:
#: "chest x-XXXX" is an x-ray, "lymph XXXX" nodes, "costophrenic XXXX" angles, "sternotomy XXXX" wires,
#: "the aortic XXXX" the arch;
#: "no XXXX of" is a negation whatever the word was; a placeholder between "no"/"minimal"/"there is" and a
#: finding word is a qualifier the sentence reads without ("No XXXX focal airspace disease").
_REPAIRS: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p, re.IGNORECASE), r) for p, r in (
    (rf"\bx-{_X}", "x-ray"),
    (rf"\blymph {_X}", "lymph nodes"),
    (rf"\b(left|right) costophrenic {_X}", r"\1 costophrenic angle"),
    (rf"\bcostophrenic {_X}", "costophrenic angles"),
    (rf"\bsternotomy {_X}", "sternotomy wires"),
    (rf"\b(the|calcified) aortic {_X}", r"\1 aortic arch"),
    (rf"\bno {_X} of\b", "no signs of"),
    (rf"\b(no|minimal|mild|there is|there are|a few|with|to|and|of) {_X} (?=(?:focal|acute|patchy|streaky|air|airspace|"
     r"interstitial|opacit|atelecta|scar|subsegmental|biapical|left|right|bilateral|infiltrat|consolidat|"
     r"sternotomy|median)\w*)", r"\1 "),
))


def clean_placeholders(text: str, mode: str = DEFAULT_PLACEHOLDERS) -> str:
    """``text`` without de-identification placeholders (see :data:`PLACEHOLDER_MODES`); sentences that keep
    none are returned word for word, joined by single spaces. "" when every sentence held one."""
    if mode not in PLACEHOLDER_MODES:
        raise RadscribeInputError(f"unknown placeholder mode {mode!r}; known: {', '.join(PLACEHOLDER_MODES)}")
    text = str(text or "")
    if mode == "keep" or not PLACEHOLDER.search(text):
        return text
    cased = bool(re.search(r"[A-Z]", text.replace("XXXX", "")))
    if mode == "repair":
        for rx, rep in _REPAIRS:
            text = rx.sub(rep, text)
    pieces = [p for p in re.split(r"(?<=[.!?])\s+", text.strip()) if p and not PLACEHOLDER.search(p)]
    if cased:  # a repair at the start of a sentence ("No XXXX of" -> "no signs of")
        pieces = [p[0].upper() + p[1:] for p in pieces]
    return " ".join(pieces)


def clean_targets(studies, placeholders: str = DEFAULT_PLACEHOLDERS) -> list["IUStudy"]:
    """The studies with their ``reference`` (the training target) cleaned by :func:`clean_placeholders`.

    For training and fitting only: evaluation compares with the references as R2Gen wrote them.
    ``placeholders="keep"`` returns them unchanged (how the committed weights were trained)."""
    if placeholders not in PLACEHOLDER_MODES:
        raise RadscribeInputError(f"unknown placeholder mode {placeholders!r}; known: {', '.join(PLACEHOLDER_MODES)}")
    if placeholders == "keep":
        return list(studies)
    return [replace(s, reference=clean_placeholders(s.reference, placeholders)) for s in studies]


# --- MeSH -> findings ------------------------------------------------------------------------------------

_NO_FINDING_TERMS = {"normal", "no indexing"}
_SIDE = {"left": "left", "right": "right", "bilateral": "bilateral"}
_SEVERITY = {"mild": "mild", "moderate": "moderate", "severe": "severe", "borderline": "mild", "minimal": "minimal"}
_EXTENT = {"small": "small", "large": "large"}
_COUNT = {"multiple", "scattered", "multilobar"}
_ZONE = {"base": "lower_zone", "lower lobe": "lower_zone", "apex": "upper_zone", "upper lobe": "upper_zone",
         "middle lobe": "middle_zone", "lingula": "middle_zone", "hilum": "middle_zone",
         "retrocardiac": "lower_zone", "costophrenic angle": "lower_zone"}
_PLACE = {"pleura": "pleura", "mediastinum": "mediastinum", "heart": "heart", "abdomen": "abdomen",
          "lung": "lungs", "thorax": "chest", "lymph nodes": "mediastinum", "paratracheal": "mediastinum"}


@lru_cache(maxsize=1)
def _mesh_index() -> dict[str, str]:
    idx: dict[str, str] = {}
    for k in ontology.FINDING_KINDS.values():
        for m in k.mesh:
            idx[_norm(m)] = k.id
    return idx


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().lower())


def mesh_term_kind(term: str) -> str | None:
    """Kind id of one MeSH term ("Opacity/lung/base/left/mild" -> "opacity"); None for normal / no indexing,
    "other" for a head no kind codes."""
    parts = [_norm(p) for p in term.split("/") if p.strip()]
    if not parts or parts[0] in _NO_FINDING_TERMS:
        return None
    idx = _mesh_index()
    for q in parts[1:]:
        if f"{parts[0]}/{q}" in idx:
            return idx[f"{parts[0]}/{q}"]
    return idx.get(parts[0], "other")


def mesh_to_findings(mesh: str) -> tuple[Finding, ...]:
    """Oracle findings of a report's MeSH coding (``;``-separated terms); see the module doc."""
    out: list[Finding] = []
    seen: set[str] = set()
    for term in str(mesh or "").split(";"):
        if not term.strip() or _norm(term) in seen:
            continue
        seen.add(_norm(term))
        kind_id = mesh_term_kind(term)
        if kind_id is None:
            continue
        quals = [_norm(p) for p in term.split("/")[1:] if p.strip()]
        side = None
        zones, places, attrs, descriptors = [], [], {}, []
        for q in quals:
            if q in _SIDE:
                side = "bilateral" if side and side != q else _SIDE[q]
            elif q in _SEVERITY:
                attrs["severity"] = _SEVERITY[q]
            elif q in _EXTENT:
                attrs["extent"] = _EXTENT[q]
            elif q in _COUNT:
                attrs["count"] = "multiple"
            elif q in _ZONE:
                zones.append(_ZONE[q])
                if q == "lingula" and side is None:
                    side = "left"
            elif q in _PLACE:
                places.append(_PLACE[q])
            else:
                descriptors.append(q)
        if zones:
            location = zones[0]
        elif "lungs" in places and side in ("left", "right"):
            location = f"{side}_lung"
        else:
            location = next((p for p in places if p not in ("lungs", "chest")), None)
            if location is None and places:
                location = places[0]
        if descriptors:
            attrs["descriptors"] = descriptors
        attrs["mesh"] = term.strip()
        out.append(Finding(kind=kind_id, detector="mesh-oracle", confidence=1.0, present=True,
                           location=location, side=side, attributes=attrs))
    return tuple(out)


# --- loading ---------------------------------------------------------------------------------------------

def _uid_of(study_id: str) -> int:
    m = re.match(r"CXR(\d+)_", study_id)
    if not m:
        raise RadscribeInputError(f"annotation id {study_id!r} is not of the form CXR<uid>_IM-<n>")
    return int(m.group(1))


def read_iu_reports(reports_csv: Path) -> dict[int, dict[str, str]]:
    """Rows of indiana_reports.csv keyed by uid (values: the CSV columns as strings, '' when empty)."""
    reports_csv = Path(reports_csv)
    if not reports_csv.is_file():
        raise RadscribeInputError(f"IU X-ray reports file {reports_csv} not found (indiana_reports.csv)")
    with open(reports_csv, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"uid", "MeSH", "indication", "findings", "impression"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise RadscribeInputError(f"{reports_csv} lacks the columns {sorted(need)} of indiana_reports.csv")
        rows = {}
        for r in reader:
            try:
                rows[int(r["uid"])] = {k: (v or "").strip() for k, v in r.items() if k is not None}
            except ValueError:
                raise RadscribeInputError(f"{reports_csv}: uid {r['uid']!r} is not a number") from None
    return rows


def read_annotation(annotation_path: Path) -> dict[str, list[dict]]:
    """R2Gen's annotation JSON: {"train"|"val"|"test": [{id, report, image_path}, ...]}."""
    annotation_path = Path(annotation_path)
    if not annotation_path.is_file():
        raise RadscribeInputError(f"R2Gen annotation file {annotation_path} not found")
    try:
        ann = json.loads(annotation_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RadscribeInputError(f"{annotation_path} is not valid JSON: {exc}") from None
    if not isinstance(ann, dict) or not all(isinstance(ann.get(s), list) for s in SPLITS):
        raise RadscribeInputError(f"{annotation_path} must hold lists 'train', 'val' and 'test'")
    return ann


def load_iu(annotation_path: Path, reports_csv: Path) -> dict[str, list[IUStudy]]:
    """All studies of R2Gen's split, keyed "train"/"val"/"test", in the annotation's order."""
    ann = read_annotation(annotation_path)
    rows = read_iu_reports(reports_csv)
    out: dict[str, list[IUStudy]] = {}
    for split in SPLITS:
        studies = []
        for e in ann[split]:
            uid = _uid_of(e["id"])
            row = rows.get(uid)
            if row is None:
                raise RadscribeInputError(f"study {e['id']} (uid {uid}) of the annotation is not in {reports_csv}")
            mesh = tuple(t.strip() for t in row["MeSH"].split(";") if t.strip())
            indication = row.get("indication", "")
            from_ind = tuple(
                Finding(kind=m.kind, detector="labeler-indication", confidence=1.0, present=True,
                        location=m.location, side=m.side,
                        attributes={"severity": m.severity} if m.severity else {})
                for k, m in label_report(indication).items()
                if m.status == "positive" and k not in ("normal", "no_finding"))
            studies.append(IUStudy(
                id=e["id"], uid=uid, split=split, reference=e.get("report", ""),
                findings_text=row.get("findings", ""), impression=row.get("impression", ""),
                indication=indication, mesh=mesh, oracle=mesh_to_findings(row["MeSH"]),
                from_indication=from_ind))
        out[split] = studies
    return out


@dataclass(frozen=True)
class CovCTRStudy:
    id: str
    split: str
    image: Path       # absolute path of the JPEG slice
    report: str
    covid: bool


def load_cov_ctr(annotation_path: Path) -> dict[str, list[CovCTRStudy]]:
    """COV-CTR (chest CT slice + report) entries keyed train/val/test; image paths resolved beside the file."""
    ann = read_annotation(annotation_path)
    root = Path(annotation_path).parent
    out = {}
    for split in SPLITS:
        out[split] = [CovCTRStudy(id=str(e["id"]), split=split, image=root / e["image"], report=e["report"],
                                  covid=str(e.get("covid", "")).lower() in ("1", "true", "yes", "covid"))
                      for e in ann[split]]
    return out
