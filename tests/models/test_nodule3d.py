"""Tests for radscribe/models/nodule3d.py and nodule3d_refine.py: output contract, ordinal heads, the
knowledge weights, weights loading errors, and refine_nodule on a phantom nodule."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from radscribe.data.lidc import ASSUMED_SPACING_MM, HUMapping
from radscribe.errors import RadscribeInputError
from radscribe.io.image import Image
from radscribe.models.nodule3d import (
    Nodule3DLoss, Nodule3DModel, build_nodule3d, expected_rating, head_weights, load_nodule3d, predict_cubes,
    prob_at_least,
)
from radscribe.models.nodule3d_refine import WEIGHTS_DIR, margin_word, refine_nodule, sample_cube

TINY = {"channels": [4, 8, 16], "num_res_units": 0, "features": 4, "hidden": 8}


def test_forward_contract_and_ordered_thresholds():
    torch.manual_seed(0)
    net = build_nodule3d(TINY)
    out = net(torch.rand(2, 1, 48, 48, 48))
    assert out["seg"].shape == (2, 2, 48, 48, 48)
    assert out["texture"].shape == (2, 3)
    assert out["ordinal"].shape == (2, 4, 4)
    th = net.thresholds()
    assert torch.all(th[:, 1:] > th[:, :-1])
    # cumulative logits decrease with k: P(rating > k) is non-increasing
    assert torch.all(out["ordinal"][..., 1:] < out["ordinal"][..., :-1])


def test_expected_rating_and_tail_probability():
    big = np.full((4,), 20.0)
    assert expected_rating(big) == pytest.approx(5.0, abs=1e-6)
    assert expected_rating(-big) == pytest.approx(1.0, abs=1e-6)
    logits = np.array([3.0, 1.0, -1.0, -3.0])
    assert prob_at_least(logits, 3) == pytest.approx(1 / (1 + np.exp(-1.0)))
    with pytest.raises(ValueError):
        prob_at_least(logits, 1)


def test_knowledge_weighted_heads():
    w = head_weights(2.0)
    assert w["texture"] == w["spiculation"] == w["margin"] == w["lobulation"] == 2.0
    assert w["malignancy"] == 1.0


def test_loss_is_finite_and_learns_a_batch():
    torch.manual_seed(0)
    net = build_nodule3d(TINY)
    lf = Nodule3DLoss(head_weight=0.5, knowledge_weight=2.0)
    x = torch.zeros(2, 1, 48, 48, 48)
    y = torch.zeros(2, 1, 48, 48, 48, dtype=torch.long)
    x[:, :, 18:30, 18:30, 18:30] = 0.8
    y[:, :, 18:30, 18:30, 18:30] = 1
    tex, rat = torch.tensor([2, 0]), torch.tensor([[5.0, 4, 1, 3], [1, 1, 2, 5]])
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    first = None
    for _ in range(15):
        loss, parts = lf(net(x), y, tex, rat)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert np.isfinite(float(loss)) and float(loss) < 0.8 * first
    assert set(parts) == {"seg", "texture", "malignancy", "spiculation", "lobulation", "margin", "total"}


def test_predict_cubes_places_the_crop_and_keeps_the_centre_component():
    torch.manual_seed(0)
    net = build_nodule3d(TINY)
    pr = predict_cubes(net, np.random.default_rng(0).random((2, 51, 51, 51)).astype(np.float32))
    assert pr["prob"].shape == (2, 51, 51, 51) and pr["prob"][:, 0].max() == 0 and pr["prob"][:, 50].max() == 0
    assert pr["texture_prob"].sum(1) == pytest.approx([1, 1], abs=1e-5)
    assert pr["mask"].dtype == bool


def test_margin_word_from_ratings():
    base = {"spiculation": 1.0, "lobulation": 1.0, "margin": 4.5}
    assert margin_word(base) == "smooth"
    assert margin_word({**base, "spiculation": 3.5, "lobulation": 4.0}) == "spiculated"
    assert margin_word({**base, "lobulation": 3.2}) == "lobulated"
    assert margin_word({**base, "margin": 1.8}) == "ill_defined"


def test_load_errors_are_input_errors(tmp_path):
    with pytest.raises(RadscribeInputError):
        load_nodule3d(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": TINY, "hu_mapping": HUMapping(6.25, -1200, 53, 197).to_dict(),
                                                      "spacing_mm": [1, 0.7, 0.7]}))
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(RadscribeInputError, match="nodule3d weights"):
        load_nodule3d(tmp_path)


def test_sample_cube_resamples_to_the_cube_spacing():
    z, y, x = np.mgrid[:40, :60, :60].astype(np.float32)
    img = Image(x * 0.5 + z * 2.0, spacing=(2.0, 0.5, 0.5), modality="CT", units="HU")
    cube = sample_cube(img, (20, 30, 30), (1.0, 0.7, 0.7), 11)
    # one cube step = 0.7 mm in x = 1.4 image columns (0.7 HU here); 1 mm in z = 0.5 slice (1 HU)
    assert cube[5, 5, 6] - cube[5, 5, 5] == pytest.approx(0.7, abs=1e-4)
    assert cube[6, 5, 5] - cube[5, 5, 5] == pytest.approx(1.0, abs=1e-4)


def _phantom_nodule(diameter_mm: float, spacing=(1.25, 0.7, 0.7), shape=(48, 96, 96), hu=30.0):
    """A round nodule at the centre of lung parenchyma (-860 HU, noise 20 HU) with a thin vessel nearby."""
    g = np.random.default_rng(0)
    zz, yy, xx = np.indices(shape).astype(np.float32)
    c = [(s - 1) / 2 for s in shape]
    d2 = sum(((a - ci) * s) ** 2 for a, ci, s in zip((zz, yy, xx), c, spacing))
    arr = -860.0 + g.normal(0, 20, shape).astype(np.float32)
    arr[d2 <= (diameter_mm / 2) ** 2] = hu
    arr[((yy - c[1] - 22) * spacing[1]) ** 2 + ((xx - c[2]) * spacing[2]) ** 2 <= 1.0] = 40.0  # vessel along z
    return Image(arr, spacing=spacing, modality="CT", units="HU"), tuple(c)


@pytest.mark.skipif(not (WEIGHTS_DIR / "model.safetensors").is_file(), reason="shipped lidc-nodule3d weights absent")
def test_refine_nodule_on_a_phantom_nodule():
    img, c = _phantom_nodule(12.0)
    r = refine_nodule(img, c)
    m = r.measurement
    assert m is not None and r.mask.any()
    assert 9.0 <= m.long_axis_mm <= 15.0 and 0.4 <= m.volume_ml <= 1.8  # 12 mm: 0.90 ml
    full = r.full_mask()
    assert full.shape == img.shape and full[tuple(int(round(v)) for v in c)]
    assert not full[:, int(c[1]) + 22, int(c[2])].any()  # the vessel is not part of it
    assert r.texture == "solid" and sum(r.texture_prob.values()) == pytest.approx(1.0, abs=1e-5)
    assert 1.0 <= r.ratings["malignancy"] <= 5.0 and 0.0 <= r.malignancy_prob <= 1.0
    assert r.margin in ("smooth", "lobulated", "spiculated", "ill_defined")
    assert json.dumps(r.to_dict())


def test_refine_nodule_refuses_a_centre_outside_the_image():
    img, _ = _phantom_nodule(8.0, shape=(20, 40, 40))
    net = build_nodule3d(TINY)
    mdl = Nodule3DModel(net, HUMapping(6.25, -1200, 53, 197), ASSUMED_SPACING_MM, 51, {})
    with pytest.raises(RadscribeInputError):
        refine_nodule(img, (25, 10, 10), model=mdl)
    r = refine_nodule(img, (10, 20, 20), model=mdl)  # a random net: the contract holds whatever it finds
    assert r.mask.ndim == 3 and all(o + n <= s for o, n, s in zip(r.offset, r.mask.shape, img.shape))
    assert r.full_mask().sum() == r.mask.sum()
