"""Intensity mapping for display and model input: CT windows (HU) and percentile normalisation.

Window presets are ``(level, width)`` in Hounsfield units, the common radiology conventions
(e.g. Radiopaedia "Windowing (CT)"): a value ``v`` maps to ``(v - (level - width/2)) / width``
clipped to [0, 1]. Every mapping here is monotonically non-decreasing, pure and NaN-safe
(NaN -> 0).
"""

from __future__ import annotations


import numpy as np

#: name -> (level, width) in HU.
WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "abdomen": (40.0, 400.0),
}


def _level_width(preset: str | None, level: float | None, width: float | None) -> tuple[float, float]:
    if preset is not None:
        try:
            level, width = WINDOWS[preset]
        except KeyError:
            raise ValueError(f"unknown window {preset!r}; known: {sorted(WINDOWS)}") from None
    if level is None or width is None:
        raise ValueError("give a preset name or both level and width (HU)")
    if not width > 0:
        raise ValueError(f"window width must be > 0 HU, got {width}")
    return float(level), float(width)


def window_unit(hu: np.ndarray, preset: str | None = None, *, level: float | None = None,
                width: float | None = None) -> np.ndarray:
    """HU -> float32 in [0, 1] through a window (a preset name or ``level``/``width`` in HU)."""
    lv, wd = _level_width(preset, level, width)
    x = (np.asarray(hu, dtype=np.float32) - np.float32(lv - wd / 2.0)) / np.float32(wd)
    return np.nan_to_num(np.clip(x, 0.0, 1.0), nan=0.0)


def window(hu: np.ndarray, preset: str | None = None, *, level: float | None = None,
           width: float | None = None) -> np.ndarray:
    """HU -> uint8 0..255 through a window (see :func:`window_unit`)."""
    return np.rint(window_unit(hu, preset, level=level, width=width) * 255.0).astype(np.uint8)


def percentile_unit(x: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Any intensities -> float32 in [0, 1]: the ``low``/``high`` percentiles (of the finite values)
    map to 0 and 1, values outside are clipped. A constant image maps to 0."""
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"need 0 <= low < high <= 100, got {low}, {high}")
    a = np.asarray(x, dtype=np.float32)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.zeros(a.shape, dtype=np.float32)
    lo, hi = np.percentile(finite, [low, high])
    if not hi > lo:
        return np.zeros(a.shape, dtype=np.float32)
    out = (a - np.float32(lo)) / np.float32(hi - lo)
    return np.nan_to_num(np.clip(out, 0.0, 1.0), nan=0.0).astype(np.float32)


def normalize_percentile(x: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Any intensities -> uint8 0..255 for display (see :func:`percentile_unit`)."""
    return np.rint(percentile_unit(x, low, high) * 255.0).astype(np.uint8)


def display_uint8(array: np.ndarray, units: str, preset: str = "lung") -> np.ndarray:
    """What a viewer shows: a CT window for HU data, percentile normalisation otherwise."""
    return window(array, preset) if units == "HU" else normalize_percentile(array)


def to_unit_range(arr: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.5) -> np.ndarray:
    """Percentile-normalise any intensity range (HU, MR units, 8-bit...) to float32 0..1.

    Falls back to min-max when the percentiles coincide (e.g. small binary masks)."""
    a = np.asarray(arr, dtype=np.float32)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.zeros_like(a)
    lo, hi = np.percentile(finite, [lo_pct, hi_pct])
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return np.zeros_like(a)
    return np.clip((np.nan_to_num(a, nan=lo) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
