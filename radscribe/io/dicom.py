"""DICOM: single files, series spread over a folder, enhanced multi-frame, compressed syntaxes.

Reading is two-pass: every file's header is read with its pixel data deferred to group files by
SeriesInstanceUID and check geometry; only the chosen series' pixels are decoded. Compressed
transfer syntaxes (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE) decode through
pydicom's pixel backends (pylibjpeg + plugins, pyjpegls).

This module reads files and series; :mod:`radscribe.io.dicom_geometry` orders the slices and
checks their geometry, :mod:`radscribe.io.dicom_pixels` bounds the memory and decodes the pixels
through pydicom's Modality / VOI / Presentation LUT functions (CT -> Hounsfield units; MONOCHROME1
inverted so that larger always means brighter). The :class:`~radscribe.io.image.Image` has
``direction`` columns = LPS directions of the column index, row index and slice index,
``spacing`` (z, y, x) in mm and ``origin`` = IPP of the first slice.

Nothing identifying leaves this module: headers are reduced to :data:`SAFE_KEYS` and UIDs are
replaced by :func:`uid_hash`.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from radscribe.errors import InvalidVoxelsError, NoPixelDataError, RadscribeInputError, UnreadableFileError
from radscribe.io.dicom_geometry import (
    ORIENTATION_TOLERANCE,
    SPACING_TOLERANCE,
    TILT_COSINE,
    Frame,
    check_geometry,
    floats,
    frames_of,
    n_frames,
    plan_slices,
)
from radscribe.io.dicom_pixels import check_size, decode_frames, voi_and_presentation
from radscribe.io.image import Image

__all__ = ["SAFE_KEYS", "SPACING_TOLERANCE", "ORIENTATION_TOLERANCE", "TILT_COSINE", "DicomSeries",
           "group_series", "read_dicom_file", "read_header", "read_series", "safe_header", "uid_hash"]

#: Header keys that identify no one; the only ones copied into ``Image.meta`` / ``LoadedStudy.header``.
SAFE_KEYS = (
    "Modality", "BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName",
    "Manufacturer", "ManufacturerModelName", "ConvolutionKernel", "SliceThickness",
    "SpacingBetweenSlices", "PhotometricInterpretation", "ImageType", "KVP", "MagneticFieldStrength",
    "ScanningSequence", "SequenceName", "RepetitionTime", "EchoTime", "PatientPosition",
    "RescaleType", "BitsStored", "ViewPosition", "Laterality",
)

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
    def frames(self) -> list[Frame]:
        return [f for p, ds in self.headers for f in frames_of(p, ds)]

    @property
    def n_slices(self) -> int:
        return sum(n_frames(ds) for _, ds in self.headers)

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
            n_frames(ds)
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


def read_series(series: DicomSeries) -> tuple[Image, list[str]]:
    """Decode one series (one or more files, single- or multi-frame) into an Image plus notes."""
    where = (f"series {series.uid_hash} ('{series.description}')" if len(series.headers) > 1
             else str(series.headers[0][0]))
    frames = series.frames
    if not frames:
        raise NoPixelDataError(f"{where} holds no image frames")
    f0 = frames[0]
    first_ds = series.first
    check_size(f0.rows, f0.cols, len(frames), first_ds, where)
    check_geometry(frames, where)
    plan = plan_slices(frames, where)
    if len(plan.slots) > len(frames):  # interpolated slices (missing positions) count too
        check_size(f0.rows, f0.cols, len(plan.slots), first_ds, where)
    notes = list(plan.notes)
    modality = str(first_ds.get("Modality", "") or "OT").upper()

    ordered, any_float = decode_frames(frames, plan.order, dict(series.headers), where, notes)
    if len(plan.slots) == len(plan.order):
        vol = ordered
    else:
        vol = np.empty((len(plan.slots), f0.rows, f0.cols), dtype=np.float32)
        for s, (a, b, w) in enumerate(plan.slots):
            vol[s] = ordered[a] if w == 0.0 else (1 - w) * ordered[a] + w * ordered[b]
        del ordered

    bad = int(np.count_nonzero(~np.isfinite(vol))) if any_float else 0  # integers cannot be NaN
    if bad:
        raise InvalidVoxelsError(f"{where} has {bad:,} NaN or infinite voxel value(s); radscribe does not "
                                 "analyse images with undefined values: fix or re-export the data")
    vol = voi_and_presentation(vol, first_ds, modality, notes)
    notes[:] = list(dict.fromkeys(notes))

    ps = f0.pixel_spacing
    spacing_known = ps is not None
    if ps is None:
        ips = floats(first_ds.get("ImagerPixelSpacing", []), 2)
        if ips is not None and np.all(ips > 0):
            ps, spacing_known = (ips[0], ips[1]), True
            notes.append("No PixelSpacing: used ImagerPixelSpacing (at the detector, not corrected "
                         "for magnification).")
        else:
            ps = (1.0, 1.0)
            notes.append("No pixel spacing in the header: sizes are in pixels.")
    if modality == "CT" and f0.rescale_type in ("", "HU"):
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
