"""Tests for radscribe/train/recalibrate.py: the recalibrate command refuses an unknown model in one line."""

from __future__ import annotations

import subprocess
import sys


def test_recalibrate_unknown_model_is_one_error_line():
    p = subprocess.run([sys.executable, "-m", "radscribe", "recalibrate", "--model", "no-such-model"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
    assert p.stderr.startswith("error:") and "no-such-model" in p.stderr
