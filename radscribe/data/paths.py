"""Where the public datasets live: ``$RADSCRIBE_DATA`` or ``../shared/data`` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

from radscribe.errors import RadscribeInputError


def shared_data_dir() -> Path:
    env = os.environ.get("RADSCRIBE_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def dataset_dir(name: str) -> Path:
    """Folder of one dataset (e.g. ``chest_xray_pneumonia``); a clear error when it is absent."""
    d = shared_data_dir() / name
    if not d.is_dir():
        raise RadscribeInputError(
            f"dataset {name!r} not found at {d}; set RADSCRIBE_DATA to the folder holding the datasets")
    return d
