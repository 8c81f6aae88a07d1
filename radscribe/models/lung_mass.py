"""Lung masses (lesions > 30 mm) on chest CT, found and measured without learning.

A mass is solid tissue inside the (lesion-repaired, :func:`radscribe.preprocess.lung.lesion_fill`) lung
mask that holds a ball of :data:`MASS_RULES` ``core_radius_mm``: vessels inside the lung are thinner
(their radius stays under ~7 mm at the hilum), nodules are smaller. Each such core is grown at full
resolution into the solid tissue around it, cut free of attached vessels and spicules by an opening
with a ball of about a third of the core's own radius (lobes survive, thin structures do not), and
measured: axial long axis and perpendicular short axis in the slice of largest area (mm, as Fleischner
and Lung-RADS measure), craniocaudal extent (slices x spacing), volume, density, side, zone, and what
it abuts. A region with a long axis > :data:`MASS_RULES` ``min_long_axis_mm`` is a mass; a smaller one
is left to the nodule detector - unless it is 20-30 mm and abuts the pleura or mediastinum: the
nodule rules reject such a lesion as embedded in the wall, so it is reported here, as a nodule
(``kind="nodule"`` with density, size band, zone and abuts), and nothing that large is lost.

What it abuts comes from the non-lung voxels within ~3 mm of the mass (its contact): a contact voxel
lies against the mediastinum when, in its image row, it sits between the two lungs; otherwise against
the (costal or diaphragmatic) pleura. ``hilum`` is a mediastinal contact mostly inside the hilar
region of that lung: the middle third of its cranio-caudal extent and the central half of its
antero-posterior extent. That is a geometric proxy (the hila are not segmented), the same definition
the phantom's truth uses.

Margin (smooth / lobulated / spiculated) is not reported: it is not measured here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from radscribe.findings.model import Finding
from radscribe.io.image import Image
from radscribe.knowledge.descriptors import size_band
from radscribe.models.nodule_measure import axes_mm
from radscribe.preprocess.lung import AIR_HU, LungSegmentation

DETECTOR = "lung-nodule-classic"
MASS_RULES: dict[str, float] = {
    "grid_mm": 2.8,             # in-plane pixel of the grid the cores are searched on
    "core_radius_mm": 8.0,      # a mass holds a ball of this radius (solid tissue, inside the lung mask)
    "solid_hu": -300.0,         # solid tissue after a light in-plane smoothing (region threshold: AIR_HU)
    "cut_fraction": 0.33,       # opening ball = this x the core's inscribed radius ...
    "cut_min_mm": 4.5,          # ... at least this (hilar vessels have radii up to ~4 mm on the phantom) ...
    "cut_max_mm": 6.0,          # ... at most this
    "margin_mm": 30.0,          # the region grows at most this far beyond its core's box
    "min_long_axis_mm": 30.0,   # larger is a mass; smaller is a nodule
    "min_wall_nodule_mm": 20.0,  # a nodule this large against the wall is reported here
    "max_elongation": 2.5,      # sqrt(largest / middle PCA variance): longer is a vessel confluence
    "contact_mm": 3.0,          # contact: non-lung voxels within this distance (in-plane) of the mass
    "abut_min_fraction": 0.1,   # share of the contact that makes a structure abutted
    "min_contact_voxels": 30,   # fewer contact voxels: the mass abuts nothing
    "hilum_min_fraction": 0.5,  # share of the mediastinal contact inside the hilar region
}


@dataclass(frozen=True)
class MassResult:
    """Masses (and large nodules against the wall) as findings, their masks (bool z y x, same order)
    and every core examined."""

    findings: tuple[Finding, ...]
    masks: tuple[np.ndarray, ...]
    candidates: list[dict[str, Any]]


def _side_extents(image: Image, lungs: LungSegmentation) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per side: patient z (mm) of the slices holding that lung, patient y (mm) of its rows."""
    out = {}
    for side, m in (("left", lungs.left), ("right", lungs.right)):
        zi = np.nonzero(m.any(axis=(1, 2)))[0]
        yi = np.nonzero(m.any(axis=(0, 2)))[0]
        if zi.size:
            pz = image.voxel_to_patient(np.stack([zi, np.zeros_like(zi), np.zeros_like(zi)], 1).astype(float))[:, 2]
            py = image.voxel_to_patient(np.stack([np.zeros_like(yi), yi, np.zeros_like(yi)], 1).astype(float))[:, 1]
            out[side] = (pz, py)
    return out


def abutment(image: Image, lungs: LungSegmentation, region: np.ndarray, roi: tuple[slice, ...], side: str,
             extents: dict, R: dict[str, float]) -> tuple[list[str], dict[str, float]]:
    """What the region (bool, in ``roi``) abuts: a subset of pleura / mediastinum / hilum, and the counts."""
    sp = image.spacing
    it = max(1, int(round(R["contact_mm"] / sp[1])))
    near = ndi.binary_dilation(region, structure=np.ones((1, 3, 3), bool), iterations=it)
    near |= ndi.binary_dilation(region, structure=np.ones((3, 1, 1), bool))
    contact = near & ~lungs.mask[roi] & ~region & (image.array[roi] > AIR_HU)
    cz, cy, cx = np.nonzero(contact)
    info = {"contact_voxels": float(cz.size), "contact_mediastinal_fraction": 0.0, "contact_hilar_fraction": 0.0}
    if cz.size < R["min_contact_voxels"]:
        return [], info
    x0 = roi[2].start

    def row_span(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per (slice, row) of the roi, over the whole image row: any, first and last column (roi-relative)."""
        full = m[roi[0], roi[1], :]
        anyr = full.any(axis=2)
        first = np.where(anyr, np.argmax(full, axis=2) - x0, 10 ** 6)
        last = np.where(anyr, full.shape[2] - 1 - np.argmax(full[:, :, ::-1], axis=2) - x0, -10 ** 6)
        return anyr, first, last

    anyw, wf, wl = row_span(lungs.left if side == "left" else lungs.right)
    _, tf, tl = row_span(lungs.right if side == "left" else lungs.left)
    f_own, l_own, f_oth, l_oth = wf[cz, cy], wl[cz, cy], tf[cz, cy], tl[cz, cy]
    # between the lungs: past this lung's last column towards the other lung's first (or mirrored);
    # a contact voxel with this lung on both sides of it in its row is not between them
    other_after = f_oth > l_own  # the other lung lies at higher columns than this one
    med = anyw[cz, cy] & (l_oth > -10 ** 6) & np.where(other_after, (cx > l_own) & (cx < f_oth),
                                                        (cx < f_own) & (cx > l_oth))
    frac_med = float(med.mean())
    info["contact_mediastinal_fraction"] = frac_med
    abuts = []
    if 1.0 - frac_med >= R["abut_min_fraction"]:
        abuts.append("pleura")
    if frac_med >= R["abut_min_fraction"]:
        abuts.append("mediastinum")
        if side in extents:
            pz, py = extents[side]
            top, bot = float(pz.max()), float(pz.min())
            ylo, yhi = float(py.min()), float(py.max())
            third, q = (top - bot) / 3.0, (yhi - ylo) / 4.0
            zyx = np.stack([cz[med] + roi[0].start, cy[med] + roi[1].start, cx[med] + roi[2].start], 1).astype(float)
            p = image.voxel_to_patient(zyx)
            inside = (p[:, 2] >= bot + third) & (p[:, 2] <= top - third) & (p[:, 1] >= ylo + q) & (p[:, 1] <= yhi - q)
            info["contact_hilar_fraction"] = float(inside.mean())
            if inside.mean() >= R["hilum_min_fraction"]:
                abuts.append("hilum")
    return abuts, info


def _opening(reg: np.ndarray, radius: float, sp) -> np.ndarray:
    core = ndi.distance_transform_edt(reg, sampling=sp) > radius
    if not core.any():
        return core
    return (ndi.distance_transform_edt(~core, sampling=sp) <= radius) & reg


def detect_masses(image: Image, lungs: LungSegmentation, rules: dict[str, float] | None = None) -> MassResult:
    """Masses inside ``lungs.mask`` of CT ``image`` (HU, z y x); see the module docstring."""
    R = dict(MASS_RULES, **(rules or {}))
    if not lungs.mask.any():
        return MassResult((), (), [])
    arr = image.array
    sp = tuple(float(s) for s in image.spacing)
    box = ndi.find_objects(lungs.mask.astype(np.uint8))[0]
    g = max(1, int(round(R["grid_mm"] / sp[1])))
    gz = max(1, int(round(2.5 / sp[0])))
    sub = (slice(box[0].start, box[0].stop, gz), slice(box[1].start, box[1].stop, g), slice(box[2].start, box[2].stop, g))
    spc = (sp[0] * gz, sp[1] * g, sp[2] * g)
    solid = (arr[sub] > R["solid_hu"]) & lungs.mask[sub]
    if not solid.any():
        return MassResult((), (), [])
    dist = ndi.distance_transform_edt(solid, sampling=spc)
    cores, n = ndi.label(dist > R["core_radius_mm"])
    extents = _side_extents(image, lungs)
    findings, masks, candidates = [], [], []
    taken = np.zeros(arr.shape, bool)
    for i, cb in enumerate(ndi.find_objects(cores), start=1):
        thick_c = float(dist[cb][cores[cb] == i].max())
        # the core's box on the full grid, grown by the margin
        lo = [box[a].start + cb[a].start * (gz if a == 0 else g) for a in range(3)]
        hi = [box[a].start + (cb[a].stop - 1) * (gz if a == 0 else g) + 1 for a in range(3)]
        zc = [int((l + h) / 2) for l, h in zip(lo, hi)]
        feat: dict[str, Any] = {"center_voxel": [float(v) for v in zc], "core_radius_mm": thick_c}
        cand = {"features": feat, "kept": False, "reason": ""}
        candidates.append(cand)
        if taken[tuple(zc)]:
            cand["reason"] = "inside a mass already found"
            continue
        roi = tuple(slice(max(l - int(math.ceil(R["margin_mm"] / s)), 0), min(h + int(math.ceil(R["margin_mm"] / s)), N))
                    for l, h, s, N in zip(lo, hi, sp, arr.shape))
        a = arr[roi]
        m = lungs.mask[roi]
        s_ = ndi.gaussian_filter(np.where(m, a, -850.0), sigma=(0, 0.6 / sp[1], 0.6 / sp[2]), mode="nearest")
        reg = (s_ > AIR_HU) & m
        cut = min(max(R["cut_fraction"] * thick_c, R["cut_min_mm"]), R["cut_max_mm"])
        op = _opening(reg, cut, sp)
        lab, _ = ndi.label(op)
        seed = np.zeros(op.shape, bool)
        cz, cy, cx = np.nonzero(cores[cb] == i)
        seed[tuple(np.clip(np.array([box[0].start + (cb[0].start + cz) * gz, box[1].start + (cb[1].start + cy) * g,
                                     box[2].start + (cb[2].start + cx) * g]).T - [r.start for r in roi], 0,
                           np.array(op.shape) - 1).T)] = True
        ids = np.unique(lab[seed & (lab > 0)])
        if ids.size == 0:
            cand["reason"] = "no region grows from the core"
            continue
        region = np.isin(lab, ids)
        region = ndi.binary_dilation(region, structure=np.ones((1, 3, 3), bool)) & reg  # the rim the opening shaves
        zz, yy, xx = np.nonzero(region)
        z_best = int(np.bincount(zz).argmax())
        long_ax, short_ax = axes_mm(region[z_best], sp[1], sp[2])
        pts = np.stack([zz * sp[0], yy * sp[1], xx * sp[2]], 1)
        ev = np.linalg.eigvalsh(np.cov(pts[:: max(1, len(pts) // 20000)].T))
        elong = float(math.sqrt(ev[-1] / max(ev[1], 1e-6)))
        vol = float(zz.size) * float(np.prod(sp))
        vals = a[region]
        feat.update({"long_axis_mm": long_ax, "short_axis_mm": short_ax, "elongation": elong, "volume_mm3": vol,
                     "craniocaudal_mm": float((zz.max() - zz.min() + 1) * sp[0]), "mean_hu": float(vals.mean()),
                     "solid_fraction": float(np.mean(s_[region] > R["solid_hu"])), "cut_radius_mm": cut})
        touches = (zz.min() == 0 and roi[0].start > 0) or yy.min() == 0 or xx.min() == 0 or \
            yy.max() == region.shape[1] - 1 or xx.max() == region.shape[2] - 1 or \
            (zz.max() == region.shape[0] - 1 and roi[0].stop < arr.shape[0])
        if long_ax < R["min_wall_nodule_mm"]:
            cand["reason"] = "smaller than min_wall_nodule_mm (a nodule, left to the nodule detector)"
            continue
        if elong > R["max_elongation"] or touches:
            cand["reason"] = "elongated or unbounded region (vessel confluence)"
            continue
        f = _finding(image, lungs, region, roi, feat, extents, R)
        if long_ax <= R["min_long_axis_mm"] and not f.attributes["abuts"]:
            cand["reason"] = "not larger than min_long_axis_mm (a nodule, left to the nodule detector)"
            continue
        cand["kept"], cand["reason"] = True, "kept" if f.kind == "mass" else "kept (nodule against the wall)"
        taken[roi] |= region
        full = np.zeros(arr.shape, bool)
        full[roi] = region
        findings.append(f)
        masks.append(full)
    return MassResult(tuple(findings), tuple(masks), candidates)


def _finding(image: Image, lungs: LungSegmentation, region, roi, feat, extents, R) -> Finding:
    zz, yy, xx = np.nonzero(region)
    cv = np.array([zz.mean() + roi[0].start, yy.mean() + roi[1].start, xx.mean() + roi[2].start])
    cp = image.voxel_to_patient(cv)
    n_left = int(lungs.left[roi][region].sum())
    n_right = int(lungs.right[roi][region].sum())
    side = "left" if n_left > n_right else "right"
    pz = extents.get(side, (np.array([cp[2]]), None))[0]
    top, bot = float(pz.max()), float(pz.min())
    third = (top - bot) / 3.0
    zone = "upper" if cp[2] >= top - third else ("lower" if cp[2] < bot + third else "middle")
    abuts, info = abutment(image, lungs, region, roi, side, extents, R)
    feat.update(info)
    bv = (int(zz.min() + roi[0].start), int(yy.min() + roi[1].start), int(xx.min() + roi[2].start),
          int(zz.max() + roi[0].start + 1), int(yy.max() + roi[1].start + 1), int(xx.max() + roi[2].start + 1))
    corners = np.array([[z, y, x] for z in (bv[0] - 0.5, bv[3] - 0.5) for y in (bv[1] - 0.5, bv[4] - 0.5)
                        for x in (bv[2] - 0.5, bv[5] - 0.5)])
    pc = image.voxel_to_patient(corners)
    density = "solid" if feat["solid_fraction"] >= 0.8 else "part_solid"
    # heuristic confidence: a thick core and a solid, compact region
    conf = 0.4 + 0.3 * min(1.0, feat["core_radius_mm"] / 15.0) + 0.2 * feat["solid_fraction"] \
        + 0.09 * max(0.0, min(1.0, (R["max_elongation"] - feat["elongation"]) / (R["max_elongation"] - 1.0)))
    numeric = {k: float(v) for k, v in feat.items() if isinstance(v, (int, float))}
    attributes = {"zone": zone, "abuts": abuts, "craniocaudal_mm": round(feat["craniocaudal_mm"], 1), "density": density}
    is_mass = feat["long_axis_mm"] > R["min_long_axis_mm"]
    if not is_mass:
        attributes["size_band"] = size_band(0.5 * (feat["long_axis_mm"] + feat["short_axis_mm"]))
    return Finding(
        kind="mass" if is_mass else "nodule", detector=DETECTOR, confidence=round(float(min(conf, 0.99)), 4), location=f"{side}_lung",
        side=side, long_axis=round(feat["long_axis_mm"], 2), short_axis=round(feat["short_axis_mm"], 2),
        volume=round(feat["volume_mm3"], 1),
        attributes=attributes,
        box_voxel=bv, box_patient=tuple(float(v) for v in tuple(pc.min(0)) + tuple(pc.max(0))),
        center_voxel=tuple(float(v) for v in cv), center_patient=tuple(float(v) for v in cp), features=numeric)
