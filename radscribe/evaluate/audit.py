"""``radscribe audit-reports``: a second reader of generated (or reference) reports.

The consistency guard (:mod:`radscribe.report.consistency`) reads reports with the report labeler, so
its own count of contradictions cannot see what the labeler misreads. This audit reads them with rules
of its own (:mod:`radscribe.evaluate.audit_rules`; neither the labeler nor the guard is called) and lists,
per report, the problems a radiologist signing it would object to:

``placeholder``    a de-identification placeholder ("XXXX", "[** **]", "___"), an ``<unk>`` token, or a writer's
                   stand-in text ("An other finding is seen");
``contradiction``  one sentence denies what another states, on a compatible side and zone ("No focal
                   airspace opacity in the right lung base." beside "An opacity is seen in the right lower
                   zone."; "The lungs are clear." beside a stated consolidation);
``ambiguous``      a narrow or flat denial beside a description it may or may not cover ("no *focal*
                   opacity" beside a patchy one; "no effusion" beside "possible small effusion");
``laterality``     a finding put on a side where the coded findings do not have it;
``severity``       severity words two or more steps from the coded severity ("small" for a severe one);
``numbers``        a size without a unit, an implausible size, a "nodule" over 30 mm, a size that fits no
                   measured finding;
``stutter``        a word or word pair written twice in a row ("bilateral bilateral"), or one sentence twice.

Besides the problems, ``unstated`` lists present coded findings (of kinds the audit can read) that no
sentence states. Findings come from the row's ``findings`` (a list of Finding dicts) or, when a row
has none, from the IU X-ray MeSH coding of its id (as ``generate-reports`` builds them).
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from radscribe.errors import RadscribeInputError
from radscribe.evaluate.audit_rules import (CHRONIC, CLEAR_LUNG_AMBIGUOUS, CLEAR_LUNG_DENIES, CODED_SEVERITY, DENIES,
                                            PHRASES, Mention, read_mentions, same_picture, split_sentences)
from radscribe.findings.model import Finding

PROBLEM_TYPES = ("placeholder", "contradiction", "ambiguous", "laterality", "severity", "numbers", "stutter")
FIELDS = ("generated", "unguarded", "reference")

#: de-identification placeholders: IU X-ray's XXXX (also inside "x-XXXX"), MIMIC's [** **] and ___
PLACEHOLDER = re.compile(r"(?<![a-wyz])[xX]{3,}(?![a-wyz])|\[\*\*.*?\*\*\]|_{3,}|<unk>", re.IGNORECASE)
#: what a writer puts where it had no words: the structured writer's "An other finding is seen"
MACHINE_PLACEHOLDER = re.compile(r"\b(?:an? )?other finding\b|\bunknown finding\b", re.IGNORECASE)
_STUTTER = re.compile(r"\b([a-z]+(?:\s+[a-z]+)?)\s+\1\b", re.IGNORECASE)
_STUTTER_OK = {"that", "had", "is"}
_NUM = r"\d+(?:\.\d+)?"
_SIZE = re.compile(rf"({_NUM})(?:\s*(?:x|by|×)\s*({_NUM}))?(?:\s*(?:x|by|×)\s*({_NUM}))?\s*"
                   r"(mm|cm|millimet(?:er|re)s?|centimet(?:er|re)s?)\b", re.IGNORECASE)
_UNITLESS = re.compile(rf"\b(?:measur\w*|sized?|diameter(?: of)?|up to|size of)\s+(?:approximately\s+|about\s+)?"
                       rf"({_NUM}(?:\s*(?:x|by)\s*{_NUM})*)(?![\d.])(?!\s*(?:x|by)\s*\d)(?!\s*(?:mm|cm|millimet|centimet|%|percent))|"
                       rf"\b({_NUM}\s*(?:x|by)\s*{_NUM})\b(?!\s*(?:x|by|mm|cm|millimet|centimet))", re.IGNORECASE)
_KINDS_READ = frozenset(kind for kind, _ in PHRASES.values())


@dataclass(frozen=True)
class Problem:
    type: str
    detail: str
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class ReportAudit:
    """The audit of one report: problems found, present coded kinds not stated, sentences read."""

    id: str
    n_sentences: int
    problems: tuple[Problem, ...]
    unstated: tuple[str, ...]
    has_findings: bool

    def to_dict(self) -> dict:
        return {"id": self.id, "n_sentences": self.n_sentences, "has_findings": self.has_findings,
                "problems": [asdict(p) for p in self.problems], "unstated": list(self.unstated)}


def _sides_fit(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b or "bilateral" in (a, b)


def _contradictions(ms: list[Mention], sents: list[str]) -> list[Problem]:
    out, seen = [], set()
    for d in ms:
        if d.polarity != "denied" or d.restricted:
            continue
        for a in ms:
            if a.polarity == "denied" or a.sentence == d.sentence or (d.sentence, a.sentence) in seen:
                continue
            if not _sides_fit(d.side, a.side) or not (d.zone is None or a.zone is None or d.zone == a.zone):
                continue
            verdict = None
            if d.concept == "clear_lungs":
                if a.concept in CLEAR_LUNG_DENIES:
                    narrow = a.explained or (d.focal_only and a.non_focal)
                    verdict = "ambiguous" if a.polarity == "hedged" or narrow else "contradiction"
                elif a.concept in CLEAR_LUNG_AMBIGUOUS and not d.focal_only:
                    verdict = "ambiguous"   # "clear of focal airspace disease" says nothing of crowded markings
                what = "the lungs are clear"
            elif a.concept in DENIES.get(d.concept, ()):
                what = f"no {d.concept.replace('_', ' ')}"
                if d.large_only and (a.polarity == "hedged" or not a.severity or max(a.severity) < 3):
                    verdict = None
                elif d.acute_only and CHRONIC.search(a.clause):
                    verdict = None
                elif d.concept == "opacity" and a.concept == "opacity" and a.sized:
                    verdict = None  # "no airspace opacity" beside a measured (nodular) density
                elif a.explained and a.concept == "opacity":
                    verdict = "ambiguous"
                elif d.focal_only and a.non_focal:
                    verdict = "ambiguous"
                    what = f"no focal {d.concept.replace('_', ' ')}"
                else:
                    verdict = "ambiguous" if a.polarity == "hedged" else "contradiction"
            if verdict:
                seen.add((d.sentence, a.sentence))
                state = "hedges" if a.polarity == "hedged" else "states"
                out.append(Problem(verdict, f"'{what}' against a sentence that {state} "
                                            f"{a.concept.replace('_', ' ')}", (sents[d.sentence], sents[a.sentence])))
    return out


def _related(m: Mention, present: list[Finding]) -> list[Finding]:
    exact = [f for f in present if f.kind == m.kind]
    return exact or [f for f in present if same_picture(f.kind, m.kind)]


def _coded_severity(f: Finding) -> int | None:
    a = f.attributes or {}
    for key in ("severity", "extent"):
        if a.get(key) in CODED_SEVERITY:
            return CODED_SEVERITY[a[key]]
    return None


def _against_findings(ms: list[Mention], sents: list[str], present: list[Finding]) -> list[Problem]:
    out, seen = [], set()
    for m in ms:
        if m.polarity == "denied" or not m.kind:
            continue
        rel = _related(m, present)
        # one laterality problem per sentence and kind: "scarring or atelectasis in the right base" is one statement
        if m.side and rel and m.kind != "support_device" and (m.sentence, m.kind, m.side) not in seen:
            seen.add((m.sentence, m.kind, m.side))
            sides = {f.side for f in rel}
            ok = (None in sides or m.side in sides or "bilateral" in sides
                  or (m.side == "bilateral" and {"left", "right"} <= sides))
            if not ok:
                out.append(Problem("laterality", f"{m.concept.replace('_', ' ')} on the {m.side} but the findings "
                                                 f"have it {'/'.join(sorted(s for s in sides if s))}",
                                   (sents[m.sentence],)))
        if m.severity:
            coded = [c for f in present if f.kind == m.kind and _sides_fit(m.side, f.side)
                     for c in [_coded_severity(f)] if c is not None]
            if coded and min(abs(c - s) for c in coded for s in m.severity) >= 2:
                names = {v: k for k, v in CODED_SEVERITY.items() if k not in ("small", "large")}
                out.append(Problem("severity", f"{m.concept.replace('_', ' ')} written as "
                                               f"{'/'.join(names[s] for s in m.severity)} but coded "
                                               f"{'/'.join(names[c] for c in sorted(set(coded)))}",
                                   (sents[m.sentence],)))
    return out


def _to_mm(value: str, unit: str) -> float:
    return float(value) * (10.0 if unit.lower().startswith("c") else 1.0)


def _called_nodule(sents: list[str], i: int) -> bool:
    """Is the size in sentence i that of a "nodule"? ("... nodules. The largest measures 7.0 cm." counts)"""
    if re.search(r"\bnodules?\b", sents[i], re.IGNORECASE):
        return True
    return (i > 0 and not re.search(r"\bmass(es)?\b", sents[i], re.IGNORECASE)
            and bool(re.search(r"\b(largest|it|this|which)\b", sents[i], re.IGNORECASE))
            and bool(re.search(r"\bnodules?\b", sents[i - 1], re.IGNORECASE))
            and not re.search(r"\bno\b[^.]*\bnodules?\b", sents[i - 1], re.IGNORECASE))


def _numbers(sents: list[str], present: list[Finding] | None) -> list[Problem]:
    out, stated = [], []
    for i, s in enumerate(sents):
        for m in _SIZE.finditer(s):
            dims = [_to_mm(v, m.group(4)) for v in m.groups()[:3] if v]
            stated.extend(dims)
            if any(d <= 0 or d > 150 for d in dims):
                out.append(Problem("numbers", f"implausible size {m.group(0)!r} on a chest radiograph", (s,)))
            elif max(dims) > 30 and _called_nodule(sents, i):
                out.append(Problem("numbers", f"a 'nodule' of {m.group(0)} (over 30 mm is a mass)", (s,)))
        for m in _UNITLESS.finditer(s):
            out.append(Problem("numbers", f"size {(m.group(1) or m.group(2)).strip()!r} without a unit", (s,)))
    sized = [f for f in present or () if f.long_axis and f.size_unit == "mm"]
    if sized and stated:
        for f in sized:
            if not any(abs(x - f.long_axis) <= max(2.0, 0.25 * f.long_axis) for x in stated):
                out.append(Problem("numbers", f"no size in the report fits the {f.kind.replace('_', ' ')} "
                                              f"of {f.long_axis:.0f} mm", ()))
    return out


def _unstated(ms: list[Mention], present: list[Finding]) -> tuple[str, ...]:
    said = [m for m in ms if m.polarity != "denied" and m.kind]
    out = []
    for f in present:
        if f.kind not in _KINDS_READ:
            continue
        if not any(same_picture(m.kind, f.kind) and _sides_fit(m.side, f.side) for m in said):
            out.append(f.kind + (f" ({f.side})" if f.side else ""))
    return tuple(out)


def audit_report(rid: str, text: str, findings: Sequence[Finding] | None) -> ReportAudit:
    """All problems of one report; checks against findings are skipped when ``findings`` is None."""
    sents = split_sentences(text)
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for s in sents:
        for m in PLACEHOLDER.finditer(s):
            problems.append(Problem("placeholder", f"placeholder {m.group(0)!r}", (s,)))
        for m in MACHINE_PLACEHOLDER.finditer(s):
            problems.append(Problem("placeholder", f"placeholder text {m.group(0)!r}", (s,)))
        key = re.sub(r"\W+", " ", s.lower()).strip()
        if key in seen:
            problems.append(Problem("stutter", "the same sentence twice", (seen[key], s)))
        seen.setdefault(key, s)
        for m in _STUTTER.finditer(s):
            if m.group(1).lower() not in _STUTTER_OK and not PLACEHOLDER.search(m.group(1)):
                problems.append(Problem("stutter", f"{m.group(0)!r}", (s,)))
    ms = read_mentions(sents)
    problems += _contradictions(ms, sents)
    present = [f for f in findings or () if f.present]
    unstated: tuple[str, ...] = ()
    if findings is not None:
        problems += _against_findings(ms, sents, present)
        unstated = _unstated(ms, present)
    problems += _numbers(sents, present if findings is not None else None)
    return ReportAudit(rid, len(sents), tuple(problems), unstated, findings is not None)


def summarise(audits: Sequence[ReportAudit]) -> dict:
    """Problems and reports with a problem, per type; present coded findings not stated."""
    totals = {t: {"problems": sum(1 for a in audits for p in a.problems if p.type == t),
                  "reports": sum(1 for a in audits if any(p.type == t for p in a.problems))}
              for t in PROBLEM_TYPES}
    by_kind: dict[str, int] = {}
    for a in audits:
        for k in a.unstated:
            kind = k.split(" ")[0]
            by_kind[kind] = by_kind.get(kind, 0) + 1
    return {"n": len(audits), "n_without_findings": sum(not a.has_findings for a in audits), "totals": totals,
            "reports_with_problem": sum(1 for a in audits if a.problems),
            "unstated": {"findings": sum(len(a.unstated) for a in audits),
                         "reports": sum(1 for a in audits if a.unstated),
                         "by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1]))}}


# ----------------------------------------------------------------------------------------- input

def _finding(d, where: str) -> Finding:
    if not isinstance(d, dict) or not isinstance(d.get("kind"), str):
        raise RadscribeInputError(f"{where}: every finding must be an object with a 'kind'")
    try:
        return Finding.from_dict({"detector": "input", "confidence": 1.0, **d})
    except (TypeError, ValueError) as exc:
        raise RadscribeInputError(f"{where}: bad finding ({exc})") from None


def read_rows(path: Path, field: str = "generated") -> list[dict]:
    """``{id, text, findings}`` of each JSONL row (``findings`` None when the row has none)."""
    path = Path(path)
    if not path.is_file():
        raise RadscribeInputError(f"reports file {path} not found")
    rows, seen = [], set()
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path} line {n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RadscribeInputError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or "id" not in rec:
                raise RadscribeInputError(f"{where}: expected an object with 'id' and {field!r}")
            if not isinstance(rec.get(field), str):
                raise RadscribeInputError(f"{where}: {field!r} is missing or not a string")
            rid = str(rec["id"])
            if rid in seen:
                raise RadscribeInputError(f"{where}: id {rid!r} appears twice")
            seen.add(rid)
            fs = rec.get("findings")
            if fs is not None and not isinstance(fs, list):
                raise RadscribeInputError(f"{where}: 'findings' must be a list")
            rows.append({"id": rid, "text": rec[field],
                         "findings": None if fs is None else tuple(_finding(d, where) for d in fs)})
    if not rows:
        raise RadscribeInputError(f"{path} holds no reports (empty file)")
    return rows


def iu_findings(annotation: Path, reports_csv: Path, source: str = "oracle") -> dict[str, tuple[Finding, ...]]:
    """Findings of every IU X-ray study id of R2Gen's split, as ``generate-reports`` gives them to generators:
    ``oracle`` from the MeSH coding, ``indication`` read off the indication."""
    from radscribe.data.iu_xray import _uid_of, load_iu, mesh_to_findings, read_annotation, read_iu_reports

    if source == "indication":
        return {st.id: st.from_indication for sts in load_iu(annotation, reports_csv).values() for st in sts}
    ann, rows = read_annotation(annotation), read_iu_reports(reports_csv)
    out = {}
    for entries in ann.values():
        for e in entries:
            row = rows.get(_uid_of(e["id"]))
            if row is not None:
                out[e["id"]] = mesh_to_findings(row["MeSH"])
    return out


def cli_audit_reports(args) -> int:
    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from radscribe.io.output import atomic_file

    t0 = time.perf_counter()
    rows = read_rows(args.input, args.field)
    if args.findings != "none" and any(r["findings"] is None for r in rows):
        for p, what in ((args.annotation, "--annotation"), (args.reports, "--reports")):
            if not Path(p).is_file():
                raise RadscribeInputError(f"rows without 'findings' need the IU X-ray files: {what} {p} not found "
                                          f"(or pass --findings none)")
        known = iu_findings(args.annotation, args.reports, args.findings)
        for r in rows:
            if r["findings"] is None:
                r["findings"] = known.get(r["id"])
    audits = [audit_report(r["id"], r["text"], r["findings"])
              for r in tqdm(rows, desc="audit", unit="report", file=sys.stderr, disable=len(rows) < 200)]
    summary = summarise(audits)
    result = {"input": str(args.input), "field": args.field, "findings": args.findings, **summary,
              "wall_s": round(time.perf_counter() - t0, 2), "reports": [a.to_dict() for a in audits]}
    n = summary["n"]
    t = Table(title=f"audit of {n} reports ({args.field}) in {args.input}")
    for col in ("problem", "problems", "reports", "% reports"):
        t.add_column(col, justify="left" if col == "problem" else "right")
    for typ, v in summary["totals"].items():
        t.add_row(typ, str(v["problems"]), str(v["reports"]), f"{100 * v['reports'] / n:.1f}")
    t.add_row("any problem", "", str(summary["reports_with_problem"]), f"{100 * summary['reports_with_problem'] / n:.1f}")
    u = summary["unstated"]
    t.add_row("unstated coded finding", str(u["findings"]), str(u["reports"]), f"{100 * u['reports'] / n:.1f}")
    Console().print(t)
    if summary["n_without_findings"]:
        print(f"{summary['n_without_findings']} report(s) without findings: laterality, severity and unstated "
              f"findings not checked for them", file=sys.stderr)
    if args.out is not None:
        with atomic_file(args.out) as fh:
            json.dump(result, fh, indent=1)
        print(f"wrote {args.out}")
    return 0
