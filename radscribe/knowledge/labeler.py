"""Rule-based report labeler: which findings a radiology report states, denies or hedges.

No neural weights: phrases come from :mod:`radscribe.knowledge.ontology` (finding synonyms, anatomy,
sides, severities, subject/predicate statements such as "heart size is normal", whole-report normal
statements); this module adds only the grammar of negation and uncertainty, in the style of NegEx and
the CheXpert labeler:

- pre-negation cues ("no", "without", "no evidence of", "free of", "negative for" ...) negate the
  findings that follow in the same clause, so "No evidence of X or Y" negates both; post-negation
  cues ("is not seen", "has resolved" ...) negate the findings before them up to the previous comma;
- uncertainty cues, before ("may", "possible", "questionable", "suggestive of", "versus" ...) or after
  ("cannot be excluded", "is not excluded" ...) make a finding ``uncertain``; when both a negation and an
  uncertainty cue apply, negation wins ("no consolidation to suggest pneumonia" -> pneumonia negative);
- a clause ends at the end of the sentence, at ";" / ":" and at "but", "however", "although",
  "except", "there is" ...; pseudo-negations ("no change in", "unchanged") are not cues;
- "XXXX" (IU X-ray de-identification) is an ordinary word: "There are no XXXX of a pleural effusion"
  is a negated effusion.

Kinds are ids of ``ontology.FINDING_KINDS`` (never "other") plus two pseudo kinds:

- ``"normal"``: an explicit whole-study normal statement ("No acute cardiopulmonary disease.",
  "Normal chest x-XXXX."), always status ``positive`` (or ``uncertain`` when hedged);
- ``"no_finding"``: added by :func:`label_report` only, CheXpert's "No Finding": ``positive`` when no
  finding kind other than ``support_device`` is positive or uncertain, else ``negative``.

Side is left/right/bilateral; location is an ``ontology.ANATOMY`` id, lobes reported as their zone
(``right_upper_lobe`` -> ``upper_zone``); severity is an ``ontology.SEVERITY_SYNONYMS`` key
("borderline", "small" -> mild; "large" -> severe).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from radscribe.knowledge import ontology
from radscribe.knowledge.cues import (
    BREAK_PUNCT, CLAUSE_ENDERS, CLAUSE_OPENERS, MODIFIERS, NEG_POST, NEG_PRE, PSEUDO, TERMINATION, UNC_POST,
    UNC_PRE,
)

__all__ = ["Mention", "split_sentences", "label_text", "label_report", "positive_kinds"]


@dataclass(frozen=True)
class Mention:
    kind: str
    status: str  # "positive" | "negative" | "uncertain"
    side: str | None
    location: str | None
    severity: str | None
    sentence: str


# --- the grammar of negation and uncertainty (its cue words live in knowledge.cues) -----------------------

_NEG_SCOPE = 14      # tokens a pre-negation cue reaches
_PRED_REACH = 8      # tokens between a statement's subject and predicate
_ZONE_OF = {"right_upper_lobe": "upper_zone", "left_upper_lobe": "upper_zone", "right_middle_lobe": "middle_zone",
            "lingula": "middle_zone", "right_lower_lobe": "lower_zone", "left_lower_lobe": "lower_zone"}
_GENERIC_ANATOMY = {"lungs", "chest", "heart"}
_SEVERITY_OF = {w: sev for sev, words in ontology.SEVERITY_SYNONYMS.items() for w in words}
_TOKEN = re.compile(r"and/or|[a-z0-9]+(?:[-'][a-z0-9]+)*|[^\sa-z0-9]")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


@lru_cache(maxsize=1)
def _lexicon() -> tuple[dict[tuple[str, ...], tuple[tuple, ...]], int]:
    """Phrase (token tuple) -> tags; built once from the ontology and the cue lists above."""
    lex: dict[tuple[str, ...], list[tuple]] = {}

    def add(phrase: str, tag: tuple) -> None:
        toks = tuple(_tokens(phrase))
        if toks:
            lst = lex.setdefault(toks, [])
            if tag not in lst:
                lst.append(tag)

    for k in ontology.FINDING_KINDS.values():
        if k.id == "other":
            continue
        for ph in (k.label, k.id.replace("_", " "), *(k.synonyms), *((k.plural,) if k.plural else ())):
            add(ph, ("kind", k.id))
    for a in ontology.ANATOMY.values():
        for ph in (a.label, *a.synonyms):
            add(ph, ("anat", a.id))
    for side, words in ontology.SIDE_SYNONYMS.items():
        for w in words:
            if len(w) > 1:
                add(w, ("side", side))
    for sev, words in ontology.SEVERITY_SYNONYMS.items():
        for w in words:
            add(w, ("sev", sev))
    for i, rule in enumerate(ontology.STATEMENT_RULES):
        for ph in rule.subjects:
            add(ph, ("subj", i))
        for pol, words in (("positive", rule.positive), ("negative", rule.negative), ("uncertain", rule.uncertain)):
            for w in words:
                add(w, ("pred", i, pol))
    for ph in ontology.NORMAL_STATEMENTS:
        add(ph, ("normal",))
        if ph.startswith(("no ", "without ")):
            add(ph, ("neg_pre",))
    for tag, words in (("neg_pre", NEG_PRE), ("neg_post", NEG_POST), ("unc_pre", UNC_PRE),
                       ("unc_post", UNC_POST), ("pseudo", PSEUDO), ("term", TERMINATION)):
        for w in words:
            add(w, (tag,))
    frozen = {k: tuple(v) for k, v in lex.items()}
    return frozen, max(len(k) for k in frozen)


def split_sentences(text: str) -> list[str]:
    """Split report text into sentences at ". ", "? ", "! " and line breaks (not inside "1.5 cm").

    List numbers ("1. ") and empty pieces are dropped; each sentence keeps its original wording.
    """
    if not text:
        return []
    out = []
    for para in re.split(r"[\r\n]+", str(text)):
        for piece in re.split(r"(?<=[.!?])\s+|(?<=[a-zA-Z\]\)])\.(?=[A-Z][a-z])", para):
            piece = re.sub(r"^\s*\d+\s*[.)]\s*", "", piece).strip()
            if re.search(r"[A-Za-z]", piece):
                out.append(piece)
    return out


@dataclass
class _Item:
    start: int
    end: int
    tags: tuple[tuple, ...]
    words: tuple[str, ...] = ()

    def has(self, name: str) -> bool:
        return any(t[0] == name for t in self.tags)

    def values(self, name: str) -> list:
        return [t[1:] for t in self.tags if t[0] == name]


def _match(tokens: list[str]) -> list[_Item]:
    """Greedy longest-match of lexicon phrases, left to right; punctuation kept as its own item."""
    lex, maxlen = _lexicon()
    items, i = [], 0
    while i < len(tokens):
        for n in range(min(maxlen, len(tokens) - i), 0, -1):
            tags = lex.get(tuple(tokens[i:i + n]))
            if tags:
                items.append(_Item(i, i + n, tags, tuple(tokens[i:i + n])))
                i += n
                break
        else:
            if tokens[i] in BREAK_PUNCT or tokens[i] == ",":
                # a comma keeps the next word: ", the heart ..." opens a new clause, ", effusion" does not
                items.append(_Item(i, i + 1, (("punct", tokens[i]),),
                                   (tokens[i + 1] if i + 1 < len(tokens) else "", tokens[i - 1] if i else "")))
            i += 1
    return items


def _clause_start(items: list[_Item], j: int) -> int:
    """Index of the first item of the clause holding items[j]: after a termination cue, ; or :, or a comma
    that opens a new clause (", the heart is enlarged"; a list ", effusion, or pneumothorax" goes on)."""
    for k in range(j - 1, -1, -1):
        it = items[k]
        if it.has("term"):
            return k + 1
        if it.has("punct"):
            p = it.values("punct")[0][0]
            if p in BREAK_PUNCT or (p == "," and (it.words[0] in CLAUSE_OPENERS or it.words[1] in CLAUSE_ENDERS)):
                return k + 1
    return 0


def _status(items: list[_Item], j: int, pred_from: int | None = None) -> str:
    """Negated / uncertain / positive for the item at j (a finding phrase or a statement's predicate).

    ``pred_from``: for a statement, the first item of the subject/predicate pair; negation cues then count
    only between it and the predicate ("the heart is not enlarged"), so that "no effusion, heart
    enlarged" does not negate the heart.
    """
    start = _clause_start(items, j)
    pos = items[j].start
    negated = uncertain = False
    for k in range(j - 1, start - 1, -1):
        it = items[k]
        if it.has("pseudo"):
            continue
        if it.has("neg_pre") and pos - it.end <= _NEG_SCOPE and (pred_from is None or k >= pred_from):
            negated = True
        if it.has("unc_pre"):
            uncertain = True
    for k in range(j + 1, len(items)):
        it = items[k]
        if it.has("neg_post"):
            negated = True
            break
        if it.has("unc_post"):
            uncertain = True
            break
        if it.has("term") or it.has("punct"):
            break
    if negated:
        return "negative"
    return "uncertain" if uncertain else "positive"


def _window(items: list[_Item], lo: int, hi: int) -> list[_Item]:
    """Items describing the phrase items[lo..hi]: back to the previous boundary, forward to the next."""
    stop = ("term", "punct", "kind", "neg_pre", "neg_post", "unc_pre", "unc_post", "normal", "subj")
    out = []
    for k in range(lo - 1, max(-1, lo - 7), -1):
        if any(items[k].has(s) for s in stop) and not items[k].has("anat") and not items[k].has("side"):
            break
        out.append(items[k])
    for k in range(hi + 1, min(len(items), hi + 9)):
        if any(items[k].has(s) for s in stop) and not items[k].has("anat") and not items[k].has("side"):
            break
        out.append(items[k])
    return out


def _attributes(items: list[_Item], lo: int, hi: int) -> tuple[str | None, str | None, str | None]:
    """(side, location, severity) stated around items[lo..hi]."""
    near = [items[k] for k in range(lo, hi + 1)] + _window(items, lo, hi)
    sides, zones, places, sevs = set(), [], [], []
    for it in near:
        for (s,) in it.values("side"):
            sides.add(s)
        for (a,) in it.values("anat"):
            an = ontology.ANATOMY[a]
            if an.side:
                sides.add(an.side)
            if a in _ZONE_OF or a.endswith("_zone"):
                zones.append(_ZONE_OF.get(a, a))
            elif a not in _GENERIC_ANATOMY:
                places.append(a)
        for (s,) in it.values("sev"):
            sevs.append(s)
        if it.has("pred") and len(it.words) > 1:  # "mildly enlarged"
            sevs.extend(_SEVERITY_OF[w] for w in it.words if w in _SEVERITY_OF)
    side = "bilateral" if "bilateral" in sides or {"left", "right"} <= sides else (sides.pop() if sides else None)
    location = zones[0] if zones else (places[0] if places else None)
    return side, location, (sevs[0] if sevs else None)


def _describes_next(items: list[_Item], j: int) -> bool:
    """Is the modifier at j part of a following granuloma / aorta phrase ("calcified right hilar granulomas")?"""
    for m in range(j + 1, min(len(items), j + 6)):
        it = items[m]
        if it.has("punct") or it.start - items[j].end > 5:
            return False
        if ("kind", "calcified_granuloma") in it.tags or any(
                "atherosclerosis" in ontology.STATEMENT_RULES[ri].kinds for (ri,) in it.values("subj")):
            return True
    return False


def _label_sentence(sentence: str) -> list[Mention]:
    items = _match(_tokens(sentence))
    found: list[tuple[int, Mention]] = []
    used_by_statement: set[int] = set()
    # subject/predicate statements: each subject takes its nearest predicate of the same rule in its clause
    for j, it in enumerate(items):
        for (ri,) in it.values("subj"):
            rule = ontology.STATEMENT_RULES[ri]
            best = None
            for k in range(len(items)):
                if k == j or abs(k - j) > _PRED_REACH:
                    continue
                lo, hi = min(j, k), max(j, k)
                if any(items[m].has("term") or items[m].has("punct") or items[m].has("kind") and
                       not items[m].has("pred") for m in range(lo + 1, hi)):
                    continue
                for (rk, pol) in items[k].values("pred"):
                    if rk == ri and (best is None or abs(k - j) < abs(best[0] - j)):
                        best = (k, pol)
            if best is None:
                continue
            k, pol = best
            if pol == "positive":
                status = _status(items, k, pred_from=min(j, k))
            elif pol == "uncertain":
                status = "uncertain"
            else:
                status = "negative"
            side, location, severity = _attributes(items, min(j, k), max(j, k))
            used_by_statement.add(k)
            for kind_id in rule.kinds:
                found.append((it.start, Mention(kind_id, status, side, location,
                                                severity if status != "negative" else None, sentence)))
    for j, it in enumerate(items):
        if it.has("normal"):
            st = "uncertain" if any(items[k].has("unc_pre") for k in range(_clause_start(items, j), j)) else "positive"
            found.append((it.start, Mention("normal", st, None, None, None, sentence)))
        if j in used_by_statement:
            continue
        if " ".join(it.words) in MODIFIERS and _describes_next(items, j):
            continue
        for (kind_id,) in it.values("kind"):
            status = _status(items, j)
            side, location, severity = _attributes(items, j, j)
            found.append((it.start, Mention(kind_id, status, side, location,
                                            severity if status != "negative" else None, sentence)))
    found.sort(key=lambda t: t[0])
    return [m for _, m in found]


def label_text(text: str) -> list[Mention]:
    """Every finding mention of a report, in reading order (one per phrase, duplicates kept)."""
    out: list[Mention] = []
    for sentence in split_sentences(text):
        out.extend(_label_sentence(sentence))
    return out


_RANK = {"positive": 2, "uncertain": 1, "negative": 0}


def label_report(text: str) -> dict[str, Mention]:
    """One mention per kind: positive beats uncertain beats negative; plus ``no_finding`` (see module doc).

    Positive mentions of one kind on both sides combine into side "bilateral".
    """
    best: dict[str, Mention] = {}
    for m in label_text(text):
        cur = best.get(m.kind)
        if cur is None or _RANK[m.status] > _RANK[cur.status]:
            best[m.kind] = m
        elif m.status == cur.status == "positive":
            sides = {cur.side, m.side} - {None}
            if len(sides) > 1:
                best[m.kind] = replace(cur, side="bilateral")
            elif cur.side is None and m.side:
                best[m.kind] = replace(cur, side=m.side, location=cur.location or m.location)
            elif cur.severity is None and m.severity:
                best[m.kind] = replace(cur, severity=m.severity)
    abnormal = [m for k, m in best.items() if k not in ("normal", "support_device") and m.status != "negative"]
    normal = best.get("normal")
    best["no_finding"] = Mention("no_finding", "negative" if abnormal else "positive", None, None, None,
                                 normal.sentence if normal and not abnormal else "")
    return best


def positive_kinds(text: str) -> set[str]:
    """Finding kinds (not normal/no_finding) a report states as present."""
    return {k for k, m in label_report(text).items()
            if m.status == "positive" and k not in ("normal", "no_finding")}
