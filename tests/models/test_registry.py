"""Registry contract: specs, build_model shapes, load_model checks, preprocessing, `radscribe models`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from radscribe.cli import main
from radscribe.errors import ConfigError, RadscribeInputError
from radscribe.io.image import Image
from radscribe.knowledge.ontology import BODY_REGIONS, FINDING_KINDS
from radscribe.models.registry import (
    LoadedModel,
    build_model,
    get_spec,
    list_specs,
    load_model,
)

NAMES = {
    "cxr-pneumonia": ("normal", "pneumonia"),
    "mri-brain-tumor": ("glioma", "meningioma", "pituitary_tumour", "normal"),
    "ct-kidney": ("normal", "cyst", "stone", "tumour"),
    "ct-adrenal3d": ("normal", "adrenal_mass"),
}


def test_specs_follow_the_contract():
    assert [s.name for s in list_specs()] == list(NAMES)
    for name, labels in NAMES.items():
        s = get_spec(name)
        assert s.task == "classification" and s.labels == labels and s.normal_label == "normal"
        assert s.modality in {"CR", "MR", "CT"} and s.body_region in BODY_REGIONS and s.dims in (2, 3)
        assert all(lbl in FINDING_KINDS for lbl in s.finding_labels) and "normal" not in s.finding_labels
        assert s.weights_dir.name == name and s.input_size >= 16 and s.description
    assert get_spec("ct-adrenal3d").dims == 3 and get_spec("cxr-pneumonia").modality == "CR"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(RadscribeInputError, match="known models: cxr-pneumonia, mri-brain-tumor"):
        get_spec("cxr-pneumothorax")
    with pytest.raises(RadscribeInputError):
        build_model("nope")


@pytest.mark.parametrize("name", list(NAMES))
def test_build_model_forward_shape(name):
    torch.manual_seed(0)
    spec = get_spec(name)
    m = build_model(name, pretrained=False).eval()
    x = torch.randn(2, 3, 64, 64) if spec.dims == 2 else torch.rand(2, 1, 28, 28, 28)
    with torch.no_grad():
        out = m(x)
    assert out.shape == (2, len(spec.labels)) and torch.isfinite(out).all()
    assert dict(m.named_modules())[m.target_layer] is not None


def _loaded(name: str) -> LoadedModel:
    spec = get_spec(name)
    return LoadedModel(spec, build_model(name, pretrained=False), {"labels": list(spec.labels)})


def test_preprocess_2d_any_size_and_range():
    lm = _loaded("ct-kidney")
    s = lm.spec.input_size
    hu = np.random.default_rng(0).normal(40, 400, size=(1, 300, 250)).astype(np.float32)  # HU-like, odd shape
    x = lm.preprocess(Image(hu, modality="CT", units="HU"))
    assert x.shape == (3, s, s) and x.dtype == torch.float32
    # channels equal before ImageNet normalisation; unit range maps to [(0-mean)/std, (1-mean)/std]
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    unit = x * std[:, None, None] + mean[:, None, None]
    assert torch.allclose(unit[0], unit[1], atol=1e-5) and unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5
    # the same picture in 8-bit gives the same input (percentile normalisation removes the range)
    u8 = np.clip((hu - hu.min()) / (hu.max() - hu.min()) * 255, 0, 255)
    assert torch.allclose(lm.preprocess(Image(u8)), x, atol=0.1)


def test_preprocess_refuses_volume_for_2d_unless_asked():
    lm = _loaded("cxr-pneumonia")
    vol = np.zeros((5, 40, 40), np.float32)
    vol[2, 10:30, 10:30] = 1.0  # only the middle slice has content
    with pytest.raises(RadscribeInputError, match="middle_slice"):
        lm.preprocess(Image(vol))
    x = lm.preprocess(Image(vol), middle_slice=True)
    s = lm.spec.input_size
    assert x.shape == (3, s, s) and float(x.std()) > 0.5


def test_preprocess_3d_and_predict_proba_sums_to_one():
    lm = _loaded("ct-adrenal3d")
    vol = np.zeros((40, 50, 45), np.float32)
    vol[10:30, 20:35, 15:30] = 255
    x = lm.preprocess(Image(vol))
    s = lm.spec.input_size
    assert x.shape == (1, s, s, s) and 0 <= float(x.min()) and float(x.max()) <= 1
    p = lm.predict_proba(x[None])
    assert p.shape == (1, 2) and np.isclose(p.sum(), 1.0)
    with pytest.raises(RadscribeInputError, match="3D model"):
        lm.preprocess(Image(np.zeros((1, 30, 30), np.float32)))


def _write_weights(tmp_path: Path, name: str, **cfg_changes) -> Path:
    spec = get_spec(name)
    m = build_model(name, pretrained=False)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(tmp_path / "model.safetensors"))
    cfg = {"name": name, "labels": list(spec.labels), "data": {"input_size": spec.input_size},
           "model": {"arch": spec.arch, "pretrained": True}}
    cfg.update(cfg_changes)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def test_load_model_checks_weights_against_config(tmp_path):
    d = _write_weights(tmp_path, "ct-adrenal3d")
    (d / "calibration.json").write_text(json.dumps({"temperature": 1.7}))
    lm = load_model("ct-adrenal3d", weights_dir=d)
    assert lm.temperature == 1.7 and not lm.module.training
    x = torch.rand(1, 1, 28, 28, 28)
    assert np.allclose(lm.predict_proba(x), torch.softmax(lm.logits(x) / 1.7, 1).numpy(), atol=1e-6)
    (d / "config.yaml").write_text(yaml.safe_dump({"labels": ["normal", "pneumonia"], "data": {"input_size": 64}}))
    with pytest.raises(ConfigError, match="labels"):
        load_model("ct-adrenal3d", weights_dir=d)
    spec = get_spec("ct-adrenal3d")
    (d / "config.yaml").write_text(yaml.safe_dump({"labels": list(spec.labels), "data": {"input_size": spec.input_size},
                                                    "model": {"arch": "cnn3d", "width": 8}}))
    with pytest.raises(ConfigError, match="do not match"):
        load_model("ct-adrenal3d", weights_dir=d)
    with pytest.raises(ConfigError, match="no trained weights"):
        load_model("ct-adrenal3d", weights_dir=tmp_path / "absent")


@pytest.mark.parametrize("name", list(NAMES))
def test_committed_weights_load_and_match_config(name):
    spec = get_spec(name)
    if not (spec.weights_dir / "model.safetensors").is_file():
        pytest.skip(f"no committed weights for {name} yet ({spec.weights_dir})")
    w = spec.weights_dir / "model.safetensors"
    assert w.stat().st_size < 25e6
    lm = load_model(name)
    cfg = lm.config
    assert tuple(cfg["labels"]) == spec.labels and cfg["data"]["input_size"] == spec.input_size
    assert cfg["command"].startswith("radscribe train")
    cal = json.loads((spec.weights_dir / "calibration.json").read_text())
    assert cal["split"] == "val" and cal["temperature"] == lm.temperature > 0
    shape = (1, 64, 64) if spec.dims == 2 else (32, 32, 32)
    x = lm.preprocess(Image(np.random.default_rng(0).random(shape, dtype=np.float32) * 255))
    p = lm.predict_proba(x[None])
    assert p.shape == (1, len(spec.labels)) and np.isclose(p.sum(), 1.0, atol=1e-5)


def test_cli_models_lists_without_torch(tmp_path):
    code = ("import sys; from radscribe.cli import main; rc = main(['models']); "
            "print('TORCH', 'torch' in sys.modules); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "TORCH False" in r.stdout
    for name in NAMES:
        assert name in r.stdout
    assert "pituitary_tumour" in r.stdout


def test_cli_models_in_process(capsys):
    from radscribe.models.detector import DETECTORS

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in DETECTORS)     # the classifiers and every other detector
