"""DICOM: single files, series spread over a folder, enhanced multi-frame, compressed syntaxes.

Reading is two-pass: every file's header is read with ``stop_before_pixels`` to group files by
SeriesInstanceUID and check geometry; only the chosen series' pixels are decoded. Compressed
transfer syntaxes (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE) decode through
pydicom's pixel backends (pylibjpeg + plugins, pyjpegls).

Geometry: slices are ordered along the slice normal ``n = row_dir x col_dir`` (from
ImageOrientationPatient) by projecting ImagePositionPatient onto ``n``. The resulting
:class:`~radscribe.io.image.Image` has ``direction`` columns = LPS directions of the column index,
row index and slice index, ``spacing`` (z, y, x) in mm and ``origin`` = IPP of the first slice.
Stored values go through RescaleSlope/Intercept (CT -> Hounsfield units); MONOCHROME1 is inverted
so that larger always means brighter.

Nothing identifying leaves this module: headers are reduced to :data:`SAFE_KEYS` and UIDs are
replaced by :func:`uid_hash`.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from radscribe.errors import (
    GeometryError,
    ImageTooLargeError,
    InvalidVoxelsError,
    NoPixelDataError,
    RadscribeInputError,
    UnreadableFileError,
)
from radscribe.io.image import MAX_SIDE, MAX_VOXELS, Image

#: Header keys that identify no one; the only ones copied into ``Image.meta`` / ``LoadedStudy.header``.
SAFE_KEYS = (
    "Modality", "BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName",
    "Manufacturer", "ManufacturerModelName", "ConvolutionKernel", "SliceThickness",
    "SpacingBetweenSlices", "PhotometricInterpretation", "ImageType", "KVP", "MagneticFieldStrength",
    "ScanningSequence", "SequenceName", "RepetitionTime", "EchoTime", "PatientPosition",
    "RescaleType", "BitsStored", "ViewPosition", "Laterality",
)

#: Relative tolerance on slice spacing (fraction of the nominal spacing) before a series is rejected.
SPACING_TOLERANCE = 0.1
#: Tolerance on the components of ImageOrientationPatient (unit vectors) across slices.
ORIENTATION_TOLERANCE = 1e-3
#: Cosine below which the slice stacking direction counts as tilted against the slice normal.
TILT_COSINE = 0.9999

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: Elements larger than this (pixel data) are read from disk only when accessed.
_DEFER_BYTES = 64 * 1024


def uid_hash(uid: str) -> str:
    """A stable, non-reversible short id for a DICOM UID: sha256 hex, first 12 characters."""
    return hashlib.sha256(str(uid).encode()).hexdigest()[:12]


def looks_like_dicom(path: Path) -> bool:
    """True when ``path`` carries the DICOM preamble magic ``DICM`` at byte 128 or ends in .dcm."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or Path(path).suffix.lower() in (".dcm", ".dicom")


def read_header(path: Path):
    """One DICOM file's dataset with its pixel data deferred (read from disk only when decoded).

    Deferring instead of ``stop_before_pixels`` parses each header once: grouping a folder costs
    the same and the chosen series is then decoded without a second parse. UnreadableFileError
    when the file is not DICOM or is damaged.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise UnreadableFileError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise UnreadableFileError(f"{path} is empty (0 bytes); re-export or re-copy the file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return pydicom.dcmread(path, defer_size=_DEFER_BYTES)
            except InvalidDicomError:
                # No preamble: accept only when the forced read finds image attributes.
                ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES, force=True)
                if "SOPClassUID" not in ds and "Rows" not in ds:
                    raise
                return ds
    except InvalidDicomError:
        raise UnreadableFileError(f"{path} is not a DICOM file (no DICM marker, no DICOM attributes)") from None
    except Exception as e:  # pydicom raises many types on malformed data
        raise UnreadableFileError(f"{path} could not be read as DICOM ({type(e).__name__}: {e}); "
                                  "the file is damaged or truncated") from None


def safe_header(ds) -> dict[str, Any]:
    """Non-identifying header facts of one dataset as plain JSON-able values."""
    out: dict[str, Any] = {}
    for key in SAFE_KEYS:
        v = ds.get(key)
        if v is None or v == "":
            continue
        out[key] = _plain(v)
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is not None:
        out["TransferSyntax"] = ts.name
    if "SOPClassUID" in ds:
        out["SOPClass"] = ds.SOPClassUID.name
    if "SeriesInstanceUID" in ds:
        out["SeriesUIDHash"] = uid_hash(ds.SeriesInstanceUID)
    return out


def _plain(v: Any) -> Any:
    from pydicom.multival import MultiValue
    from pydicom.valuerep import DSfloat, IS

    if isinstance(v, (MultiValue, list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (DSfloat, float)):
        return float(v)
    if isinstance(v, (IS, int)):
        return int(v)
    return str(v)


# --------------------------------------------------------------------------------------------- frames
@dataclass
class _Frame:
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


def _floats(v: Any, n: int) -> np.ndarray | None:
    try:
        a = np.asarray([float(x) for x in v], dtype=float)
    except (TypeError, ValueError):
        return None
    return a if a.shape == (n,) and np.all(np.isfinite(a)) else None


def _num(v: Any, default: float | None) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return f if np.isfinite(f) else default


def _fg_item(ds, i: int, seq: str):
    """Item of functional group ``seq`` for frame ``i``: per-frame first, then shared."""
    for top, idx in (("PerFrameFunctionalGroupsSequence", i), ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(top)
        if groups is not None and len(groups) > idx and seq in groups[idx] and len(groups[idx][seq].value):
            return groups[idx][seq].value[0]
    return None


def _n_frames(ds) -> int:
    n = ds.get("NumberOfFrames")
    try:
        return max(1, int(n)) if n not in (None, "") else 1
    except (TypeError, ValueError):
        where = getattr(ds, "filename", None) or "a DICOM file"
        raise UnreadableFileError(f"{where}: NumberOfFrames {n!r} is not a number; the header is damaged") from None


def frames_of(path: Path, ds) -> list[_Frame]:
    """Per-frame geometry of one DICOM header (classic or enhanced multi-frame)."""
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    n = _n_frames(ds)
    instance = int(_num(ds.get("InstanceNumber"), 0) or 0)
    top_spacing = _floats(ds.get("PixelSpacing", []), 2)
    if top_spacing is not None and not np.all(top_spacing > 0):
        top_spacing = None  # 0 or negative spacing is a placeholder, not a size
    top = dict(
        ipp=_floats(ds.get("ImagePositionPatient", []), 3),
        iop=_floats(ds.get("ImageOrientationPatient", []), 6),
        pixel_spacing=None if top_spacing is None else (top_spacing[0], top_spacing[1]),
        thickness=_num(ds.get("SliceThickness"), None),
        slope=_num(ds.get("RescaleSlope"), 1.0),
        intercept=_num(ds.get("RescaleIntercept"), 0.0),
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
                g["ipp"] = _floats(pos.get("ImagePositionPatient", []), 3)
            if ori is not None:
                g["iop"] = _floats(ori.get("ImageOrientationPatient", []), 6)
            if meas is not None:
                ps = _floats(meas.get("PixelSpacing", []), 2)
                if ps is not None and np.all(ps > 0):
                    g["pixel_spacing"] = (ps[0], ps[1])
                g["thickness"] = _num(meas.get("SliceThickness"), g["thickness"])
            if pvt is not None:
                g["slope"] = _num(pvt.get("RescaleSlope"), 1.0)
                g["intercept"] = _num(pvt.get("RescaleIntercept"), 0.0)
        elif i > 0:
            g["ipp"] = None  # a classic multi-frame object states the first frame's position only
        out.append(_Frame(path=Path(path), index=i, rows=rows, cols=cols, instance=instance, **g))
    return out


# --------------------------------------------------------------------------------------------- series
@dataclass
class DicomSeries:
    """All headers of one series (files grouped by SeriesInstanceUID), before any pixel is decoded."""

    uid: str
    headers: list[tuple[Path, Any]] = field(default_factory=list)

    @property
    def uid_hash(self) -> str:
        return uid_hash(self.uid)

    @property
    def first(self):
        return self.headers[0][1]

    @property
    def description(self) -> str:
        return str(self.first.get("SeriesDescription", "") or "")

    @property
    def modality(self) -> str:
        return str(self.first.get("Modality", "") or "OT")

    @cached_property
    def frames(self) -> list[_Frame]:
        return [f for p, ds in self.headers for f in frames_of(p, ds)]

    @property
    def n_slices(self) -> int:
        return sum(_n_frames(ds) for _, ds in self.headers)

    @property
    def rows_cols(self) -> tuple[int, int]:
        return int(self.first.get("Rows") or 0), int(self.first.get("Columns") or 0)

    @property
    def slice_normal(self) -> np.ndarray | None:
        f = self.frames[0]
        return None if f.iop is None else np.cross(f.iop[:3], f.iop[3:])

    @property
    def is_axial(self) -> bool:
        """Slice normal mostly along the patient's head-foot axis (|n_z| > 0.8)."""
        n = self.slice_normal
        return n is not None and abs(float(n[2])) > 0.8

    @property
    def is_localizer(self) -> bool:
        it = [str(x).upper() for x in (self.first.get("ImageType") or [])]
        return "LOCALIZER" in it

    def estimated_spacing(self) -> tuple[float, float, float]:
        """(z, y, x) mm from the headers (median slice step along the normal), 1.0 where unknown."""
        fr = self.frames
        ps = fr[0].pixel_spacing or (1.0, 1.0)
        n = self.slice_normal
        dz = fr[0].thickness or 1.0
        if n is not None and len(fr) > 1 and all(f.ipp is not None for f in fr):
            proj = np.sort([float(np.dot(f.ipp, n)) for f in fr])
            d = np.diff(proj)
            d = d[d > 1e-3]
            if d.size:
                dz = float(np.median(d))
        return (float(dz), float(ps[0]), float(ps[1]))


def group_series(files: Iterable[Path]) -> tuple[list[DicomSeries], list[str]]:
    """Read the headers of ``files`` and group image files by SeriesInstanceUID.

    Returns the series (largest first) and notes on skipped files (non-DICOM, no pixels).
    """
    series: dict[str, DicomSeries] = {}
    skipped_not_dicom: list[str] = []
    skipped_no_pixels: list[str] = []
    for p in files:
        try:
            ds = read_header(p)
        except UnreadableFileError:
            skipped_not_dicom.append(Path(p).name)
            continue
        if "Rows" not in ds or "Columns" not in ds:
            skipped_no_pixels.append(Path(p).name)
            continue
        try:
            _n_frames(ds)
        except UnreadableFileError:
            skipped_not_dicom.append(Path(p).name)
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or f"no-series-uid:{Path(p).parent}")
        series.setdefault(uid, DicomSeries(uid)).headers.append((Path(p), ds))
    notes = []
    if skipped_not_dicom:
        notes.append(f"Skipped {len(skipped_not_dicom)} file(s) that are not readable DICOM "
                     f"(e.g. {skipped_not_dicom[0]}).")
    if skipped_no_pixels:
        notes.append(f"Skipped {len(skipped_no_pixels)} DICOM object(s) without an image "
                     f"(e.g. {skipped_no_pixels[0]}: a report, DICOMDIR or presentation state).")
    out = sorted(series.values(), key=lambda s: (-s.n_slices, s.uid_hash))
    return out, notes


def _check_size(rows: int, cols: int, n: int, where: str) -> None:
    if rows <= 0 or cols <= 0:
        raise UnreadableFileError(f"{where} declares an image of {rows}x{cols} pixels; nothing to read")
    if max(rows, cols) > MAX_SIDE:
        raise ImageTooLargeError(f"{where} is {rows}x{cols} pixels; radscribe reads images up to "
                                 f"{MAX_SIDE} pixels a side: downsample it first")
    if rows * cols * n > MAX_VOXELS:
        raise ImageTooLargeError(f"{where} would decode to {n}x{rows}x{cols} = {rows * cols * n:,} voxels, "
                                 f"above the cap of {MAX_VOXELS:,}; crop or downsample it first")


def _check_geometry(frames: Sequence[_Frame], where: str) -> None:
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
class _Plan:
    """Where each output slice comes from: a frame index, or an interpolation between two."""

    order: list[int]                      # frame indices in slice order (after de-duplication)
    slots: list[tuple[int, int, float]]   # per output slice: (a, b, w) -> (1-w)*frame[a] + w*frame[b]
    spacing_z: float
    origin: np.ndarray
    direction: np.ndarray
    notes: list[str]
    missing: int


def _plan(frames: Sequence[_Frame], where: str) -> _Plan:
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
        return _Plan(order, [(i, i, 0.0) for i in range(len(order))], float(dz), origin, direction, notes, 0)

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
        return _Plan(order, [(0, 0, 0.0)], float(dz), frames[order[0]].ipp, direction, notes, 0)

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
    return _Plan(order, slots, dz, first, direction, notes, missing)


# --------------------------------------------------------------------------------------------- pixels
def _decode(path: Path, ds, where: str) -> np.ndarray:
    """Pixel array (frames, rows, cols[, samples]) of one dataset read by :func:`read_header`."""
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise NoPixelDataError(f"{path} holds no pixel data ({ds.get('SOPClassUID', 'unknown SOP class')!s}); "
                               "the file may be truncated, or it is not an image: pass an image series")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ds.pixel_array
    except Exception as e:
        ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        syntax = f" ({ts.name})" if ts is not None else ""
        raise UnreadableFileError(
            f"{where}: pixel data of {path} could not be decoded{syntax}: {type(e).__name__}: {e}. "
            "The file may be truncated, or its compression needs a decoder plugin that is not installed") from None


def _to_gray(arr: np.ndarray, ds, notes: list[str]) -> np.ndarray:
    """(frames, rows, cols[, 3]) -> (frames, rows, cols) float32: colour to luminance, palette applied."""
    from pydicom.pixels import apply_color_lut

    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if pi == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        spp = 3
    if spp == 3 or arr.ndim == 4:
        rgb = arr.astype(np.float32)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            return rgb[..., 0]
        notes.append(f"Colour image ({pi}) converted to gray (luminance 0.299 R + 0.587 G + 0.114 B).")
        return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return arr.astype(np.float32, copy=False)


def read_series(series: DicomSeries) -> tuple[Image, list[str]]:
    """Decode one series (one or more files, single- or multi-frame) into an Image plus notes."""
    where = (f"series {series.uid_hash} ('{series.description}')" if len(series.headers) > 1
             else str(series.headers[0][0]))
    frames = series.frames
    if not frames:
        raise NoPixelDataError(f"{where} holds no image frames")
    f0 = frames[0]
    _check_size(f0.rows, f0.cols, len(frames), where)
    _check_geometry(frames, where)
    plan = _plan(frames, where)
    notes = list(plan.notes)

    # Decode each needed file once, straight into the float32 volume.
    datasets = {p: ds for p, ds in series.headers}
    ordered = np.empty((len(plan.order), f0.rows, f0.cols), dtype=np.float32)
    slot_of: dict[Path, list[tuple[int, int]]] = {}
    for j, i in enumerate(plan.order):
        slot_of.setdefault(frames[i].path, []).append((j, frames[i].index))
    any_float = False
    for p, wanted in slot_of.items():
        ds = datasets[p]
        arr = _decode(p, ds, where)
        any_float |= arr.dtype.kind == "f"
        n = _n_frames(ds)
        if n == 1:
            arr = arr[None]
        if arr.ndim == 4 or str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
            arr = _to_gray(arr, ds, notes)
        if arr.shape != (n, f0.rows, f0.cols):
            raise UnreadableFileError(f"{p}: decoded pixels have shape {arr.shape}, expected "
                                      f"{n}x{f0.rows}x{f0.cols}; the file is inconsistent or truncated")
        for j, k in wanted:
            ordered[j] = arr[k]
    notes[:] = list(dict.fromkeys(notes))
    slopes = np.array([frames[i].slope for i in plan.order], dtype=np.float32)
    inters = np.array([frames[i].intercept for i in plan.order], dtype=np.float32)
    if np.all(slopes == slopes[0]) and np.all(inters == inters[0]):
        if slopes[0] != 1.0:
            ordered *= slopes[0]
        if inters[0] != 0.0:
            ordered += inters[0]
    else:
        ordered *= slopes[:, None, None]
        ordered += inters[:, None, None]
    if len(plan.slots) == len(plan.order):
        vol = ordered
    else:
        vol = np.empty((len(plan.slots), f0.rows, f0.cols), dtype=np.float32)
        for s, (a, b, w) in enumerate(plan.slots):
            vol[s] = ordered[a] if w == 0.0 else (1 - w) * ordered[a] + w * ordered[b]

    bad = int(np.count_nonzero(~np.isfinite(vol))) if any_float else 0  # integers cannot be NaN
    if bad:
        raise InvalidVoxelsError(f"{where} has {bad:,} NaN or infinite voxel value(s); radscribe does not "
                                 "analyse images with undefined values: fix or re-export the data")
    first_ds = series.first
    pi = str(first_ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if pi == "MONOCHROME1":
        vol = (vol.max() + vol.min()) - vol
        notes.append("MONOCHROME1 image: values inverted so that brighter means denser.")

    ps = f0.pixel_spacing
    spacing_known = ps is not None
    if ps is None:
        ips = _floats(first_ds.get("ImagerPixelSpacing", []), 2)
        if ips is not None and np.all(ips > 0):
            ps, spacing_known = (ips[0], ips[1]), True
            notes.append("No PixelSpacing: used ImagerPixelSpacing (at the detector, not corrected "
                         "for magnification).")
        else:
            ps = (1.0, 1.0)
            notes.append("No pixel spacing in the header: sizes are in pixels.")
    modality = str(first_ds.get("Modality", "") or "OT").upper()
    rescale_type = str(first_ds.get("RescaleType", "") or "")
    if modality == "CT" and rescale_type.upper() in ("", "HU"):
        units = "HU"
    else:
        units = "arbitrary"
    meta = safe_header(first_ds)
    meta.update(n_files=len(series.headers), n_slices=int(vol.shape[0]), missing_slices=plan.missing)
    if f0.thickness is not None and "SliceThickness" not in meta:
        meta["SliceThickness"] = float(f0.thickness)
    body = first_ds.get("BodyPartExamined")
    image = Image(
        array=vol,
        spacing=(float(plan.spacing_z), float(ps[0]), float(ps[1])),
        origin=tuple(float(x) for x in plan.origin),
        direction=np.asarray(plan.direction, dtype=float),
        modality=modality,
        body_part=str(body).lower() if body else None,
        units=units,
        spacing_known=spacing_known,
        source=str(series.headers[0][0] if len(series.headers) == 1 else series.headers[0][0].parent),
        source_format="dicom",
        meta=meta,
    )
    return image, notes


def read_dicom_file(path: Path) -> tuple[Image, list[str], DicomSeries]:
    """One DICOM file (single- or multi-frame) -> Image, notes, and its series record."""
    path = Path(path)
    ds = read_header(path)
    if "Rows" not in ds or "Columns" not in ds:
        sop = ds.get("SOPClassUID")
        name = sop.name if sop is not None else "unknown SOP class"
        raise NoPixelDataError(f"{path} is a DICOM object without pixel data ({name}); pass an image file "
                               "or a folder holding an image series")
    s = DicomSeries(str(ds.get("SeriesInstanceUID", "") or f"file:{path.name}"), [(path, ds)])
    try:
        image, notes = read_series(s)
    except RadscribeInputError:
        raise
    except Exception as e:  # last guard: a malformed file must never surface as a traceback
        raise UnreadableFileError(f"{path} could not be read ({type(e).__name__}: {e})") from None
    return image, notes, s
