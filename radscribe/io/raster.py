"""2D pictures: PNG and JPEG (radiographs exported without DICOM).

Gray images stay as they are (8-bit 0..255, 16-bit PNG 0..65535, no rescaling); RGB images whose
three channels are equal become gray; other colour images become luminance, with a note. The
size is checked from the header before decoding. No physical spacing: ``spacing_known`` is False.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from radscribe.errors import ImageTooLargeError, UnreadableFileError
from radscribe.io.budget import CHUNK_BYTES, check_decoded_bytes, require_stream_bytes
from radscribe.io.image import MAX_SIDE, Image

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Bytes per pixel of Pillow's decoded image, by mode.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2,
               "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4}
_GRAY_MODES = ("1", "L", "LA", "I;16", "I;16B", "I;16L", "I;16N", "I", "F")
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


def _png_idat(path: Path):
    """Chunks of a PNG's IDAT data, read from the file one chunk at a time."""
    with open(path, "rb") as fh:
        fh.seek(8)
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return
            n, kind = struct.unpack(">I4s", head)
            if kind == b"IDAT":
                left = n
                while left > 0:
                    data = fh.read(min(left, CHUNK_BYTES))
                    if not data:
                        return
                    left -= len(data)
                    yield data
                fh.seek(4, 1)
            elif kind == b"IEND":
                return
            else:
                fh.seek(n + 4, 1)


def _require_png_bytes(path: Path) -> None:
    """The PNG's compressed data decompresses to at least the bytes its IHDR declares (pixels x bit
    depth x channels / 8, a lower bound with or without interlacing), counted in a stream before
    Pillow allocates the image."""
    with open(path, "rb") as fh:
        ihdr = fh.read(29)
    if len(ihdr) < 29 or ihdr[12:16] != b"IHDR":
        return  # Pillow has already read a header; let it report what is odd
    w, h, depth, colour = struct.unpack(">IIBB", ihdr[16:26])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
    d = zlib.decompressobj()

    def chunks():
        for data in _png_idat(path):
            while data and not d.eof:
                out = d.decompress(data, CHUNK_BYTES)
                data = d.unconsumed_tail
                if out:
                    yield out

    require_stream_bytes(chunks(), (w * h * depth * channels + 7) // 8, str(path))


def read_raster(path: Path) -> tuple[Image, list[str]]:
    """A PNG/JPEG file -> Image of shape (1, H, W), float32, gray."""
    from PIL import Image as PILImage

    path = Path(path)
    notes: list[str] = []
    try:
        pil = PILImage.open(path)
    except PILImage.DecompressionBombError:
        raise ImageTooLargeError(f"{path} is too large to decode safely; downsample it first") from None
    except Exception as e:
        raise UnreadableFileError(f"{path} could not be read as PNG/JPEG ({type(e).__name__}: {e})") from None
    try:
        return _decode(pil, path, notes)
    finally:
        pil.close()


def _decode(pil, path: Path, notes: list[str]) -> tuple[Image, list[str]]:
    from PIL import ImageOps

    w, h = pil.size
    if w <= 0 or h <= 0:
        raise UnreadableFileError(f"{path} declares an image of {w}x{h} pixels; nothing to read")
    if max(w, h) > MAX_SIDE:
        raise ImageTooLargeError(f"{path} is {w}x{h} pixels; radscribe reads images up to {MAX_SIDE} pixels "
                                 "a side: downsample it first")
    per = _MODE_BYTES.get(pil.mode, 4)
    # Pillow's decoded image, an RGB copy for colour modes, then the float32 array.
    check_decoded_bytes(w * h, per + (3 if pil.mode not in _GRAY_MODES else 0), str(path),
                        f"{w}x{h} pixels of mode {pil.mode}")
    fmt = (pil.format or "").lower()
    if fmt == "png":
        _require_png_bytes(path)
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
