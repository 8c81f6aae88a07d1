"""DICOM geometry: per-frame position, orientation, spacing and rescale, and the slice plan.

Slices are ordered along the slice normal ``n = row_dir x col_dir`` (from ImageOrientationPatient)
by projecting ImagePositionPatient onto ``n``. The plan's ``direction`` columns are the LPS
directions of the column index, row index and slice index, ``spacing_z`` is in mm and ``origin``
is the IPP of the first slice. Missing slices (a gap of k x the nominal step) are filled by
linear interpolation; any other irregular step is a GeometryError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from radscribe.errors import GeometryError, UnreadableFileError

#: Relative tolerance on slice spacing (fraction of the nominal spacing) before a series is rejected.
SPACING_TOLERANCE = 0.1
#: Tolerance on the components of ImageOrientationPatient (unit vectors) across slices.
ORIENTATION_TOLERANCE = 1e-3
#: Cosine below which the slice stacking direction counts as tilted against the slice normal.
TILT_COSINE = 0.9999


@dataclass
class Frame:
    """Geometry and rescale of one 2D frame (a single-frame file or one frame of a multi-frame file)."""

    path: Path
    index: int  # frame index inside its file
    rows: int
    cols: int
    ipp: np.ndarray | None
    iop: np.ndarray | None
    pixel_spacing: tuple[float, float] | None  # (row spacing = y, column spacing = x) mm
    thickness: float | None
    slope: float
    intercept: float
    instance: int
    #: Dataset holding this frame's Modality LUT Sequence (top level or its functional group), or None.
    modality_lut: Any = None
    #: Top-level RescaleType / ModalityLUTType ('HU', 'US', ...; '' when absent). Enhanced objects often
    #: say 'US' in their functional groups for HU data, so those are not read for the units.
    rescale_type: str = ""


def floats(v: Any, n: int) -> np.ndarray | None:
    try:
        a = np.asarray([float(x) for x in v], dtype=float)
    except (TypeError, ValueError):
        return None
    return a if a.shape == (n,) and np.all(np.isfinite(a)) else None


def num(v: Any, default: float | None) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return f if np.isfinite(f) else default


def _has_lut(ds) -> bool:
    seq = ds.get("ModalityLUTSequence")
    return bool(seq) and "LUTDescriptor" in seq[0] and "LUTData" in seq[0]


def _lut_type(ds) -> str:
    """RescaleType, or the ModalityLUTType of a Modality LUT Sequence ('' when neither is given)."""
    if _has_lut(ds):
        return str(ds.ModalityLUTSequence[0].get("ModalityLUTType", "") or "").strip().upper()
    return str(ds.get("RescaleType", "") or "").strip().upper()


def _fg_item(ds, i: int, seq: str):
    """Item of functional group ``seq`` for frame ``i``: per-frame first, then shared."""
    for top, idx in (("PerFrameFunctionalGroupsSequence", i), ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(top)
        if groups is not None and len(groups) > idx and seq in groups[idx] and len(groups[idx][seq].value):
            return groups[idx][seq].value[0]
    return None


def n_frames(ds) -> int:
    n = ds.get("NumberOfFrames")
    try:
        return max(1, int(n)) if n not in (None, "") else 1
    except (TypeError, ValueError):
        where = getattr(ds, "filename", None) or "a DICOM file"
        raise UnreadableFileError(f"{where}: NumberOfFrames {n!r} is not a number; the header is damaged") from None


def frames_of(path: Path, ds) -> list[Frame]:
    """Per-frame geometry of one DICOM header (classic or enhanced multi-frame)."""
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    n = n_frames(ds)
    instance = int(num(ds.get("InstanceNumber"), 0) or 0)
    top_spacing = floats(ds.get("PixelSpacing", []), 2)
    if top_spacing is not None and not np.all(top_spacing > 0):
        top_spacing = None  # 0 or negative spacing is a placeholder, not a size
    top = dict(
        ipp=floats(ds.get("ImagePositionPatient", []), 3),
        iop=floats(ds.get("ImageOrientationPatient", []), 6),
        pixel_spacing=None if top_spacing is None else (top_spacing[0], top_spacing[1]),
        thickness=num(ds.get("SliceThickness"), None),
        slope=num(ds.get("RescaleSlope"), 1.0),
        intercept=num(ds.get("RescaleIntercept"), 0.0),
        modality_lut=ds if _has_lut(ds) else None,
        rescale_type=_lut_type(ds),
    )
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    out = []
    for i in range(n):
        g = dict(top)
        if enhanced:
            pos = _fg_item(ds, i, "PlanePositionSequence")
            ori = _fg_item(ds, i, "PlaneOrientationSequence")
            meas = _fg_item(ds, i, "PixelMeasuresSequence")
            pvt = _fg_item(ds, i, "PixelValueTransformationSequence")
            if pos is not None:
                g["ipp"] = floats(pos.get("ImagePositionPatient", []), 3)
            if ori is not None:
                g["iop"] = floats(ori.get("ImageOrientationPatient", []), 6)
            if meas is not None:
                ps = floats(meas.get("PixelSpacing", []), 2)
                if ps is not None and np.all(ps > 0):
                    g["pixel_spacing"] = (ps[0], ps[1])
                g["thickness"] = num(meas.get("SliceThickness"), g["thickness"])
            if pvt is not None:
                g["slope"] = num(pvt.get("RescaleSlope"), 1.0)
                g["intercept"] = num(pvt.get("RescaleIntercept"), 0.0)
                g["modality_lut"] = pvt if _has_lut(pvt) else None
        elif i > 0:
            g["ipp"] = None  # a classic multi-frame object states the first frame's position only
        out.append(Frame(path=Path(path), index=i, rows=rows, cols=cols, instance=instance, **g))
    return out


def check_geometry(frames: Sequence[Frame], where: str) -> None:
    f0 = frames[0]
    for f in frames[1:]:
        if (f.rows, f.cols) != (f0.rows, f0.cols):
            raise GeometryError(
                f"{where}: {f.path.name} has {f.rows}x{f.cols} pixels but {f0.path.name} has "
                f"{f0.rows}x{f0.cols}; the series mixes image sizes - pass one consistent series")
        if (f.iop is None) != (f0.iop is None) or (
                f.iop is not None and np.max(np.abs(f.iop - f0.iop)) > ORIENTATION_TOLERANCE):
            raise GeometryError(
                f"{where}: {f.path.name} has a different ImageOrientationPatient from {f0.path.name}; "
                "the series mixes slice orientations - pass one consistent series")
        if f.pixel_spacing is not None and f0.pixel_spacing is not None and not np.allclose(
                f.pixel_spacing, f0.pixel_spacing, rtol=1e-3, atol=1e-4):
            raise GeometryError(
                f"{where}: {f.path.name} has PixelSpacing {f.pixel_spacing} but {f0.path.name} has "
                f"{f0.pixel_spacing}; the series mixes pixel sizes")


@dataclass
class Plan:
    """Where each output slice comes from: a frame index, or an interpolation between two."""

    order: list[int]                      # frame indices in slice order (after de-duplication)
    slots: list[tuple[int, int, float]]   # per output slice: (a, b, w) -> (1-w)*frame[a] + w*frame[b]
    spacing_z: float
    origin: np.ndarray
    direction: np.ndarray
    notes: list[str]
    missing: int


def plan_slices(frames: Sequence[Frame], where: str) -> Plan:
    notes: list[str] = []
    f0 = frames[0]
    thickness = f0.thickness
    has_pos = f0.iop is not None and all(f.ipp is not None for f in frames)
    if f0.iop is not None:
        r, c = f0.iop[:3], f0.iop[3:]
        nrm = np.cross(r, c)
    else:
        r, c, nrm = np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])
    if not has_pos:
        order = sorted(range(len(frames)), key=lambda i: (frames[i].instance, frames[i].index))
        if len(frames) > 1:
            notes.append("The slices carry no ImagePositionPatient: ordered by InstanceNumber/frame number; "
                         "the slice spacing is not known from positions.")
        direction = np.stack([r, c, nrm], axis=1)
        origin = f0.ipp if f0.ipp is not None else np.zeros(3)
        dz = thickness or 1.0
        return Plan(order, [(i, i, 0.0) for i in range(len(order))], float(dz), origin, direction, notes, 0)

    proj = np.array([float(np.dot(f.ipp, nrm)) for f in frames])
    order = sorted(range(len(frames)), key=lambda i: (proj[i], frames[i].instance, frames[i].index))
    # Slices at the same position (repeated acquisitions, echoes): keep the first of each.
    kept = [order[0]]
    for i in order[1:]:
        if abs(proj[i] - proj[kept[-1]]) > 1e-3:
            kept.append(i)
    if len(kept) < len(order):
        notes.append(f"{len(order) - len(kept)} slice(s) share a position with another slice "
                     "(repeated acquisition or echo); kept the first of each position.")
    order = kept
    if len(order) == 1:
        dz = thickness or 1.0
        direction = np.stack([r, c, nrm], axis=1)
        return Plan(order, [(0, 0, 0.0)], float(dz), frames[order[0]].ipp, direction, notes, 0)

    p = proj[order]
    gaps = np.diff(p)
    nominal = float(np.median(gaps))
    ratio = gaps / nominal
    k = np.rint(ratio)
    off = np.abs(ratio - k) > SPACING_TOLERANCE
    if np.any(off) or np.any(k < 1):
        j = int(np.argmax(np.abs(ratio - np.maximum(k, 1))))
        raise GeometryError(
            f"{where}: slice spacing is inconsistent: {gaps[j]:.3f} mm between "
            f"{frames[order[j]].path.name} and {frames[order[j + 1]].path.name} against a nominal "
            f"{nominal:.3f} mm (tolerance {SPACING_TOLERANCE:.0%}); pass a series with regular slices")
    slots: list[tuple[int, int, float]] = []
    missing = 0
    for j in range(len(order)):
        slots.append((j, j, 0.0))
        if j < len(gaps) and k[j] >= 2:
            m = int(k[j]) - 1
            missing += m
            for t in range(1, m + 1):
                slots.append((j, j + 1, t / (m + 1)))
            notes.append(
                f"{m} slice(s) missing between positions {p[j]:.1f} and {p[j + 1]:.1f} mm along the slice "
                f"normal (gap {gaps[j]:.2f} mm, nominal {nominal:.2f} mm); filled by linear interpolation.")
    first, last = frames[order[0]].ipp, frames[order[-1]].ipp
    step = (last - first) / (len(slots) - 1)
    dz = float(np.linalg.norm(step))
    zdir = step / dz
    cos = float(np.dot(zdir, nrm))
    if cos < TILT_COSINE:
        notes.append(f"Slices are stacked {np.degrees(np.arccos(min(1.0, cos))):.1f} degrees off their normal "
                     "(gantry tilt); geometry uses the true stacking direction.")
    direction = np.stack([r, c, zdir], axis=1)
    return Plan(order, slots, dz, first, direction, notes, missing)
