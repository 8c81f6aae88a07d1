"""Brain MR slice preparation for segmentation: head mask, square crop around the head, and its inverse.

A slice (y, x) of any intensity range is percentile-normalised to 0..1, the head is found as the
largest bright region (above 10 % of the 1-99 percentile range, holes filled), and a square box
around it (plus ``margin`` of its size, zero-padded where it leaves the image) is resized to the
network's input size. :func:`uncrop` maps a map on that square back onto the original pixel grid,
so masks and measurements are always on the image's own pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from radscribe.preprocess.intensity import to_unit_range

#: Head threshold: fraction of the 1-99 percentile range above the 1st percentile.
HEAD_THRESHOLD = 0.10


def head_mask(slice2d: np.ndarray) -> np.ndarray:
    """Boolean mask of the head (largest bright connected region, holes filled); empty for a constant image."""
    from scipy import ndimage

    a = np.asarray(slice2d, dtype=np.float32)
    lo, hi = np.percentile(a, [1, 99])
    if not hi > lo:
        return np.zeros(a.shape, bool)
    fg = ndimage.binary_opening(a > lo + HEAD_THRESHOLD * (hi - lo), iterations=2)
    lab, n = ndimage.label(fg)
    if n == 0:
        return np.zeros(a.shape, bool)
    big = int(np.argmax(np.bincount(lab.ravel())[1:])) + 1
    return ndimage.binary_fill_holes(lab == big)


@dataclass(frozen=True)
class SquareCrop:
    """A square window ``(y0, x0, side)`` on an image of ``shape`` (it may extend past the edges)."""

    y0: int
    x0: int
    side: int
    shape: tuple[int, int]


def square_box(mask: np.ndarray, margin: float = 0.05) -> SquareCrop:
    """The square around the mask's bounding box (+ ``margin`` of its larger side); the whole image
    (as a square) when the mask is empty or covers less than 5 % of it."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if ys.size < 0.05 * h * w:
        y0, y1, x0, x1 = 0, h, 0, w
    else:
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    side = int(round(max(y1 - y0, x1 - x0) * (1 + 2 * margin)))
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    return SquareCrop(int(round(cy - side / 2)), int(round(cx - side / 2)), max(side, 2), (h, w))


def crop(arr: np.ndarray, box: SquareCrop, size: int, *, nearest: bool = False) -> np.ndarray:
    """The square window of ``arr`` (zero outside the image) resized to (size, size) float32."""
    h, w = arr.shape
    out = np.zeros((box.side, box.side), np.float32)
    ys, xs = max(box.y0, 0), max(box.x0, 0)
    ye, xe = min(box.y0 + box.side, h), min(box.x0 + box.side, w)
    if ye > ys and xe > xs:
        out[ys - box.y0: ye - box.y0, xs - box.x0: xe - box.x0] = arr[ys:ye, xs:xe]
    t = torch.from_numpy(out)[None, None]
    if nearest:
        r = F.interpolate(t, size=(size, size), mode="nearest")
    else:
        r = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=box.side > size)
    return r[0, 0].numpy()


def uncrop(square: np.ndarray | torch.Tensor, box: SquareCrop) -> np.ndarray:
    """A (C, S, S) or (S, S) map on the crop -> the same on the image grid (bilinear; 0 outside the window)."""
    t = torch.as_tensor(np.asarray(square, dtype=np.float32))
    two_d = t.dim() == 2
    t = t[None, None] if two_d else t[None]
    r = F.interpolate(t, size=(box.side, box.side), mode="bilinear", align_corners=False)[0]
    h, w = box.shape
    out = torch.zeros((r.shape[0], h, w), dtype=torch.float32)
    ys, xs = max(box.y0, 0), max(box.x0, 0)
    ye, xe = min(box.y0 + box.side, h), min(box.x0 + box.side, w)
    if ye > ys and xe > xs:
        out[:, ys:ye, xs:xe] = r[:, ys - box.y0: ye - box.y0, xs - box.x0: xe - box.x0]
    out = out.numpy()
    return out[0] if two_d else out


def prepare_slice(slice2d: np.ndarray, size: int) -> tuple[np.ndarray, SquareCrop, np.ndarray]:
    """(network input (1, size, size) 0..1, the crop, the head mask on the image grid)."""
    unit = to_unit_range(slice2d)
    head = head_mask(unit)
    box = square_box(head)
    return crop(unit, box, size)[None], box, head
