"""The generic training loop on tiny synthetic data: learning, checkpoints, resume, early stop, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from torch import nn

from radscribe.cli import main
from radscribe.data.datasets import CachedDataset
from radscribe.errors import ConfigError
from radscribe.models.classifier import build_classifier
from radscribe.train import loop
from radscribe.train.config import TrainConfig, load_config, parse_config
from radscribe.train.loop import fit, load_weights, predict_logits


class Tiny(nn.Module):
    """(B, 1, 16, 16) -> 2 logits; the model defines its loss, as the loop expects."""

    target_layer = "conv"

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).mean((2, 3)))

    def loss(self, logits, y):
        return F.cross_entropy(logits, y)


def _squares(n: int, seed: int) -> CachedDataset:
    """Class 1 has a bright 6x6 square, class 0 a dark field: separable, but not in one step."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    im = rng.integers(0, 60, size=(n, 16, 16)).astype(np.uint8)
    for i in np.flatnonzero(y):
        r, c = rng.integers(0, 10, 2)
        im[i, r:r + 6, c:c + 6] = 220
    return CachedDataset(im, y)


def _interrupted_fit(monkeypatch, init: dict, cfg: TrainConfig, run_dir: Path) -> None:
    """Train from ``init`` into ``run_dir`` and crash (KeyboardInterrupt) during epoch 3's validation."""
    calls = {"n": 0}
    real = loop.classification_metrics

    def crash_on_third_epoch(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    part = Tiny()
    part.load_state_dict(init)
    monkeypatch.setattr(loop, "classification_metrics", crash_on_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(part, _squares(48, 0), _squares(24, 1), cfg, run_dir, progress=False)
    monkeypatch.setattr(loop, "classification_metrics", real)


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=4, batch_size=8, lr=0.05, schedule="cosine", monitor="val_loss", patience=10)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_goes_down_and_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    m = Tiny()
    res = fit(m, _squares(64, 0), _squares(24, 1), _cfg(lr=0.1), tmp_path, progress=False)
    h = res.history
    assert [r["epoch"] for r in h] == [1, 2, 3, 4]
    assert h[-1]["train_loss"] < 0.7 * h[0]["train_loss"] and h[-1]["val_loss"] < h[0]["val_loss"]
    assert h[-1]["val_acc"] >= 0.9
    assert json.loads((tmp_path / "history.json").read_text()) == h
    assert (tmp_path / "history.csv").read_text().startswith("epoch,train_loss")
    # best.safetensors holds the selected epoch: a fresh model loaded from it predicts identically
    fresh = Tiny()
    load_weights(fresh, tmp_path / "best.safetensors")
    load_weights(m, tmp_path / "best.safetensors")
    lf, _ = predict_logits(fresh, _squares(24, 1))
    lm, _ = predict_logits(m, _squares(24, 1))
    assert np.array_equal(lf, lm)
    best = min(h, key=lambda r: r["val_loss"])
    assert res.best_epoch == best["epoch"]


def test_resume_continues_from_the_saved_epoch(tmp_path, monkeypatch):
    torch.manual_seed(0)
    init = Tiny().state_dict()
    full = Tiny()
    full.load_state_dict(init)
    fit(full, _squares(48, 0), _squares(24, 1), _cfg(), tmp_path / "a", progress=False)

    _interrupted_fit(monkeypatch, init, _cfg(), tmp_path / "b")
    assert [r["epoch"] for r in json.loads((tmp_path / "b" / "history.json").read_text())] == [1, 2]

    resumed = Tiny()  # different init: everything must come from the checkpoint
    res = fit(resumed, _squares(48, 0), _squares(24, 1), _cfg(), tmp_path / "b", resume=True, progress=False)
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4]
    a, b = load_file(str(tmp_path / "a" / "last.safetensors")), load_file(str(tmp_path / "b" / "last.safetensors"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_ema_selects_averaged_weights_and_resumes_exactly(tmp_path, monkeypatch):
    torch.manual_seed(0)
    init = Tiny().state_dict()
    cfg = _cfg(ema_decay=0.9)
    full = Tiny()
    full.load_state_dict(init)
    fit(full, _squares(48, 0), _squares(24, 1), cfg, tmp_path / "a", progress=False)
    raw, ema = load_file(str(tmp_path / "a" / "last.safetensors")), load_file(str(tmp_path / "a" / "last_ema.safetensors"))
    assert any(not torch.allclose(raw[k], ema[k]) for k in raw)  # the average is not the raw model
    # the averaged model is what validation scored: best.safetensors of the last epoch equals last_ema
    hist = json.loads((tmp_path / "a" / "history.json").read_text())
    if hist[-1]["best"]:
        best = load_file(str(tmp_path / "a" / "best.safetensors"))
        assert all(torch.equal(best[k], ema[k]) for k in ema)

    _interrupted_fit(monkeypatch, init, cfg, tmp_path / "b")
    fit(Tiny(), _squares(48, 0), _squares(24, 1), cfg, tmp_path / "b", resume=True, progress=False)
    b = load_file(str(tmp_path / "b" / "last_ema.safetensors"))
    for k in ema:
        assert torch.allclose(ema[k], b[k], atol=1e-5), k


def test_ema_with_cached_features_is_refused(tmp_path):
    m = build_classifier("effnet-lite0", n_classes=2, pretrained=False, freeze_blocks=12)
    with pytest.raises(ConfigError, match="ema_decay"):
        fit(m, _squares(8, 0), _squares(8, 1), _cfg(ema_decay=0.9, cache_views=1), tmp_path, progress=False)


def test_label_smoothing_changes_the_loss_and_is_validated():
    m = build_classifier("effnet-lite0", n_classes=2, pretrained=False, label_smoothing=0.1)
    logits, y = torch.tensor([[4.0, -4.0]]), torch.tensor([0])
    assert m.loss(logits, y) > F.cross_entropy(logits, y) + 0.05
    with pytest.raises(ConfigError, match="label_smoothing"):
        build_classifier("effnet-lite0", n_classes=2, pretrained=False, label_smoothing=1.5)


def test_resume_without_checkpoint_is_an_input_error(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        fit(Tiny(), _squares(8, 0), _squares(8, 1), _cfg(), tmp_path, resume=True, progress=False)


def test_early_stopping_triggers(tmp_path):
    torch.manual_seed(0)
    # lr so small that val accuracy cannot change: no improvement after epoch 1
    res = fit(Tiny(), _squares(32, 0), _squares(16, 1),
              _cfg(epochs=10, lr=1e-12, monitor="val_acc", patience=2, schedule="constant"), tmp_path, progress=False)
    assert res.stopped_early and res.epochs_run == 3 and res.best_epoch == 1
    assert len(res.history) == 3


def test_cached_frozen_features_train_the_same_network(tmp_path):
    """cache_views trains head_forward on frozen features; the full forward must see the same model."""
    torch.manual_seed(0)
    m = build_classifier("effnet-lite0", 2, pretrained=False, freeze_blocks=12)
    frozen_before = m.net._blocks[3].state_dict()["_depthwise_conv.weight"].clone()
    ds = _squares(16, 0)
    ds.images = np.stack([np.kron(i, np.ones((2, 2), np.uint8)) for i in ds.images])  # 32 px
    from radscribe.train.augment import make_batch_transform

    tf = make_batch_transform("ct", 2)
    res = fit(m, ds, ds, _cfg(epochs=2, lr=1e-3, cache_views=2), tmp_path, tf, progress=False)
    assert torch.equal(m.net._blocks[3].state_dict()["_depthwise_conv.weight"], frozen_before)
    load_weights(m, tmp_path / "last.safetensors")
    logits, y = predict_logits(m, ds, tf)
    full_loss = loop.classification_metrics(logits, y)["loss"]
    assert abs(full_loss - res.history[-1]["val_loss"]) < 1e-3


def test_config_errors_name_the_field(tmp_path):
    good = yaml.safe_load(Path("radscribe/train/configs/ct-kidney.yaml").read_text())
    assert parse_config(good).name == "ct-kidney"
    bad = json.loads(json.dumps(good))
    bad["train"]["epochs"] = 0
    with pytest.raises(ConfigError, match="train.epochs"):
        parse_config(bad)
    bad = json.loads(json.dumps(good))
    del bad["data"]["input_size"]
    with pytest.raises(ConfigError, match="data.input_size"):
        parse_config(bad)
    bad = json.loads(json.dumps(good))
    bad["labels"] = ["normal", "cyst", "stone", "tumor"]  # American spelling is not the knowledge id
    with pytest.raises(ConfigError, match="label 'tumor'"):
        parse_config(bad)
    bad["labels"] = ["normal", "cyst", "stone"]
    with pytest.raises(ConfigError, match="differ from the registry"):
        parse_config(bad)
    bad = json.loads(json.dumps(good))
    bad["train"]["lerning_rate"] = 0.1
    with pytest.raises(ConfigError, match="lerning_rate"):
        parse_config(bad)
    bad = json.loads(json.dumps(good))
    bad["data"]["split"] = "group"
    with pytest.raises(ConfigError, match="group_pattern"):
        parse_config(bad)
    bad["data"]["group_pattern"] = "^person"
    with pytest.raises(ConfigError, match="capturing group"):
        parse_config(bad)
    (tmp_path / "x.yaml").write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "x.yaml")


def test_all_shipped_configs_validate():
    from radscribe.train.ct_slice import load_ct_config  # the multi-label detector has its own config type

    for p in sorted(Path("radscribe/train/configs").glob("*.yaml")):
        assert (load_ct_config if p.stem == "ct-chest-slice" else load_config)(p).name == p.stem


def test_cli_train_bad_config_is_error_exit_2(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({"name": "ct-kidney", "labels": ["normal", "cyst"]}))
    assert main(["train", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "data" in err


def test_cli_train_end_to_end_on_a_tiny_npz(tmp_path, monkeypatch, capsys):
    """MedMNIST-style npz -> train -> calibrate on val -> test once; existing run folder needs a flag."""
    rng = np.random.default_rng(0)
    d = tmp_path / "data" / "tiny3d"
    d.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", 24), ("val", 12), ("test", 12)):
        y = np.arange(n) % 2
        v = np.zeros((n, 12, 12, 12), np.uint8)
        for i in range(n):
            s = 3 if y[i] == 0 else 5  # class 1: a bigger blob
            c = rng.integers(3, 7, 3)
            v[i, c[0] - s // 2:c[0] + s, c[1] - s // 2:c[1] + s, c[2] - s // 2:c[2] + s] = 255
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = v, y[:, None]
    np.savez(d / "tiny.npz", **arrays)
    monkeypatch.setenv("RADSCRIBE_DATA", str(tmp_path / "data"))
    cfg = {"name": "tiny-3d", "labels": ["normal", "adrenal_mass"], "seed": 0,
           "data": {"format": "npz", "dataset": "tiny3d", "npz_file": "tiny.npz", "input_size": 16, "augment": "3d"},
           "model": {"arch": "cnn3d", "width": 4, "depth": 2},
           "train": {"epochs": 2, "batch_size": 8, "lr": 0.01, "monitor": "val_auc"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(out)]) == 0
    summary = json.loads((out / "val_metrics.json").read_text())
    assert summary["command"] == f"radscribe train {tmp_path / 'c.yaml'} --out {out}"
    assert summary["calibration"]["split"] == "val" and summary["calibration"]["temperature"] > 0
    test = json.loads((out / "test_metrics.json").read_text())
    assert test["split"] == "test" and test["n"] == 12 and 0 <= test["acc"] <= 1
    assert sum(map(sum, test["confusion"])) == 12
    assert load_config(out / "config.yaml").command == summary["command"]
    capsys.readouterr()
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(out), "--resume"]) == 0
