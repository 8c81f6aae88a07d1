"""Shared fixtures. Tests that need ../shared/data skip with a reason when it is absent."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from radscribe.data.paths import shared_data_dir  # noqa: E402


def _require(name: str):
    d = shared_data_dir() / name
    if not d.is_dir():
        pytest.skip(f"needs the shared dataset {name!r} at {d} (../shared/data or $RADSCRIBE_DATA); absent here")
    return d


@pytest.fixture
def shared_dataset():
    """Call with a dataset folder name; skips the test when that dataset is absent."""
    return _require


@pytest.fixture
def rng():
    return np.random.default_rng(0)
