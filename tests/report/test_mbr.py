"""Tests for radscribe/report/mbr.py: sentence BLEU-4 and minimum-Bayes-risk selection."""

from __future__ import annotations

import math

import pytest

from radscribe.report.mbr import mbr_select, ngram_counts, sentence_bleu4


def test_ngram_counts():
    c = ngram_counts("a b a b".split(), max_n=2)
    assert c[0] == {("a",): 2, ("b",): 2} and c[1] == {("a", "b"): 2, ("b", "a"): 1}


def test_sentence_bleu_identity_and_brevity():
    t = "the heart is normal in size .".split()
    assert sentence_bleu4(t, t) == pytest.approx(1.0, abs=0.2)  # add-one smoothing keeps it a little below 1
    short = t[:3]
    # brevity penalty: a prefix scores lower than the whole sentence
    assert sentence_bleu4(short, t) < sentence_bleu4(t, t)
    assert sentence_bleu4(short, t) <= math.exp(1 - len(t) / len(short)) + 1e-9


def test_mbr_picks_the_consensus_and_breaks_ties_early():
    cands = ["The lungs are clear.", "Heart size normal. The lungs are clear.", "Heart size normal. The lungs are clear.",
             "Large effusion."]
    assert mbr_select(cands) == 1  # agrees with its twin and with the first
    assert mbr_select(["a b", "a b"]) == 0
    with pytest.raises(ValueError):
        mbr_select([])
