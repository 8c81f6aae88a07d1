"""Fixtures for the reader tests: the real chest CT series, loaded once per module."""

from __future__ import annotations

import pytest

from radscribe.data.paths import shared_data_dir

CT_DIR = shared_data_dir() / "chest_ct_series" / "dicom"


@pytest.fixture(scope="module")
def chest_ct():
    """LoadedStudy of the real 99-slice chest CT series; skips when ../shared/data is absent."""
    if not CT_DIR.is_dir():
        pytest.skip(f"needs the shared dataset 'chest_ct_series' at {CT_DIR}; absent here")
    from radscribe.io.loader import load_study

    return load_study(CT_DIR)


@pytest.fixture
def ct_files(shared_dataset):
    return sorted((shared_dataset("chest_ct_series") / "dicom").glob("*.dcm"))
