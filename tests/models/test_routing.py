"""Routing: a model never runs outside its modality, region and dims."""

from __future__ import annotations

import numpy as np

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
    assert (domain_mod.WEIGHTS_DIR / "model.safetensors").is_file(), "the domain classifier weights are committed"
    rng = np.random.default_rng(3)
    noise = Image(array=rng.random((1, 200, 200), dtype=np.float32))
    models, reasons = route(noise, None)
    assert models == []
    assert any("no known domain" in r for r in reasons), reasons


def test_classifier_detectors_apply_exactly_as_routing_decides_with_one_content_check(monkeypatch):
    from radscribe.models.detector import get_detector
    from radscribe.models.registry import list_specs

    calls = []

    def fake(image, weights_dir=None):
        calls.append(image)
        return DomainPrediction("brain_mri", "brain_mri", 0.97, {"brain_mri": 0.97})
    monkeypatch.setattr(domain_mod, "classify_domain", fake)
    img, rec = _img2d(), _rec("OT", "unknown", "none")
    verdicts = {s.name: get_detector(s.name).applies(img, rec) for s in list_specs()}
    assert len(calls) == 1                                  # one domain check for every classifier
    assert [n for n, v in verdicts.items() if v is None] == ["mri-brain-tumor"]
    assert verdicts["cxr-pneumonia"].startswith("cxr-pneumonia reads CR") and "MR" in verdicts["cxr-pneumonia"]
    assert verdicts["ct-adrenal3d"].startswith("ct-adrenal3d reads 3D volumes")
    det = get_detector("mri-brain-tumor")
    assert det.kinds == ("glioma", "meningioma", "pituitary_tumour")
    other = _img2d()                                        # a new image: a new decision
    det.applies(other, rec)
    assert len(calls) == 2


def test_a_contradiction_is_the_reason_each_classifier_gives(monkeypatch):
    from radscribe.models.detector import get_detector

    _content(monkeypatch, "brain_mri", 0.95)
    why = get_detector("cxr-pneumonia").applies(_img2d(modality="CR"), _rec("CR", "chest"))
    assert why.startswith("cxr-pneumonia needs CR chest") and "contradiction" in why


def test_the_nodule_detector_needs_a_chest_ct_volume_in_hu():
    from radscribe.models.detector import get_detector

    det = get_detector("lung-nodule-classic")
    vol = Image(array=np.zeros((40, 64, 64), np.float32), modality="CT", units="HU")
    assert det.applies(vol, _rec("CT", "chest")) is None
    assert "CT head" in det.applies(vol, _rec("CT", "head"))
    assert "2D image" in det.applies(_img2d(modality="CT", units="HU"), _rec("CT", "chest"))
    assert "not in HU" in det.applies(Image(array=np.zeros((40, 64, 64), np.float32)), _rec("CT", "chest"))
