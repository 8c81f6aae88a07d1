"""Volumes from research formats: NIfTI (.nii, .nii.gz), MetaImage (.mhd + raw, .mha), NRRD (.nrrd, .nhdr).

NIfTI is read with nibabel. Its affine maps voxel ``(i, j, k)`` to RAS mm; radscribe is LPS, so the
first two rows change sign. The array is transposed from nibabel's ``(i, j, k)`` to ``(z, y, x)``
= ``(k, j, i)``. MetaImage and NRRD are read with SimpleITK, which is already LPS with ``(z, y, x)``
arrays. Before any voxel is decoded, the header's size and data type are checked against the
caps of :mod:`radscribe.io.budget`, and the file (or the decompressed stream, for .nii.gz, .zraw
and gzip/bzip2 NRRD) is checked to hold the bytes the header declares.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import logging
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from radscribe.errors import InvalidVoxelsError, RadscribeInputError, UnreadableFileError
from radscribe.io.budget import (
    check_decoded_bytes,
    check_side,
    file_chunks,
    require_file_bytes,
    require_stream_bytes,
    zlib_chunks,
)
from radscribe.io.image import Image

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".mhd", ".mha", ".nrrd", ".nhdr")

#: RAS -> LPS: negate x and y.
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def volume_format(path: Path) -> str | None:
    """'nifti', 'metaimage', 'nrrd' or None, from the file name."""
    name = Path(path).name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith((".mhd", ".mha")):
        return "metaimage"
    if name.endswith((".nrrd", ".nhdr")):
        return "nrrd"
    return None


def _check_shape(shape: tuple[int, ...], path: Path) -> None:
    check_side(tuple(shape[:3]) if len(shape) else (), str(path))
    if any(int(s) <= 0 for s in shape[3:]):
        raise UnreadableFileError(f"{path} declares an image of size {tuple(shape)}; nothing to read")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _itk_message(e: BaseException) -> str:
    """The last non-empty line of an ITK exception (the earlier ones are source locations)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def _check_finite(arr: np.ndarray, path: Path) -> None:
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise InvalidVoxelsError(f"{path} has {bad:,} NaN or infinite voxel value(s); radscribe does not "
                                 "analyse images with undefined values: fix or re-export the data")


def _split_affine(lps: np.ndarray, path: Path) -> tuple[tuple[float, float, float], np.ndarray, tuple]:
    """LPS affine (index i,j,k -> mm) -> spacing (z,y,x), direction (columns = x,y,z axes), origin."""
    m = lps[:3, :3]
    norms = np.linalg.norm(m, axis=0)
    if not np.all(np.isfinite(lps)) or np.any(norms <= 0):
        raise UnreadableFileError(f"{path} has a degenerate affine (a voxel axis of length 0); "
                                  "fix its header (qform/sform) and try again")
    direction = m / norms
    return (float(norms[2]), float(norms[1]), float(norms[0])), direction, tuple(float(x) for x in lps[:3, 3])


@contextlib.contextmanager
def _nibabel_log_as_notes(notes: list[str]) -> Iterator[None]:
    """nibabel logs header fixes (e.g. a zero pixdim set to 1) straight to stderr through its own
    handler; while reading, they become notes instead."""
    logs = [logging.getLogger("nibabel"), logging.getLogger("nibabel.global")]  # the second has a handler

    class _ToNotes(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            notes.append("nibabel: " + " ".join(record.getMessage().split()))

    saved = [(log.handlers[:], log.propagate) for log in logs]
    for log in logs:
        log.handlers[:] = [_ToNotes(logging.WARNING)]
        log.propagate = False
    try:
        yield
    finally:
        for log, (handlers, propagate) in zip(logs, saved):
            log.handlers[:], log.propagate = handlers, propagate


def read_nifti(path: Path) -> tuple[Image, list[str]]:
    """A NIfTI-1/2 file -> Image (LPS). 4D files give their first volume, with a note."""
    import nibabel  # noqa: F401  (before the handlers are swapped: its import adds one)

    notes: list[str] = []
    with _nibabel_log_as_notes(notes):
        image, more = _read_nifti(Path(path))
    return image, notes + more


def _read_nifti(path: Path) -> tuple[Image, list[str]]:
    import nibabel as nib

    path = Path(path)
    notes: list[str] = []
    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.header.get_data_shape())
        dtype = np.dtype(img.header.get_data_dtype())
        offset = int(img.header.get_data_offset())
    except Exception as e:
        raise UnreadableFileError(f"{path} could not be read as NIfTI ({type(e).__name__}: {_one_line(e)}); "
                                  "the file is damaged, truncated or not NIfTI") from None
    _check_shape(shape, path)
    n3 = int(np.prod(shape[:3], dtype=np.int64))
    need = check_decoded_bytes(n3, dtype.itemsize, str(path), f"{'x'.join(map(str, shape[:3]))} {dtype.name}")
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rb") as fh:  # stream: the header, then the first volume's bytes
            require_stream_bytes(file_chunks(fh), offset + need, str(path))
    else:
        require_file_bytes(path, offset, need)
    try:
        proxy = img.dataobj
        if len(shape) > 3:
            extra = int(np.prod(shape[3:]))
            if extra > 1:
                notes.append(f"{len(shape)}D NIfTI of shape {shape}: analysed the first of {extra} volumes.")
            data = np.asarray(proxy[(slice(None),) * 3 + (0,) * (len(shape) - 3)], dtype=np.float32)
        else:
            data = np.asarray(proxy, dtype=np.float32)
    except Exception as e:
        raise UnreadableFileError(f"voxels of {path} could not be decoded ({type(e).__name__}: {_one_line(e)}); "
                                  "the file is probably truncated") from None
    while data.ndim < 3:
        data = data[..., None]
    _check_finite(data, path)
    affine = img.affine
    if affine is None:
        affine = np.diag(list(img.header.get_zooms()[:3]) + [1.0])
        notes.append("The NIfTI header has no usable qform/sform: assumed an axis-aligned grid.")
    spacing, direction, origin = _split_affine(_RAS_TO_LPS @ np.asarray(affine, dtype=float), path)
    arr = np.ascontiguousarray(data.transpose(2, 1, 0))
    return Image(array=arr, spacing=spacing, origin=origin, direction=direction, modality="OT",
                 units="arbitrary", spacing_known=True, source=str(path), source_format="nifti",
                 meta={"format": "NIfTI", "shape_xyz": list(shape[:3])}), notes


def _header_text(path: Path, limit: int = 65536) -> tuple[bytes, str]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit)
    except OSError as e:
        raise UnreadableFileError(f"{path} could not be read ({e})") from None
    return raw, raw.decode("latin-1")


def _metaimage_layout(path: Path) -> tuple[Path, int, str] | None:
    """(data file, first data byte, codec 'raw'|'zlib') of a MetaImage header; None when the data
    is spread over several files (LIST, a %d pattern) or placed by HeaderSize = -1."""
    raw, text = _header_text(path)
    m = re.search(r"^[ \t]*ElementDataFile[ \t]*=[ \t]*(.+?)[ \t]*\r?$", text, re.M)
    if m is None:
        raise UnreadableFileError(f"{path} is not a MetaImage header (no ElementDataFile line)")
    name = m.group(1)
    codec = "zlib" if re.search(r"^[ \t]*CompressedData[ \t]*=[ \t]*True", text, re.M | re.I) else "raw"
    hs = re.search(r"^[ \t]*HeaderSize[ \t]*=[ \t]*(-?\d+)", text, re.M)
    skip = int(hs.group(1)) if hs else 0
    if name.upper() == "LIST" or "%" in name or skip < 0:
        return None
    if name.upper() == "LOCAL":
        end = m.end()
        nl = raw.find(b"\n", end)
        return path, (nl + 1 if nl >= 0 else len(raw)) + skip, codec
    data = path.parent / name
    if not data.is_file():
        raise UnreadableFileError(f"{path} names the data file {name!r}, which is not beside it; "
                                  "copy the .raw/.zraw file next to the .mhd")
    return data, skip, codec


_NRRD_CODECS = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bz2", "bz2": "bz2",
                "ascii": "text", "text": "text", "txt": "text", "hex": "hex"}


def _nrrd_layout(path: Path) -> tuple[Path, int, str] | None:
    """(data file, first data byte, codec) of a NRRD header; None when the data is spread over
    several files or placed from the end (byte skip -1)."""
    raw, text = _header_text(path)
    blank = re.search(r"\r?\n\r?\n", text)
    header = text[: blank.start()] if blank else text
    fields = dict((k.strip().lower().replace(" ", ""), v.strip()) for k, v in
                  (ln.split(":", 1) for ln in header.splitlines()[1:] if ":" in ln and not ln.startswith("#")))
    codec = _NRRD_CODECS.get(fields.get("encoding", "raw").lower())
    skip = int(fields.get("byteskip", "0") or 0) if fields.get("byteskip", "0").lstrip("-").isdigit() else 0
    if codec is None or skip < 0 or int(fields.get("lineskip", "0") or 0) != 0:
        return None
    name = fields.get("datafile")
    if name is None:
        return path, (blank.end() if blank else len(raw)) + (skip if codec == "raw" else 0), codec
    if name.upper().startswith("LIST") or "%" in name or " " in name:
        return None
    data = path.parent / name
    if not data.is_file():
        raise UnreadableFileError(f"{path} names the data file {name!r}, which is not beside it")
    return data, skip if codec == "raw" else 0, codec


def _require_itk_bytes(path: Path, fmt: str, need: int, n_values: int) -> None:
    """The data an ITK header points to holds ``need`` bytes (streamed when compressed)."""
    layout = _metaimage_layout(path) if fmt == "metaimage" else _nrrd_layout(path)
    if layout is None:
        return
    data, offset, codec = layout
    where = str(path) if data == path else f"{path} (data file {data.name})"
    if codec == "raw":
        require_file_bytes(data, offset, need, where)
    elif codec == "text":  # at least one digit and one separator per value
        require_file_bytes(data, offset, 2 * n_values - 1, where)
    elif codec == "hex":
        require_file_bytes(data, offset, 2 * need, where)
    else:
        with open(data, "rb") as fh:
            fh.seek(offset)
            if codec == "zlib":
                require_stream_bytes(zlib_chunks(fh), need, where)
            else:
                with (gzip.GzipFile(fileobj=fh, mode="rb") if codec == "gzip" else bz2.BZ2File(fh, "rb")) as z:
                    require_stream_bytes(file_chunks(z), need, where)


def _itk_bytes_per_value(reader) -> int:
    import SimpleITK as sitk

    try:
        return int(sitk.Image([1] * reader.GetDimension(), reader.GetPixelID()).GetSizeOfPixelComponent())
    except Exception:
        return 8


def read_itk(path: Path) -> tuple[Image, list[str]]:
    """MetaImage (.mhd/.mha) or NRRD (.nrrd/.nhdr) via SimpleITK -> Image (LPS)."""
    import SimpleITK as sitk

    path = Path(path)
    notes: list[str] = []
    fmt = volume_format(path)
    if path.suffix.lower() == ".mhd":
        _metaimage_layout(path)  # a missing data file fails here, with its name
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK prints warnings straight to stderr otherwise
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except Exception as e:
        raise UnreadableFileError(f"{path} could not be read as {fmt} ({_itk_message(e)}); "
                                  "the file is damaged or not in that format") from None
    size = tuple(int(s) for s in reader.GetSize())  # (x, y[, z[, t]]): SimpleITK decodes every dimension
    _check_shape(size, path)
    n_values = int(np.prod(size, dtype=np.int64)) * max(1, int(reader.GetNumberOfComponents()))
    per = _itk_bytes_per_value(reader)
    need = check_decoded_bytes(int(np.prod(size, dtype=np.int64)), per * max(1, int(reader.GetNumberOfComponents())),
                               str(path), f"{'x'.join(map(str, size))} x {reader.GetNumberOfComponents()} "
                               f"component(s) of {per} byte(s)")
    _require_itk_bytes(path, fmt, need, n_values)
    try:
        img = reader.Execute()
    except Exception as e:
        raise UnreadableFileError(f"voxels of {path} could not be decoded "
                                  f"({_itk_message(e)}); the data is probably truncated") from None
    dim = img.GetDimension()
    if dim > 3:
        notes.append(f"{dim}D image: analysed the first 3D volume.")
        extractor = sitk.ExtractImageFilter()
        extractor.SetSize(list(img.GetSize()[:3]) + [0] * (dim - 3))
        extractor.SetIndex([0] * dim)
        img = extractor.Execute(img)
        dim = 3
    arr = sitk.GetArrayFromImage(img)
    if img.GetNumberOfComponentsPerPixel() > 1:
        c = arr.astype(np.float32)
        if c.shape[-1] >= 3 and np.array_equal(c[..., 0], c[..., 1]) and np.array_equal(c[..., 1], c[..., 2]):
            arr = c[..., 0]
        elif c.shape[-1] >= 3:
            arr = c[..., 0] * 0.299 + c[..., 1] * 0.587 + c[..., 2] * 0.114
            notes.append("Colour image converted to gray (luminance 0.299 R + 0.587 G + 0.114 B).")
        else:
            arr = c[..., 0]
            notes.append(f"{c.shape[-1]}-component image: analysed the first component.")
    arr = np.asarray(arr, dtype=np.float32)
    spacing = list(img.GetSpacing())
    origin = list(img.GetOrigin())
    d = np.asarray(img.GetDirection(), dtype=float).reshape(dim, dim)
    direction = np.eye(3)
    direction[:dim, :dim] = d
    while arr.ndim < 3:
        arr = arr[None]
    while len(spacing) < 3:
        spacing.append(1.0)
        origin.append(0.0)
    _check_finite(arr, path)
    if np.any(np.asarray(spacing) <= 0):
        raise UnreadableFileError(f"{path} has a non-positive voxel spacing {tuple(spacing)}; fix its header")
    meta = {"format": fmt}
    modality = "OT"
    try:
        if reader.HasMetaDataKey("Modality"):
            mod = reader.GetMetaData("Modality").strip().upper()  # MetaImage: MET_MOD_CT, MET_MOD_MR
            modality = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR"}.get(mod, "OT")
            meta["Modality"] = modality
    except RuntimeError:
        pass
    return Image(array=np.ascontiguousarray(arr), spacing=(float(spacing[2]), float(spacing[1]), float(spacing[0])),
                 origin=(float(origin[0]), float(origin[1]), float(origin[2])), direction=direction,
                 modality=modality, units="arbitrary", spacing_known=True, source=str(path),
                 source_format=fmt, meta=meta), notes


def read_volume(path: Path) -> tuple[Image, list[str]]:
    """Dispatch on the file name to :func:`read_nifti` or :func:`read_itk`."""
    fmt = volume_format(path)
    if fmt == "nifti":
        return read_nifti(path)
    if fmt in ("metaimage", "nrrd"):
        return read_itk(path)
    raise RadscribeInputError(f"{path} is not a NIfTI, MetaImage or NRRD file name")
