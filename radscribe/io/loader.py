"""One entry point for every input: ``load_study(path)`` -> :class:`LoadedStudy`.

``path`` may be a DICOM file, a folder of DICOM files (one or more series, any file names, any
depth), a NIfTI / MetaImage / NRRD volume, or a PNG / JPEG picture. For a folder, headers are
read first and only the chosen series is decoded: by default the largest axial CT/MR volume, or
the series named by ``series_uid`` (the SeriesInstanceUID or its 12-character hash).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radscribe.errors import (
    RadscribeInputError,
    SeriesNotFoundError,
    UnknownFormatError,
    UnreadableFileError,
)
from radscribe.io import dicom
from radscribe.io.image import Image
from radscribe.io.raster import RASTER_SUFFIXES, raster_format, read_raster
from radscribe.io.volume import read_volume, volume_format

#: Modalities that make cross-sectional volumes (preferred when a folder holds several series).
VOLUME_MODALITIES = ("CT", "MR", "PT")
#: Header keys exposed in ``LoadedStudy.header`` (besides the SOP class / transfer syntax / UID hash).
HEADER_KEYS = dicom.SAFE_KEYS + ("TransferSyntax", "SOPClass", "SeriesUIDHash", "format")


@dataclass(frozen=True)
class SeriesSummary:
    """One series found at the input path. ``shape``/``spacing`` are (z, y, x) voxels / mm."""

    uid_hash: str
    description: str
    modality: str
    n_slices: int
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    chosen: bool

    def to_dict(self) -> dict[str, Any]:
        return {"uid_hash": self.uid_hash, "description": self.description, "modality": self.modality,
                "n_slices": self.n_slices, "shape": list(self.shape),
                "spacing": [round(float(s), 4) for s in self.spacing], "chosen": self.chosen}


@dataclass(frozen=True)
class LoadedStudy:
    """The image to analyse, every series seen, human-readable notes and a non-identifying header."""

    image: Image
    series: tuple[SeriesSummary, ...]
    notes: tuple[str, ...]
    header: dict
    #: DICOM inputs: the pixel-free headers of the analysed series, as read. They *do* carry patient
    #: identifiers: only the DICOM SR export may use them (it must copy the patient module); they are
    #: never written elsewhere nor shown (not in ``to_dict``, not in ``repr``).
    evidence: tuple = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"series": [s.to_dict() for s in self.series], "notes": list(self.notes),
                "header": dict(self.header)}


def _file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).name.encode()).hexdigest()[:12]


def _single(image: Image, notes: list[str], description: str) -> LoadedStudy:
    header = {k: v for k, v in image.meta.items() if k in HEADER_KEYS}
    s = SeriesSummary(uid_hash=str(image.meta.get("SeriesUIDHash") or _file_hash(Path(image.source))),
                      description=description, modality=image.modality, n_slices=image.shape[0],
                      shape=image.shape, spacing=tuple(float(x) for x in image.spacing), chosen=True)
    return LoadedStudy(image=image, series=(s,), notes=tuple(notes), header=header)


def _list_files(folder: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if not f.startswith(".") and f.upper() != "DICOMDIR":
                out.append(Path(root) / f)
    return out


def _choose(series: list[dicom.DicomSeries], series_uid: str | None, folder: Path) -> tuple[dicom.DicomSeries, str]:
    if series_uid:
        for s in series:
            if series_uid in (s.uid, s.uid_hash):
                return s, f"Analysed series {s.uid_hash} ('{s.description}', {s.modality}, {s.n_slices} slices) " \
                          "as requested."
        listing = "; ".join(f"{s.uid_hash} ('{s.description}', {s.modality}, {s.n_slices} slices)" for s in series)
        raise SeriesNotFoundError(f"series {series_uid!r} is not in {folder}; the folder holds: {listing}")
    if len(series) == 1:
        s = series[0]
        return s, f"Analysed the only series, {s.uid_hash} ('{s.description}', {s.modality}, {s.n_slices} slices)."

    def key(s: dicom.DicomSeries):
        rows, cols = s.rows_cols
        return (s.modality.upper() in VOLUME_MODALITIES, not s.is_localizer, s.is_axial, s.n_slices,
                rows * cols, s.uid_hash)

    best = max(series, key=key)
    why = []
    if best.modality.upper() in VOLUME_MODALITIES:
        why.append("cross-sectional (CT/MR/PT)")
    if best.is_axial:
        why.append("axial")
    why.append(f"the most slices ({best.n_slices})" if all(best.n_slices >= s.n_slices for s in series)
               else f"{best.n_slices} slices")
    return best, (f"Analysed series {best.uid_hash} ('{best.description}', {best.modality}) out of "
                  f"{len(series)} series: {', '.join(why)}. Pass --series with another hash to choose.")


def _load_dicom_folder(folder: Path, files: list[Path], series_uid: str | None) -> LoadedStudy:
    series, notes = dicom.group_series(files)
    if not series:
        raise UnreadableFileError(f"{folder} holds no DICOM image series ({len(files)} file(s) checked); "
                                  "pass a folder of DICOM images or a single image file")
    chosen, why = _choose(series, series_uid, folder)
    image, series_notes = dicom.read_series(chosen)
    summaries = []
    for s in series:
        if s is chosen:
            summaries.append(SeriesSummary(s.uid_hash, s.description, s.modality, image.shape[0], image.shape,
                                           tuple(image.spacing), True))
        else:
            rows, cols = s.rows_cols
            summaries.append(SeriesSummary(s.uid_hash, s.description, s.modality, s.n_slices,
                                           (s.n_slices, rows, cols), s.estimated_spacing(), False))
    header = {k: v for k, v in image.meta.items() if k in HEADER_KEYS}
    return LoadedStudy(image=image, series=tuple(summaries), notes=tuple([why] + notes + series_notes),
                       header=header, evidence=tuple(ds for _, ds in chosen.headers))


def _load_file(path: Path, series_uid: str | None) -> LoadedStudy:
    if path.stat().st_size == 0:
        raise UnreadableFileError(f"{path} is empty (0 bytes); re-export or re-copy the file")
    vfmt = volume_format(path)
    if vfmt is not None:
        image, notes = read_volume(path)
        return _single(image, notes, {"nifti": "NIfTI volume", "metaimage": "MetaImage volume",
                                      "nrrd": "NRRD volume"}[vfmt])
    rfmt = raster_format(path)
    if rfmt is not None or path.suffix.lower() in RASTER_SUFFIXES:
        image, notes = read_raster(path)
        return _single(image, notes, f"{(rfmt or path.suffix.lstrip('.')).upper()} picture")
    if dicom.looks_like_dicom(path) or path.suffix == "":
        try:
            image, notes, s = dicom.read_dicom_file(path)
        except UnreadableFileError:
            if dicom.looks_like_dicom(path):
                raise
            raise UnknownFormatError(_unknown(path)) from None
        if series_uid and series_uid not in (s.uid, s.uid_hash):
            raise SeriesNotFoundError(f"series {series_uid!r} was requested but {path} belongs to series "
                                      f"{s.uid_hash}; pass the folder holding the series, or drop --series")
        if image.shape[0] == 1 and image.modality in ("CT", "MR"):
            notes = ["A single slice was given; pass the folder to analyse the whole series."] + notes
        return _single(image, notes, s.description)
    raise UnknownFormatError(_unknown(path))


def _unknown(path: Path) -> str:
    return (f"{path} is not in a format radscribe reads; supported: DICOM (file or folder), NIfTI (.nii, .nii.gz), "
            "MetaImage (.mhd + .raw, .mha), NRRD (.nrrd), PNG, JPEG")


def load_study(path, series_uid: str | None = None) -> LoadedStudy:
    """Read ``path`` (file or folder) into a :class:`LoadedStudy`; RadscribeInputError on bad input."""
    with warnings.catch_warnings():
        # Readers' libraries warn on their own (pydicom on every non-conformant value, nibabel on a zero
        # pixdim, Pillow on a large image): what matters becomes a note or an error, nothing is printed.
        warnings.simplefilter("ignore")
        return _load_study(Path(path), series_uid)


def _load_study(path: Path, series_uid: str | None) -> LoadedStudy:
    if not path.exists():
        raise UnreadableFileError(f"no such file or folder: {path}")
    try:
        if path.is_dir():
            files = _list_files(path)
            if not files:
                raise UnreadableFileError(f"folder {path} is empty; pass a folder holding DICOM files")
            if len(files) == 1 and (volume_format(files[0]) or raster_format(files[0])):
                return _load_file(files[0], series_uid)
            images = [f for f in files if volume_format(f) or raster_format(f)]
            dicom_like = [f for f in files if f not in set(images)]
            try:
                if not dicom_like:
                    raise UnreadableFileError(f"folder {path} holds no DICOM files")
                return _load_dicom_folder(path, dicom_like, series_uid)
            except UnreadableFileError as e:
                if images and "no DICOM" in str(e):
                    raise UnreadableFileError(
                        f"folder {path} holds no DICOM series but {len(images)} other image file(s); pass one "
                        f"of them (e.g. {images[0]}) instead of the folder") from None
                raise
        return _load_file(path, series_uid)
    except RadscribeInputError:
        raise
    except PermissionError as e:
        raise UnreadableFileError(f"permission denied reading {e.filename or path}") from None
    except Exception as e:  # last guard at the boundary: no traceback for a malformed input
        raise UnreadableFileError(f"{path} could not be read ({type(e).__name__}: {e})") from None
