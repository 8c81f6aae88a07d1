"""The ct-chest-slice detector: where it applies, what it reports, and that a COV-CTR slice routes to it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image as PILImage
from safetensors.torch import save_file

from radscribe.errors import ConfigError
from radscribe.io.image import Image
from radscribe.models import domain as domain_mod
from radscribe.models import routing
from radscribe.models.ct_slice import ABSENT_PROBABILITY, LABELS, NAME, CtChestSliceDetector
from radscribe.models.detector import DETECTORS, get_detector
from radscribe.models.domain import DomainPrediction
from radscribe.preprocess.recognize import Recognition


def _rec(modality, region, src="header"):
    return Recognition(modality=modality, body_region=region, recognized_from=src, evidence=())


def _content(monkeypatch, domain, conf=0.97):
    monkeypatch.setattr(domain_mod, "classify_domain",
                        lambda image, weights_dir=None: DomainPrediction(domain, domain, conf, {domain: conf}))
    monkeypatch.setattr(routing._CACHE, "last", None, raising=False)


def _slice(units="", n=1):
    """A synthetic chest-CT-like slice: a bright body with two dark lungs and a blob in the left one."""
    a = np.zeros((n, 96, 96), np.float32)
    yy, xx = np.mgrid[:96, :96]
    body = (yy - 48) ** 2 / 40 ** 2 + (xx - 48) ** 2 / 44 ** 2 < 1
    lungs = ((yy - 46) ** 2 / 26 ** 2 + (xx - 28) ** 2 / 13 ** 2 < 1) | ((yy - 46) ** 2 / 26 ** 2 + (xx - 68) ** 2 / 13 ** 2 < 1)
    a[:, body] = 40.0
    a[:, lungs] = -850.0
    a[:, (yy - 50) ** 2 + (xx - 70) ** 2 < 16] = -100.0
    if units != "HU":
        a = (a + 1024) / 8
    return Image(array=a, units=units or "", modality="CT" if units == "HU" else None)


@pytest.fixture
def weights(tmp_path):
    """A random-init network with a controllable head: logit_k = bias_k (weights zeroed)."""
    from radscribe.models.ct_slice_net import MultiLabelEfficientNet

    def make(biases, thresholds, temperatures=None):
        torch.manual_seed(0)
        net = MultiLabelEfficientNet(len(LABELS), pretrained=False)
        with torch.no_grad():
            net.net._fc.weight.mul_(1e-3)
            net.net._fc.bias.copy_(torch.tensor(biases, dtype=torch.float32))
        d = tmp_path / f"w{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(d / "model.safetensors"))
        (d / "config.yaml").write_text(yaml.safe_dump({"data": {"input_size": 224}, "kept_labels": list(LABELS),
                                                       "model": {"dropout": 0.2}}))
        temps = temperatures or [1.0] * len(LABELS)
        (d / "calibration.json").write_text(json.dumps({"labels": list(LABELS), "per_label": {
            lbl: {"temperature": t, "threshold": th} for lbl, t, th in zip(LABELS, temps, thresholds)}}))
        return d
    return make


def test_registered_without_loading_anything():
    assert NAME in DETECTORS and get_detector(NAME).kinds == LABELS and "covid19_pneumonia" in LABELS


def test_applies_only_to_a_single_2d_chest_ct_image(monkeypatch):
    det = CtChestSliceDetector()
    _content(monkeypatch, "chest_ct")
    assert det.applies(_slice(), _rec("OT", "unknown", "none")) is None             # bare PNG, content says chest CT
    _content(monkeypatch, "chest_ct")
    assert det.applies(_slice("HU"), _rec("CT", "chest")) is None                  # single-slice CT DICOM
    _content(monkeypatch, "chest_ct")
    assert "not a 3-slice volume" in det.applies(_slice("HU", n=3), _rec("CT", "chest"))
    _content(monkeypatch, "chest_xray")
    assert "this image is CR" in det.applies(_slice(), _rec("OT", "unknown", "none"))
    _content(monkeypatch, "abdominal_ct")
    assert "shows the abdomen" in det.applies(_slice(), _rec("OT", "unknown", "none"))
    _content(monkeypatch, "other", 0.4)
    assert "not established" in det.applies(_slice(), _rec("OT", "unknown", "none"))


def test_present_findings_carry_calibrated_probability_heatmap_and_attention_side(weights):
    # logits 2 and -2 with T = 2: p = sigmoid(1) = 0.73 (>= threshold 0.5: present) / 0.27 (between: nothing)
    d = weights([2.0, -2.0, 2.0, -6.0, -2.0], [0.5] * 5, temperatures=[2.0] * 5)
    det = CtChestSliceDetector(weights_dir=d)
    img = _slice()
    res = det.detect(img)
    present = [f for f in res.findings if f.present]
    assert [f.kind for f in present] == ["covid19_pneumonia", "opacity"]
    for i, f in enumerate(res.findings):
        if f.present:
            assert f.confidence == pytest.approx(1 / (1 + np.exp(-1)), abs=0.02)
            assert f.confidence_type == "calibrated_probability" and f.side is None and f.location == "lungs"
            h = res.heatmaps[i]
            assert h.shape == (96, 96) and h.dtype == np.float32 and 0 <= h.min() and h.max() <= 1
            assert f.attributes["threshold"] == 0.5 and "side_convention" in f.attributes
    (neg,) = [f for f in res.findings if not f.present]      # sigmoid(-3) = 0.047 <= 0.1: pertinent negative
    assert neg.kind == "consolidation" and neg.confidence == pytest.approx(1 - 1 / (1 + np.exp(3)), abs=0.02)
    assert 1 - neg.confidence <= ABSENT_PROBABILITY and set(res.heatmaps) == {0, 1}


def test_hu_slices_are_read_in_the_lung_window(weights):
    from radscribe.models.ct_slice_net import slice_array

    a = slice_array(_slice("HU"))
    assert a.min() == -850.0 and a.max() == 40.0
    b = slice_array(Image(array=np.array([[[-3000.0, 2000.0]]], np.float32), units="HU", modality="CT"))
    assert b.tolist() == [[-1350.0, 150.0]]
    det = CtChestSliceDetector(weights_dir=weights([0.0] * 5, [0.5] * 5))
    assert any("lung window" in n for n in det.detect(_slice("HU")).notes)


def test_missing_or_mismatched_weights_are_config_errors(weights, tmp_path):
    with pytest.raises(ConfigError, match="no trained weights"):
        CtChestSliceDetector(weights_dir=tmp_path / "nowhere").detect(_slice())
    d = weights([0.0] * 5, [0.5] * 5)
    cal = json.loads((d / "calibration.json").read_text())
    cal["labels"] = cal["labels"][:4]
    (d / "calibration.json").write_text(json.dumps(cal))
    with pytest.raises(ConfigError, match="do not match"):
        CtChestSliceDetector(weights_dir=d).detect(_slice())


def test_a_cov_ctr_slice_routes_to_ct_chest_slice(shared_dataset, tmp_path):
    from radscribe.analyze import Analyzer
    from radscribe.models.ct_slice import WEIGHTS_DIR

    root = shared_dataset("cov_ctr")
    entry = json.loads((root / "annotation.json").read_text())["test"][0]
    png = tmp_path / "slice.png"
    PILImage.open(root / entry["image"]).save(png)
    if not (WEIGHTS_DIR / "model.safetensors").is_file():
        pytest.skip("ct-chest-slice weights not committed")
    a = Analyzer().analyze(png, tmp_path / "out")
    assert a.detectors_run == (NAME,)
    assert a.study.modality == "CT" and a.study.body_region == "chest"
    assert a.findings and all(f.detector == NAME and f.kind in LABELS for f in a.findings)
