"""How often the consistency guard (:func:`radscribe.report.consistency.guard`) changes the *reference*
reports of an IU X-ray split when given their own MeSH oracle findings: ``radscribe guard-stats``.

A correct report should need no correction, so what the guard changes here is either a guard error or
a reference that disagrees with its MeSH coding; the most frequent reasons are listed.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from radscribe.data.iu_xray import IUStudy, load_iu
from radscribe.errors import RadscribeInputError
from radscribe.report.consistency import guard


@dataclass(frozen=True)
class GuardStats:
    """Guard corrections over ``n`` reference reports; ``reasons``: (reason, count), most frequent first."""

    n: int
    corrections: int
    reports_changed: int
    dropped: int
    added: int
    ms_per_report: float
    reasons: tuple[tuple[str, int], ...]


def guard_stats(studies: Sequence[IUStudy]) -> GuardStats:
    """Run the guard on every study's reference report with its oracle findings."""
    if not studies:
        raise RadscribeInputError("no studies to check")
    t0 = time.perf_counter()
    res = [guard(s.reference, s.oracle) for s in studies]
    dt = time.perf_counter() - t0
    reasons: Counter[str] = Counter()
    for r in res:
        reasons.update(why.split(" but ")[0] for _, why in r.dropped)
        reasons.update(f"added: {s}" for s in r.added)
    return GuardStats(n=len(res), corrections=sum(r.n_corrections for r in res),
                      reports_changed=sum(r.n_corrections > 0 for r in res),
                      dropped=sum(len(r.dropped) for r in res), added=sum(len(r.added) for r in res),
                      ms_per_report=1000 * dt / len(res), reasons=tuple(reasons.most_common()))


def cli_guard_stats(args) -> int:
    """``radscribe guard-stats --split val``: corrections per reference report and the top reasons."""
    for f, what in ((args.annotation, "--annotation"), (args.reports, "--reports")):
        if not f.is_file():
            raise RadscribeInputError(f"{what} file {f} does not exist")
    if args.top < 0:
        raise RadscribeInputError("--top must be 0 or more")
    st = guard_stats(load_iu(args.annotation, args.reports)[args.split])
    print(f"{args.split}: {st.n} references, {st.corrections / st.n:.3f} corrections/report, "
          f"{st.reports_changed / st.n:.1%} of reports changed "
          f"({st.dropped} sentences dropped, {st.added} added), {st.ms_per_report:.2f} ms/report")
    for why, c in st.reasons[: args.top]:
        print(f"  {c:4d}  {why}")
    return 0
