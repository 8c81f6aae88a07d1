"""Classical two-stage lung nodule detection on CT (no learning).

Stage 1 - candidates: inside the lung mask (cropped to its bounding box), on a working grid (2x2
block mean when pixels are finer than 0.9 mm; native slices), the image is smoothed at six scales
(sigma 1-6 mm, per-axis sigma in voxels, so anisotropic voxels are handled in mm). At every local
maximum of each smoothed image brighter than the lung background the Hessian (central differences
in mm) gives the dot filter of Li, Sone & Doi (Med. Phys. 2003): ``sigma^2 * l3^2 / |l1|`` when all
three eigenvalues are negative (``|l1| >= |l2| >= |l3|``), else 0. It is large for blobs and near 0
for tubes (a vessel has one eigenvalue near 0 along its axis) and plates. ``blobness = l3 / l1``.
Entries within half a radius of a stronger one are suppressed. Stage 1 is permissive (``stage1_*``
thresholds, set for recall: a later learned false-positive stage consumes every candidate); only the
candidates above the stricter ``dense_contrast_hu`` / ``min_response_hu`` gate go on to stage 2, and
the suppression runs among those first, so the permissive stage 1 does not change what stage 2 sees.

Stage 2 - characterisation, at full resolution in a region of interest around each strong (or
faint but blob-shaped: the ground-glass path) candidate: the connected region above a threshold
halfway between lung and the candidate's core (solid / calcified) or halfway to ground glass
(-525 HU), cut free of attached vessels by an opening with a ball of 0.75 x the local thickness
(largest inscribed ball near the candidate), which a sphere survives and a thinner vessel does not.
Measured: long and perpendicular short axis in the axial slice of largest extent (as Fleischner
measures), volume, HU statistics and density class (ground_glass / part_solid / solid / calcified),
HU-weighted PCA elongation and flatness, sphericity, slices spanned, what surrounds it, distance to
the lung wall. A candidate is kept as a nodule when it passes the rules in :data:`RULES` (tuned on
phantom seeds, see docs/parts/nodules.md). Every candidate keeps its feature dict, ``kept`` and the
reason: the input a learned false-positive classifier will need.

Location is ``right_lung`` / ``left_lung`` (from the lung masks, i.e. patient geometry) with a
``zone`` attribute (upper / middle / lower third of that lung's cranio-caudal extent); no lobe is
estimated, because fissures are not segmented. ``confidence`` is a heuristic score in [0, 1] from
blobness, elongation and dot response, not a calibrated probability (a learned false-positive
reducer is meant to replace it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from radscribe.findings.model import Finding
from radscribe.io.image import Image
from radscribe.knowledge.ontology import size_band
from radscribe.models.nodule_measure import characterise
from radscribe.preprocess.lung import LungSegmentation

DETECTOR = "lung-nodule-classic"
#: Smoothing scales (mm). A sphere of radius r responds most at sigma ~ r / sqrt(3).
SCALES_MM = (1.0, 1.5, 2.2, 3.2, 4.6, 6.0)
#: Tunable thresholds (units in the names). Tuned on phantom seeds 1000-1007 (8 nodules
#: each, 130x512x512) and checked on the real series; evaluation seeds are 0-19 (docs/parts/nodules.md).
RULES: dict[str, float] = {
    "stage1_contrast_hu": 30.0,    # stage 1: smoothed HU above lung background to evaluate a voxel
    "stage1_min_response_hu": 15.0,  # stage 1: dot response to become a candidate (recall of stage 1 alone)
    "dense_contrast_hu": 40.0,     # stage 1 -> 2: a candidate this far above the background ...
    "min_response_hu": 25.0,       # ... and with this dot response may be characterised
    "stage2_response_hu": 55.0,    # stage 1 -> 2: dot response to be characterised
    "stage2_min_blobness": 0.5,    # stage 1 -> 2: l3/l1 at the best scale
    "ggo_min_scale_mm": 1.5,       # stage 1 -> 2 for faint candidates: best scale at least this
    "ggo_min_blobness": 0.5,       # ... and l3/l1 at least this
    "ggo_min_shape_response": 0.12,  # ... and response / smoothed contrast at least this
    "shell_mm": 2.5,               # thickness of the shell around a region used for its surroundings
    "max_surround_dense": 0.3,     # shell fraction that is solid tissue or outside the lung (hilar vessel)
    "max_surround_outside_ggo": 0.1,  # shell fraction outside the lung for a ground-glass region (partial
                                      # volume of the lung edge on thick slices)
    "max_stage2": 400,             # at most this many candidates characterised, strongest first
    "min_diameter_mm": 3.0,        # mean of long and short axis
    "max_diameter_mm": 30.0,       # larger is a mass, out of scope here
    "max_elongation": 1.5,         # sqrt(largest / middle PCA variance) of the region, mm
    "max_flatness": 1.5,           # sqrt(middle / smallest PCA variance): a plate, e.g. an in-plane vessel fork
    "max_elongation_subsolid": 1.35,  # stricter for ground-glass / part-solid (partial-volume vessels)
    "max_std_hu_ggo": 220.0,       # a pure ground-glass nodule is homogeneous; a blurred vessel is not
    "min_slices": 2,               # a nodule >= 3 mm shows (partial volume) on at least 2 slices
    "min_core_hu": -150.0,         # a fainter centre (75th percentile HU) ...
    "min_subsolid_diameter_mm": 5.0,  # ... is only kept when at least this large
    "min_blobness": 0.5,           # l3/l1 at the best scale
    "min_sphericity_subsolid": 0.8,  # equivalent-sphere diameter / largest extent, ground-glass & part-solid
    "min_ggo_contrast_hu": 100.0,  # a ground-glass centre at least this far above the lung background
    "solid_hu": -300.0,            # a voxel above this is solid tissue
    "ggo_ref_hu": -525.0,          # typical ground-glass HU; region threshold is halfway to lung
    "calcified_hu": 200.0,         # 90th percentile of the region above this: calcified
    "solid_fraction": 0.35,        # fraction of solid voxels for a solid nodule
}


_NEIGHBOURS = [(dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dz, dy, dx) != (0, 0, 0)]


@dataclass(frozen=True)
class NoduleResult:
    """Kept nodules as findings and every candidate (features + ``kept`` + ``reason``)."""

    findings: tuple[Finding, ...]
    candidates: list[dict[str, Any]]


def _hessian_at(S: np.ndarray, idx: tuple[np.ndarray, ...], sp: tuple[float, float, float]) -> np.ndarray:
    """Hessian (N, 3, 3) in HU/mm^2 of volume S at voxel indices idx (z, y, x), central differences."""
    z, y, x = idx
    dz, dy, dx = sp
    c = S[z, y, x]
    H = np.empty((z.size, 3, 3), np.float32)
    H[:, 0, 0] = (S[z + 1, y, x] - 2 * c + S[z - 1, y, x]) / dz ** 2
    H[:, 1, 1] = (S[z, y + 1, x] - 2 * c + S[z, y - 1, x]) / dy ** 2
    H[:, 2, 2] = (S[z, y, x + 1] - 2 * c + S[z, y, x - 1]) / dx ** 2
    H[:, 0, 1] = H[:, 1, 0] = (S[z + 1, y + 1, x] - S[z + 1, y - 1, x] - S[z - 1, y + 1, x] + S[z - 1, y - 1, x]) / (4 * dz * dy)
    H[:, 0, 2] = H[:, 2, 0] = (S[z + 1, y, x + 1] - S[z + 1, y, x - 1] - S[z - 1, y, x + 1] + S[z - 1, y, x - 1]) / (4 * dz * dx)
    H[:, 1, 2] = H[:, 2, 1] = (S[z, y + 1, x + 1] - S[z, y + 1, x - 1] - S[z, y - 1, x + 1] + S[z, y - 1, x - 1]) / (4 * dy * dx)
    return H


def _zone_of(z_mm: float, lung_z: np.ndarray) -> str:
    top, bottom = float(lung_z.max()), float(lung_z.min())
    third = (top - bottom) / 3.0
    return "upper" if z_mm >= top - third else ("lower" if z_mm < bottom + third else "middle")


def detect_nodules(image: Image, lungs: LungSegmentation, rules: dict[str, float] | None = None,
                   exclude: np.ndarray | None = None) -> NoduleResult:
    """Find nodules inside ``lungs.mask`` of CT ``image`` (HU, z y x); see the module docstring.

    Candidates whose centre lies in ``exclude`` (bool z y x, e.g. the masses already found) are
    recorded but not characterised.
    """
    R = dict(RULES, **(rules or {}))
    arr = image.array
    sz, sy, sx = (float(s) for s in image.spacing)
    if not lungs.mask.any():
        return NoduleResult((), [])
    box = ndi.find_objects(lungs.mask.astype(np.uint8))[0]
    pad = 2
    box = tuple(slice(max(b.start - pad, 0), min(b.stop + pad, n)) for b, n in zip(box, arr.shape))
    f = 2 if min(sy, sx) < 0.9 else 1
    ny = (box[1].stop - box[1].start) // f * f
    nx = (box[2].stop - box[2].start) // f * f
    box = (box[0], slice(box[1].start, box[1].start + ny), slice(box[2].start, box[2].start + nx))
    a = arr[box]
    m = lungs.mask[box]
    bg = float(np.median(a[m][:: max(1, int(m.sum()) // 200000)]))
    nz = a.shape[0]
    ds = a.reshape(nz, ny // f, f, nx // f, f).mean(axis=(2, 4)) if f > 1 else a
    m_ds = m[:, ::f, ::f] if f > 1 else m
    spw = (sz, sy * f, sx * f)
    I = np.where(m_ds, np.clip(ds, -1000.0, 150.0), bg).astype(np.float32)

    # ---------------- stage 1: multi-scale Hessian dot filter at the local maxima of each scale
    inner = np.zeros_like(m_ds)
    inner[1:-1, 1:-1, 1:-1] = m_ds[1:-1, 1:-1, 1:-1]
    entries = []  # (response, blobness, scale index, z, y, x) on the working grid
    for k, sig in enumerate(SCALES_MM):
        S = ndi.gaussian_filter(I, sigma=[sig / s for s in spw], mode="nearest", truncate=3.0)
        idx = np.nonzero(inner & (S > bg + min(R["stage1_contrast_hu"], R["dense_contrast_hu"])))
        if idx[0].size == 0:
            continue
        v = S[idx]
        is_max = np.ones(v.size, bool)
        for dz, dy, dx in _NEIGHBOURS:  # local maxima (26-neighbourhood), only at the bright voxels
            is_max &= v >= S[idx[0] + dz, idx[1] + dy, idx[2] + dx]
        idx = tuple(i[is_max] for i in idx)
        ev = np.linalg.eigvalsh(_hessian_at(S, idx, spw))  # ascending: l0 most negative
        l0, l2 = ev[:, 0], ev[:, 2]
        ok = l2 < 0
        r = np.where(ok, sig ** 2 * l2 ** 2 / np.maximum(-l0, 1e-6), 0.0)
        b = np.where(ok, l2 / np.minimum(l0, -1e-6), 0.0)
        keep = r >= min(R["stage1_min_response_hu"], R["min_response_hu"])
        contrast = S[idx][keep] - bg
        eligible = (contrast > R["dense_contrast_hu"]) & (r[keep] >= R["min_response_hu"])
        entries.append(np.stack([r[keep], b[keep], np.full(int(keep.sum()), k)] + [i[keep] for i in idx]
                                + [contrast, eligible], 1))
    E = np.concatenate(entries) if entries else np.zeros((0, 8))
    E = E[np.argsort(-E[:, 0], kind="stable")]
    # columns: response, blobness, scale index, z, y, x, contrast, eligible for stage 2
    E = E[_suppress(E, spw)]

    # ---------------- stage 2
    lung_z_mm = {}
    for side, sm in (("left", lungs.left), ("right", lungs.right)):
        zi = np.nonzero(sm.any(axis=(1, 2)))[0]
        if zi.size:
            lung_z_mm[side] = image.voxel_to_patient(np.stack([zi, np.zeros_like(zi), np.zeros_like(zi)], 1).astype(float))[:, 2]
    candidates: list[dict[str, Any]] = []
    findings: list[Finding] = []
    kept_regions: list[tuple[tuple[slice, ...], np.ndarray]] = []
    n_stage2 = 0
    for r_i, b_i, k_i, z, y, x, con_i, elig_i in E:
        z, y, x = int(z), int(y), int(x)
        sig = SCALES_MM[int(k_i)]
        c_full = (int(z), int(y) * f + (f - 1) // 2, int(x) * f + (f - 1) // 2)  # in the crop
        c_abs = tuple(int(v + b.start) for v, b in zip(c_full, box))
        feat: dict[str, Any] = {"response_hu": float(r_i), "blobness": float(b_i), "contrast_hu": float(con_i),
                                "shape_response": float(r_i / max(con_i, 1.0)),
                                "scale_mm": float(sig), "center_voxel": [float(v) for v in c_abs]}
        cand = {"features": feat, "kept": False, "reason": ""}
        candidates.append(cand)
        if any(reg[tuple(int(v - s.start) for v, s in zip(c_abs, rb))] for rb, reg in kept_regions
               if all(s.start <= v < s.stop for v, s in zip(c_abs, rb))):
            cand["reason"] = "duplicate: inside a kept nodule"
            continue
        if exclude is not None and exclude[c_abs]:
            cand["reason"] = "inside a mass"
            continue
        if not elig_i:
            cand["reason"] = "stage 1 only: contrast or dot response below the stage-2 gate"
            continue
        strong = feat["response_hu"] >= R["stage2_response_hu"] and feat["blobness"] >= R["stage2_min_blobness"]
        # faint but blob-shaped and not tiny: the ground-glass path
        faint = (sig >= R["ggo_min_scale_mm"] and feat["blobness"] >= R["ggo_min_blobness"]
                 and feat["shape_response"] >= R["ggo_min_shape_response"])
        if not (strong or faint):
            cand["reason"] = "stage 1: weak or tubular dot response"
            continue
        if n_stage2 >= R["max_stage2"]:
            cand["reason"] = "stage 1: beyond max_stage2 strongest candidates"
            continue
        n_stage2 += 1
        characterise(image, lungs, c_abs, sig, bg, R, feat)
        reason = _decide(feat, R)
        cand["reason"] = reason
        if reason != "kept":
            continue
        cand["kept"] = True
        findings.append(_finding(image, lungs, feat, lung_z_mm))
        kept_regions.append((feat["_roi"], feat["_region"]))
    for c in candidates:
        for k in [k for k in c["features"] if k.startswith("_")]:
            del c["features"][k]
    return NoduleResult(tuple(findings), candidates)


def _suppress(E: np.ndarray, spw) -> np.ndarray:
    """Non-maximum suppression across space and scale (``E`` sorted by response, strongest first).

    An entry within half a radius of a stronger live one is dropped. Pass 1 runs over the entries
    eligible for stage 2 alone (so adding stage-1-only entries cannot change what stage 2 sees);
    pass 2 drops a stage-1-only entry near any stronger live entry. Returns the live mask.
    """
    alive = np.ones(len(E), bool)
    if not len(E):
        return alive
    pos_mm = E[:, 3:6] * np.array(spw)
    rads = np.maximum(0.5 * np.asarray(SCALES_MM)[E[:, 2].astype(int)] * math.sqrt(3.0), 1.5)
    elig = E[:, 7] > 0
    tree = cKDTree(pos_mm)
    for i in np.nonzero(elig)[0]:
        if alive[i]:
            for j in tree.query_ball_point(pos_mm[i], rads[i]):
                if j > i and elig[j]:
                    alive[j] = False
    if (~elig).any():
        for i in range(len(E)):
            if alive[i]:
                for j in tree.query_ball_point(pos_mm[i], rads[i]):
                    if j > i and not elig[j]:
                        alive[j] = False
    return alive


def _decide(feat: dict[str, Any], R: dict[str, float]) -> str:
    if feat.get("region") != "ok":
        return "stage 2: no region grows from the candidate"
    if feat["leaks_roi"]:
        return "stage 2: region leaks out of the ROI (vessel tree or wall)"
    if feat["mean_diameter_mm"] < R["min_diameter_mm"]:
        return "stage 2: smaller than min_diameter_mm"
    if feat["mean_diameter_mm"] > R["max_diameter_mm"]:
        return "stage 2: larger than max_diameter_mm (mass)"
    if feat["n_slices"] < R["min_slices"]:
        return "stage 2: on fewer than min_slices slices (vessel crossing the slice)"
    if feat["elongation"] > R["max_elongation"]:
        return "stage 2: elongated (vessel)"
    if feat["surround_dense_fraction"] > R["max_surround_dense"]:
        return "stage 2: embedded in soft tissue (hilum, mediastinum or wall)"
    if feat["density"] == "ground_glass" and feat["surround_outside_lung_fraction"] > R["max_surround_outside_ggo"]:
        return "stage 2: faint region at the lung edge (partial volume)"
    if feat["flatness"] > R["max_flatness"]:
        return "stage 2: flat (vessel fork or plate)"
    if feat["density"] in ("ground_glass", "part_solid") and feat["elongation"] > R["max_elongation_subsolid"]:
        return "stage 2: elongated faint region (partial-volume vessel)"
    if feat["density"] in ("ground_glass", "part_solid") and feat["sphericity"] < R["min_sphericity_subsolid"]:
        return "stage 2: irregular faint region (partial-volume vessels)"
    if feat["density"] == "ground_glass" and feat["std_hu"] > R["max_std_hu_ggo"]:
        return "stage 2: inhomogeneous faint region (partial-volume vessel)"
    if feat["density"] == "ground_glass" and feat["core_hu"] < feat["lung_background_hu"] + R["min_ggo_contrast_hu"]:
        return "stage 2: ground-glass centre too close to the lung background (noise)"
    if feat["density"] == "solid" and feat["core_hu"] < R["solid_hu"]:
        return "stage 2: solid region without a solid centre"
    if feat["blobness"] < R["min_blobness"]:
        return "stage 2: low blobness (tube)"
    if feat["core_hu"] < R["min_core_hu"] and feat["mean_diameter_mm"] < R["min_subsolid_diameter_mm"]:
        return "stage 2: faint and small (partial-volume vessel)"
    return "kept"


def _finding(image: Image, lungs: LungSegmentation, feat: dict[str, Any], lung_z_mm: dict[str, np.ndarray]) -> Finding:
    roi, reg = feat["_roi"], feat["_region"]
    zz, yy, xx = np.nonzero(reg)
    bv = (int(zz.min() + roi[0].start), int(yy.min() + roi[1].start), int(xx.min() + roi[2].start),
          int(zz.max() + roi[0].start + 1), int(yy.max() + roi[1].start + 1), int(xx.max() + roi[2].start + 1))
    corners = np.array([[z, y, x] for z in (bv[0] - 0.5, bv[3] - 0.5) for y in (bv[1] - 0.5, bv[4] - 0.5)
                        for x in (bv[2] - 0.5, bv[5] - 0.5)])
    pc = image.voxel_to_patient(corners)
    bp = tuple(pc.min(0)) + tuple(pc.max(0))
    cv = tuple(feat["_centre"])
    cp = image.voxel_to_patient(np.array(cv))
    ci = tuple(int(round(v)) for v in cv)
    # distance (mm) from the centre to the nearest non-lung voxel, within the ROI
    dist = ndi.distance_transform_edt(feat["_mask_roi"], sampling=image.spacing)
    feat["dist_to_wall_mm"] = float(dist[tuple(min(max(v - r.start, 0), n - 1) for v, r, n in zip(ci, roi, dist.shape))])
    side = "left" if lungs.left[ci] else "right" if lungs.right[ci] else ("left" if _is_left(image, cv) else "right")
    zone = _zone_of(float(cp[2]), lung_z_mm.get(side, np.array([cp[2]])))
    # heuristic confidence: blob-like, compact, contrasted
    elong_term = max(0.0, min(1.0, (RULES["max_elongation"] - feat["elongation"]) / (RULES["max_elongation"] - 1.0)))
    contrast = max(0.0, min(1.0, feat["response_hu"] / 150.0))
    conf = float(np.clip(0.2 + 0.35 * feat["blobness"] + 0.25 * elong_term + 0.2 * contrast, 0.0, 0.99))
    numeric = {k: float(v) for k, v in feat.items() if isinstance(v, (int, float)) and not k.startswith("_")}
    return Finding(
        kind="nodule", detector=DETECTOR, confidence=round(conf, 4), location=f"{side}_lung", side=side,
        long_axis=round(feat["long_axis_mm"], 2), short_axis=round(feat["short_axis_mm"], 2),
        volume=round(feat["volume_mm3"], 1),
        attributes={"density": feat["density"], "size_band": size_band(feat["mean_diameter_mm"]), "zone": zone},
        box_voxel=bv, box_patient=tuple(float(v) for v in bp), center_voxel=tuple(float(v) for v in cv),
        center_patient=tuple(float(v) for v in cp), features=numeric)


def _is_left(image: Image, zyx) -> bool:
    """Fallback side when the centre lies in neither lung mask: patient x beyond the central column."""
    z, y, x = zyx
    x_mid = (image.shape[2] - 1) / 2.0
    p = image.voxel_to_patient(np.array([[z, y, x], [z, y, x_mid]]))
    return bool(p[0, 0] > p[1, 0])
