"""Measurements of a segmentation mask: box, area, diameters, side, distance from the midline, volume.

Pure numpy/scipy, no model: a mask and its pixel spacing in, numbers out. Conventions:

* 2D masks are (y, x) = (row, column); 3D masks (z, y, x). Boxes have exclusive upper bounds.
* ``spacing`` is (y, x) mm for 2D and (z, y, x) mm for 3D; ``None`` means unknown (then only pixel
  figures are given and the mm fields are None).
* The longest diameter is the largest distance between two points of the mask's outline (maximum Feret
  diameter, measured between the outer corners of boundary pixels, so a disc of radius r gives ~2r);
  the short axis is the mask's extent perpendicular to it (RECIST-style, in the image plane).
* Side: the patient's side of the mask's centroid relative to a midline column. ``left_is_increasing_x``
  says how columns map to the patient: True for the radiological display (image left = patient right,
  the convention of axial DICOM/NIfTI in LPS and the one assumed for PNG/JPEG).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A centroid closer to the midline than this fraction of the head's width is called "midline".
MIDLINE_BAND = 0.03


@dataclass(frozen=True)
class Measurement2D:
    """Sizes of one 2D mask. ``*_mm`` fields are None without spacing; distances signed + = patient left."""

    area_px: int
    area_mm2: float | None
    box: tuple[int, int, int, int]                 # (y0, x0, y1, x1)
    centroid: tuple[float, float]                  # (y, x) pixels
    long_axis_px: float
    short_axis_px: float
    long_axis_mm: float | None
    short_axis_mm: float | None
    side: str | None                               # "left" / "right" / "midline"; None without a midline
    left_fraction: float | None                    # fraction of the mask's pixels on the patient's left
    midline_x: float | None
    distance_from_midline_px: float | None         # centroid to midline (unsigned)
    distance_from_midline_mm: float | None
    crosses_midline: bool | None
    brain_fraction: float | None                   # mask area / head area


@dataclass(frozen=True)
class Measurement3D:
    """Sizes of one 3D mask: volume and the extent along each patient axis of the voxel grid."""

    voxels: int
    volume_ml: float | None
    box: tuple[int, int, int, int, int, int]       # (z0, y0, x0, z1, y1, x1)
    extent_mm: tuple[float, float, float] | None   # (z, y, x) extents in mm
    extent_px: tuple[int, int, int]
    slices: tuple[int, ...]                        # slice indices holding part of the mask


def mask_box(mask: np.ndarray) -> tuple[int, ...] | None:
    """(lo..., hi...) bounding box of a boolean mask, exclusive upper bounds; None when empty."""
    idx = np.argwhere(np.asarray(mask, bool))
    if idx.size == 0:
        return None
    return tuple(int(v) for v in idx.min(0)) + tuple(int(v) + 1 for v in idx.max(0))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component (8-/26-connected) of a boolean mask."""
    from scipy import ndimage

    m = np.asarray(mask, bool)
    lab, n = ndimage.label(m, structure=np.ones((3,) * m.ndim))
    if n <= 1:
        return m
    return lab == (int(np.argmax(np.bincount(lab.ravel())[1:])) + 1)


def feret_of_points(pts: np.ndarray) -> tuple[float, float]:
    """(largest distance between 2D points (N, 2), their extent perpendicular to it), in the points' units.

    The extremes lie on the convex hull, so only its vertices are compared (all points when no hull can be
    built, e.g. collinear ones); (0, 0) when every point coincides."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        pts = pts[ConvexHull(pts).vertices]
    except (QhullError, ValueError):
        pass
    d = np.linalg.norm(pts[:, None, :] - pts[None, :, :], axis=-1)
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    long_ = float(d[i, j])
    if long_ <= 0:
        return 0.0, 0.0
    u = (pts[j] - pts[i]) / long_
    proj = pts @ np.array([-u[1], u[0]])
    return long_, float(proj.max() - proj.min())


def feret(mask: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> tuple[float, float]:
    """(longest diameter, extent perpendicular to it) of a 2D mask in the units of ``spacing``."""
    from scipy import ndimage

    m = np.asarray(mask, bool)
    edge = m & ~ndimage.binary_erosion(m)
    ys, xs = np.nonzero(edge)
    if ys.size == 0:
        return 0.0, 0.0
    sy, sx = float(spacing[0]), float(spacing[1])
    # the four outer corners of every boundary pixel, in mm
    pts = np.concatenate([np.stack([(ys + dy) * sy, (xs + dx) * sx], 1) for dy in (0, 1) for dx in (0, 1)])
    return feret_of_points(pts)


def midline_column(head: np.ndarray) -> float | None:
    """The head's midline column: centre of the head mask's column extent; None for an empty mask."""
    cols = np.flatnonzero(np.asarray(head, bool).any(axis=0))
    return None if cols.size == 0 else (cols[0] + cols[-1] + 1) / 2 - 0.5


def measure_2d(mask: np.ndarray, spacing: tuple[float, float] | None = None, *, head: np.ndarray | None = None,
               left_is_increasing_x: bool = True) -> Measurement2D | None:
    """Measure a 2D boolean mask (None when empty). ``head`` (same grid) gives the midline and brain fraction."""
    m = np.asarray(mask, bool)
    box = mask_box(m)
    if box is None:
        return None
    ys, xs = np.nonzero(m)
    area = int(ys.size)
    cy, cx = float(ys.mean()), float(xs.mean())
    long_px, short_px = feret(m)
    long_mm = short_mm = area_mm2 = None
    if spacing is not None:
        long_mm, short_mm = feret(m, spacing)
        area_mm2 = area * float(spacing[0]) * float(spacing[1])
    side = left_frac = mid = dist_px = dist_mm = crosses = brain_frac = None
    if head is not None and np.asarray(head, bool).any():
        hd = np.asarray(head, bool)
        mid = midline_column(hd)
        brain_frac = area / float(hd.sum())
        greater = float((xs > mid).sum()) / area
        left_frac = greater if left_is_increasing_x else 1.0 - greater
        dist_px = abs(cx - mid)
        width = float(np.ptp(np.flatnonzero(hd.any(axis=0)))) + 1
        crosses = bool((xs < mid).any() and (xs > mid).any())
        if dist_px < MIDLINE_BAND * width:
            side = "midline"
        else:
            side = "left" if (cx > mid) == left_is_increasing_x else "right"
        if spacing is not None:
            dist_mm = dist_px * float(spacing[1])
    return Measurement2D(area, area_mm2, box, (cy, cx), long_px, short_px, long_mm, short_mm, side, left_frac,
                         mid, dist_px, dist_mm, crosses, brain_frac)


def measure_3d(mask: np.ndarray, spacing: tuple[float, float, float] | None = None) -> Measurement3D | None:
    """Volume (ml = 1000 mm^3) and axis extents of a 3D boolean mask (z, y, x); None when empty."""
    m = np.asarray(mask, bool)
    box = mask_box(m)
    if box is None:
        return None
    ext_px = tuple(int(box[i + 3] - box[i]) for i in range(3))
    n = int(m.sum())
    vol = ext_mm = None
    if spacing is not None:
        vol = n * float(np.prod(spacing)) / 1000.0
        ext_mm = tuple(float(e * s) for e, s in zip(ext_px, spacing))
    slices = tuple(int(z) for z in np.flatnonzero(m.any(axis=(1, 2))))
    return Measurement3D(n, vol, box, ext_mm, ext_px, slices)  # type: ignore[arg-type]


@dataclass(frozen=True)
class NoduleMeasurement:
    """Fleischner-style sizes of one nodule mask (z, y, x): volume, long and perpendicular short axis in the
    axial slice where the long axis is largest, mean HU, and the long axis of the solid component (voxels
    above ``solid_hu``) in its own largest axial slice (None without HU or without solid voxels)."""

    voxels: int
    volume_ml: float
    long_axis_mm: float
    short_axis_mm: float
    axial_slice: int                      # z index of the slice the axes are measured on
    mean_diameter_mm: float               # (long + short) / 2, the Fleischner average diameter
    mean_hu: float | None
    solid_fraction: float | None          # fraction of the mask's voxels above solid_hu
    solid_long_axis_mm: float | None


#: Pixel fractions added to the centre-to-centre long / short axis: the digitised outline's centres lie up to a
#: pixel inside the true edge; these offsets keep discs of 4-30 mm at random sub-pixel positions within
#: -0.35..+0.5 mm at pixels <= 0.8 mm (the worst case of a mask alone is +-1 pixel).
LONG_AXIS_PAD_PX, SHORT_AXIS_PAD_PX = 0.5, 0.65


def axes_2d(mask: np.ndarray, spacing: tuple[float, float]) -> tuple[float, float]:
    """(long axis, perpendicular short axis) in mm of a 2D mask: the largest distance between boundary pixel
    centres and the centres' extent perpendicular to it, each padded by a fraction of the pixel (above)."""
    from scipy import ndimage

    m = np.asarray(mask, bool)
    ys, xs = np.nonzero(m & ~ndimage.binary_erosion(m))
    if ys.size == 0:
        return 0.0, 0.0
    pix = float(np.sqrt(spacing[0] * spacing[1]))
    long_, short = feret_of_points(np.stack([ys * float(spacing[0]), xs * float(spacing[1])], 1))
    if long_ <= 0:
        return float(max(spacing)), float(min(spacing))
    return long_ + LONG_AXIS_PAD_PX * pix, min(short + SHORT_AXIS_PAD_PX * pix, long_ + LONG_AXIS_PAD_PX * pix)


def axial_axes(mask: np.ndarray, spacing: tuple[float, float, float]) -> tuple[float, float, int]:
    """(long axis, perpendicular short axis, z index) in mm of a 3D mask on the axial slice where the long
    axis is largest (Fleischner 2017: both axes on the same slice); (0, 0, -1) for an empty mask."""
    m = np.asarray(mask, bool)
    best = (0.0, 0.0, -1)
    for z in np.flatnonzero(m.any(axis=(1, 2))):
        long_, short = axes_2d(m[z], (spacing[1], spacing[2]))
        if long_ > best[0]:
            best = (long_, short, int(z))
    return best


def measure_nodule(mask: np.ndarray, spacing: tuple[float, float, float], hu: np.ndarray | None = None,
                   solid_hu: float = -300.0) -> NoduleMeasurement | None:
    """Measure a nodule mask (z, y, x) with spacing (z, y, x) mm and optional HU on the same grid; None when
    empty. The solid component is the largest connected part of the mask above ``solid_hu``."""
    m = np.asarray(mask, bool)
    n = int(m.sum())
    if n == 0:
        return None
    long_, short, z = axial_axes(m, spacing)
    mean_hu = solid_frac = solid_long = None
    if hu is not None:
        a = np.asarray(hu, np.float32)
        if a.shape != m.shape:
            raise ValueError(f"HU array {a.shape} and mask {m.shape} differ")
        mean_hu = float(a[m].mean())
        solid = m & (a > solid_hu)
        solid_frac = float(solid.sum()) / n
        if solid.any():
            solid_long = axial_axes(largest_component(solid), spacing)[0]
    return NoduleMeasurement(n, n * float(np.prod(spacing)) / 1000.0, long_, short, z, 0.5 * (long_ + short),
                             mean_hu, solid_frac, solid_long)
