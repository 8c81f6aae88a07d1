"""Tests for radscribe/evaluate/decoding.py: decoding settings and the compare-decoding command's checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from radscribe.errors import RadscribeInputError
from radscribe.evaluate.decoding import parse_settings


def test_decoding_settings_parse_both_forms_and_reject_unknown_keys():
    assert parse_settings("3:c,1:u") == [{"num_beams": 3, "constrained": True}, {"num_beams": 1, "constrained": False}]
    assert parse_settings("num_beams=3,length_penalty=2.0;num_beams=1") == [
        {"num_beams": 3, "length_penalty": 2.0}, {"num_beams": 1}]
    for bad in ("beams=3", "num_beams=three", "x:c", ""):
        with pytest.raises(RadscribeInputError):
            parse_settings(bad)


def test_compare_decoding_missing_annotation_is_one_error_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "radscribe", "compare-decoding", "--annotation", str(tmp_path / "a.json"),
                        "--out", str(tmp_path / "o.json")], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip() == f"error: --annotation file {tmp_path / 'a.json'} does not exist"
    assert not (tmp_path / "o.json").exists()
