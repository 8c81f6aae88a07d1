"""2D pictures: PNG and JPEG (radiographs exported without DICOM).

Gray images stay as they are (8-bit 0..255, 16-bit PNG 0..65535, no rescaling); RGB images whose
three channels are equal become gray; other colour images become luminance, with a note. The
size is checked from the header before decoding. No physical spacing: ``spacing_known`` is False.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from radscribe.errors import ImageTooLargeError, UnreadableFileError
from radscribe.io.image import MAX_SIDE, MAX_VOXELS, Image

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
_MAGIC = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg"}


def raster_format(path: Path) -> str | None:
    """'png' or 'jpeg' from the first bytes of the file, else None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    for magic, fmt in _MAGIC.items():
        if head.startswith(magic):
            return fmt
    return None


def read_raster(path: Path) -> tuple[Image, list[str]]:
    """A PNG/JPEG file -> Image of shape (1, H, W), float32, gray."""
    from PIL import Image as PILImage
    from PIL import ImageOps

    path = Path(path)
    notes: list[str] = []
    try:
        pil = PILImage.open(path)
    except PILImage.DecompressionBombError:
        raise ImageTooLargeError(f"{path} is too large to decode safely; downsample it first") from None
    except Exception as e:
        raise UnreadableFileError(f"{path} could not be read as PNG/JPEG ({type(e).__name__}: {e})") from None
    w, h = pil.size
    if w <= 0 or h <= 0:
        raise UnreadableFileError(f"{path} declares an image of {w}x{h} pixels; nothing to read")
    if max(w, h) > MAX_SIDE or w * h > MAX_VOXELS:
        raise ImageTooLargeError(f"{path} is {w}x{h} pixels; radscribe reads images up to {MAX_SIDE} pixels "
                                 "a side: downsample it first")
    fmt = (pil.format or "").lower()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pil.load()
            pil = ImageOps.exif_transpose(pil)
    except Exception as e:
        raise UnreadableFileError(f"{path} could not be decoded ({type(e).__name__}: {e}); "
                                  "the file is probably truncated or damaged") from None
    mode = pil.mode
    bits = 8
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(pil, dtype=np.uint16).astype(np.float32)
        bits = 16
    elif mode in ("I", "F"):
        arr = np.asarray(pil).astype(np.float32)
        bits = 32 if mode == "F" else (16 if arr.max(initial=0) > 255 else 8)
    elif mode in ("L", "1"):
        arr = np.asarray(pil.convert("L"), dtype=np.float32)
    elif mode in ("LA",):
        arr = np.asarray(pil, dtype=np.float32)[..., 0]
    else:
        rgb = np.asarray(pil.convert("RGB"), dtype=np.float32)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            arr = rgb[..., 0]
        else:
            arr = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
            notes.append(f"Colour image ({mode}) converted to gray (luminance 0.299 R + 0.587 G + 0.114 B).")
    if not np.all(np.isfinite(arr)):
        from radscribe.errors import InvalidVoxelsError

        raise InvalidVoxelsError(f"{path} has {int(np.count_nonzero(~np.isfinite(arr))):,} NaN or infinite "
                                 "pixel value(s); fix or re-export the image")
    return Image(array=np.ascontiguousarray(arr[None]), spacing=(1.0, 1.0, 1.0), modality="OT",
                 units="arbitrary", spacing_known=False, source=str(path), source_format=fmt or "raster",
                 meta={"format": fmt.upper(), "mode": mode, "bits": bits}), notes
