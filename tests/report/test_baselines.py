"""The most-common and retrieval baselines on a synthetic corpus of real IU sentences."""

from __future__ import annotations

import pytest

from radscribe.errors import RadscribeInputError
from radscribe.report.baselines import MostCommonGenerator, RetrievalGenerator, weighted_jaccard
from radscribe.report.generate import make_generator
from tests.report._synth import CARDIO, LEFT_EFF, NORMAL, RIGHT_EFF, corpus, oracle, study


def test_most_common_returns_the_most_frequent_report_whatever_the_findings():
    g = make_generator("most-common")
    g.fit(corpus())
    assert g.generate([]) == NORMAL
    assert g.generate([oracle("effusion", "left")]) == NORMAL
    assert g.count == 7


def test_most_common_counts_reports_after_r2gen_cleaning():
    # two spellings of one report outnumber a report written three times verbatim
    spelled = [study(i, t, ()) for i, t in enumerate(
        [CARDIO, CARDIO, CARDIO, NORMAL, NORMAL.upper(), NORMAL.replace(".", " .") + " "])]
    g = MostCommonGenerator()
    g.fit(spelled)
    assert g.count == 3
    assert g.generate([]) == min(CARDIO, NORMAL)  # 3 vs 3: alphabetical tie-break on cleaned text
    assert g.generate([]) == g.generate([oracle("mass")])


@pytest.mark.parametrize("side,expected", [("left", LEFT_EFF), ("right", RIGHT_EFF)])
def test_retrieval_finds_the_report_with_the_same_finding_and_side(side, expected):
    g = make_generator("retrieval")
    g.fit(corpus())
    text = g.generate([oracle("effusion", side, "mild")])
    assert text == expected
    assert f"{side} pleural effusion" in text


def test_retrieval_prefers_the_right_kind_over_the_right_side_and_is_deterministic():
    g = RetrievalGenerator()
    g.fit(corpus())
    # no training study has a bilateral effusion: the nearest sets are the left/right effusions (tie),
    # broken by frequency (2 vs 2) then alphabetically -> the left one, every time
    out = {g.generate([oracle("effusion", "bilateral", "mild")]) for _ in range(3)}
    assert out == {LEFT_EFF}
    assert g.generate([oracle("cardiomegaly")]) == CARDIO
    assert g.generate([]) == NORMAL
    score, reports = g.neighbours([oracle("cardiomegaly")])
    assert score == 1.0 and sum(reports.values()) == 3


def test_weighted_jaccard():
    assert weighted_jaccard({"a": 1.0}, {"a": 1.0}) == 1.0
    assert weighted_jaccard({"a": 1.0, "a|side:left": 0.5}, {"a": 1.0, "a|side:right": 0.5}) == pytest.approx(1 / 2)
    assert weighted_jaccard({"a": 1.0}, {"b": 1.0}) == 0.0


def test_baselines_need_training_data():
    for g in (MostCommonGenerator(), RetrievalGenerator()):
        with pytest.raises(RadscribeInputError):
            g.fit([])
        with pytest.raises(RuntimeError):
            g.generate([])
