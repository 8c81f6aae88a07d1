"""Minimum-Bayes-risk selection among sampled reports: sentence-level agreement, for ranking.

These scores rank candidates against each other at decoding time (and in retrieval ceilings); they are
not reported metrics: corpus BLEU/METEOR/ROUGE-L/CIDEr come from :mod:`radscribe.evaluate.nlg`.
"""

from __future__ import annotations

import math
from collections import Counter

from radscribe.data.iu_xray import clean_report_r2gen


def ngram_counts(tokens: list[str], max_n: int = 4) -> list[Counter]:
    """Counts of the 1..max_n-grams of ``tokens``."""
    return [Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)) for n in range(1, max_n + 1)]


def sentence_bleu4(hyp: list[str], ref: list[str], *, hyp_ngrams: list[Counter] | None = None,
                   ref_ngrams: list[Counter] | None = None) -> float:
    """Add-one smoothed sentence BLEU-4 with brevity penalty, on token lists.

    For ranking candidates against each other (minimum-Bayes-risk selection, retrieval ceilings);
    corpus figures always come from pycocoevalcap through :func:`radscribe.evaluate.nlg.score_nlg`."""
    h = hyp_ngrams if hyp_ngrams is not None else ngram_counts(hyp)
    r = ref_ngrams if ref_ngrams is not None else ngram_counts(ref)
    log_p = 0.0
    for n in range(4):
        match = sum(min(c, r[n][g]) for g, c in h[n].items())
        log_p += math.log((match + 1) / (sum(h[n].values()) + 1))
    bp = 1.0 if len(hyp) >= len(ref) else math.exp(1 - len(ref) / max(len(hyp), 1))
    return bp * math.exp(log_p / 4)


def mbr_select(candidates: list[str]) -> int:
    """Index of the candidate that agrees best (mean sentence BLEU-4 on R2Gen-cleaned words) with the
    other candidates: minimum-Bayes-risk selection. Ties go to the earliest candidate."""
    if not candidates:
        raise ValueError("no candidates")
    toks = [clean_report_r2gen(c).split() for c in candidates]
    grams = [ngram_counts(t) for t in toks]
    best, best_score = 0, -1.0
    for i in range(len(candidates)):
        s = sum(sentence_bleu4(toks[i], toks[j], hyp_ngrams=grams[i], ref_ngrams=grams[j])
                for j in range(len(candidates)) if j != i)
        if s > best_score + 1e-12:
            best, best_score = i, s
    return best
