"""Dataset adapters: deterministic stratified splits disjoint from test, shared preparation, npz."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radscribe.data.datasets import (
    CachedDataset,
    block_val_split,
    dedupe_against_test,
    file_digest,
    file_group,
    folder_splits,
    group_val_split,
    list_folder,
    npz_splits,
    prepare_2d,
    prepare_3d,
    stratified_val_split,
    to_unit_range,
)
from radscribe.errors import RadscribeInputError
from radscribe.train.augment import augment_2d, make_batch_transform, to_network_2d


def test_stratified_split_is_deterministic_disjoint_and_stratified():
    labels = np.array([0] * 100 + [1] * 300 + [2] * 37)
    t1, v1 = stratified_val_split(labels, 0.1, seed=0)
    t2, v2 = stratified_val_split(labels, 0.1, seed=0)
    assert np.array_equal(t1, t2) and np.array_equal(v1, v2)
    assert not set(t1) & set(v1) and len(t1) + len(v1) == len(labels)
    assert [int((labels[v1] == c).sum()) for c in range(3)] == [10, 30, 4]
    _, v3 = stratified_val_split(labels, 0.1, seed=1)
    assert not np.array_equal(v1, v3)


def test_block_split_keeps_neighbouring_slices_together():
    """Val is one contiguous run of file numbers per class (natural order: 2 < 10)."""
    paths = [f"/d/Cyst/Cyst-{i}.jpg" for i in range(1, 101)] + [f"/d/Stone/Stone-{i}.jpg" for i in range(1, 51)]
    labels = [0] * 100 + [1] * 50
    order = np.random.default_rng(3).permutation(len(paths))  # listing order must not matter
    paths, labels = [paths[i] for i in order], [labels[i] for i in order]
    t, v = block_val_split(paths, labels, 0.1, seed=0)
    assert np.array_equal(v, block_val_split(paths, labels, 0.1, seed=0)[1]) and not set(t) & set(v)
    for cls, n in (("Cyst", 10), ("Stone", 5)):
        nums = sorted(int(paths[i].rsplit("-", 1)[1][:-4]) for i in v if f"/{cls}/" in paths[i])
        assert len(nums) == n and nums == list(range(nums[0], nums[0] + n))


def test_group_split_never_splits_a_patient():
    pattern = r"^(person\d+|IM-\d+)"
    names = [f"person{i // 3}_bacteria_{i}.jpeg" for i in range(60)] + [f"IM-{i:04d}-0001.jpeg" for i in range(40)]
    groups = [file_group(n, pattern) for n in names]
    assert groups[0] == "person0" and groups[-1] == "IM-0039" and file_group("odd.png", pattern) == "odd.png"
    labels = [1] * 60 + [0] * 40
    t, v = group_val_split(groups, labels, 0.1, seed=0)
    assert not {groups[i] for i in t} & {groups[i] for i in v}
    assert 6 <= sum(labels[i] for i in v) <= 8 and sum(1 - labels[i] for i in v) == 4


def test_to_unit_range_handles_any_intensity_range():
    hu = np.linspace(-1000, 3000, 1000, dtype=np.float32).reshape(10, 100)
    u = to_unit_range(hu)
    assert u.min() == 0 and u.max() == 1 and u.dtype == np.float32
    assert np.allclose(to_unit_range(hu * 0.01 + 7), u, atol=1e-5)  # affine intensity change: same result
    assert not to_unit_range(np.full((5, 5), 42.0)).any()
    mask = np.zeros((20, 20, 20))
    mask[0, 0, :3] = 255  # < 0.5 % of voxels: percentiles coincide, falls back to min-max
    assert to_unit_range(mask).max() == 1


def test_training_and_inference_preparation_agree():
    """A cached training image through the batch transform equals prepare_2d of the raw image (to 8-bit)."""
    rng = np.random.default_rng(0)
    raw = rng.normal(100, 30, size=(250, 230)).astype(np.float32)
    infer = prepare_2d(raw, 64)
    from radscribe.data.datasets import _to_u8, resize_unit

    cached = CachedDataset(_to_u8(resize_unit(to_unit_range(raw), 64))[None], np.array([0]))
    x, _ = cached[0]
    train = make_batch_transform("cxr", 2)(x[None], torch.Generator().manual_seed(0), False)[0]
    assert train.shape == infer.shape == (3, 64, 64)
    assert np.abs(train.numpy() - infer).max() < 1.01 / 255 / 0.224
    assert prepare_3d(rng.random((20, 30, 25)), 16).shape == (1, 16, 16, 16)
    with pytest.raises(RadscribeInputError):
        prepare_2d(np.zeros((4, 4, 4)), 32)


def test_cxr_augmentation_never_flips_left_right():
    """A bright block on the image's left stays on the left under CXR augmentation (laterality)."""
    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 8:24, 2:12] = 1
    out = augment_2d(x, "cxr", torch.Generator().manual_seed(0))
    left, right = out[..., :16].sum((1, 2, 3)), out[..., 16:].sum((1, 2, 3))
    assert bool((left > right).all())
    flipped = augment_2d(x, "mri", torch.Generator().manual_seed(0))
    assert bool((flipped[..., 16:].sum((1, 2, 3)) > flipped[..., :16].sum((1, 2, 3))).any())
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert to_network_2d(out).shape == (64, 3, 32, 32)


def _png_tree(root, counts):
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    for split, per_class in counts.items():
        for cls, n in per_class.items():
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                PILImage.fromarray(rng.integers(0, 255, (40, 36), dtype=np.uint8)).save(d / f"{cls}-{i}.png")


def test_folder_splits_on_a_synthetic_tree(tmp_path):
    _png_tree(tmp_path, {"Training": {"Normal": 20, "Cyst": 10}, "Testing": {"Normal": 4, "Cyst": 4}})
    kw = dict(labels=("normal", "cyst"), class_dirs={"normal": "Normal", "cyst": "Cyst"}, train_dir="Training",
              test_dir="Testing", size=24, val_fraction=0.2, seed=0, progress=False)
    a, b = folder_splits(tmp_path, **kw), folder_splits(tmp_path, **kw)
    assert a["val"].names == b["val"].names and len(a["val"]) == 6 and len(a["train"]) == 24
    assert sorted(a["val"].labels.tolist()) == [0, 0, 0, 0, 1, 1]
    assert not set(a["train"].names) & set(a["val"].names)
    assert all("/Testing/" in n for n in a["test"].names) and len(a["test"]) == 8
    assert a["train"].images.shape == (24, 24, 24) and a["train"].images.dtype == np.uint8
    with pytest.raises(RadscribeInputError, match="does not exist"):
        list_folder(tmp_path, "Training", {"normal": "Nope"}, ("normal",))


def test_npz_splits_resize_and_keep_official_split(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for s, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{s}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{s}_labels"] = (np.arange(n) % 2)[:, None].astype(np.uint8)
    np.savez(tmp_path / "m.npz", **arrays)
    ds = npz_splits(tmp_path / "m.npz", 32)
    assert [len(ds[s]) for s in ("train", "val", "test")] == [6, 2, 3]
    assert ds["test"].images.shape == (3, 32, 32) and ds["test"].labels.tolist() == [0, 1, 0]
    with pytest.raises(RadscribeInputError, match="no 'val_images'"):
        np.savez(tmp_path / "bad.npz", train_images=arrays["train_images"], train_labels=arrays["train_labels"])
        npz_splits(tmp_path / "bad.npz", 32)


@pytest.mark.parametrize("dataset,train_dir,test_dir,class_dirs,n_leaked", [
    ("ct_kidney", "Training", "Testing", {"normal": "Normal", "cyst": "Cyst", "stone": "Stone", "tumour": "Tumor"},
     400),
    ("brain_tumor_mri", "Training", "Testing", {"glioma": "glioma", "meningioma": "meningioma",
                                                 "pituitary_tumour": "pituitary", "normal": "notumor"}, 216),
    ("chest_xray_pneumonia", "train", "test", {"normal": "NORMAL", "pneumonia": "PNEUMONIA"}, 0),
])
def test_real_split_is_deterministic_and_disjoint_from_test(shared_dataset, dataset, train_dir, test_dir, class_dirs,
                                                            n_leaked):
    """Byte-identical copies of test images in the training folders (all 400 ct_kidney test images,
    216 brain MRI ones) are dropped, so train and val are disjoint from test by content."""
    root = shared_dataset(dataset)
    labels = tuple(class_dirs)
    train = list_folder(root, train_dir, class_dirs, labels)
    test = list_folder(root, test_dir, class_dirs, labels)
    kept, notes = dedupe_against_test(train, test)
    test_digests = {file_digest(s.path) for s in test}
    train_all_digests = {file_digest(s.path) for s in train}
    assert sum(file_digest(s.path) in train_all_digests for s in test) == n_leaked  # test images seen in training
    assert notes["dropped_identical_to_test"] >= n_leaked
    t, v = stratified_val_split([s.label for s in kept], 0.1, seed=0)
    assert np.array_equal(v, stratified_val_split([s.label for s in kept], 0.1, seed=0)[1])
    assert abs(len(v) - 0.1 * len(kept)) <= len(labels)
    train_digests = [file_digest(kept[i].path) for i in t]
    val_digests = [file_digest(kept[i].path) for i in v]
    assert not test_digests & set(train_digests) and not test_digests & set(val_digests)
    assert not set(train_digests) & set(val_digests)
