"""Lung masses (30-70 mm) of the phantom (:mod:`radscribe.data.phantom`): placement, rendering and truth.

A mass is solid soft tissue (+20..+60 HU), lobulated (a union of a main sphere and 2-4 smaller lobes)
or spiculated (a main sphere with one or two small lobes and 10-16 thin spicules of 1-1.6 mm
diameter), placed at one of three sites of one lung:

* ``pleura``: against the costal pleura (lateral, antero- or postero-lateral chest wall);
* ``mediastinum``: against the medial lung surface above or below the hilum (heart, mediastinum);
* ``hilum``: against the medial lung surface at the level of the hilum.

The centre lies inside the lung, 0.45-0.8 of the mass radius from the lung surface, and the mass is
rendered only inside that lung: beyond the pleura it meets the chest wall or mediastinum at the same
density, as on a real scan (there is no visible border between them). All randomness comes from
:func:`mass_rng` (a generator separate from the nodules'), so adding masses leaves a seed's nodules,
vessels and noise as they were.

Truth (measured on the rendered mass body, spicules excluded, voxels at least half filled): centre
(voxel z,y,x and LPS mm x,y,z), axial long axis and perpendicular short axis in the slice of largest
area (mm, as Fleischner measures), craniocaudal extent (slices x spacing, mm), volume (mm^3), zone,
and what it abuts (``pleura`` / ``mediastinum`` / ``hilum``, from the outward normal of the analytic
lung surface where the mass touches it; ``hilum`` = a mediastinal contact mostly within the middle
third of the lung's cranio-caudal extent and the central half of its antero-posterior extent).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from radscribe.data.phantom_anatomy import Grid, heart_fn, in_lung, lung_fn, lung_params, zone_of
from radscribe.errors import RadscribeInputError
from radscribe.findings.measure import feret_of_points

SITES = ("pleura", "mediastinum", "hilum")
MARGINS = ("lobulated", "spiculated")
MASS_HU = (20.0, 60.0)
#: Fraction of all contact voxels a structure needs to count as abutted.
ABUT_MIN_FRACTION = 0.1


def mass_rng(seed: int) -> np.random.Generator:
    """The masses' own random generator for a phantom seed (independent of the nodules')."""
    return np.random.default_rng([int(seed), 0x6D617373])


def hilar_box(side: str, top_z: float, bottom_z: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """(z range, y range) mm of the hilar region of a lung: middle third in z, central half in y."""
    p = lung_params(side)
    third = (top_z - bottom_z) / 3.0
    return (bottom_z + third, top_z - third), (p["cy"] - p["ay"] / 2, p["cy"] + p["ay"] / 2)


def _surface_point(side: str, start: np.ndarray, direction: np.ndarray, step: float = 0.5) -> np.ndarray | None:
    """First point along the ray from ``start`` (inside the lung) that leaves the lung (x, y, z mm)."""
    d = direction / np.linalg.norm(direction)
    if not in_lung(side, start[None])[0]:
        return None
    for t in np.arange(step, 250.0, step):
        if not in_lung(side, (start + t * d)[None])[0]:
            return start + (t - step / 2) * d
    return None


def _lung_normal(side: str, pt: np.ndarray) -> np.ndarray:
    """Outward unit normal of the analytic lung surface near ``pt`` (gradient of the implicit function)."""
    p = lung_params(side)
    e = 0.5
    g = np.array([(lung_fn(p, pt[2], pt[1], pt[0] + e) - lung_fn(p, pt[2], pt[1], pt[0] - e)),
                  (lung_fn(p, pt[2], pt[1] + e, pt[0]) - lung_fn(p, pt[2], pt[1] - e, pt[0])),
                  (lung_fn(p, pt[2] + e, pt[1], pt[0]) - lung_fn(p, pt[2] - e, pt[1], pt[0]))], float)
    return g / max(float(np.linalg.norm(g)), 1e-9)


def _shape(rng: np.random.Generator, centre: np.ndarray, diam: float, margin: str, inward: np.ndarray):
    """Spheres (centre, radius) of the mass body and spicule segments (a, b, radius), x y z mm."""
    r = diam / 2.0
    if margin == "lobulated":
        r0 = r * rng.uniform(0.72, 0.8)
        n_lobes = int(rng.integers(2, 5))
    else:
        r0 = r * rng.uniform(0.85, 0.92)
        n_lobes = int(rng.integers(1, 3))
    spheres = [(centre, r0)]
    for _ in range(n_lobes):
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        if u @ inward < -0.2:  # lobes grow into the lung, not into the wall
            u = u - 2 * (u @ inward) * inward
        rl = r0 * rng.uniform(0.45, 0.6)
        spheres.append((centre + u * (r - rl), rl))
    spicules = []
    if margin == "spiculated":
        for _ in range(int(rng.integers(10, 17))):
            u = rng.normal(size=3)
            u /= np.linalg.norm(u)
            a = centre + u * (r0 - 1.0)
            spicules.append((a, a + u * rng.uniform(5.0, 12.0), float(rng.uniform(0.5, 0.8))))
    return spheres, spicules


def plan_masses(rng: np.random.Generator, specs: list[dict[str, Any]], avoid: list[tuple[np.ndarray, float]],
                extents: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """Place one mass per spec (keys ``diameter_mm``, ``site``, ``side``, ``margin``; any may be absent).

    ``avoid`` lists (centre x y z mm, radius mm) of objects a mass must keep 5 mm away from (the
    nodules). Returns plans with the shape (spheres, spicules) and the intended site.
    """
    plans: list[dict[str, Any]] = []
    for k, spec in enumerate(specs):
        diam = float(spec.get("diameter_mm", rng.uniform(30.0, 70.0)))
        site = str(spec.get("site", SITES[k % 3]))
        side = str(spec.get("side", rng.choice(["right", "left"])))
        margin = str(spec.get("margin", rng.choice(MARGINS)))
        if site not in SITES or margin not in MARGINS or side not in ("left", "right") or not 10.0 <= diam <= 90.0:
            raise RadscribeInputError(f"mass spec {spec!r}: site one of {SITES}, margin one of {MARGINS}, "
                                      "side left/right, diameter_mm 10-90")
        p = lung_params(side)
        s = 1.0 if side == "left" else -1.0
        for _try in range(600):
            if _try and _try % 100 == 0 and "diameter_mm" not in spec:
                diam = max(30.0, 0.9 * diam)  # a random mass that does not fit: try it smaller
            if site == "pleura":
                u = np.array([s * rng.uniform(0.6, 1.0), rng.uniform(-0.8, 0.8), rng.uniform(-0.5, 0.5)])
                start = np.array([p["cx"], p["cy"], p["cz"] + rng.uniform(-30.0, 40.0)])
            elif site == "mediastinum":
                z = rng.uniform(-105.0, -70.0) if rng.random() < 0.5 else rng.uniform(45.0, 70.0)
                u = np.array([-s, rng.uniform(-0.15, 0.15), 0.0])
                start = np.array([p["cx"], p["cy"] + rng.uniform(-25.0, 20.0), z])
            else:
                u = np.array([-s, rng.uniform(-0.1, 0.1), 0.0])
                start = np.array([p["cx"], rng.uniform(-10.0, 25.0), rng.uniform(-20.0, 10.0)])
            surf = _surface_point(side, start, u)
            if surf is None:
                continue
            inward = -_lung_normal(side, surf) if site == "pleura" else -u / np.linalg.norm(u)
            c = surf + inward * (diam / 2) * rng.uniform(0.45, 0.8)
            if not in_lung(side, c[None])[0]:
                continue
            if any(np.linalg.norm(c - a) < diam / 2 + ra + 5.0 for a, ra in avoid):
                continue
            # most of the mass must lie inside this lung (a mass mostly hidden in the wall is not one)
            pts = c + _ball_samples(rng, 400) * (diam / 2)
            if in_lung(side, pts).mean() < 0.6:
                continue
            break
        else:
            raise RadscribeInputError(f"could not place a {diam:.0f} mm {site} mass in the {side} lung")
        spheres, spicules = _shape(rng, c, diam, margin, inward)
        hu = float(rng.uniform(*MASS_HU))
        plans.append({"site": site, "side": side, "margin": margin, "diameter_mm": diam, "hu": hu,
                      "spheres": spheres, "spicules": spicules})
        avoid = avoid + [(c, diam / 2)]
    return plans


def _ball_samples(rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u * rng.uniform(0, 1, size=(n, 1)) ** (1 / 3)


def render_mass(vol: np.ndarray, g: Grid, plan: dict[str, Any], where: np.ndarray,
                edge: float = 0.7) -> tuple[tuple[slice, ...], np.ndarray]:
    """Composite the mass body (by max, inside ``where``) and return (box, body fill fraction in the box).

    Like :func:`radscribe.data.phantom_anatomy.render_sphere`, the fill is averaged over 5 positions
    across the slice thickness. Spicules are drawn after the body and are not part of the returned fill.
    """
    from radscribe.data.phantom_anatomy import render_tube

    lo = np.min([c - r for c, r in plan["spheres"]], axis=0) - edge - g.spacing[0]
    hi = np.max([c + r for c, r in plan["spheres"]], axis=0) + edge + g.spacing[0]
    box = g.box(lo, hi)
    zz, yy, xx = g.mesh(box)
    frac = np.zeros(tuple(s.stop - s.start for s in box), np.float32)
    offsets = np.linspace(-0.4, 0.4, 5) * g.spacing[0]
    for o in offsets:
        d = np.full(frac.shape, np.inf, np.float32)
        for c, r in plan["spheres"]:
            d = np.minimum(d, np.sqrt((xx - c[0]) ** 2 + (yy - c[1]) ** 2 + (zz + o - c[2]) ** 2) - r)
        frac += np.clip(-d / edge + 0.5, 0.0, 1.0)
    frac /= len(offsets)
    frac *= where[box]
    sub = vol[box]
    new = sub + frac * (plan["hu"] - sub)
    upd = new > sub
    sub[upd] = new[upd]
    for a, b, r in plan["spicules"]:
        render_tube(vol, g, a, b, r, plan["hu"], where=where)
    return box, frac


def feret_axes(region2d: np.ndarray, sy: float, sx: float) -> tuple[float, float]:
    """Largest diameter and the extent perpendicular to it (mm) of a 2D region, from its convex hull.

    Pixel centres are used and one pixel (sqrt(sy sx)) is added to each, as for a measured extent.
    """
    pts = np.argwhere(region2d).astype(float) * [sy, sx]
    pix = math.sqrt(sy * sx)
    if len(pts) < 3:
        return pix, pix
    long_, short = feret_of_points(pts)
    return long_ + pix, short + pix


def mass_truth(plan: dict[str, Any], box: tuple[slice, ...], frac: np.ndarray, g: Grid,
               extents: dict[str, tuple[float, float]], lung: np.ndarray, mass_id: int) -> dict[str, Any]:
    """Truth record of a rendered mass (see the module docstring); ``lung`` is both lungs (bool, z y x)."""
    from scipy import ndimage as ndi

    sz, sy, sx = g.spacing
    body = frac >= 0.5
    zz, yy, xx = np.nonzero(body)
    areas = np.bincount(zz, minlength=body.shape[0])
    z_best = int(areas.argmax())
    long_ax, short_ax = feret_axes(body[z_best], sy, sx)
    cv = np.array([zz.mean() + box[0].start, yy.mean() + box[1].start, xx.mean() + box[2].start])
    cp = np.array([g.origin[0] + cv[2] * sx, g.origin[1] + cv[1] * sy, g.origin[2] + cv[0] * sz])
    # contact: non-lung voxels within ~3 mm of the body
    it = max(1, int(round(3.0 / sy)))
    near = ndi.binary_dilation(body, structure=np.ones((1, 3, 3), bool), iterations=it)
    near |= ndi.binary_dilation(body, structure=np.ones((3, 1, 1), bool))
    contact = near & ~lung[box] & ~body
    cz, cy, cx = np.nonzero(contact)
    pts = np.stack([g.x[box[2]][cx], g.y[box[1]][cy], g.z[box[0]][cz]], 1)
    side = plan["side"]
    s = 1.0 if side == "left" else -1.0
    top_z, bot_z = extents[side]
    abuts: list[str] = []
    if len(pts):
        med = heart_fn(pts[:, 2], pts[:, 1], pts[:, 0], grow=10.0) <= 1.0
        normals = np.array([_lung_normal(side, q) for q in pts[:: max(1, len(pts) // 600)]])
        sub_med = -s * normals[:, 0] > 0.5
        med_s = med[:: max(1, len(pts) // 600)] | sub_med
        frac_med = float(med_s.mean())
        if 1.0 - frac_med >= ABUT_MIN_FRACTION:
            abuts.append("pleura")
        if frac_med >= ABUT_MIN_FRACTION:
            abuts.append("mediastinum")
            (z0, z1), (y0, y1) = hilar_box(side, top_z, bot_z)
            q = pts[:: max(1, len(pts) // 600)][med_s]
            in_hilum = (q[:, 2] >= z0) & (q[:, 2] <= z1) & (q[:, 1] >= y0) & (q[:, 1] <= y1)
            if in_hilum.mean() >= 0.5:
                abuts.append("hilum")
    vox = sz * sy * sx
    return {"id": mass_id, "site": plan["site"], "side": side, "margin": plan["margin"], "density": "solid",
            "hu": round(plan["hu"], 1), "nominal_diameter_mm": round(plan["diameter_mm"], 3),
            "center_voxel": [round(float(v), 3) for v in cv], "center_patient": [round(float(v), 3) for v in cp],
            "long_axis_mm": round(long_ax, 2), "short_axis_mm": round(short_ax, 2),
            "craniocaudal_mm": round(float((zz.max() - zz.min() + 1) * sz), 2),
            "volume_mm3": round(float(frac.sum()) * vox, 1), "zone": zone_of(float(cp[2]), top_z, bot_z),
            "abuts": abuts, "n_spicules": len(plan["spicules"]), "n_lobes": len(plan["spheres"]) - 1}
