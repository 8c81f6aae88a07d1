"""Refine one nodule of a CT image with the LIDC-trained 3D network: ``refine_nodule(image, center_voxel)``.

The cube the network reads is resampled from the image around the centre (trilinear, voxel order z, y, x)
to the voxel size the LIDC cubes are assumed to have (:data:`radscribe.data.lidc.ASSUMED_SPACING_MM`,
1.0 x 0.7 x 0.7 mm, shipped in the weights' config.json) and mapped from HU to the cubes' intensity scale
with the estimated mapping (also in config.json). The nodule probability is sampled back onto the image's
own grid (a ROI around the centre), thresholded at 0.5 and reduced to the component at the centre; sizes
are measured there with the image's spacing and HU (:func:`radscribe.findings.measure.measure_nodule`).

Texture uses the knowledge module's density words; the LIDC ratings are expected values (1-5). Where the
weights carry a second stage (:mod:`radscribe.models.nodule3d_stage2`), texture and P(malignancy >= 3) come
from it. The margin
word (knowledge ``margin`` values) is derived from them: spiculated when the expected spiculation is >= 3,
else lobulated when the expected lobulation is >= 3, else ill-defined when the expected margin rating
(1 poorly defined .. 5 sharp) is <= 2, else smooth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from radscribe.data.lidc import ORDINAL_RATINGS, TEXTURE_CLASSES
from radscribe.errors import RadscribeInputError
from radscribe.findings.measure import NoduleMeasurement, measure_nodule
from radscribe.io.image import Image
from radscribe.models.nodule3d import Nodule3DModel, load_nodule3d, predict_cubes

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights" / "lidc-nodule3d"
#: LIDC rating thresholds for the knowledge margin words (module doc).
SPICULATED_AT, LOBULATED_AT, ILL_DEFINED_AT = 3.0, 3.0, 2.0


@dataclass(frozen=True)
class NoduleRefinement:
    """The network's view of one nodule. ``mask`` is on the image grid inside the ROI whose first voxel is
    ``offset`` (z, y, x); :meth:`full_mask` places it on the whole image."""

    mask: np.ndarray
    offset: tuple[int, int, int]
    image_shape: tuple[int, int, int]
    measurement: NoduleMeasurement | None
    texture: str                                   # ground_glass / part_solid / solid
    texture_prob: dict[str, float]
    ratings: dict[str, float]                      # expected LIDC ratings 1-5
    malignancy_prob: float                         # P(malignancy rating >= 3)
    margin: str                                    # knowledge margin word
    solid_component_mm: float | None               # solid part's long axis, part-solid nodules only
    notes: tuple[str, ...] = field(default_factory=tuple)

    def full_mask(self) -> np.ndarray:
        out = np.zeros(self.image_shape, bool)
        z, y, x = self.offset
        d, h, w = self.mask.shape
        out[z:z + d, y:y + h, x:x + w] = self.mask
        return out

    def to_dict(self) -> dict[str, Any]:
        m = self.measurement
        return {"offset": list(self.offset), "roi_shape": list(self.mask.shape), "voxels": int(self.mask.sum()),
                "measurement": None if m is None else {k: getattr(m, k) for k in m.__dataclass_fields__},
                "texture": self.texture, "texture_prob": self.texture_prob, "ratings": self.ratings,
                "malignancy_prob": self.malignancy_prob, "margin": self.margin,
                "solid_component_mm": self.solid_component_mm, "notes": list(self.notes)}


@lru_cache(maxsize=4)
def _cached_model(weights_dir: str) -> Nodule3DModel:
    return load_nodule3d(weights_dir)


def margin_word(ratings: dict[str, float]) -> str:
    if ratings["spiculation"] >= SPICULATED_AT:
        return "spiculated"
    if ratings["lobulation"] >= LOBULATED_AT:
        return "lobulated"
    if ratings["margin"] <= ILL_DEFINED_AT:
        return "ill_defined"
    return "smooth"


def sample_cube(image: Image, center_voxel, spacing_mm, size: int) -> np.ndarray:
    """HU cube (size^3, z y x) at ``spacing_mm`` centred on ``center_voxel`` (trilinear, edge values outside)."""
    from scipy.ndimage import map_coordinates

    c = np.asarray(center_voxel, float)
    sp = np.asarray(image.spacing, float)
    offs = (np.arange(size) - (size - 1) / 2.0)
    axes = [c[a] + offs * float(spacing_mm[a]) / sp[a] for a in range(3)]
    g = np.stack(np.meshgrid(*axes, indexing="ij")).reshape(3, -1)
    return map_coordinates(np.asarray(image.array, np.float32), g, order=1, mode="nearest").reshape((size,) * 3)


def refine_nodule(image: Image, center_voxel, model: Nodule3DModel | None = None,
                  weights_dir: str | Path = WEIGHTS_DIR) -> NoduleRefinement:
    """Segment and characterise the nodule at ``center_voxel`` (z, y, x, image voxels) of a CT ``image`` in HU.

    ``model`` defaults to the shipped weights (loaded once per process and reused)."""
    from scipy.ndimage import map_coordinates

    from radscribe.models.nodule3d import expected_rating, prob_at_least
    from radscribe.models.nodule_candidates import RULES

    c = np.asarray(center_voxel, float)
    if c.shape != (3,) or not np.all(np.isfinite(c)) or np.any(c < 0) or np.any(c > np.array(image.shape) - 1):
        raise RadscribeInputError(f"nodule centre {center_voxel} is not a voxel (z, y, x) of the image {image.shape}")
    mdl = model if model is not None else _cached_model(str(weights_dir))
    size = mdl.cube_size
    hu_cube = sample_cube(image, c, mdl.spacing_mm, size)
    x = mdl.hu.to_intensity(hu_cube)[None] / 255.0
    pr = predict_cubes(mdl.net, x, tta=True)
    # ROI of the image covered by the cube, and each ROI voxel's coordinate in the cube
    sp = np.asarray(image.spacing, float)
    half_mm = (size - 1) / 2.0 * np.asarray(mdl.spacing_mm, float)
    lo = np.maximum(np.floor(c - half_mm / sp), 0).astype(int)
    hi = np.minimum(np.ceil(c + half_mm / sp) + 1, np.array(image.shape)).astype(int)
    axes = [(np.arange(lo[a], hi[a]) - c[a]) * sp[a] / float(mdl.spacing_mm[a]) + (size - 1) / 2.0 for a in range(3)]
    g = np.stack(np.meshgrid(*axes, indexing="ij"))
    prob = map_coordinates(pr["prob"][0], g.reshape(3, -1), order=1, mode="constant", cval=0.0).reshape(g.shape[1:])
    mask = prob >= 0.5
    notes = [f"resampled to the LIDC cubes' assumed voxel size {tuple(mdl.spacing_mm)} mm (z, y, x)"]
    if mask.any():
        mask = _component_near(mask, tuple(int(round(v)) for v in c - lo))
    else:
        notes.append("the network found no nodule voxel at this centre")
    hu_roi = np.asarray(image.array, np.float32)[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    meas = measure_nodule(mask, tuple(float(s) for s in sp), hu_roi, solid_hu=RULES["solid_hu"]) if mask.any() else None
    tp = pr["texture_prob"][0]
    exp = expected_rating(pr["ordinal"][0])
    p_malig = float(prob_at_least(pr["ordinal"][0, ORDINAL_RATINGS.index("malignancy")], 3))
    stage2 = mdl.config.get("stage2")
    if stage2:  # texture and malignancy from the mask's HU and size (cube clipped to the training window)
        from radscribe.models.nodule3d_stage2 import apply_stage2, cube_features

        hu_clip = mdl.hu.to_hu(mdl.hu.to_intensity(hu_cube))
        X = cube_features(hu_clip, pr["mask"][0], tp, exp, mdl.spacing_mm)[None]
        tps, pms = apply_stage2(stage2, X)
        tp, p_malig = tps[0], float(pms[0])
    texture = TEXTURE_CLASSES[int(np.argmax(tp))]
    ratings = {k: float(exp[i]) for i, k in enumerate(ORDINAL_RATINGS)}
    solid = meas.solid_long_axis_mm if (meas is not None and texture == "part_solid") else None
    return NoduleRefinement(mask, tuple(int(v) for v in lo), image.shape, meas, texture,
                            {k: float(v) for k, v in zip(TEXTURE_CLASSES, tp)}, ratings, p_malig,
                            margin_word(ratings), solid, tuple(notes))


def _component_near(mask: np.ndarray, p: tuple[int, int, int]) -> np.ndarray:
    """The component of ``mask`` at voxel p (or the nearest one): the nodule, not a neighbour."""
    from scipy import ndimage as ndi

    lab, n = ndi.label(mask)
    if n <= 1:
        return mask
    p = tuple(min(max(v, 0), s - 1) for v, s in zip(p, mask.shape))
    if lab[p]:
        return lab == lab[p]
    pts = np.argwhere(lab > 0)
    return lab == lab[tuple(pts[int(np.argmin(((pts - np.array(p)) ** 2).sum(1)))])]
