"""PNG overlays of key slices: boxes, contours and heatmaps drawn on a windowed slice.

Drawn with Pillow rather than matplotlib: one overlay costs a few milliseconds, which matters
inside the 5-second analyze budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw
from scipy import ndimage

COLORS = ((255, 64, 64), (255, 200, 0), (0, 220, 255), (120, 255, 120), (255, 120, 255), (255, 160, 60))


@dataclass(frozen=True)
class Box2D:
    """A box on one slice in pixel coordinates, upper bounds exclusive."""

    y0: float
    x0: float
    y1: float
    x1: float
    label: str = ""
    color: tuple[int, int, int] = COLORS[0]


def _colormap(values: np.ndarray) -> np.ndarray:
    """Jet-like colour map for values in [0, 1] -> uint8 RGB (no matplotlib import needed)."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.concatenate([r, g, b], axis=-1) * 255).astype(np.uint8)


def render_overlay(
    gray: np.ndarray,
    boxes: list[Box2D] = (),  # type: ignore[assignment]
    contours: list[tuple[np.ndarray, tuple[int, int, int]]] = (),  # type: ignore[assignment]
    heatmap: np.ndarray | None = None,
    heatmap_alpha: float = 0.4,
    min_side: int = 512,
    aspect: float = 1.0,
    caption: str = "",
) -> PILImage.Image:
    """Compose an RGB overlay.

    ``gray`` is a uint8 (y, x) slice; ``contours`` are boolean masks of the same shape whose border
    is drawn; ``heatmap`` is float (y, x) in [0, 1]; ``aspect`` is row spacing / column spacing so
    that anisotropic pixels are shown with the right proportions.
    """
    if gray.dtype != np.uint8:
        raise ValueError("render_overlay expects a uint8 slice")
    rgb = np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)
    if heatmap is not None:
        hm = np.asarray(heatmap, dtype=np.float32)
        if hm.shape != gray.shape:
            zoom = (gray.shape[0] / hm.shape[0], gray.shape[1] / hm.shape[1])
            hm = ndimage.zoom(hm, zoom, order=1)
        a = (heatmap_alpha * np.clip(hm, 0, 1))[..., None]
        rgb = rgb * (1 - a) + _colormap(hm).astype(np.float32) * a
    for mask, color in contours:
        edge = mask & ~ndimage.binary_erosion(mask)
        rgb[edge] = color
    img = PILImage.fromarray(rgb.clip(0, 255).astype(np.uint8), mode="RGB")
    h, w = gray.shape
    scale = max(1.0, min_side / max(h, w))
    out_h, out_w = int(round(h * scale * aspect)), int(round(w * scale))
    if (out_h, out_w) != (h, w):
        img = img.resize((out_w, out_h), PILImage.BILINEAR)
    sy, sx = out_h / h, out_w / w
    draw = ImageDraw.Draw(img)
    for b in boxes:
        pad = 3
        rect = (b.x0 * sx - pad, b.y0 * sy - pad, b.x1 * sx + pad, b.y1 * sy + pad)
        draw.rectangle(rect, outline=b.color, width=2)
        if b.label:
            ty = rect[1] - 12 if rect[1] >= 12 else rect[3] + 2
            draw.text((rect[0], ty), b.label, fill=b.color)
    if caption:
        draw.text((4, 4), caption, fill=(255, 255, 255))
    return img


def save_png(img: PILImage.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", optimize=False, compress_level=3)
