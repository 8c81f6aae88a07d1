"""The lidc_nodules dataset (134 real LIDC-IDRI nodule cubes 51^3 with one radiologist's mask and ratings),
its intensity -> HU mapping and its fixed cross-validation folds.

* :func:`load_lidc` - the cubes in radscribe's voxel order (z, y, x), masks, ratings, case ids and the
  texture class (0 ground glass = LIDC texture 1, 1 part solid = 2-3, 2 solid = 4-5, as SOURCE.md groups
  them). The npz stores the slice axis last: its third axis is the one the in-plane views are blurred
  along (interpolated between slices) and along which the masks are 1.4 x shorter; it becomes z here.
* :func:`estimate_hu_mapping` - a linear ``HU = slope * v + intercept`` for the uint8 intensities ``v``,
  from the two peaks of the pooled histogram: aerated lung (the low peak; the cubes hold almost no free
  air, so the peak is lung parenchyma, taken at :data:`LUNG_PEAK_HU`) and soft tissue (the high peak,
  which large solid nodules sit on, taken at :data:`SOFT_TISSUE_HU`). docs/parts/lidc.md gives the
  estimate and its checks (the window it implies, the fat shoulder, ground-glass nodules' HU).
* :func:`make_folds` - 5 folds, fixed seed, grouped by case (no patient in train and test) and stratified
  by texture class (scikit-learn ``StratifiedGroupKFold``).

Voxel size is not given by the source. :data:`ASSUMED_SPACING_MM` is (1.0, 0.7, 0.7) mm (z, y, x): LIDC's
median in-plane pixel is ~0.7 mm, and the masks' median extent is 1.4 x larger in-plane than along the slice
axis, which for nodules that are round on average means a slice step 1.4 x the pixel (~1 mm; the blur along
it says it was interpolated from thicker LIDC slices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radscribe.data.paths import dataset_dir
from radscribe.errors import RadscribeInputError

DATASET = "lidc_nodules"
FILE = "lidc_nodules.npz"
N_FOLDS = 5
FOLD_SEED = 0
#: Voxel size (z, y, x) mm assumed for the cubes (see the module doc).
ASSUMED_SPACING_MM = (1.0, 0.7, 0.7)
#: Reference HU of the two histogram peaks the mapping is fitted to.
LUNG_PEAK_HU = -860.0
SOFT_TISSUE_HU = 40.0
#: Texture classes, in the knowledge module's density words (radscribe.knowledge ATTRIBUTES["density"]).
TEXTURE_CLASSES = ("ground_glass", "part_solid", "solid")
#: The ordinal LIDC ratings (1-5) the heads predict.
ORDINAL_RATINGS = ("malignancy", "spiculation", "lobulation", "margin")
RATINGS = ("texture", "malignancy", "spiculation", "lobulation", "margin", "sphericity", "subtlety")


@dataclass(frozen=True)
class HUMapping:
    """``HU = slope * v + intercept`` for intensities v in 0..255 (the training scale is v / 255)."""

    slope: float
    intercept: float
    lung_peak: float          # intensity of the low (aerated lung) peak
    tissue_peak: float        # intensity of the high (soft tissue) peak

    def to_hu(self, v: np.ndarray | float) -> np.ndarray | float:
        return self.slope * np.asarray(v, np.float32) + self.intercept

    def to_intensity(self, hu: np.ndarray | float) -> np.ndarray:
        """HU -> 0..255 intensity (clipped to the window the cubes hold)."""
        return np.clip((np.asarray(hu, np.float32) - self.intercept) / self.slope, 0.0, 255.0)

    @property
    def window_hu(self) -> tuple[float, float]:
        """The HU range that 0..255 covers."""
        return float(self.intercept), float(self.slope * 255.0 + self.intercept)

    def to_dict(self) -> dict[str, float]:
        return {"slope": self.slope, "intercept": self.intercept, "lung_peak": self.lung_peak,
                "tissue_peak": self.tissue_peak}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> HUMapping:
        return cls(float(d["slope"]), float(d["intercept"]), float(d["lung_peak"]), float(d["tissue_peak"]))


@dataclass(frozen=True)
class LidcData:
    """Cubes (N, 51, 51, 51) uint8 in (z, y, x), masks bool, ratings (N,) float, case ids, texture class."""

    names: tuple[str, ...]
    cases: tuple[str, ...]
    volumes: np.ndarray
    masks: np.ndarray
    ratings: dict[str, np.ndarray]
    texture_class: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def texture_class(texture: np.ndarray) -> np.ndarray:
    """LIDC texture rating 1-5 -> 0 ground glass (1), 1 part solid (2-3), 2 solid (4-5)."""
    t = np.rint(np.asarray(texture, float)).astype(int)
    if t.size and (t.min() < 1 or t.max() > 5):
        raise RadscribeInputError(f"LIDC texture ratings must be 1..5, got {t.min()}..{t.max()}")
    return np.where(t <= 1, 0, np.where(t <= 3, 1, 2))


def case_of(name: str) -> str:
    """``'12_nod3_ann1'`` -> ``'12'`` (the patient / case)."""
    if "_nod" not in name:
        raise RadscribeInputError(f"LIDC cube name {name!r} is not '<case>_nod<k>_ann<j>'")
    return name.split("_nod", 1)[0]


def load_lidc(path=None) -> LidcData:
    """Read ``lidc_nodules.npz`` (default: the shared dataset folder) into :class:`LidcData`."""
    p = path if path is not None else dataset_dir(DATASET) / FILE
    try:
        d = np.load(p)
    except (OSError, ValueError) as exc:
        raise RadscribeInputError(f"cannot read the LIDC cubes {p}: {exc}") from None
    missing = [k for k in ("names", "volumes", "masks", *RATINGS) if k not in d.files]
    if missing:
        raise RadscribeInputError(f"{p} lacks {', '.join(missing)}")
    names = tuple(str(n) for n in d["names"])
    vols = np.ascontiguousarray(np.asarray(d["volumes"], np.uint8).transpose(0, 3, 1, 2))
    masks = np.ascontiguousarray(np.asarray(d["masks"], bool).transpose(0, 3, 1, 2))
    ratings = {k: np.asarray(d[k], np.float32) for k in RATINGS}
    return LidcData(names, tuple(case_of(n) for n in names), vols, masks, ratings,
                    texture_class(ratings["texture"]))


def _peak(h: np.ndarray, lo: int, hi: int) -> float:
    """Sub-bin position of the largest bin of h[lo:hi] (parabola through the log counts)."""
    i = lo + int(np.argmax(h[lo:hi]))
    if 0 < i < len(h) - 1 and min(h[i - 1:i + 2]) > 0:
        y0, y1, y2 = np.log(h[i - 1:i + 2])
        den = y0 - 2 * y1 + y2
        if den < 0:
            return float(i + 0.5 * (y0 - y2) / den)
    return float(i)


def estimate_hu_mapping(volumes: np.ndarray, lung_hu: float = LUNG_PEAK_HU,
                        tissue_hu: float = SOFT_TISSUE_HU, split: int = 120) -> HUMapping:
    """Fit ``HU = slope * v + intercept`` to the pooled histogram's low peak (below ``split``, aerated
    lung at ``lung_hu``) and high peak (soft tissue at ``tissue_hu``); histogram smoothed by sigma 2 bins."""
    from scipy.ndimage import gaussian_filter1d

    h = np.bincount(np.asarray(volumes, np.uint8).ravel(), minlength=256).astype(float)
    hs = gaussian_filter1d(h, 2.0)
    lo, hi = _peak(hs, 1, split), _peak(hs, split, 255)
    if hs[1:split].max() <= 0 or hs[split:255].max() <= 0 or hi - lo < 20:
        raise RadscribeInputError("the intensity histogram has no separate lung and soft-tissue peaks")
    slope = (tissue_hu - lung_hu) / (hi - lo)
    return HUMapping(float(slope), float(lung_hu - slope * lo), lo, hi)


def make_folds(cases: tuple[str, ...] | list[str], texture_cls: np.ndarray, n_folds: int = N_FOLDS,
               seed: int = FOLD_SEED) -> np.ndarray:
    """Fold index (0..n_folds-1) of every cube: grouped by case, stratified by texture class, fixed seed."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = np.full(len(cases), -1, int)
    sgkf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, te) in enumerate(sgkf.split(np.zeros(len(cases)), np.asarray(texture_cls), np.asarray(cases))):
        folds[te] = k
    return folds


def mapping_checks(data: LidcData, m: HUMapping) -> dict[str, object]:
    """Independent checks of a mapping (docs/parts/lidc.md): the window it implies, the histogram's local
    maxima in HU (a fat peak should appear near -100 HU), the interior HU of each texture class (mask eroded by
    one voxel; ground glass is typically -500..-700 HU) and the low tail of each cube."""
    from scipy import ndimage as ndi
    from scipy.signal import find_peaks

    h = ndi.gaussian_filter1d(np.bincount(data.volumes.ravel(), minlength=256).astype(float), 1.0)
    peaks, _ = find_peaks(h, prominence=500)
    out: dict[str, object] = {"window_hu": m.window_hu,
                              "histogram_maxima": [(int(p), round(float(m.to_hu(p)))) for p in peaks]}
    for c, name in enumerate(TEXTURE_CLASSES):
        med = []
        for i in np.flatnonzero(data.texture_class == c):
            core = ndi.binary_erosion(data.masks[i])
            if core.sum() > 20:
                med.append(float(np.median(m.to_hu(data.volumes[i][core]))))
        out[f"{name}_interior_hu"] = {"n": len(med), "median": round(float(np.median(med))),
                                      "iqr": [round(float(q)) for q in np.percentile(med, [25, 75])]}
    out["p0.1_hu_median_cube"] = round(float(m.to_hu(np.median([np.percentile(v, 0.1) for v in data.volumes]))))
    out["fraction_at_255"] = float((data.volumes == 255).mean())
    return out
