"""Duplicate finder on synthetic images: exact and slightly perturbed copies are found, others not."""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage

from radscribe.cli import main
from radscribe.data.duplicates import find_duplicates, hash_array, hash_files, hash_volume, hamming_histogram


def _scene(rng, n_blobs=6, size=128):
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size), np.float32)
    for _ in range(n_blobs):
        cy, cx, r = rng.uniform(10, size - 10), rng.uniform(10, size - 10), rng.uniform(5, 20)
        img += rng.uniform(0.3, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return np.clip(img / img.max() * 255, 0, 255).astype(np.uint8)


def test_exact_and_near_found_different_not(rng, tmp_path):
    train_imgs = [_scene(rng) for _ in range(20)]
    exact_copy = train_imgs[3].copy()
    # perturbed copy: resized to 100 px, brightened, a little noise, saved as JPEG and read back
    pil = PILImage.fromarray(train_imgs[7]).resize((100, 100), PILImage.BILINEAR)
    arr = np.clip(np.asarray(pil, np.float32) * 1.05 + 8 + rng.normal(0, 2, (100, 100)), 0, 255).astype(np.uint8)
    PILImage.fromarray(arr).save(tmp_path / "near.jpg", quality=80)
    different = _scene(np.random.default_rng(12345))

    train = [hash_array(f"tr{i}", a) for i, a in enumerate(train_imgs)]
    test = [hash_array("t_exact", exact_copy), hash_files([tmp_path / "near.jpg"], tmp_path)[0],
            hash_array("t_diff", different)]
    rep = find_duplicates(train, test, max_distance=6)
    assert rep.exact == (("t_exact", "tr3"),)
    near = {(t, r) for t, r, *_ in rep.near}
    assert ("near.jpg", "tr7") in near
    assert all(t != "t_diff" for t, *_ in rep.near)
    assert rep.test_keys_any == {"t_exact", "near.jpg"}
    (t, r, d, corr), = [p for p in rep.near if p[0] == "near.jpg"]
    assert d <= 6 and corr > 0.95
    s = rep.summary()
    assert s["exact_pairs"] == 1 and s["test_images_with_exact_or_near_train_copy"] == 2
    hist = hamming_histogram(train, test, upto=10)
    assert hist[0] == 1 and hist[6] >= 2 and hist == sorted(hist)


def test_exact_means_pixels_not_bytes(rng):
    a = _scene(rng)
    assert hash_array("a", a).sha256 == hash_array("b", a.astype(np.float32)).sha256  # same after 0..255 scaling
    b = a.copy()
    b[0, 0] ^= 1
    assert hash_array("a", a).sha256 != hash_array("b", b).sha256
    assert hash_array("a", a).sha256 != hash_array("c", a.reshape(64, 256)).sha256  # shape is part of the hash


def test_volume_hash(rng):
    v = (rng.random((8, 16, 16)) * 255).astype(np.uint8)
    assert hash_volume("a", v).sha256 == hash_volume("b", v.copy()).sha256
    assert hash_volume("a", v).sha256 != hash_volume("b", v[::-1].copy()).sha256


def test_cli_unknown_dataset_fails_before_any_work(capsys, tmp_path):
    assert main(["duplicates", "ct_kidney", "no_such_dataset", "--json", str(tmp_path / "d.json")]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: no duplicate check defined for dataset 'no_such_dataset'") and len(err.splitlines()) == 1
    assert out == "" and not (tmp_path / "d.json").exists()  # the known first name was not hashed
    assert main(["duplicates", "ct_kidney", "--max-distance", "65"]) == 2


def test_real_dataset_small(shared_dataset, tmp_path):
    root = shared_dataset("ct_kidney")
    files = sorted((root / "Testing" / "Cyst").glob("*.jpg"))[:5]
    hs = hash_files(files, root)
    rep = find_duplicates(hs, hs, max_distance=0)
    assert len(rep.exact) == 5  # every image is its own exact copy
