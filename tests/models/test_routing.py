"""Routing: a model never runs outside its modality, region and dims."""

from __future__ import annotations

import numpy as np
import pytest

from radscribe.io.image import Image
from radscribe.models import domain as domain_mod
from radscribe.models.domain import DomainPrediction
from radscribe.models.routing import decide, route
from radscribe.preprocess.recognize import Recognition


def _rec(modality, region, src="header"):
    return Recognition(modality=modality, body_region=region, recognized_from=src, evidence=())


def _content(monkeypatch, domain, conf=0.97):
    """Make the domain classifier answer ``domain`` (tests must not depend on its committed weights)."""
    def fake(image, weights_dir=None):
        return DomainPrediction(domain, domain, conf, {domain: conf})
    monkeypatch.setattr(domain_mod, "classify_domain", fake)


def _img2d(**kw):
    return Image(array=np.random.default_rng(0).random((1, 64, 64), dtype=np.float32), **kw)


def test_mr_header_never_gets_pneumonia(monkeypatch):
    _content(monkeypatch, "brain_mri")
    models, reasons = route(_img2d(modality="MR"), _rec("MR", "brain"))
    assert models == ["mri-brain-tumor"]
    assert any(r.startswith("cxr-pneumonia") and "MR" in r for r in reasons)
    assert any(r.startswith("ct-adrenal3d") and "2D" in r for r in reasons)


def test_head_ct_gets_no_chest_or_kidney_model(monkeypatch):
    _content(monkeypatch, "other", 0.4)
    models, reasons = route(_img2d(modality="CT"), _rec("CT", "head"))
    assert models == []
    assert any("ct-kidney" in r and "head" in r for r in reasons)


def test_chest_xray_png_without_header_goes_by_content(monkeypatch):
    _content(monkeypatch, "chest_xray")
    d = decide(_img2d(), _rec("OT", "unknown", "none"))
    assert d.models == ("cxr-pneumonia",) and d.decided_from == "content"
    _content(monkeypatch, "brain_mri")
    assert route(_img2d(), None)[0] == ["mri-brain-tumor"]
    _content(monkeypatch, "chest_ct")          # a COV-CTR-like chest CT slice: no model is meant for it
    models, reasons = route(_img2d(), None)
    assert models == [] and any("ct-kidney" in r and "chest" in r for r in reasons)


def test_unrecognised_content_runs_nothing(monkeypatch):
    _content(monkeypatch, "other", 0.8)
    models, reasons = route(_img2d(), None)
    assert models == [] and any("no known domain" in r for r in reasons)


def test_confident_contradiction_blocks_header(monkeypatch):
    _content(monkeypatch, "brain_mri", 0.95)
    models, reasons = route(_img2d(modality="CR"), _rec("CR", "chest"))
    assert models == [] and any("contradiction" in r for r in reasons)
    _content(monkeypatch, "brain_mri", 0.7)    # not confident: the header stands
    assert route(_img2d(modality="CR"), _rec("DX", "chest"))[0] == ["cxr-pneumonia"]


def test_volumes_never_go_to_2d_models_and_adrenal_only_for_adrenal_crops():
    ct = Image(array=np.zeros((120, 256, 256), np.float32), modality="CT", units="HU")
    models, reasons = route(ct, _rec("CT", "abdomen"))
    assert models == []
    assert any(r.startswith("ct-kidney") and "volume" in r for r in reasons)
    assert any(r.startswith("ct-adrenal3d") and "120x256x256" in r for r in reasons)
    crop = Image(array=np.zeros((64, 64, 64), np.float32), modality="CT")
    assert route(crop, _rec("CT", "abdomen"))[0] == ["ct-adrenal3d"]
    assert route(Image(array=np.zeros((28, 28, 28), np.float32)), _rec("OT", "unknown", "none"))[0] == ["ct-adrenal3d"]
    mr_crop = Image(array=np.zeros((64, 64, 64), np.float32), modality="MR")
    assert route(mr_crop, _rec("MR", "abdomen"))[0] == []


def test_real_domain_classifier_on_noise():
    if not (domain_mod.WEIGHTS_DIR / "model.safetensors").is_file():
        pytest.skip("domain classifier weights not committed yet")
    rng = np.random.default_rng(3)
    noise = Image(array=rng.random((1, 200, 200), dtype=np.float32))
    models, reasons = route(noise, None)
    assert models == []
