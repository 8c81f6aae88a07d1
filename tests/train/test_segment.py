"""Segmentation training loop: learns a synthetic disc task, writes its run folder, resumes exactly."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from radscribe.errors import ConfigError
from radscribe.train.segment import train_fold
from radscribe.train.segment_config import SegRunConfig, load_seg_config


def _data(n=16, s=32, seed=0):
    g = np.random.default_rng(seed)
    x = g.uniform(0, 0.2, (n, 1, s, s)).astype(np.float32)
    y = np.zeros((n, 1, s, s), np.uint8)
    yy, xx = np.mgrid[:s, :s]
    tumour = np.zeros(n, int)
    for i in range(n):
        if i % 2 == 0:
            cy, cx, r = g.uniform(10, 22, 2).tolist() + [g.uniform(3, 6)]
            d = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            x[i, 0][d] += 0.7
            y[i, 0][d] = 1
            tumour[i] = 1
    return x, y, tumour, (np.arange(n) // 2) % 4  # every fold holds tumour and tumour-free slices


def _cfg(epochs, arch="unet"):
    return SegRunConfig.model_validate({
        "name": "test", "data": {"input_size": 32, "augment": True},
        "model": {"arch": arch, "channels": [4, 8, 16], "num_res_units": 1, "deep_supr_num": 1},
        "train": {"epochs": epochs, "batch_size": 4, "lr": 0.01, "warmup_epochs": 0}})


def test_deterministic_and_run_folder(tmp_path):
    torch.set_num_threads(1)
    x, y, t, folds = _data()
    full = train_fold(_cfg(2), 0, x, y, t, folds, tmp_path / "a", progress=False)
    train_fold(_cfg(2), 0, x, y, t, folds, tmp_path / "b", progress=False)
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    hist = json.loads((tmp_path / "a" / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2]
    assert full["n_heldout"] == 4 and full["n_train"] == 12
    # a completed fold is not trained again
    again = train_fold(_cfg(2), 0, x, y, t, folds, tmp_path / "a", progress=False)
    assert again == full


def test_resume_from_epoch_checkpoint(tmp_path):
    torch.set_num_threads(1)
    x, y, t, folds = _data()
    ref = tmp_path / "ref"
    train_fold(_cfg(3), 1, x, y, t, folds, ref, progress=False)
    # the same run, interrupted right after epoch 2's checkpoint, then resumed
    import radscribe.train.segment as seg

    run = tmp_path / "run"

    class Stop(Exception):
        pass

    orig = seg._write_history

    def stop_after_two(d, history):
        orig(d, history)
        if len(history) == 2:
            raise Stop

    seg._write_history = stop_after_two
    try:
        with pytest.raises(Stop):
            train_fold(_cfg(3), 1, x, y, t, folds, run, progress=False)
    finally:
        seg._write_history = orig
    assert not (run / "model.safetensors").exists()
    train_fold(_cfg(3), 1, x, y, t, folds, run, progress=False)  # resumes at epoch 3
    a = load_file(str(ref / "model.safetensors"))
    b = load_file(str(run / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1, 2, 3]


def test_learns_discs_and_deep_supervision(tmp_path):
    torch.set_num_threads(1)
    x, y, t, folds = _data(24)
    m = train_fold(_cfg(12), 0, x, y, t, folds, tmp_path / "u", progress=False)
    assert m["heldout_dice_network_res"] > 0.3  # an untrained net scores ~0.1 (random half-image masks)
    d = train_fold(_cfg(1, "dynunet"), 0, x, y, t, folds, tmp_path / "d", progress=False)
    assert d["parameters"] > 0 and np.isfinite(d["heldout_dice_network_res"])


def test_config_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nmodel: {arch: vnet}\ntrain: {epochs: 1}\n")
    with pytest.raises(ConfigError, match="model.arch"):
        load_seg_config(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_seg_config(tmp_path / "missing.yaml")
