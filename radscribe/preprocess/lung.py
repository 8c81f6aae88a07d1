"""Lung segmentation of a chest CT from Hounsfield units.

Classic, fast and dependency-light: threshold air, drop air connected to the in-plane border
(outside the body, the table), find and remove the trachea and main bronchi, keep the two largest
air components (splitting them when the lungs touch), and fill vessels and nodules into the mask
(per-slice closing and hole filling) so that everything inside the pleura is inside the mask.
Left/right come from patient geometry (LPS: +x is the patient's left), never from the array index.

Lesions against the chest wall or the mediastinum are soft tissue like the wall itself, so the HU
mask goes around them. They are put back by a rolling-ball repair (:func:`lesion_fill`): a 3D
closing of each lung with a ball of :data:`REPAIR_BALL_MM` (dilation and erosion by Euclidean
distance transforms on a grid of ~2.8 mm voxels, so the large ball costs no more than a small one)
proposes the soft tissue in the lung's concavities; a proposed region is kept only when it is bounded
mostly by lung (:data:`REPAIR_MIN_LUNG_FRACTION` of its surface; a normal concavity - the cardiac
notch, the hilum, a costophrenic recess - is bounded by lung on one side only) and thick enough to be
a lesion and compact (:data:`REPAIR_MIN_THICKNESS_MM`, :data:`REPAIR_MIN_COMPACTNESS`: the
vessels and bronchi in the hilar concavity are bounded by lung too, but they branch). Each kept region is then closed across the mouth of its
bay by the per-slice convex hull of the region and the lung within 15 mm of it (the ball cannot
reach the deep bay, but it does dip into a wide mouth).

The connected-component and morphology work runs on a grid downsampled 2x in-plane when the
pixels are finer than 0.9 mm; the final mask is at the full resolution of the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
from scipy import ndimage as ndi

from radscribe.io.image import Image

#: HU below which a voxel counts as air/lung for segmentation.
AIR_HU = -400.0
#: HU below which (after a 3x3 in-plane mean) a voxel counts as airway lumen.
AIRWAY_HU = -950.0
#: In-plane radius (mm) of the closing that pulls juxtapleural nodules and vessels into the mask.
CLOSING_MM = 5.0
#: Radius (mm) of the rolling ball that proposes juxta-pleural / juxta-mediastinal lesions.
REPAIR_BALL_MM = 40.0
#: A proposed region is a lesion when at least this fraction of its surface touches the lung ...
REPAIR_MIN_LUNG_FRACTION = 0.66
#: ... its largest inscribed ball has at least this radius (mm) ...
REPAIR_MIN_THICKNESS_MM = 7.0
#: ... and it is compact: inscribed radius / radius of the sphere of equal volume at least this (a
#: sphere cap against the wall ~0.6-0.8; the vessels and bronchi of a normal hilum ~0.3).
REPAIR_MIN_COMPACTNESS = 0.45
#: Proposed regions smaller than this (ml) are not considered.
REPAIR_MIN_ML = 2.0


@dataclass(frozen=True)
class LungSegmentation:
    """Boolean masks (z, y, x) of both lungs, the left and the right lung; volume in ml."""

    mask: np.ndarray
    left: np.ndarray
    right: np.ndarray
    volume_ml: float
    notes: tuple[str, ...] = ()
    #: Voxels the lesion repair added (bool z y x, or None when it added nothing).
    repaired: np.ndarray | None = None

    @property
    def left_ml(self) -> float:
        return float(self.left.sum()) * self._voxel_ml

    @property
    def right_ml(self) -> float:
        return float(self.right.sum()) * self._voxel_ml

    @property
    def _voxel_ml(self) -> float:
        return self.volume_ml / max(int(self.mask.sum()), 1)


_PLANE6 = np.zeros((3, 3, 3), bool)
_PLANE6[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


def _disk3d(radius_px: int) -> np.ndarray:
    """A flat (in-plane) disk structuring element for per-slice morphology in one call."""
    r = max(int(radius_px), 1)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    se = np.zeros((1, 2 * r + 1, 2 * r + 1), bool)
    se[0] = yy ** 2 + xx ** 2 <= r * r + 0.5
    return se


def _find_airways(arr_ds: np.ndarray, body_air: np.ndarray, spacing_ds, mid_col: float,
                  superior_is_high_index: bool) -> np.ndarray:
    """Trachea + main bronchi on the downsampled grid (bool), or an all-False array.

    The lumen is air below :data:`AIRWAY_HU` after a 3x3 in-plane mean (noise in sharp kernels makes
    single lung voxels that dark; the mean does not). The seed is a roughly round 40-700 mm^2
    component near the body midline in the upper quarter of the air; growth is 3D. A grown
    region over 250 ml is a leak into the lungs (emphysema, noise) and is discarded.
    """
    sz, sy, sx = spacing_ds
    dark = ndi.uniform_filter(arr_ds, size=(1, 3, 3)) < AIRWAY_HU
    dark &= body_air
    zs = np.nonzero(body_air.any(axis=(1, 2)))[0]
    if zs.size == 0:
        return np.zeros_like(dark)
    lab, n = ndi.label(dark)
    if n == 0:
        return dark
    # search the upper quarter of the internal air for a trachea-like 2D section, top slice first
    z_top, z_bot = int(zs.max()), int(zs.min())
    quarter = max(2, (z_top - z_bot) // 4)
    top_first = range(z_top, z_top - quarter - 1, -1) if superior_is_high_index else range(z_bot, z_bot + quarter + 1)
    px_area = sy * sx
    for z in top_first:
        l2, n2 = ndi.label(dark[z])
        if n2 == 0:
            continue
        ys, xs = np.nonzero(l2)
        ids = l2[ys, xs]
        cnt = np.bincount(ids, minlength=n2 + 1).astype(float)
        cx = np.bincount(ids, weights=xs, minlength=n2 + 1) / np.maximum(cnt, 1)
        for i in np.nonzero((cnt * px_area >= 40.0) & (cnt * px_area <= 700.0))[0]:
            if abs(cx[i] - mid_col) * sx > 30.0:
                continue
            yi, xi = ys[ids == i], xs[ids == i]
            extent = max(np.ptp(yi) * sy, np.ptp(xi) * sx) + sx
            if cnt[i] * px_area / (np.pi * extent ** 2 / 4) < 0.5:  # not round enough for a trachea
                continue
            region = lab == lab[z, yi[0], xi[0]]
            if region.sum() * sz * sy * sx / 1000.0 > 250.0:
                return np.zeros_like(dark)
            return region
    return np.zeros_like(dark)


def _split(comp: np.ndarray, max_erosions: int = 8) -> tuple[np.ndarray, np.ndarray] | None:
    """Split one component into two by eroding until it falls apart; per slice, cut between them."""
    eroded = comp
    for _ in range(max_erosions):
        eroded = ndi.binary_erosion(eroded, structure=_PLANE6)
        lab, n = ndi.label(eroded)
        if n >= 2:
            sizes = np.bincount(lab.ravel())[1:]
            a, b = np.argsort(sizes)[::-1][:2] + 1
            if sizes[b - 1] >= 0.1 * sizes[a - 1]:
                sa, sb = lab == a, lab == b
                ca = np.nonzero(sa)[2].mean()
                cb = np.nonzero(sb)[2].mean()
                lo_seed, hi_seed = (sa, sb) if ca < cb else (sb, sa)
                nx = comp.shape[2]
                cols = np.arange(nx)
                cut = np.full(comp.shape[0], (min(ca, cb) + max(ca, cb)) / 2)
                for z in range(comp.shape[0]):
                    lo_x = np.nonzero(lo_seed[z].any(axis=0))[0]
                    hi_x = np.nonzero(hi_seed[z].any(axis=0))[0]
                    if lo_x.size and hi_x.size:
                        cut[z] = (lo_x.max() + hi_x.min()) / 2
                low_side = cols[None, None, :] <= cut[:, None, None]
                return comp & low_side, comp & ~low_side
    return None


def lesion_fill(hu: np.ndarray, lungs: list[np.ndarray], spacing) -> tuple[list[np.ndarray], list[dict]]:
    """Soft-tissue lesions in the concavities of each lung (bool masks on the grid of ``hu``), and their stats.

    ``hu`` (z y x) and ``lungs`` (one bool mask per lung) share one grid of ``spacing`` mm; see the module
    docstring for the method. The ball rolls on a grid of ~5.6 mm pixels; each proposed region is then
    measured and closed on the grid of ``hu``. Stats per proposed region >= :data:`REPAIR_MIN_ML`: lung
    index, ml, lung fraction of its surface, inscribed radius (mm), kept.
    """
    from skimage.morphology import convex_hull_image

    sp = tuple(float(s) for s in spacing)
    G = (max(1, int(round(2.5 / sp[0]))), max(1, int(round(5.6 / sp[1]))), max(1, int(round(5.6 / sp[2]))))
    spc = tuple(s * k for s, k in zip(sp, G))
    sub_c = tuple(slice(0, None, k) for k in G)
    soft = (hu > AIR_HU) & (hu < 300.0)  # not air, not bone
    any_lung = np.logical_or.reduce(lungs) if lungs else np.zeros(hu.shape, bool)
    soft_c, any_c = soft[sub_c], any_lung[sub_c]
    vox_ml_c = float(np.prod(spc)) / 1000.0
    R = REPAIR_BALL_MM
    pad = [int(math.ceil(R / s)) + 1 for s in spc]
    m15 = [int(math.ceil(15.0 / s)) for s in sp]
    fills, stats = [], []
    for k, m in enumerate(lungs):
        fill = np.zeros(hu.shape, bool)
        fills.append(fill)
        mc = m[sub_c]
        if not mc.any():
            continue
        box = ndi.find_objects(mc.astype(np.uint8))[0]
        box = tuple(slice(max(b.start - p, 0), min(b.stop + p, n)) for b, p, n in zip(box, pad, mc.shape))
        sub = np.pad(mc[box], [(p, p) for p in pad])
        dil = ndi.distance_transform_edt(~sub, sampling=spc) <= R
        closed = (ndi.distance_transform_edt(dil, sampling=spc) > R)[tuple(slice(p, -p) for p in pad)]
        lab, n = ndi.label(closed & ~any_c[box] & soft_c[box])
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        cand = np.nonzero(sizes * vox_ml_c >= REPAIR_MIN_ML)[0]
        cand = cand[cand > 0]
        if cand.size == 0:
            continue
        lut = np.zeros(n + 1, np.int32)
        lut[cand] = np.arange(1, cand.size + 1)
        lab = lut[lab]
        near = ndi.grey_dilation(lab, footprint=ndi.generate_binary_structure(3, 1))
        bnd = (near > 0) & (lab == 0)
        ids = near[bnd]
        total = np.bincount(ids, minlength=cand.size + 1)
        on_lung = np.bincount(ids, weights=mc[box][bnd], minlength=cand.size + 1)
        for i, sl in enumerate(ndi.find_objects(lab), start=1):
            frac = float(on_lung[i] / max(total[i], 1))
            st = {"lung": k, "ml": float(sizes[cand[i - 1]] * vox_ml_c), "lung_fraction": frac,
                  "thickness_mm": 0.0, "compactness": 0.0, "kept": False}
            stats.append(st)
            if frac < REPAIR_MIN_LUNG_FRACTION:
                continue
            # the region on the fine grid, in its box + 15 mm in-plane
            fb = tuple(slice(max((box[a].start + sl[a].start) * G[a] - (m15[a] if a else 0), 0),
                             min((box[a].start + sl[a].stop) * G[a] + (m15[a] if a else 0), hu.shape[a]))
                       for a in range(3))
            coarse = lab[sl] == i
            up = coarse.repeat(G[0], 0).repeat(G[1], 1).repeat(G[2], 2)
            reg = np.zeros(tuple(s.stop - s.start for s in fb), bool)
            o = [(box[a].start + sl[a].start) * G[a] - fb[a].start for a in range(3)]
            cut = tuple(slice(o[a], o[a] + up.shape[a]) for a in range(3))
            reg[cut] = up[tuple(slice(0, reg[cut].shape[a]) for a in range(3))]
            free = soft[fb] & ~any_lung[fb]
            reg &= free
            if not reg.any():
                continue
            st["thickness_mm"] = thick = float(ndi.distance_transform_edt(np.pad(reg, 1), sampling=sp).max())
            r_eq = (3.0 * float(reg.sum()) * float(np.prod(sp)) / (4.0 * math.pi)) ** (1 / 3)
            st["compactness"] = thick / max(r_eq, 1e-6)
            if thick < REPAIR_MIN_THICKNESS_MM or st["compactness"] < REPAIR_MIN_COMPACTNESS:
                continue
            st["kept"] = True
            # close the mouth of the bay: per-slice convex hull of the region and the lung within 15 mm
            l_sub = m[fb]
            close = ndi.distance_transform_edt(~reg, sampling=(1e4,) + sp[1:]) <= 15.0
            for z in range(reg.shape[0]):
                if reg[z].any():
                    reg[z] |= convex_hull_image(reg[z] | (l_sub[z] & close[z])) & free[z]
            fill[fb] |= reg
    return fills, stats


def segment_lungs(image: Image, repair: bool = True) -> LungSegmentation:
    """Segment both lungs of a CT ``image`` in HU (axes z, y, x); volumes in ml.

    Vessels and nodules inside the lungs are inside ``mask``; the trachea and main bronchi are not.
    ``left``/``right`` are the patient's left and right lungs (from ``image.direction``). With
    ``repair`` (default) lesions against the chest wall or mediastinum are added (:func:`lesion_fill`;
    ``repaired`` holds what was added).
    """
    arr = image.array
    sz, sy, sx = (float(s) for s in image.spacing)
    notes: list[str] = []
    f = 2 if min(sy, sx) < 0.9 and arr.shape[1] >= 64 and arr.shape[2] >= 64 else 1
    # downsample: mean of two diagonal samples per 2x2 block (halves the noise variance, cheap)
    ny, nx = (arr.shape[1] // f) * f, (arr.shape[2] // f) * f
    ds = (arr[:, 0:ny:2, 0:nx:2] + arr[:, 1:ny:2, 1:nx:2]) * 0.5 if f > 1 else arr
    sp_ds = (sz, sy * f, sx * f)
    air = ds < AIR_HU

    lab, n = ndi.label(air)
    border = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(),
                                       lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    outside_lut = np.zeros(n + 1, bool)
    outside_lut[border[border > 0]] = True
    outside = outside_lut[lab]
    inside = air & ~outside
    body = ~outside
    # body midline column per volume (patient x is what matters, but the body centre is a column)
    body_cols = np.nonzero(body.any(axis=(0, 1)))[0]
    mid_col = float((body_cols.min() + body_cols.max()) / 2) if body_cols.size else ds.shape[2] / 2

    # which way is superior along the slice index (trachea search starts at the top)
    superior_up = float(np.asarray(image.direction, float)[2, 2]) >= 0
    airway = _find_airways(ds, inside, sp_ds, mid_col, superior_up)
    if airway.any():
        airway = ndi.binary_dilation(airway, structure=_PLANE6, iterations=2)
        inside &= ~airway
        notes.append(f"trachea/main bronchi removed ({airway.sum() * np.prod(sp_ds) / 1000:.0f} ml incl. walls)")
    else:
        notes.append("no trachea found (scan may start below the carina)")

    vox_ml_ds = float(np.prod(sp_ds)) / 1000.0
    lab, n = ndi.label(inside)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    order = np.argsort(sizes)[::-1]
    big = [int(l) for l in order[:2] if sizes[l] * vox_ml_ds >= 50.0]
    lungs: list[np.ndarray] = []
    if len(big) == 2 and sizes[big[1]] >= 0.25 * sizes[big[0]]:
        lungs = [lab == big[0], lab == big[1]]
    elif big:
        parts = _split(lab == big[0])
        if parts is None:
            lungs = [lab == big[0]]
            notes.append("lungs could not be separated: one lung region reported")
        else:
            lungs = list(parts)
            notes.append("the two lungs touched and were split")
    else:
        notes.append("no lung found (no internal air region >= 50 ml)")

    fills: list[np.ndarray] = [np.zeros(ds.shape, bool) for _ in lungs]
    if repair and lungs:
        fills, stats = lesion_fill(ds, lungs, sp_ds)
        kept = [st for st in stats if st["kept"]]
        if kept:
            notes.append(f"lesion repair: {len(kept)} soft-tissue region(s) against the lung wall added "
                         f"({sum(float(f.sum()) for f in fills) * np.prod(sp_ds) / 1000:.0f} ml)")
    # fill (per-slice closing then hole filling) and return to full resolution, each lung in its box:
    # exact air voxels next to the lung plus the filled interior
    r_px = max(1, int(round(CLOSING_MM / sp_ds[2])))
    se = _disk3d(r_px)
    air_full = arr < AIR_HU
    full = []
    repaired = np.zeros(arr.shape, bool) if any(fl.any() for fl in fills) else None
    for m, fl in zip(lungs, fills):
        if fl.any():
            m = m | fl
        box = ndi.find_objects(m.astype(np.uint8))[0]
        box = tuple(slice(max(b.start - (0 if k == 0 else r_px + 2), 0), b.stop + (0 if k == 0 else r_px + 2))
                    for k, b in enumerate(box))
        mb = m[box]
        c = ndi.binary_closing(mb, structure=se)
        c = ndi.binary_fill_holes(c | mb, structure=_PLANE6) & ~airway[box]
        near = ndi.binary_dilation(mb, structure=_PLANE6)
        interior = ndi.binary_erosion(c, structure=_PLANE6)
        fbox = (box[0], slice(box[1].start * f, box[1].stop * f), slice(box[2].start * f, box[2].stop * f))
        if f > 1:
            near = np.repeat(np.repeat(near, f, axis=1), f, axis=2)
            interior = np.repeat(np.repeat(interior, f, axis=1), f, axis=2)
        out = np.zeros(arr.shape, bool)
        sub = air_full[fbox]
        h, w = sub.shape[1], sub.shape[2]
        out[fbox] = (sub & near[:, :h, :w]) | interior[:, :h, :w]
        if fl.any():
            lb = ndi.find_objects(fl.astype(np.uint8))[0]
            lfb = (lb[0], slice(lb[1].start * f, lb[1].stop * f), slice(lb[2].start * f, lb[2].stop * f))
            les = np.repeat(np.repeat(fl[lb], f, axis=1), f, axis=2) if f > 1 else fl[lb]
            les = les[:, :out[lfb].shape[1], :out[lfb].shape[2]] & ~air_full[lfb]
            out[lfb] |= les
            repaired[lfb] |= les
        full.append(out)

    # left / right from patient x of each lung's centroid (LPS: +x = patient left)
    left = np.zeros(arr.shape, bool)
    right = np.zeros(arr.shape, bool)
    for m, m_ds in zip(full, lungs):
        com = np.array([np.mean(v) for v in np.nonzero(m_ds[:, ::2, ::2])]) * [1, 2 * f, 2 * f]
        x_lps = float(image.voxel_to_patient(com)[0])
        com_mid = np.array([com[0], com[1], mid_col * f])
        x_mid = float(image.voxel_to_patient(com_mid)[0])
        if len(full) == 1:
            notes.append("single lung region: side undetermined, reported under right= and left= by midline")
            cols = np.arange(arr.shape[2])
            xs = image.voxel_to_patient(np.stack([np.full_like(cols, com[0], dtype=float),
                                                  np.full_like(cols, com[1], dtype=float), cols], 1))[:, 0]
            is_left = (xs > x_mid)[None, None, :]
            left |= m & is_left
            right |= m & ~is_left
        elif x_lps > x_mid:
            left |= m
        else:
            right |= m
    mask = left | right
    vol = float(mask.sum()) * sz * sy * sx / 1000.0
    if repaired is not None:
        repaired &= mask
    return LungSegmentation(mask=mask, left=left, right=right, volume_ml=vol, notes=tuple(notes), repaired=repaired)
