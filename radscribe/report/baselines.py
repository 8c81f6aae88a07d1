"""Two reference baselines computed by the same code path as every other generator.

* ``most-common``: the most frequent training report, for every study (what a model that ignores
  its input converges to on IU X-ray, where normal reports dominate).
* ``retrieval``: the training report whose oracle finding set is most similar to the findings
  given (weighted Jaccard over :func:`radscribe.report.prompting.finding_features`: kind, and kind
  with side / location / severity). Ties go to the report written most often among the tied
  training studies, then to the alphabetically first, so the output is deterministic.

Reports are compared after R2Gen's IU X-ray cleaning, so two references that differ only in case or
punctuation count as the same report; the text returned is the first training reference with that
cleaned form, without de-identification placeholders
(:func:`radscribe.report.placeholders.strip_placeholders`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Sequence

from radscribe.data.iu_xray import IUStudy, clean_report_r2gen
from radscribe.errors import RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.report.placeholders import strip_placeholders
from radscribe.report.prompting import finding_features


def _check(train: Sequence[IUStudy], who: str) -> None:
    if not train:
        raise RadscribeInputError(f"the {who} generator needs at least one training study to fit on")


class MostCommonGenerator:
    """Returns the most frequent training report whatever the findings."""

    name = "most-common"

    def __init__(self) -> None:
        self.report: str | None = None
        self.count = 0

    def fit(self, train: Sequence[IUStudy]) -> None:
        _check(train, self.name)
        counts: Counter[str] = Counter()
        first: dict[str, str] = {}
        for st in train:
            c = clean_report_r2gen(st.reference)
            counts[c] += 1
            first.setdefault(c, st.reference)
        best = min(counts, key=lambda c: (-counts[c], c))
        self.report, self.count = first[best], counts[best]

    def generate(self, findings: Sequence[Finding], indication: str | None = None) -> str:
        if self.report is None:
            raise RuntimeError("MostCommonGenerator.generate called before fit")
        return strip_placeholders(self.report)


def weighted_jaccard(a: dict[str, float], b: dict[str, float]) -> float:
    """sum(min) / sum(max) over the union of features; 1.0 for two identical sets."""
    keys = a.keys() | b.keys()
    num = sum(min(a.get(k, 0.0), b.get(k, 0.0)) for k in keys)
    den = sum(max(a.get(k, 0.0), b.get(k, 0.0)) for k in keys)
    return num / den if den > 0 else 1.0


class RetrievalGenerator:
    """Nearest-neighbour retrieval of a training report by oracle finding set."""

    name = "retrieval"

    def __init__(self) -> None:
        # one entry per distinct training feature set: (features, Counter of cleaned reports)
        self._groups: list[tuple[dict[str, float], Counter]] = []
        self._text: dict[str, str] = {}
        self._cache: dict[frozenset, str] = {}

    def fit(self, train: Sequence[IUStudy]) -> None:
        _check(train, self.name)
        groups: dict[frozenset, Counter] = defaultdict(Counter)
        self._text, self._cache = {}, {}
        for st in train:
            feats = finding_features(st.oracle)
            c = clean_report_r2gen(st.reference)
            groups[frozenset(feats.items())][c] += 1
            self._text.setdefault(c, st.reference)
        self._groups = [(dict(k), v) for k, v in sorted(groups.items(), key=lambda kv: sorted(kv[0]))]

    def neighbours(self, findings: Sequence[Finding]) -> tuple[float, Counter]:
        """Best similarity and the merged report counts of every training set reaching it."""
        q = finding_features(findings)
        best, merged = -1.0, Counter()
        for feats, reports in self._groups:
            s = weighted_jaccard(q, feats)
            if s > best + 1e-12:
                best, merged = s, Counter(reports)
            elif abs(s - best) <= 1e-12:
                merged.update(reports)
        return best, merged

    def generate(self, findings: Sequence[Finding], indication: str | None = None) -> str:
        if not self._groups:
            raise RuntimeError("RetrievalGenerator.generate called before fit")
        key = frozenset(finding_features(findings).items())
        if key not in self._cache:
            _, reports = self.neighbours(findings)
            best = min(reports, key=lambda c: (-reports[c], c))
            self._cache[key] = strip_placeholders(self._text[best])
        return self._cache[key]
