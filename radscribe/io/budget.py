"""Memory bounded by what a header declares, before any voxel is allocated.

Every reader states, from the header alone, the bytes its voxel data takes as stored (voxels x
components x bytes per value) and checks three things before decoding:

* the peak of a decode, stored bytes plus the float32 :class:`~radscribe.io.image.Image` array,
  stays within :data:`MAX_DECODED_BYTES` (:func:`check_decoded_bytes`);
* for uncompressed data, the file really holds the declared bytes (:func:`require_file_bytes`),
  so a few-KB file whose header declares gigabytes fails at once instead of after the allocation;
* for compressed data, the stream really decompresses to the declared bytes: it is read in chunks
  of :data:`CHUNK_BYTES` and counted, with nothing kept (:func:`require_stream_bytes`), so memory
  stays at one chunk however large the header's claim and however small the file.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from radscribe.errors import ImageTooLargeError, UnreadableFileError
from radscribe.io.image import MAX_SIDE, MAX_VOXELS

#: Peak bytes of one decode (voxel data as stored + the float32 image): 4 GiB on a 24 GiB machine.
MAX_DECODED_BYTES = 4 * 1024**3
#: Bytes read at a time when a compressed stream is checked.
CHUNK_BYTES = 16 * 1024**2
#: Bytes per voxel of the Image array every reader returns.
OUTPUT_BYTES_PER_VOXEL = 4


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB"


def check_decoded_bytes(n_voxels: int, stored_bytes_per_voxel: float, where: str, layout: str) -> int:
    """Raise ImageTooLargeError when decoding ``n_voxels`` would pass the voxel or byte cap.

    ``stored_bytes_per_voxel`` counts every component (3 for 8-bit RGB, 8 for float64); ``layout``
    says what the header declares, e.g. ``"512x512x300 float64"``. Returns the stored bytes.
    """
    n_voxels = int(n_voxels)
    stored = int(n_voxels * stored_bytes_per_voxel)
    if n_voxels > MAX_VOXELS:
        raise ImageTooLargeError(f"{where} would decode to {layout} = {n_voxels:,} voxels, above the cap of "
                                 f"{MAX_VOXELS:,}; crop or downsample it first")
    peak = stored + n_voxels * OUTPUT_BYTES_PER_VOXEL
    if peak > MAX_DECODED_BYTES:
        raise ImageTooLargeError(f"{where} declares {layout}: decoding it takes {_gib(peak)} ({_gib(stored)} as "
                                 f"stored + {_gib(n_voxels * OUTPUT_BYTES_PER_VOXEL)} as float32), above the "
                                 f"cap of {_gib(MAX_DECODED_BYTES)}; crop or downsample it first")
    return stored


def check_side(sides: tuple[int, ...], where: str) -> None:
    """Raise when a side is not positive (UnreadableFileError) or above MAX_SIDE (ImageTooLargeError)."""
    if len(sides) == 0 or any(int(s) <= 0 for s in sides):
        raise UnreadableFileError(f"{where} declares an image of size {tuple(int(s) for s in sides)}; "
                                  "nothing to read")
    if max(int(s) for s in sides) > MAX_SIDE:
        raise ImageTooLargeError(f"{where} is {tuple(int(s) for s in sides)} voxels; radscribe reads up to "
                                 f"{MAX_SIDE} voxels a side: crop or downsample it first")


def require_file_bytes(path: Path, offset: int, need: int, where: str | None = None) -> None:
    """Raise UnreadableFileError unless ``path`` holds ``need`` bytes from byte ``offset`` on."""
    path = Path(path)
    size = path.stat().st_size
    have = max(0, size - int(offset))
    if have < need:
        raise UnreadableFileError(
            f"{where or path}: the header declares {need:,} bytes of voxel data from byte {int(offset):,} but "
            f"{path.name} holds {have:,}; the file is truncated or its header is wrong")


def require_stream_bytes(chunks: Iterable[bytes], need: int, where: str) -> None:
    """Count the bytes of a decompressing stream (an iterable of chunks) until ``need`` have come;
    raise UnreadableFileError if it ends first or is damaged. Nothing is kept: memory stays at
    one chunk, and reading stops as soon as the declared size is confirmed."""
    got = 0
    try:
        for chunk in chunks:
            got += len(chunk)
            if got >= need:
                return
    except (OSError, EOFError, ValueError, zlib.error) as e:
        msg = " ".join(str(e).split())
        raise UnreadableFileError(f"{where}: the compressed voxel data is damaged ({type(e).__name__}: "
                                  f"{msg}) after {got:,} bytes") from None
    if got < need:
        raise UnreadableFileError(f"{where}: the header declares {need:,} bytes of voxel data but the compressed "
                                  f"stream holds {got:,}; the file is truncated or its header is wrong")


def file_chunks(fh: BinaryIO) -> Iterator[bytes]:
    """Chunks (each <= CHUNK_BYTES) read from a file object, e.g. a gzip.GzipFile or bz2.BZ2File."""
    return iter(lambda: fh.read(CHUNK_BYTES), b"")


def zlib_chunks(fh: BinaryIO) -> Iterator[bytes]:
    """Decompressed chunks (each <= CHUNK_BYTES) of a zlib stream (MetaImage .zraw) from ``fh``'s position."""
    d = zlib.decompressobj(47)  # 47: accept a zlib or a gzip header
    while not d.eof:
        data = d.unconsumed_tail or fh.read(CHUNK_BYTES)
        if not data:
            return
        out = d.decompress(data, CHUNK_BYTES)
        if out:
            yield out
