"""Tests for radscribe/evaluate/guard.py: guard statistics on reference reports, and the guard-stats checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from radscribe.errors import RadscribeInputError
from radscribe.evaluate.guard import guard_stats
from tests.report._synth import CARDIO, NORMAL, corpus, oracle, study


def test_consistent_references_need_no_correction_and_a_contradiction_is_counted():
    clean = guard_stats(corpus())
    assert clean.n == 14 and clean.corrections == 0 and clean.reports_changed == 0 and clean.reasons == ()
    # a normal reference whose coding says cardiomegaly: the guard adds the finding
    bad = guard_stats([study(1, NORMAL, (oracle("cardiomegaly"),)), study(2, CARDIO, (oracle("cardiomegaly"),))])
    assert bad.n == 2 and bad.reports_changed == 1 and bad.corrections >= 1
    assert bad.reasons and bad.reasons[0][1] >= 1
    with pytest.raises(RadscribeInputError):
        guard_stats([])


def test_guard_stats_missing_reports_is_one_error_line(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    p = subprocess.run([sys.executable, "-m", "radscribe", "guard-stats", "--annotation", str(tmp_path / "a.json"),
                        "--reports", str(tmp_path / "r.csv")], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip() == f"error: --reports file {tmp_path / 'r.csv'} does not exist"
