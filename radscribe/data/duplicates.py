"""Duplicate images between a training split and a test split.

Two checks, both on decoded 8-bit grayscale pixels (so a re-encoded or renamed copy is still found):

* **exact**: SHA-256 of the pixel array (shape included);
* **near**: perceptual hash (``imagehash.phash``, 64 bits: DCT of a 32x32 resize) within a small
  Hamming distance (default 4 of 64 bits), which finds resized, re-compressed, slightly cropped or
  contrast-shifted copies. Every near pair is also given the Pearson correlation of the two images
  at 64x64 so a reader can judge it; nothing is dropped silently - callers report metrics with and
  without the test images that have a training near-duplicate.

Command line (reports counts and examples, optionally a JSON with every pair)::

    radscribe duplicates brain_tumor_mri [--max-distance 4] [--json out.json]
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import imagehash
import numpy as np
from PIL import Image as PILImage
from tqdm import tqdm

from radscribe.data.paths import dataset_dir
from radscribe.errors import RadscribeInputError
from radscribe.io.output import atomic_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
DEFAULT_MAX_DISTANCE = 4


@dataclass(frozen=True)
class ImageHash:
    """Hashes of one image: ``key`` (e.g. its relative path), pixel SHA-256, 64-bit pHash, 64x64 thumbnail."""

    key: str
    sha256: str
    phash: int
    thumb: np.ndarray = field(repr=False, compare=False)


def _to_uint8_2d(array: np.ndarray) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[-1] in (3, 4):  # RGB(A) -> luminance as PIL's "L" does
        a = (a[..., 0] * 299 + a[..., 1] * 587 + a[..., 2] * 114) / 1000
    if a.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {a.shape}")
    if a.dtype != np.uint8:
        lo, hi = float(np.min(a)), float(np.max(a))
        a = np.zeros(a.shape, np.uint8) if hi <= lo else np.round((a - lo) / (hi - lo) * 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def hash_array(key: str, array: np.ndarray) -> ImageHash:
    """Hashes of a 2D image (uint8 as is; other dtypes min-max scaled to 0..255 first)."""
    a = _to_uint8_2d(array)
    sha = hashlib.sha256(np.asarray(a.shape, np.int64).tobytes() + a.tobytes()).hexdigest()
    pil = PILImage.fromarray(a, mode="L")
    ph = imagehash.phash(pil)  # 8x8 bits
    bits = np.packbits(ph.hash.astype(np.uint8).ravel())
    thumb = np.asarray(pil.resize((64, 64), PILImage.BILINEAR), dtype=np.float32)
    return ImageHash(key, sha, int.from_bytes(bits.tobytes(), "big"), thumb)


def hash_volume(key: str, volume: np.ndarray) -> ImageHash:
    """Exact hash of a 3D volume; its pHash/thumbnail come from the mean projection along axis 0."""
    v = np.ascontiguousarray(volume)
    sha = hashlib.sha256(np.asarray(v.shape, np.int64).tobytes() + str(v.dtype).encode() + v.tobytes()).hexdigest()
    h = hash_array(key, v.astype(np.float32).mean(axis=0))
    return ImageHash(key, sha, h.phash, h.thumb)


def read_gray(path: Path) -> np.ndarray:
    """An image file as 2D uint8 grayscale (RGB files converted with PIL's 'L')."""
    with PILImage.open(path) as im:
        return np.asarray(im.convert("L"))


def hash_files(paths: Sequence[Path], root: Path | None = None, progress: str | None = None) -> list[ImageHash]:
    """Hash every file; keys are paths relative to ``root`` when given. Unreadable files are skipped with a warning."""
    out = []
    for p in tqdm(paths, desc=progress, disable=progress is None, leave=False):
        try:
            arr = read_gray(p)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"warning: {p}: cannot read ({exc})", file=sys.stderr)
            continue
        out.append(hash_array(str(p.relative_to(root)) if root else str(p), arr))
    return out


@dataclass(frozen=True)
class DuplicateReport:
    """Test images with a training copy: ``exact`` (test_key, train_key) and ``near``
    (test_key, train_key, hamming_distance, correlation_64px); near excludes exact pairs."""

    n_train: int
    n_test: int
    max_distance: int
    exact: tuple[tuple[str, str], ...]
    near: tuple[tuple[str, str, int, float], ...]

    @property
    def test_keys_exact(self) -> set[str]:
        return {t for t, _ in self.exact}

    @property
    def test_keys_any(self) -> set[str]:
        """Test images with an exact or near training duplicate."""
        return self.test_keys_exact | {t for t, *_ in self.near}

    def summary(self) -> dict:
        return {
            "n_train": self.n_train, "n_test": self.n_test, "max_hamming_distance": self.max_distance,
            "exact_pairs": len(self.exact), "test_images_with_exact_train_copy": len(self.test_keys_exact),
            "near_pairs": len(self.near),
            "test_images_with_exact_or_near_train_copy": len(self.test_keys_any),
        }

    def to_dict(self) -> dict:
        return {**self.summary(), "exact": [list(p) for p in self.exact],
                "near": [[t, r, int(d), round(float(c), 4)] for t, r, d, c in self.near]}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float(np.array_equal(a, b))


def find_duplicates(train: Sequence[ImageHash], test: Sequence[ImageHash],
                    max_distance: int = DEFAULT_MAX_DISTANCE, max_pairs_per_image: int = 5) -> DuplicateReport:
    """Exact (same pixels) and near (pHash Hamming distance <= ``max_distance``) train copies of test images.

    At most ``max_pairs_per_image`` near partners (the closest) are listed per test image.
    """
    by_sha: dict[str, str] = {}
    for h in train:
        by_sha.setdefault(h.sha256, h.key)
    exact = tuple((h.key, by_sha[h.sha256]) for h in test if h.sha256 in by_sha)
    exact_keys = {t for t, _ in exact}
    near: list[tuple[str, str, int, float]] = []
    if train and test and max_distance >= 0:
        tr = np.array([h.phash for h in train], dtype=np.uint64)
        for start in range(0, len(test), 256):
            chunk = test[start:start + 256]
            te = np.array([h.phash for h in chunk], dtype=np.uint64)
            dist = np.bitwise_count(te[:, None] ^ tr[None, :])
            for i in np.nonzero((dist <= max_distance).any(axis=1))[0]:
                t = chunk[i]
                cand = np.nonzero(dist[i] <= max_distance)[0]
                cand = cand[np.argsort(dist[i, cand], kind="stable")]
                for j in cand[:max_pairs_per_image]:
                    r = train[j]
                    if t.key in exact_keys and r.sha256 == t.sha256:
                        continue
                    near.append((t.key, r.key, int(dist[i, j]), _corr(t.thumb, r.thumb)))
    return DuplicateReport(len(train), len(test), max_distance, exact, tuple(near))


def hamming_histogram(train: Sequence[ImageHash], test: Sequence[ImageHash], upto: int = 10) -> list[int]:
    """For d = 0..upto: how many test images have their nearest training pHash at distance <= d."""
    if not train or not test:
        return [0] * (upto + 1)
    tr = np.array([h.phash for h in train], dtype=np.uint64)
    best = np.array([int(np.bitwise_count(np.uint64(h.phash) ^ tr).min()) for h in test])
    return [int((best <= d).sum()) for d in range(upto + 1)]


# --- the shared datasets' layouts -------------------------------------------------------------------

def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _folder_split(train_dir: str, test_dir: str) -> Callable[[Path], tuple[list[Path], list[Path]]]:
    return lambda root: (_files(root / train_dir), _files(root / test_dir))


def _cov_ctr(root: Path) -> tuple[list[Path], list[Path]]:
    ann = json.loads((root / "annotation.json").read_text())
    return ([root / e["image"] for e in ann["train"] + ann["val"]], [root / e["image"] for e in ann["test"]])


#: dataset folder -> function(root) -> (train files, test files). Validation is carved from train.
FOLDER_DATASETS: dict[str, Callable[[Path], tuple[list[Path], list[Path]]]] = {
    "brain_tumor_mri": _folder_split("Training", "Testing"),
    "chest_xray_pneumonia": _folder_split("train", "test"),
    "ct_kidney": _folder_split("Training", "Testing"),
    "cov_ctr": _cov_ctr,
}
#: npz datasets -> their files (the first is the default).
NPZ_DATASETS = {"adrenalmnist3d": ("adrenalmnist3d_64.npz", "adrenalmnist3d.npz")}


def dataset_hashes(name: str, progress: bool = True, npz_file: str | None = None
                   ) -> tuple[list[ImageHash], list[ImageHash]]:
    """(train hashes, test hashes) of one shared dataset (train includes the validation part)."""
    root = dataset_dir(name)
    if name in FOLDER_DATASETS:
        tr, te = FOLDER_DATASETS[name](root)
        return (hash_files(tr, root, f"{name} train" if progress else None),
                hash_files(te, root, f"{name} test" if progress else None))
    if name in NPZ_DATASETS:
        if npz_file is not None and npz_file not in NPZ_DATASETS[name]:
            raise RadscribeInputError(f"{name} has no npz file {npz_file!r}; known: {NPZ_DATASETS[name]}")
        d = np.load(root / (npz_file or NPZ_DATASETS[name][0]))
        tr = [hash_volume(f"train/{i}", v) for i, v in enumerate(d["train_images"])]
        tr += [hash_volume(f"val/{i}", v) for i, v in enumerate(d["val_images"])]
        te = [hash_volume(f"test/{i}", v) for i, v in enumerate(d["test_images"])]
        return tr, te
    raise RadscribeInputError(f"no duplicate check defined for dataset {name!r}; "
                              f"known: {', '.join([*FOLDER_DATASETS, *NPZ_DATASETS])}")


def cli_duplicates(args) -> int:
    """``radscribe duplicates DATASET... [--max-distance N] [--json FILE]``: counts and examples per dataset."""
    max_distance = DEFAULT_MAX_DISTANCE if args.max_distance is None else args.max_distance
    if not 0 <= max_distance <= 64:
        raise RadscribeInputError(f"--max-distance must be 0..64 bits of the 64-bit pHash, got {max_distance}")
    known = [*FOLDER_DATASETS, *NPZ_DATASETS]
    unknown = [n for n in args.datasets if n not in known]
    if unknown:  # before any hashing: a typo in the third name does not cost the first two
        raise RadscribeInputError(f"no duplicate check defined for dataset {unknown[0]!r}; known: {', '.join(known)}")
    result = {}
    for name in args.datasets:
        t0 = time.perf_counter()
        tr, te = dataset_hashes(name)
        rep = find_duplicates(tr, te, max_distance)
        d = rep.to_dict()
        d["nearest_distance_cumulative"] = hamming_histogram(tr, te)
        d["wall_s"] = round(time.perf_counter() - t0, 1)
        result[name] = d
        print(f"{name}: {json.dumps(rep.summary())} ({d['wall_s']} s)")
        print(f"  test images whose nearest train pHash is within d=0..10: {d['nearest_distance_cumulative']}")
        for t, r in rep.exact[:3]:
            print(f"  exact: {t} == {r}")
        for t, r, dist, c in rep.near[:3]:
            print(f"  near:  {t} ~ {r} (hamming {dist}, corr {c:.3f})")
    if args.json:
        with atomic_file(args.json) as fh:
            json.dump(result, fh, indent=1)
    return 0
