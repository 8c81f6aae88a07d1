"""The mri-brain-tumor-seg detector: what it refuses, its notes on bad input, and the finding it builds
from a mask (box, area, side, disagreement with the classifier) - the network is replaced by known maps."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from radscribe.io.image import Image
from radscribe.models import brain_seg
from radscribe.models.brain_seg import BrainTumourSegDetector, load_seg_model
from radscribe.preprocess.recognize import Recognition


def _rec(modality, region, src="header"):
    return Recognition(modality=modality, body_region=region, recognized_from=src, evidence=())


def _head_slice(size=200, tumour=(100, 140, 20)):
    yy, xx = np.mgrid[:size, :size]
    img = np.where((yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (0.42 * size) ** 2, 120.0, 0.0)
    cy, cx, r = tumour
    disc = (yy - cy - 0.3) ** 2 + (xx - cx - 0.3) ** 2 <= r * r
    img[disc] = 220.0
    return img.astype(np.float32), disc


@pytest.fixture
def tiny_weights(tmp_path):
    import torch
    from safetensors.torch import save_file

    from radscribe.models.seg_networks import build_segnet

    torch.manual_seed(0)
    net = build_segnet("unet", channels=(4, 8, 16), num_res_units=1)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(
        {"name": "mri-brain-tumor-seg", "data": {"input_size": 64},
         "model": {"arch": "unet", "channels": [4, 8, 16], "num_res_units": 1}}))
    (tmp_path / "calibration.json").write_text(json.dumps({"a": 1.0, "b": 0.0}))
    return tmp_path


def _known_map(monkeypatch, disc):
    """Replace the network by a probability map that is 0.97 on ``disc`` (and the head mask it would give)."""
    from radscribe.preprocess.brain import head_mask
    from radscribe.preprocess.intensity import to_unit_range

    def fake(model, slice2d):
        return np.where(disc, 0.97, 0.01).astype(np.float32), head_mask(to_unit_range(slice2d))
    monkeypatch.setattr(brain_seg, "segment_slice", fake)


def test_refuses_a_chest_xray():
    det = BrainTumourSegDetector(weights_dir=Path("/nonexistent"), classifier=False)
    cxr = Image(array=np.random.default_rng(0).random((1, 128, 128), dtype=np.float32), modality="CR")
    why = det.applies(cxr, _rec("CR", "chest"))
    assert why is not None and "mri-brain-tumor-seg" in why and "MR" in why
    ct = Image(array=np.zeros((40, 64, 64), np.float32), modality="CT")
    assert "brain MR" in det.applies(ct, _rec("CT", "chest"))
    assert det.applies(Image(array=np.zeros((20, 64, 64), np.float32), modality="MR"), _rec("MR", "brain")) is None
    sagittal = np.column_stack([(0, 1, 0), (0, 0, -1), (1, 0, 0)]).astype(float)  # columns P, I; slice normal L
    sag = Image(array=np.zeros((20, 64, 64), np.float32), modality="MR", direction=sagittal)
    assert "sagittal" in det.applies(sag, _rec("MR", "brain"))


def test_refuses_a_real_chest_xray_png(shared_dataset):
    from radscribe.io.raster import read_raster

    root = shared_dataset("chest_xray_pneumonia")
    f = sorted((root / "test" / "NORMAL").iterdir())[0]
    image, _ = read_raster(f)
    why = BrainTumourSegDetector(classifier=False).applies(image, _rec("OT", "unknown", "none"))
    assert why is not None and "mri-brain-tumor-seg" in why


def test_accepts_a_real_brain_slice(shared_dataset):
    from radscribe.io.raster import read_raster

    root = shared_dataset("brain_tumor_seg")
    det = BrainTumourSegDetector(classifier=False)
    reasons = [det.applies(read_raster(f)[0], _rec("OT", "unknown", "none")) for f in sorted((root / "yes").iterdir())[:12]]
    # the content check (radscribe.models.domain) accepted 219 of the 226 dataset slices when measured
    assert sum(r is None for r in reasons) >= 10
    assert all("content" in r for r in reasons if r is not None)


def test_constant_and_tiny_images_give_notes(tiny_weights):
    det = BrainTumourSegDetector(weights_dir=tiny_weights, classifier=False)
    d = det.detect(Image(array=np.zeros((1, 100, 100), np.float32), spacing_known=False))
    assert d.findings == () and "constant" in d.notes[0]
    d = det.detect(Image(array=np.random.default_rng(0).random((1, 20, 40), dtype=np.float32)))
    assert d.findings == () and "smaller than 32 px" in d.notes[0]


def test_missing_weights_is_a_config_error(tmp_path):
    from radscribe.errors import ConfigError

    with pytest.raises(ConfigError, match="no trained weights"):
        load_seg_model(tmp_path)


def test_png_finding_from_a_known_mask(tiny_weights, monkeypatch):
    img, disc = _head_slice()
    _known_map(monkeypatch, disc)
    det = BrainTumourSegDetector(weights_dir=tiny_weights, classifier=False)
    d = det.detect(Image(array=img[None], spacing_known=False, source_format="png"))
    (f,) = d.findings
    assert f.present and f.kind == "tumour" and f.size_unit == "px"
    assert f.side == "left"  # image right = patient left in the radiological display assumed for PNG
    assert "radiological display assumed" in f.attributes["side_convention"]
    assert abs(f.attributes["area_px"] - np.pi * 400) / (np.pi * 400) < 0.02
    assert f.box_voxel == (0, 81, 121, 1, 121, 161)  # disc centre (100.3, 140.3), r 20
    assert f.long_axis == pytest.approx(40, abs=1.5)
    assert f.attributes["brain_fraction"] == pytest.approx(400 / (0.42 * 200) ** 2, rel=0.05)
    assert f.confidence == pytest.approx(0.97, abs=1e-3)  # Platt a=1, b=0 is the identity
    assert np.array_equal(d.masks[0], disc) and f.artifacts["mask"] in d.side_files
    assert d.side_files[f.artifacts["mask"]][:8] == b"\x89PNG\r\n\x1a\n"


def test_dicom_spacing_gives_mm_and_orientation_decides_side(tiny_weights, monkeypatch):
    img, disc = _head_slice()
    _known_map(monkeypatch, disc)
    det = BrainTumourSegDetector(weights_dir=tiny_weights, classifier=False)
    flipped = np.diag([-1.0, 1.0, 1.0])  # columns grow towards the patient's right
    image = Image(array=img[None], spacing=(5.0, 0.5, 0.5), direction=flipped, spacing_known=True,
                  source_format="dicom", modality="MR")
    (f,) = det.detect(image).findings
    assert f.size_unit == "mm" and f.side == "right"
    assert f.attributes["area_mm2"] == pytest.approx(f.attributes["area_px"] * 0.25, rel=1e-3)
    assert f.long_axis == pytest.approx(20, abs=1.0)
    assert f.attributes["distance_from_midline_mm"] == pytest.approx(20.0, abs=1.0)
    assert f.box_patient is not None


def test_nothing_segmented_is_a_pertinent_negative(tiny_weights, monkeypatch):
    img, _ = _head_slice(tumour=(0, 0, 0))
    _known_map(monkeypatch, np.zeros(img.shape, bool))
    d = BrainTumourSegDetector(weights_dir=tiny_weights, classifier=False).detect(
        Image(array=img[None], spacing_known=False))
    (f,) = d.findings
    assert not f.present and f.kind == "tumour" and f.confidence > 0.9 and d.masks == {}


class _Cls:
    def __init__(self, label, p):
        self.label = label
        self.probs = {k: (p if k == label else (1 - p) / 3) for k in ("glioma", "meningioma", "pituitary_tumour",
                                                                       "normal")}


def test_disagreement_is_reported(tiny_weights, monkeypatch):
    img, disc = _head_slice()
    det = BrainTumourSegDetector(weights_dir=tiny_weights)
    monkeypatch.setattr(det, "_classify", lambda image: _Cls("normal", 0.95))
    _known_map(monkeypatch, disc)
    d = det.detect(Image(array=img[None], spacing_known=False))
    assert d.findings[0].present and "disagreement" in d.findings[0].attributes["agreement"]
    assert any("calls the slice normal" in n for n in d.notes)
    # the reverse: the classifier sees a glioma, the mask is empty -> the glioma is reported without a size
    monkeypatch.setattr(det, "_classify", lambda image: _Cls("glioma", 0.9))
    _known_map(monkeypatch, np.zeros(img.shape, bool))
    d = det.detect(Image(array=img[None], spacing_known=False))
    (f,) = d.findings
    assert f.present and f.kind == "glioma" and f.long_axis is None and "no tumour region" in f.attributes["agreement"]
    # agreement: the type comes from the classifier
    monkeypatch.setattr(det, "_classify", lambda image: _Cls("meningioma", 0.8))
    _known_map(monkeypatch, disc)
    (f,) = det.detect(Image(array=img[None], spacing_known=False)).findings
    assert f.kind == "meningioma" and f.attributes["agreement"] == "segmentation and classifier agree"


def test_volume_gives_ml_extents_and_slices(tiny_weights, monkeypatch):
    img, disc = _head_slice(size=96, tumour=(48, 60, 10))
    # slices 0 and 7 empty (constant: skipped); slice z of the others is img + z/2, so the fake can tell them apart
    vol = np.stack([np.zeros_like(img) if z in (0, 7) else img + z * 0.5 for z in range(8)])
    tumour_slices = {2, 3, 4}

    def fake(model, slice2d):
        from radscribe.preprocess.brain import head_mask
        from radscribe.preprocess.intensity import to_unit_range
        z = int(round((float(slice2d.max()) - 220.0) / 0.5))
        return np.where(disc & (z in tumour_slices), 0.97, 0.01).astype(np.float32), head_mask(to_unit_range(slice2d))
    monkeypatch.setattr(brain_seg, "segment_slice", fake)
    image = Image(array=vol, spacing=(4.0, 1.0, 1.0), spacing_known=True, source_format="nifti", modality="MR")
    d = BrainTumourSegDetector(weights_dir=tiny_weights, classifier=False).detect(image)
    (f,) = d.findings
    assert f.attributes["slices_with_tumour"] == [2, 4] and f.attributes["slices_read"] == [0, 7]
    assert f.attributes["volume_ml"] == pytest.approx(3 * disc.sum() * 4.0 / 1000, rel=1e-3)
    assert f.attributes["extent_mm_zyx"][0] == pytest.approx(12.0)
    assert d.masks[0].shape == vol.shape and f.artifacts["mask"].endswith(".nii.gz")
    import gzip

    import nibabel as nib
    nii = nib.Nifti1Image.from_bytes(gzip.decompress(d.side_files[f.artifacts["mask"]]))
    assert nii.shape == (96, 96, 8) and int(np.asarray(nii.dataobj).sum()) == int(d.masks[0].sum())


def test_presence_calibration_features(tiny_weights):
    import math

    from radscribe.models.brain_seg import presence_feature

    assert presence_feature("max_prob", 0.5, 0.3) == pytest.approx(0.0)
    assert presence_feature("log_area", 0.9, 0.0) == pytest.approx(math.log(1e-4))
    m = load_seg_model(tiny_weights)  # a=1, b=0 on logit(max prob): identity
    assert m.presence_score == "max_prob" and m.calibrate(0.8, 0.1) == pytest.approx(0.8)
    (tiny_weights / "calibration.json").write_text(json.dumps({"score": "log_area", "a": 1.0, "b": 2.0}))
    m = load_seg_model(tiny_weights)
    assert m.calibrate(0.99, 0.05) == pytest.approx(1 / (1 + math.exp(-(math.log(0.05 + 1e-4) + 2.0))))
