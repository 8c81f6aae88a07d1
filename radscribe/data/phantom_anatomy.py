"""Analytic chest anatomy of the phantom (:mod:`radscribe.data.phantom`): shapes and renderers.

All coordinates are patient LPS mm (x, y, z); volumes are indexed (z, y, x). A "box" is the voxel slice
range an object can touch, so each renderer touches only the voxels near its object.
"""

from __future__ import annotations

import math

import numpy as np

LUNG_P = 2.4  # superquadric exponent of the lung shape (2 = ellipsoid; larger = fuller)


class Grid:
    def __init__(self, shape, spacing, origin):
        self.shape = tuple(int(s) for s in shape)
        self.spacing = tuple(float(s) for s in spacing)  # z, y, x
        self.origin = tuple(float(o) for o in origin)    # x, y, z
        nz, ny, nx = self.shape
        sz, sy, sx = self.spacing
        self.z = self.origin[2] + sz * np.arange(nz)
        self.y = self.origin[1] + sy * np.arange(ny)
        self.x = self.origin[0] + sx * np.arange(nx)

    def box(self, lo_xyz, hi_xyz):
        """Voxel slices (z, y, x) covering the patient-space box [lo, hi] (mm, x y z)."""
        sl = []
        for coords, lo, hi in ((self.z, lo_xyz[2], hi_xyz[2]), (self.y, lo_xyz[1], hi_xyz[1]),
                               (self.x, lo_xyz[0], hi_xyz[0])):
            i0 = int(np.searchsorted(coords, lo, side="left"))
            i1 = int(np.searchsorted(coords, hi, side="right"))
            sl.append(slice(max(i0, 0), min(i1, len(coords))))
        return tuple(sl)

    def mesh(self, box):
        """Open mesh (z, y, x) of patient coordinates for a voxel box."""
        return (self.z[box[0]][:, None, None], self.y[box[1]][None, :, None], self.x[box[2]][None, None, :])


def lung_params(side: str) -> dict[str, float]:
    s = 1.0 if side == "left" else -1.0  # LPS: +x is the patient's left
    return {"cx": 80.0 * s, "cy": 5.0, "cz": -20.0, "ax": 60.0, "ay": 85.0, "az_up": 115.0, "az_dn": 100.0}


def lung_fn(p, z, y, x):
    """Superquadric implicit function: < 1 inside the lung shape (before the heart is removed)."""
    az = np.where(z >= p["cz"], p["az_up"], p["az_dn"])
    return (np.abs((x - p["cx"]) / p["ax"]) ** LUNG_P + np.abs((y - p["cy"]) / p["ay"]) ** LUNG_P
            + np.abs((z - p["cz"]) / az) ** LUNG_P)


HEART = {"cx": 25.0, "cy": -25.0, "cz": -75.0, "ax": 62.0, "ay": 52.0, "az": 58.0}


def heart_fn(z, y, x, grow=0.0):
    h = HEART
    return (((x - h["cx"]) / (h["ax"] + grow)) ** 2 + ((y - h["cy"]) / (h["ay"] + grow)) ** 2
            + ((z - h["cz"]) / (h["az"] + grow)) ** 2)


def in_lung(side, pts):
    """Boolean per point (N, 3 as x, y, z mm): inside that lung and outside the heart (+6 mm)."""
    p = lung_params(side)
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    return (lung_fn(p, z, y, x) < 1.0) & (heart_fn(z, y, x, grow=6.0) > 1.0)


def render_tube(vol, grid, a, b, radius, value, where=None, edge=0.7, cap=True):
    """Max-composite a capped tube from a to b (x, y, z mm) of ``radius`` mm and HU ``value``.

    ``where`` (same shape as vol, bool) restricts the voxels written. The edge is a linear ramp of
    width ``edge`` mm (partial volume).
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    pad = radius + edge
    box = grid.box(np.minimum(a, b) - pad, np.maximum(a, b) + pad)
    if any(s.stop <= s.start for s in box):
        return
    zz, yy, xx = grid.mesh(box)
    d = b - a
    L2 = float(d @ d) or 1e-9
    t = ((xx - a[0]) * d[0] + (yy - a[1]) * d[1] + (zz - a[2]) * d[2]) / L2
    if cap:
        t = np.clip(t, 0.0, 1.0)
    dist2 = (xx - a[0] - t * d[0]) ** 2 + (yy - a[1] - t * d[1]) ** 2 + (zz - a[2] - t * d[2]) ** 2
    if not cap:
        dist2 = np.where((t < 0) | (t > 1), np.inf, dist2)
    frac = np.clip((radius - np.sqrt(dist2)) / edge + 0.5, 0.0, 1.0)
    sub = vol[box]
    base = sub
    new = base + frac * (value - base)
    upd = new > sub if value > -500 else new < sub
    if where is not None:
        upd &= where[box]
    sub[upd] = new[upd]


def render_sphere(vol, grid, c, radius, value, edge=0.7):
    """Composite a sphere (centre c x,y,z mm, radius mm, HU value) by max.

    The fill fraction is averaged over 5 positions across the slice thickness (a box slice
    sensitivity profile of width spacing_z), so a small nodule shows partial volume on the
    neighbouring slices as it does on a real scan.
    """
    c = np.asarray(c, float)
    sz = grid.spacing[0]
    pad = radius + edge + sz
    box = grid.box(c - pad, c + pad)
    if any(s.stop <= s.start for s in box):
        return
    zz, yy, xx = grid.mesh(box)
    rxy2 = (xx - c[0]) ** 2 + (yy - c[1]) ** 2
    frac = np.zeros(np.broadcast_shapes(zz.shape, rxy2.shape), np.float32)
    offsets = np.linspace(-0.4, 0.4, 5) * sz
    for o in offsets:
        d = np.sqrt(rxy2 + (zz + o - c[2]) ** 2)
        frac += np.clip((radius - d) / edge + 0.5, 0.0, 1.0)
    frac /= len(offsets)
    sub = vol[box]
    new = sub + frac * (value - sub)
    upd = new > sub
    sub[upd] = new[upd]


def rot_perturb(rng, d, angle_deg):
    """Unit vector at ``angle_deg`` from unit vector d, random azimuth."""
    d = d / np.linalg.norm(d)
    helper = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(d, helper)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    phi = rng.uniform(0, 2 * math.pi)
    a = math.radians(angle_deg)
    out = math.cos(a) * d + math.sin(a) * (math.cos(phi) * u + math.sin(phi) * v)
    return out / np.linalg.norm(out)


def vessel_tree(rng, side: str) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Segments (a, b, radius mm) of one lung's vessel tree, grown from the hilum outwards."""
    s = 1.0 if side == "left" else -1.0
    hilum = np.array([16.0 * s, 5.0, -5.0])  # in the mediastinum: the tree enters the lung
    roots = [np.array([0.5 * s, -0.2, 0.85]), np.array([0.4 * s, 0.6, 0.7]), np.array([0.9 * s, 0.2, 0.1]),
             np.array([0.7 * s, -0.7, 0.1]), np.array([0.5 * s, 0.5, -0.7]), np.array([0.5 * s, -0.6, -0.5])]
    segs: list[tuple[np.ndarray, np.ndarray, float]] = []
    stack = [(hilum, r / np.linalg.norm(r), 4.0, 30.0) for r in roots]
    while stack:
        a, d, rad, length = stack.pop()
        b = a + d * length
        inside = in_lung(side, np.stack([b, (a + b) / 2]))
        if not (inside[0] or inside[1]):
            continue
        segs.append((a, b, rad))
        if not inside[0] or rad < 0.55:
            continue
        for k in range(3 if rng.random() < 0.3 else 2):
            nd = rot_perturb(rng, d, rng.uniform(20, 45))
            # keep branches heading outwards from the hilum (away from the mediastinum)
            if nd[0] * s < -0.2:
                nd[0] = -nd[0]
            stack.append((b, nd, rad * rng.uniform(0.68, 0.8), max(9.0, length * rng.uniform(0.75, 0.9))))
    return segs


def zone_of(z: float, top: float, bottom: float) -> str:
    third = (top - bottom) / 3.0
    return "upper" if z >= top - third else ("lower" if z < bottom + third else "middle")
