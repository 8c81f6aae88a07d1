"""The brain_tumor_seg dataset (128 axial MR slices with hand-drawn tumour masks, 98 without a tumour)
and its fixed cross-validation folds.

* :func:`list_records` - one :class:`SegRecord` per file of ``yes/`` and ``no/``. A ``yes/`` image whose
  mask does not have the image's size (two in the source: Y163, Y92) keeps its presence label but has no
  mask (``mask_path`` None): it is left out of segmentation training and metrics, and the notes say so.
* :func:`make_folds` - 5 folds by file with a fixed seed, stratified by tumour size (no tumour, and
  tertiles of the mask's fraction of the image), near-duplicate images (pHash within 4 of 64 bits)
  kept in the same fold so that no copy of a test image is trained on. Fold :data:`TEST_FOLD` is the
  fixed test fold of the shipped model.
* :func:`load_arrays` - the network inputs (brain-cropped square, ``size`` px, 0..1) and masks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radscribe.data.paths import dataset_dir
from radscribe.errors import RadscribeInputError

DATASET = "brain_tumor_seg"
N_FOLDS = 5
FOLD_SEED = 14
#: Fold held out from the shipped model (its test fold).
TEST_FOLD = 0
#: pHash Hamming distance at or below which two images count as near duplicates.
DUPLICATE_DISTANCE = 4


@dataclass(frozen=True)
class SegRecord:
    """One slice: ``key`` ('yes/Y1.jpg'), presence label, mask file (None when there is none usable)."""

    key: str
    image_path: Path
    tumour: bool
    mask_path: Path | None
    #: Fraction of the image covered by the mask (0 without a tumour or without a usable mask).
    mask_fraction: float = 0.0


@dataclass(frozen=True)
class SegDataset:
    records: tuple[SegRecord, ...]
    folds: tuple[int, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def indices(self, fold: int, *, heldout: bool) -> np.ndarray:
        f = np.asarray(self.folds)
        return np.flatnonzero(f == fold) if heldout else np.flatnonzero(f != fold)


def _read_mask(path: Path) -> np.ndarray:
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        return np.asarray(im.convert("L")) >= 128


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image as PILImage
    from PIL import ImageOps

    with PILImage.open(path) as im:
        w, h = ImageOps.exif_transpose(im).size
    return h, w


def list_records(root: Path | None = None) -> tuple[list[SegRecord], list[str]]:
    """Every slice of the dataset, sorted by key, and notes on what was left out."""
    root = Path(root) if root else dataset_dir(DATASET)
    recs: list[SegRecord] = []
    notes: list[str] = []
    for sub, tumour in (("yes", True), ("no", False)):
        d = root / sub
        if not d.is_dir():
            raise RadscribeInputError(f"{root} has no {sub}/ folder; is it the brain_tumor_seg dataset?")
        for p in sorted(d.iterdir()):
            if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            mpath, frac = None, 0.0
            if tumour:
                m = root / "masks" / f"{p.stem}.png"
                if not m.is_file():
                    notes.append(f"{sub}/{p.name}: no mask file; presence only")
                else:
                    mask = _read_mask(m)
                    if mask.shape != _image_size(p):
                        notes.append(f"{sub}/{p.name}: mask {mask.shape[0]}x{mask.shape[1]} does not match the image "
                                     f"{'x'.join(map(str, _image_size(p)))}; presence only")
                    elif not mask.any():
                        notes.append(f"{sub}/{p.name}: empty mask; presence only")
                    else:
                        mpath, frac = m, float(mask.mean())
            recs.append(SegRecord(f"{sub}/{p.name}", p, tumour, mpath, frac))
    if not recs:
        raise RadscribeInputError(f"no images in {root}/yes or {root}/no")
    return recs, notes


def _duplicate_groups(recs: list[SegRecord]) -> list[int]:
    """Group id per record: union of near-duplicate pairs (pHash distance <= DUPLICATE_DISTANCE)."""
    from radscribe.data.duplicates import hash_array, read_gray

    hashes = [hash_array(r.key, read_gray(r.image_path)).phash for r in recs]
    parent = list(range(len(recs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(recs)):
        for j in range(i + 1, len(recs)):
            if bin(hashes[i] ^ hashes[j]).count("1") <= DUPLICATE_DISTANCE:
                parent[find(i)] = find(j)
    return [find(i) for i in range(len(recs))]


def size_stratum(recs: list[SegRecord]) -> list[int]:
    """0 = no tumour, 1-3 = tertile of the mask fraction among masked slices (2 for a tumour of unknown size)."""
    fr = np.array([r.mask_fraction for r in recs if r.mask_path is not None])
    cuts = np.quantile(fr, [1 / 3, 2 / 3]) if fr.size else np.array([0.0, 0.0])
    return [0 if not r.tumour else 2 if r.mask_path is None
            else 1 + int(np.searchsorted(cuts, r.mask_fraction, side="right")) for r in recs]


def make_folds(recs: list[SegRecord], n_folds: int = N_FOLDS, seed: int = FOLD_SEED) -> tuple[list[int], int]:
    """(fold per record, number of near-duplicate groups with more than one image)."""
    from sklearn.model_selection import StratifiedGroupKFold

    strata = size_stratum(recs)
    groups = _duplicate_groups(recs)
    folds = [0] * len(recs)
    skf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(skf.split(np.zeros(len(recs)), strata, groups)):
        for i in test:
            folds[i] = k
    n_multi = sum(1 for g in set(groups) if groups.count(g) > 1)
    return folds, n_multi


def load_dataset(root: Path | None = None) -> SegDataset:
    """Records + folds + notes (fast: hashes only, no network preparation)."""
    recs, notes = list_records(root)
    folds, n_dup = make_folds(recs)
    if n_dup:
        notes.append(f"{n_dup} group(s) of near-duplicate images (pHash <= {DUPLICATE_DISTANCE}) kept within one fold")
    return SegDataset(tuple(recs), tuple(folds), tuple(notes))


def load_arrays(ds: SegDataset, size: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 1, size, size) float32 0..1, masks (N, 1, size, size) uint8; 255 = unknown, no usable mask),
    both on the brain-cropped square (:func:`radscribe.preprocess.brain.prepare_slice`)."""
    from tqdm import tqdm

    from radscribe.io.raster import read_raster
    from radscribe.preprocess.brain import crop, prepare_slice

    t0 = time.time()
    xs = np.zeros((len(ds.records), 1, size, size), np.float32)
    ys = np.zeros((len(ds.records), 1, size, size), np.uint8)
    for i, r in enumerate(tqdm(ds.records, desc="reading brain_tumor_seg", disable=not progress, leave=False)):
        img, _ = read_raster(r.image_path)
        x, box, _ = prepare_slice(img.array[0], size)
        xs[i] = x
        if r.mask_path is not None:
            ys[i, 0] = crop(_read_mask(r.mask_path).astype(np.float32), box, size) >= 0.5
        elif r.tumour:
            ys[i, 0] = 255
    if progress:
        print(f"prepared {len(xs)} slices at {size} px in {time.time() - t0:.1f} s", flush=True)
    return xs, ys
