"""3D classifier: the cube symmetry group, test-time averaging over it, and axis-order independence of
ct-adrenal3d (a crop saved as NIfTI the plainest way and the in-memory array get the same prediction)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from radscribe.cli import main
from radscribe.io.image import Image
from radscribe.io.loader import load_study
from radscribe.models.classifier import SYMMETRIES, apply_symmetry, build_classifier, invert_symmetry
from radscribe.models.explain import CamSession
from radscribe.models.registry import LoadedModel, get_spec, load_model
from radscribe.train.augment import make_batch_transform

DATA = Path(os.environ.get("RADSCRIBE_DATA", "/work/shared/data")) / "adrenalmnist3d" / "adrenalmnist3d.npz"


def _gland(shape=(28, 28, 28)) -> np.ndarray:
    """An elongated, off-centre, asymmetric 0/255 shape mask: every axis order and flip differs."""
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    body = ((zz - 13) / 9) ** 2 + ((yy - 11) / 5) ** 2 + ((xx - 15) / 3.5) ** 2 < 1
    bump = ((zz - 19) / 3) ** 2 + ((yy - 15) / 4) ** 2 + ((xx - 12) / 3) ** 2 < 1
    return ((body | bump) * 255).astype(np.uint8)


def test_symmetry_group_has_48_invertible_elements():
    v = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(1, 2, 3, 4, 5)
    cube = SYMMETRIES["cube"]
    assert len(cube) == len(set(cube)) == 48 and cube[0] == ((0, 1, 2), ())
    assert len(SYMMETRIES["orders"]) == 6 and len(SYMMETRIES["flips"]) == 8
    for s in cube:
        assert torch.equal(invert_symmetry(apply_symmetry(v, s), s), v)
    assert apply_symmetry(v, ((2, 1, 0), ())).shape == (1, 2, 5, 4, 3)
    assert torch.equal(apply_symmetry(v, ((0, 1, 2), (2,)))[..., 0], v[..., -1])


@pytest.mark.parametrize("tta, sym", [("orders", ((2, 1, 0), ())), ("orders", ((1, 2, 0), ())),
                                      ("cube", ((2, 0, 1), (0, 2)))])
def test_test_time_averaging_makes_logits_invariant(tta, sym):
    torch.manual_seed(0)
    net = build_classifier("cnn3d", 2, width=4, depth=3, convs=1, tta=tta).eval()
    x = torch.rand(3, 1, 12, 12, 12)
    with torch.no_grad():
        a, b = net(x), net(apply_symmetry(x, sym))
        net.tta = "none"
        c = net(apply_symmetry(x, sym))
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-3)  # a single pass does depend on the axis order
    net.tta = tta
    net.train()
    torch.manual_seed(1)
    t1 = net(x)
    torch.manual_seed(1)
    assert torch.equal(t1, net._forward_one(x))  # training steps see one copy


def test_gradcam_of_an_averaged_model_follows_the_axes():
    torch.manual_seed(0)
    net = build_classifier("cnn3d", 2, width=4, depth=3, convs=1, tta="orders")
    loaded = LoadedModel(get_spec("ct-adrenal3d"), net, {}, 1.0)
    x = torch.from_numpy(_gland((16, 16, 16)).astype(np.float32) / 255)[None]
    sym = ((2, 0, 1), ())
    h = CamSession(loaded, x).cam(1)
    h_perm = CamSession(loaded, apply_symmetry(x, sym)).cam(1)
    assert h.shape == (16, 16, 16) and h.max() == pytest.approx(1.0)
    np.testing.assert_allclose(h_perm, apply_symmetry(torch.from_numpy(h), sym).numpy(), atol=1e-5)


def test_cube_augmentation_draws_symmetries_of_each_sample():
    x = torch.rand(64, 1, 6, 6, 6)
    out = make_batch_transform("3d-cube", 3)(x, torch.Generator().manual_seed(0), True)
    used = set()
    for v, o in zip(x, out):
        hits = [s for s in SYMMETRIES["cube"] if torch.equal(apply_symmetry(v, s), o)]
        assert hits
        used.add(hits[0][0])
    assert len(used) == 6  # every axis order occurs
    assert torch.equal(make_batch_transform("3d-cube", 3)(x, torch.Generator(), False), x)


def _probs(loaded, image) -> np.ndarray:
    return loaded.predict_proba(loaded.preprocess(image)[None])[0]


def test_saved_nifti_and_array_give_the_same_prediction(tmp_path):
    """Committed ct-adrenal3d: the npz-style array in memory, the same array saved with
    ``Nifti1Image(volume, eye(4))`` (read back with reversed axes), and `radscribe predict` on that file agree."""
    import nibabel as nib

    loaded = load_model("ct-adrenal3d")
    assert loaded.module.tta != "none"
    vol = _gland()
    f = tmp_path / "gland.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(f))
    read = load_study(f).image
    assert read.array.shape == vol.shape and np.array_equal(read.array, vol.transpose(2, 1, 0))
    p_mem, p_file = _probs(loaded, Image(array=vol.astype(np.float32))), _probs(loaded, read)
    np.testing.assert_allclose(p_file, p_mem, atol=1e-5)
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", "ct-adrenal3d", "--out", str(out), str(f)]) == 0
    row = list(csv.reader(out.open()))[1]
    np.testing.assert_allclose([float(v) for v in row[2:]], p_mem, atol=2e-6)


@pytest.mark.skipif(not DATA.is_file(), reason=f"AdrenalMNIST3D not present at {DATA}")
def test_real_adrenal_volumes_same_prediction_from_nifti(tmp_path):
    import nibabel as nib

    loaded = load_model("ct-adrenal3d")
    vols = np.load(DATA)["test_images"][:6]
    for i, v in enumerate(vols):
        f = tmp_path / f"{i}.nii"
        nib.save(nib.Nifti1Image(v, np.eye(4)), str(f))
        np.testing.assert_allclose(_probs(loaded, load_study(f).image), _probs(loaded, Image(array=v.astype(np.float32))),
                                   atol=1e-5)


def test_fused_lite0_matches_the_original_network_and_its_gradcam():
    """BatchNorm folding + padding folding: same logits and Grad-CAM up to float rounding; no training."""
    import copy

    from radscribe.errors import ConfigError

    torch.manual_seed(0)
    net = build_classifier("effnet-lite0", 3, pretrained=False).eval()
    for m in net.modules():  # non-trivial BatchNorm statistics, so folding has something to fold
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    spec = get_spec("mri-brain-tumor")
    ref = copy.deepcopy(net).requires_grad_(False)
    loaded = LoadedModel(spec, net, {}, 1.0)  # fuses
    assert loaded.module.fused and not any(isinstance(m, torch.nn.BatchNorm2d) for m in loaded.module.modules())
    x = torch.randn(3, 96, 96)
    with torch.no_grad():
        a, b = loaded.module(x[None]), ref(x[None])
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)

    class Ref:
        module, target_layer = ref, "features"

    Ref.spec = spec
    k = int(a.argmax())
    np.testing.assert_allclose(CamSession(loaded, x).cam(k), CamSession(Ref, x).cam(k), atol=1e-3)
    with pytest.raises(ConfigError, match="fused for inference"):
        loaded.module.train()
