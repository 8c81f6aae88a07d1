"""DICOM pixels: size checks against the header and the file, frame-by-frame decoding, and the
pixel-value pipeline of PS3.4 N.2 through pydicom's own functions.

* **Budget** (before any voxel is allocated): the decode of a series must fit
  :data:`radscribe.io.budget.MAX_DECODED_BYTES`; native (uncompressed) pixel data must be present in
  the file as declared by Rows x Columns x frames x samples x BitsAllocated; encapsulated
  (compressed) pixel data must hold at least one fragment per declared frame. Frames are then
  decoded one at a time (``pydicom.pixels.iter_pixels``) straight into the float32 volume, so the
  transient memory is one frame, never a second copy of the series.
* **Modality LUT** (``pydicom.pixels.apply_modality_lut``): a Modality LUT Sequence when the frame
  has one, else RescaleSlope/Intercept (top level or the frame's Pixel Value Transformation
  functional group). CT values become Hounsfield units.
* **VOI LUT** (``pydicom.pixels.apply_voi_lut``): a VOI LUT *Sequence* (a look-up table, not a
  linear window) is applied to projection images without physical units (CR, DX, MG, XA, OT, ...),
  where that table is the image as it is meant to be read. Cross-sectional modalities keep their
  modality values (HU): a window there would throw away the range that every later step uses;
  linear windows (WindowCenter/Width) are left to display code.
* **Presentation** (``pydicom.pixels.apply_presentation_lut``): MONOCHROME1 is inverted with the
  INVERSE presentation LUT shape so that larger always means brighter, keeping the value range.
"""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path
from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import parse_basic_offsets, parse_fragments
from pydicom.tag import Tag
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_presentation_lut,
    apply_voi_lut,
    iter_pixels,
)
from pydicom.pixels.utils import get_expected_length

from radscribe.errors import ImageTooLargeError, NoPixelDataError, UnreadableFileError
from radscribe.io.budget import check_decoded_bytes, require_file_bytes
from radscribe.io.dicom_geometry import Frame, n_frames
from radscribe.io.image import MAX_SIDE

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: Modalities whose values are physical (HU, T1 signal, SUV...): no VOI LUT applied.
CROSS_SECTIONAL = ("CT", "MR", "PT", "NM", "US")

_INVERSE = Dataset()
_INVERSE.PresentationLUTShape = "INVERSE"


# --------------------------------------------------------------------------------------------- budget
def _bytes_per_voxel(ds) -> float:
    """Stored bytes of one pixel (all samples) as pydicom decodes it."""
    if "DoubleFloatPixelData" in ds:
        per = 8
    elif "FloatPixelData" in ds:
        per = 4
    else:
        bits = int(ds.get("BitsAllocated") or 16)
        per = 1 if bits <= 8 else (2 if bits <= 16 else (4 if bits <= 32 else 8))
    return per * max(1, int(ds.get("SamplesPerPixel", 1) or 1))


def check_size(rows: int, cols: int, n: int, ds, where: str) -> None:
    """Sides, voxel count and decoded bytes of ``n`` frames of ``rows x cols`` (header only)."""
    if rows <= 0 or cols <= 0:
        raise UnreadableFileError(f"{where} declares an image of {rows}x{cols} pixels; nothing to read")
    if max(rows, cols) > MAX_SIDE:
        raise ImageTooLargeError(f"{where} is {rows}x{cols} pixels; radscribe reads images up to "
                                 f"{MAX_SIDE} pixels a side: downsample it first")
    per = _bytes_per_voxel(ds)
    check_decoded_bytes(rows * cols * n, per, where, f"{n}x{rows}x{cols} pixels of {int(per)} byte(s)")


def _is_encapsulated(ds) -> bool:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    return ts is not None and ts.is_encapsulated and "PixelData" in ds


def check_pixel_bytes(path: Path, ds, where: str) -> None:
    """The file holds the pixel data its header declares (native) or one fragment per frame
    (encapsulated); UnreadableFileError otherwise. Reads no pixel value of a native file."""

    key = next((k for k in PIXEL_KEYWORDS if k in ds), None)
    if key is None:
        raise NoPixelDataError(f"{path} holds no pixel data ({ds.get('SOPClassUID', 'unknown SOP class')!s}); "
                               "the file may be truncated, or it is not an image: pass an image series")
    frames = n_frames(ds)
    # The raw element of a deferred value (not yet read) carries its file offset and length;
    # pydicom's public accessors would read the value, which is what these checks must come before.
    elem = ds._dict.get(Tag(key))
    tell = getattr(elem, "value_tell", None)
    deferred = getattr(elem, "value", 0) is None and tell is not None
    name = f"{where}: {Path(path).name}"
    if deferred and int(elem.length) != 0xFFFFFFFF:  # a defined length: the bytes must be in the file
        require_file_bytes(Path(path), int(tell), int(elem.length), where=name)
    if _is_encapsulated(ds):
        try:
            buf = BytesIO(ds.PixelData)
            parse_basic_offsets(buf)
            n_frag, _ = parse_fragments(buf)
        except Exception as e:
            raise UnreadableFileError(f"{where}: the compressed pixel data of {path} is damaged "
                                      f"({type(e).__name__}: {e})") from None
        if n_frag < frames:
            raise UnreadableFileError(f"{where}: {path} declares {frames} frame(s) but its compressed pixel data "
                                      f"holds {n_frag} fragment(s); the file is truncated or its header is wrong")
    else:
        need = int(get_expected_length(ds, "bytes") if key == "PixelData" else (
            int(ds.Rows) * int(ds.Columns) * frames * _bytes_per_voxel(ds)))
        if deferred:
            require_file_bytes(Path(path), int(tell), need, where=name)
        elif len(ds[key].value or b"") < need:  # small values are read with the header
            raise UnreadableFileError(f"{name}: the header declares {need:,} bytes of pixel data but the file "
                                      f"holds {len(ds[key].value or b''):,}; the file is truncated or its header "
                                      "is wrong")


# --------------------------------------------------------------------------------------------- decode
def iter_frames(path: Path, ds, where: str, indices: Sequence[int]):
    """Yield ``(frame index, array)`` for the wanted frames of one dataset, one frame at a time."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, arr in zip(indices, iter_pixels(ds, indices=list(indices))):
                yield i, arr
    except (UnreadableFileError, NoPixelDataError):
        raise
    except Exception as e:
        ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        syntax = f" ({ts.name})" if ts is not None else ""
        msg = " ".join(str(e).split())
        raise UnreadableFileError(
            f"{where}: pixel data of {path} could not be decoded{syntax}: {type(e).__name__}: {msg}. "
            "The file may be truncated, or its compression needs a decoder plugin that is not installed") from None


def to_gray(arr: np.ndarray, ds, notes: list[str]) -> np.ndarray:
    """One frame (rows, cols[, 3]) -> (rows, cols): palette applied, colour to luminance."""
    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if pi == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3:
        rgb = arr.astype(np.float32)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            return rgb[..., 0]
        notes.append(f"Colour image ({pi}) converted to gray (luminance 0.299 R + 0.587 G + 0.114 B).")
        return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return arr


def modality_values(arr: np.ndarray, frame: Frame, out: np.ndarray) -> None:
    """Stored values of one frame -> modality values (HU for CT), written into ``out`` (float32).

    A Modality LUT Sequence goes through pydicom's ``apply_modality_lut``. A plain rescale is the
    linear branch of that same function (PS3.4 N.2.1.1, ``v * slope + intercept``), done here in
    float32 in place instead of pydicom's float64 copy: a third of the memory traffic on a
    500-slice series; ``tests/io/test_dicom_pixels.py`` checks both give the same values.
    """
    if frame.modality_lut is not None:
        out[...] = apply_modality_lut(arr, frame.modality_lut)
        return
    out[...] = arr
    if frame.slope != 1.0:
        out *= np.float32(frame.slope)
    if frame.intercept != 0.0:
        out += np.float32(frame.intercept)


def decode_frames(frames: Sequence[Frame], order: Sequence[int], datasets: dict, where: str,
                  notes: list[str]) -> tuple[np.ndarray, bool]:
    """Decode ``frames[order]`` into one float32 (slices, rows, cols) volume of modality values.

    Returns the volume and whether any stored value was floating point (only then can it hold NaN).
    """
    f0 = frames[0]
    slot_of: dict[Path, dict[int, tuple[int, Frame]]] = {}  # file -> frame index -> (output slice, frame)
    for j, i in enumerate(order):
        slot_of.setdefault(frames[i].path, {})[frames[i].index] = (j, frames[i])
    for p in slot_of:
        check_pixel_bytes(p, datasets[p], where)
    out = np.empty((len(order), f0.rows, f0.cols), dtype=np.float32)
    any_float = False
    for p, wanted in slot_of.items():
        ds = datasets[p]
        for k, arr in iter_frames(p, ds, where, sorted(wanted)):
            any_float |= arr.dtype.kind == "f"
            arr = to_gray(arr, ds, notes)
            if arr.shape != (f0.rows, f0.cols):
                raise UnreadableFileError(f"{p}: decoded frame {k} has shape {arr.shape}, expected "
                                          f"{f0.rows}x{f0.cols}; the file is inconsistent or truncated")
            j, frame = wanted[k]
            modality_values(arr, frame, out[j])
    return out, any_float


def voi_and_presentation(vol: np.ndarray, ds, modality: str, notes: list[str]) -> np.ndarray:
    """VOI LUT Sequence for projection images, then MONOCHROME1 -> brighter-is-denser (in place
    where possible). ``ds`` is the series' first dataset."""
    if modality not in CROSS_SECTIONAL and ds.get("VOILUTSequence"):
        try:
            lo = vol.min()
            if np.issubdtype(vol.dtype, np.floating) and np.all(vol == np.round(vol)):
                stored = vol.astype(np.int32 if lo < 0 else np.uint32)
            else:
                stored = vol
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                vol = np.asarray(apply_voi_lut(stored, ds), dtype=np.float32)
            notes.append("VOI LUT Sequence of the header applied (projection image without physical units).")
        except Exception as e:  # a damaged VOI table: keep the modality values, say so
            notes.append(f"VOI LUT Sequence not applied ({type(e).__name__}); values are modality values.")
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        lo = vol.min()
        vol = apply_presentation_lut(vol, _INVERSE)  # max - v
        vol += lo                                     # keep the modality value range
        notes.append("MONOCHROME1 image: values inverted so that brighter means denser.")
    return vol
