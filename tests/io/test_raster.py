"""PNG / JPEG: a real chest radiograph and synthetic 8/16-bit and colour files."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage

from radscribe.errors import ImageTooLargeError, UnreadableFileError
from radscribe.io.loader import load_study


def test_real_chest_xray_jpeg(shared_dataset):
    files = sorted((shared_dataset("chest_xray_pneumonia") / "test" / "NORMAL").glob("*.jpeg"))
    assert files
    f = files[0]
    st = load_study(f)
    im = st.image
    ref = np.asarray(PILImage.open(f).convert("L"), dtype=np.float32)
    assert im.shape == (1,) + ref.shape and not im.spacing_known and im.modality == "OT"
    assert np.array_equal(im.array[0], ref)
    assert 0 <= im.array.min() and im.array.max() <= 255 and im.array.std() > 10  # a real picture
    assert st.series[0].chosen and st.header == {"format": "JPEG"}


def test_8bit_png(tmp_path, rng):
    a = rng.integers(0, 256, (40, 30), dtype=np.uint8)
    p = tmp_path / "g8.png"
    PILImage.fromarray(a).save(p)
    im = load_study(p).image
    assert im.shape == (1, 40, 30) and np.array_equal(im.array[0], a) and im.meta["bits"] == 8


def test_16bit_png_kept(tmp_path, rng):
    a = rng.integers(0, 65536, (33, 17), dtype=np.uint16)
    p = tmp_path / "g16.png"
    PILImage.fromarray(a).save(p)
    im = load_study(p).image
    assert np.array_equal(im.array[0], a.astype(np.float32)) and im.array.max() > 255
    assert im.meta["bits"] == 16


def test_rgb_equal_channels_to_gray(tmp_path, rng):
    g = rng.integers(0, 256, (20, 25), dtype=np.uint8)
    p = tmp_path / "rgb.png"
    PILImage.fromarray(np.stack([g, g, g], -1)).save(p)
    st = load_study(p)
    assert np.array_equal(st.image.array[0], g) and not st.notes


def test_colour_to_luminance_with_note(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200
    p = tmp_path / "red.png"
    PILImage.fromarray(rgb).save(p)
    st = load_study(p)
    assert np.allclose(st.image.array, 200 * 0.299, atol=1e-3)
    assert any("converted to gray" in n for n in st.notes)


def test_truncated_jpeg(tmp_path, rng):
    p = tmp_path / "cut.jpg"
    PILImage.fromarray(rng.integers(0, 256, (200, 200), dtype=np.uint8)).save(p, quality=95)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(UnreadableFileError, match="cut.jpg"):
        load_study(p)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_absurd_png_size_rejected_from_header(tmp_path):
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    p = tmp_path / "bomb.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 10)))
    with pytest.raises(ImageTooLargeError, match="bomb.png"):
        load_study(p)
