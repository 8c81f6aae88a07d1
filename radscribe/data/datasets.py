"""Dataset adapters for the image classifiers, and the one intensity/size preparation they share.

* :class:`FolderDataset` - ``<root>/<split_dir>/<class_dir>/*.jpg`` (chest_xray_pneumonia,
  brain_tumor_mri, ct_kidney); a validation set is carved from the training folder with a fixed
  seed, stratified by class (:func:`stratified_val_split`).
* :class:`NpzDataset` - MedMNIST ``.npz`` files (pneumoniamnist, adrenalmnist3d) with their own
  official train/val/test split.

Every sample is prepared exactly as :meth:`radscribe.models.registry.LoadedModel.preprocess`
prepares an inference image: percentile (0.5-99.5) normalisation to 0..1, resize, then for 2D
3 channels + ImageNet mean/std. Images are cached in memory as 0..1 ``uint8`` at input size, so an
epoch costs only augmentation + the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from radscribe.errors import RadscribeInputError
from radscribe.preprocess.intensity import to_unit_range

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def resize_unit(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2D (y, x) or 3D (z, y, x) float array to size^2 / size^3 (area-averaged when shrinking)."""
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None]
    if arr.ndim == 2:
        if arr.shape == (size, size):
            return arr.astype(np.float32)
        out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                            antialias=bool(min(arr.shape) > size))
    else:
        if arr.shape == (size, size, size):
            return arr.astype(np.float32)
        out = F.interpolate(t, size=(size, size, size), mode="trilinear", align_corners=False)
    return out[0, 0].numpy()


def imagenet_normalize(unit: np.ndarray) -> np.ndarray:
    """(S, S) 0..1 image -> (3, S, S) float32 with ImageNet mean/std."""
    x = np.repeat(unit[None].astype(np.float32), 3, axis=0)
    return (x - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]


def prepare_2d(arr: np.ndarray, size: int) -> np.ndarray:
    """One 2D image (y, x) of any intensity range -> (3, size, size) network input."""
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise RadscribeInputError(f"expected a 2D image (rows, columns), got shape {arr.shape}")
    return imagenet_normalize(np.clip(resize_unit(to_unit_range(arr), size), 0, 1))


def prepare_3d(arr: np.ndarray, size: int) -> np.ndarray:
    """One volume (z, y, x) of any intensity range -> (1, size, size, size) 0..1 network input."""
    if arr.ndim != 3 or min(arr.shape) < 2:
        raise RadscribeInputError(f"expected a 3D volume (z, y, x), got shape {arr.shape}")
    return np.clip(resize_unit(to_unit_range(arr), size), 0, 1)[None].astype(np.float32)


def read_gray(path: Path) -> np.ndarray:
    """A JPEG/PNG file as a float32 (y, x) grayscale array (RGB with equal channels -> luminance)."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            return np.asarray(im.convert("L"), dtype=np.float32)
    except OSError as exc:
        raise RadscribeInputError(f"cannot read image {path}: {exc}") from exc


def stratified_val_split(labels: Sequence[int], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with ``fraction`` of every class in val; deterministic for a seed."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_val = int(round(len(idx) * fraction))
        val.append(rng.permutation(idx)[:n_val])
    v = np.sort(np.concatenate(val)) if val else np.array([], dtype=int)
    t = np.setdiff1d(np.arange(len(labels)), v)
    return t, v


def _natural_key(path: str) -> tuple:
    """File-name sort key with numbers compared as numbers ("Cyst-2" < "Cyst-10")."""
    import re

    name = Path(path).name
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def block_val_split(paths: Sequence[str], labels: Sequence[int], fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, one contiguous window of files (in natural file-name order) becomes val.

    For datasets whose numbered files are consecutive slices of the same scans (ct_kidney: the
    pHash distance between neighbouring numbers has median 2 of 64 bits, random pairs 28), a
    random split puts near-copies of val images in training and val accuracy says nothing."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = np.array(sorted(idx.tolist(), key=lambda i: _natural_key(paths[i])), dtype=int)
        n_val = int(round(len(idx) * fraction))
        start = int(rng.integers(0, len(idx) - n_val + 1))
        val.append(idx[start:start + n_val])
    v = np.sort(np.concatenate(val)).astype(int)
    return np.setdiff1d(np.arange(len(labels)), v), v


def group_val_split(groups: Sequence[str], labels: Sequence[int], fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, whole groups (e.g. patients) go to val until it holds ``fraction`` of the class."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    rng = np.random.default_rng(seed)
    val: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        target = int(round(len(idx) * fraction))
        got = 0
        for gname in rng.permutation(np.unique(groups[idx])):
            if got >= target:
                break
            members = idx[groups[idx] == gname]
            val += members.tolist()
            got += len(members)
    v = np.sort(np.asarray(val, dtype=int))
    return np.setdiff1d(np.arange(len(labels)), v), v


def file_group(path: str, pattern: str | None) -> str:
    """Group id of a file: the first regex group of ``pattern`` matched on the file name (else the name)."""
    import re

    name = Path(path).name
    m = re.match(pattern, name) if pattern else None
    return m.group(1) if m else name


@dataclass(frozen=True)
class Sample:
    path: str
    label: int


def list_folder(root: Path, split_dir: str, class_dirs: dict[str, str], labels: Sequence[str]) -> list[Sample]:
    """Every image under root/split_dir/<class_dirs[label]>/, sorted by path, with its label index."""
    out: list[Sample] = []
    for label, sub in class_dirs.items():
        if label not in labels:
            raise RadscribeInputError(f"class_dirs label {label!r} is not one of the labels {tuple(labels)}")
        d = Path(root) / split_dir / sub
        if not d.is_dir():
            raise RadscribeInputError(f"class folder {d} does not exist")
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise RadscribeInputError(f"class folder {d} has no JPEG/PNG images")
        out += [Sample(str(p), labels.index(label)) for p in files]
    return sorted(out, key=lambda s: s.path)


class CachedDataset(Dataset):
    """In-memory 0..1 uint8 images at input size, (N, S, S) or (N, S, S, S), with integer labels.

    ``__getitem__`` returns (x, y): x float32 0..1 of shape (1, S, S) / (1, S, S, S); the 2D
    ImageNet normalisation and augmentation happen on batches (:mod:`radscribe.train.augment`)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, names: Sequence[str] | None = None):
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.names = list(names) if names is not None else [str(i) for i in range(len(labels))]
        self.notes: dict = {}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.images[i].astype(np.float32) / 255.0)[None]
        return x, torch.tensor(self.labels[i])


def _to_u8(unit: np.ndarray) -> np.ndarray:
    return np.round(np.clip(unit, 0, 1) * 255).astype(np.uint8)


def cache_images(paths: Sequence[str], size: int, progress: bool = True) -> np.ndarray:
    """Read, percentile-normalise and resize every file -> (N, size, size) uint8."""
    from tqdm import tqdm

    out = np.empty((len(paths), size, size), dtype=np.uint8)
    for i, p in enumerate(tqdm(paths, desc=f"caching {size}px", disable=not progress, leave=False)):
        out[i] = _to_u8(resize_unit(to_unit_range(read_gray(Path(p))), size))
    return out


def file_digest(path: str) -> str:
    """MD5 of a file's bytes (to find byte-identical images across splits)."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def dedupe_against_test(train: list[Sample], test: list[Sample]) -> tuple[list[Sample], dict]:
    """Drop training files byte-identical to a test file, and repeated copies within training.

    Public folder datasets are not always clean: every ct_kidney Testing image is also in
    Training, and 216 of the 1,311 brain_tumor_mri Testing images are. Returns the kept samples
    and counts of what was dropped."""
    test_d = {file_digest(s.path) for s in test}
    kept, seen, n_test, n_rep = [], set(), 0, 0
    for s in train:
        d = file_digest(s.path)
        if d in test_d:
            n_test += 1
        elif d in seen:
            n_rep += 1
        else:
            seen.add(d)
            kept.append(s)
    return kept, {"dropped_identical_to_test": n_test, "dropped_repeated_in_train": n_rep, "kept": len(kept)}


def folder_splits(root: Path, labels: Sequence[str], class_dirs: dict[str, str], train_dir: str, test_dir: str,
                  size: int, val_fraction: float, seed: int, splits: Sequence[str] = ("train", "val", "test"),
                  progress: bool = True, dedupe: bool = True, split: str = "random",
                  group_pattern: str | None = None) -> dict[str, CachedDataset]:
    """train/val (carved from ``train_dir`` with ``seed``) and test (``test_dir``) CachedDatasets.

    With ``dedupe`` (default) training files byte-identical to a test file or to an earlier
    training file are dropped first, so val and test are disjoint from train by content; the
    counts are in every returned dataset's ``notes``. ``split``: "random" (stratified),
    "block" (:func:`block_val_split`) or "group" (:func:`group_val_split` with ``group_pattern``)."""
    train_all = list_folder(root, train_dir, class_dirs, labels)
    test = list_folder(root, test_dir, class_dirs, labels)
    notes: dict = {}
    if dedupe:
        train_all, notes = dedupe_against_test(train_all, test)
    labels_all = [s.label for s in train_all]
    if split == "block":
        tr, va = block_val_split([s.path for s in train_all], labels_all, val_fraction, seed)
    elif split == "group":
        tr, va = group_val_split([file_group(s.path, group_pattern) for s in train_all], labels_all, val_fraction,
                                 seed)
    else:
        tr, va = stratified_val_split(labels_all, val_fraction, seed)
    notes = {**notes, "val_split": split}
    chosen = {"train": [train_all[i] for i in tr], "val": [train_all[i] for i in va], "test": test}
    out = {}
    for name in splits:
        samples = chosen[name]
        out[name] = CachedDataset(cache_images([s.path for s in samples], size, progress),
                                  np.array([s.label for s in samples]), [s.path for s in samples])
    for ds in out.values():
        ds.notes = notes
    return out


def npz_splits(path: Path, size: int, splits: Sequence[str] = ("train", "val", "test")) -> dict[str, CachedDataset]:
    """MedMNIST npz (keys <split>_images, <split>_labels) -> CachedDatasets resized to ``size``."""
    try:
        data = np.load(path)
    except OSError as exc:
        raise RadscribeInputError(f"cannot read MedMNIST file {path}: {exc}") from exc
    out = {}
    for name in splits:
        key = f"{name}_images"
        if key not in data.files:
            raise RadscribeInputError(f"{path} has no {key!r} array (has {data.files})")
        imgs = data[key]
        prepared = np.stack([_to_u8(resize_unit(to_unit_range(im), size)) for im in imgs])
        out[name] = CachedDataset(prepared, data[f"{name}_labels"].reshape(-1).astype(np.int64),
                                  [f"{path.name}:{name}:{i}" for i in range(len(imgs))])
    return out
