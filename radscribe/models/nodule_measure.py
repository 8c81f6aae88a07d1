"""Stage 2 of the classical nodule detector (:mod:`radscribe.models.nodule_candidates`): segment one
candidate at full resolution and measure it.

The connected region above a threshold halfway between lung and the candidate's core (or halfway to
ground glass) is cut free of attached vessels by an opening with a ball of 0.75 x the local thickness;
long and short axis (mm) come from the axial slice of largest extent, as Fleischner measures; volume,
HU statistics, density class, PCA elongation / flatness, sphericity and surroundings are added.
Voxel order is (z, y, x); spacing in mm.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from radscribe.io.image import Image
from radscribe.preprocess.lung import LungSegmentation

#: 8-connected in-plane structuring element (one slice of a 3x3x3 block).
PLANE8 = np.zeros((3, 3, 3), bool)
PLANE8[1] = True


def open_at(reg: np.ndarray, p: tuple[int, int, int], search_mm: float, sp: tuple[float, float, float],
             frac: float = 0.75) -> tuple[np.ndarray, float]:
    """Cut attached vessels off the blob at ``p``: opening by a ball of ``frac`` x local thickness.

    The local thickness is the largest inscribed-ball radius (mm, distance transform with anisotropic
    sampling) within ``search_mm`` of p. A sphere survives an opening by any smaller ball; a vessel
    thinner than ``frac`` x the blob radius does not. Returns (opened region, thickness mm). Works on
    the region's bounding box, so the cost does not grow with the ball.
    """
    box = ndi.find_objects(reg.astype(np.uint8))[0]
    box = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
    sub = np.pad(reg[box], 1)
    d_in = ndi.distance_transform_edt(sub, sampling=sp)
    gz, gy, gx = np.ogrid[:sub.shape[0], :sub.shape[1], :sub.shape[2]]
    q = [pi - b.start + 1 for pi, b in zip(p, box)]
    near = ((gz - q[0]) * sp[0]) ** 2 + ((gy - q[1]) * sp[1]) ** 2 + ((gx - q[2]) * sp[2]) ** 2 <= search_mm ** 2
    thick = float(d_in[near].max()) if near.any() else float(d_in.max())
    radius = frac * thick
    if radius < min(sp):
        return reg, thick
    core = d_in > radius
    out = np.zeros_like(reg)
    if core.any():
        opened = ndi.distance_transform_edt(~core, sampling=sp) <= radius
        # a ball thinner than a slice is a flat disk and would shave the blob's top and bottom
        # slices off: give back one slice above and below, within the region
        opened[1:] |= opened[:-1].copy()
        opened[:-1] |= opened[1:].copy()
        # and the rim the discrete opening shaves off (one pixel in-plane)
        opened = ndi.binary_dilation(opened, structure=PLANE8)
        out[box] = (opened & sub)[1:-1, 1:-1, 1:-1]
    return out, thick


def component_at(mask: np.ndarray, p: tuple[int, int, int], search_mm: float, sp) -> np.ndarray | None:
    """Connected component of mask containing p (or the nearest mask voxel within search_mm)."""
    if not mask.any():
        return None
    lab, _ = ndi.label(mask)
    l = lab[p]
    if l == 0:
        pts = np.argwhere(mask)
        d = np.sqrt((((pts - np.array(p)) * np.array(sp)) ** 2).sum(1))
        i = int(d.argmin())
        if d[i] > search_mm:
            return None
        l = lab[tuple(pts[i])]
    return lab == l


def axes_mm(region2d: np.ndarray, sy: float, sx: float) -> tuple[float, float]:
    """Long axis and perpendicular short axis (mm) of a 2D region (pixel extent included)."""
    pts = np.argwhere(region2d).astype(float) * [sy, sx]
    if len(pts) == 1:
        return float(max(sy, sx)), float(min(sy, sx))
    if len(pts) > 400:  # the convex extent is on the boundary
        er = ndi.binary_erosion(region2d)
        pts = np.argwhere(region2d & ~er).astype(float) * [sy, sx]
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(d2.argmax()), d2.shape)
    v = pts[j] - pts[i]
    L = float(np.sqrt(d2[i, j]))
    if L == 0:
        return float(max(sy, sx)), float(min(sy, sx))
    u = np.array([-v[1], v[0]]) / L
    pix = float(np.sqrt(sy * sx))
    short = float(np.ptp(pts @ u)) + pix
    return L + pix, min(short, L + pix)


def characterise(image: Image, lungs: LungSegmentation, c: tuple[int, int, int], sig: float, bg: float,
                  R: dict[str, float], feat: dict[str, Any]) -> None:
    """Fill ``feat`` with size, shape and density features of the candidate at voxel c (z, y, x).

    The region of interest starts at 3 candidate radii (>= 12 mm); when the grown region reaches its
    border it is enlarged (up to 30 mm) and the vessel-cutting opening is scaled to the region found.
    """
    sp = tuple(float(s) for s in image.spacing)
    r_est = sig * math.sqrt(3.0)
    half = min(max(3.0 * r_est, 12.0), 30.0)
    for _attempt in range(2):
        out = grow_and_measure(image, lungs, c, r_est, half, bg, R, sp)
        if out is None:
            feat["region"] = "none"
            return
        # retry once, larger, only for a compact region (a big nodule seen at a small scale)
        if not out["leaks_roi"] or half >= 30.0 or out["elongation"] > R["max_elongation"]:
            break
        r_est = max(r_est, min(out["_r_eq"], 10.0))
        half = min(2 * half, 30.0)
    feat.update(out)


def grow_and_measure(image, lungs, c, r_est, half, bg, R, sp) -> dict[str, Any] | None:
    roi = tuple(slice(max(int(ci - math.ceil(half / s)), 0), min(int(ci + math.ceil(half / s)) + 1, n))
                for ci, s, n in zip(c, sp, image.shape))
    a = image.array[roi]
    m = lungs.mask[roi]
    p = tuple(int(ci - r.start) for ci, r in zip(c, roi))
    # light in-plane smoothing against the noise of sharp kernels (~0.6 mm)
    s_ = ndi.gaussian_filter(np.where(m, a, bg), sigma=(0, 0.6 / sp[1], 0.6 / sp[2]), mode="nearest")
    gz, gy, gx = np.ogrid[:a.shape[0], :a.shape[1], :a.shape[2]]
    d2 = ((gz - p[0]) * sp[0]) ** 2 + ((gy - p[1]) * sp[1]) ** 2 + ((gx - p[2]) * sp[2]) ** 2
    core = float(np.percentile(s_[d2 <= max(1.2, 0.4 * r_est) ** 2], 75))
    t_g = bg + 0.5 * (R["ggo_ref_hu"] - bg)
    t_half = bg + 0.5 * (min(core, 150.0) - bg)
    def grow(t: float) -> np.ndarray | None:
        reg = component_at((s_ > t) & m, p, max(2.0, r_est), sp)
        if reg is None:
            return None
        op, _ = open_at(reg, p, max(2.0, r_est), sp)
        kept = component_at(op, p, max(2.0, 0.5 * r_est), sp) if op.any() else None
        return kept if kept is not None else reg

    reg_g = grow(min(t_g, t_half))
    if reg_g is None:
        return None
    zz, yy, xx = np.nonzero(reg_g)
    leaks = ((zz.min() == 0 and roi[0].start > 0) or (zz.max() == reg_g.shape[0] - 1 and roi[0].stop < image.shape[0])
             or yy.min() == 0 or yy.max() == reg_g.shape[1] - 1 or xx.min() == 0 or xx.max() == reg_g.shape[2] - 1)
    if leaks and zz.size > 1:
        pts = np.stack([zz * sp[0], yy * sp[1], xx * sp[2]], 1)
        ev = np.linalg.eigvalsh(np.cov(pts.T) + np.diag([s * s / 12.0 for s in sp]))
        elong = float(math.sqrt(ev[-1] / max(ev[1], 1e-6)))
        if elong > R["max_elongation"]:  # a vessel tree: no need to measure it
            return {"region": "ok", "leaks_roi": 1, "elongation": elong, "core_hu": core,
                    "n_voxels": int(zz.size), "roi_half_mm": float(half)}
    vals_g = s_[reg_g]
    solid_n = int((vals_g > R["solid_hu"]).sum())
    solid_frac = solid_n / max(vals_g.size, 1)
    p90 = float(np.percentile(a[reg_g], 90))
    reg = None
    if p90 > R["calcified_hu"] and core > R["calcified_hu"] * 0.75:
        density = "calcified"
        reg = grow(t_half) if t_half > t_g else reg_g
    elif solid_frac >= R["solid_fraction"]:
        density = "solid"
        reg = grow(t_half) if t_half > t_g else reg_g
    elif solid_n * float(np.prod(sp)) >= (4 / 3) * math.pi * 1.5 ** 3:  # a solid core >= 3 mm
        density = "part_solid"
    else:
        density = "ground_glass"
    if reg is None:
        reg = reg_g
    n = int(reg.sum())
    vals = a[reg]
    zz, yy, xx = np.nonzero(reg)
    z_best = int(np.bincount(zz).argmax())
    long_ax, short_ax = axes_mm(reg[z_best], sp[1], sp[2])
    pts = np.stack([zz * sp[0], yy * sp[1], xx * sp[2]], 1)
    # shape from an HU-weighted covariance: partial-volume voxels (the caps of a small nodule on
    # thick slices) count by their fill fraction, so thick slices do not stretch a sphere in z
    w = np.clip((s_[reg] - bg) / max(max(core, -500.0) - bg, 1.0), 0.05, 1.0)
    cov = (np.cov(pts.T, aweights=w) if n > 1 else np.zeros((3, 3))) + np.diag([0.0, sp[1] ** 2 / 12, sp[2] ** 2 / 12])
    ev = np.linalg.eigvalsh(cov)
    leaks = ((zz.min() == 0 and roi[0].start > 0) or (zz.max() == reg.shape[0] - 1 and roi[0].stop < image.shape[0])
             or yy.min() == 0 or yy.max() == reg.shape[1] - 1 or xx.min() == 0 or xx.max() == reg.shape[2] - 1)
    centre = np.array([zz.mean(), yy.mean(), xx.mean()])
    vol = n * float(np.prod(sp))
    # what surrounds the region: a nodule sits in aerated lung; a hilar vessel among soft tissue
    shell = (ndi.distance_transform_edt(~reg, sampling=sp) <= R["shell_mm"]) & ~reg
    shell_vals = s_[shell]
    shell_out = ~m[shell]
    surround_dense = float(np.mean((shell_vals > R["solid_hu"]) | shell_out)) if shell_vals.size else 0.0
    surround_outside = float(np.mean(shell_out)) if shell_vals.size else 0.0
    return {
        "region": "ok", "density": density, "n_voxels": n, "volume_mm3": vol,
        "long_axis_mm": long_ax, "short_axis_mm": short_ax, "mean_diameter_mm": 0.5 * (long_ax + short_ax),
        "n_slices": int(zz.max() - zz.min() + 1), "z_extent_mm": float((zz.max() - zz.min() + 1) * sp[0]),
        # largest over middle principal axis: a tube is long in one direction only, while a small
        # sphere on thick slices looks flattened (small z variance) but is not elongated
        "elongation": float(math.sqrt(ev[-1] / max(ev[1], 1e-6))),
        "flatness": float(math.sqrt(ev[1] / max(ev[0], 1e-6))),
        "sphericity": float(((6 * vol / math.pi) ** (1 / 3)) / max(long_ax, (zz.max() - zz.min() + 1) * sp[0])),
        "core_hu": core, "lung_background_hu": float(bg), "mean_hu": float(vals.mean()), "std_hu": float(vals.std()), "p90_hu": p90,
        "solid_fraction": float(solid_frac), "leaks_roi": int(bool(leaks)), "roi_half_mm": float(half),
        "surround_dense_fraction": surround_dense, "surround_outside_lung_fraction": surround_outside,
        "_r_eq": float((3 * vol / (4 * math.pi)) ** (1 / 3)), "_roi": roi, "_region": reg, "_mask_roi": m,
        "_centre": [float(v + r.start) for v, r in zip(centre, roi)],
    }
