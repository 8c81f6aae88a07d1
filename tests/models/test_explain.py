"""Grad-CAM on tiny models whose discriminative region is known by construction."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from radscribe.models.explain import box_iou, gradcam, heatmap_box, mask_box, resize_heatmap


class BlobNet(nn.Module):
    """Class 1 = 'a bright blob somewhere': a stride-4 blob detector, global pooling, linear head.

    The score of class 1 grows with the detector's response, so its Grad-CAM must peak on the blob;
    class 0 has the opposite weight, so its Grad-CAM is empty.
    """

    def __init__(self, dims: int = 2):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.conv = conv(1, 1, 8, stride=4, padding=2, bias=True)
        with torch.no_grad():
            self.conv.weight.fill_(1.0 / 8 ** dims)
            self.conv.bias.fill_(-0.3)
        self.act = nn.ReLU(inplace=True)   # in-place on purpose: the hooks must cope
        self.features = nn.Identity()
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[-1.0], [1.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        f = self.features(self.act(self.conv(x)))
        return self.fc(torch.flatten(f.mean(dim=tuple(range(2, f.dim())), keepdim=True), 1))


def _loaded(dims=2):
    return SimpleNamespace(module=BlobNet(dims).eval(), target_layer="features", spec=SimpleNamespace(dims=dims))


def _blob_image(shape, center, radius, rng):
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    d2 = sum((g - c) ** 2 for g, c in zip(grids, center))
    img = 0.1 * rng.random(shape) + (d2 <= radius ** 2)
    return torch.from_numpy(img.astype(np.float32))[None]


@pytest.mark.parametrize("center", [(20, 40), (44, 12), (10, 10)])
def test_heatmap_box_contains_the_blob_2d(center, rng):
    loaded = _loaded()
    x = _blob_image((64, 64), center, 5, rng)
    h = gradcam(loaded, x, class_index=1)
    assert h.shape == (64, 64) and h.dtype == np.float32
    assert h.max() == pytest.approx(1.0) and h.min() >= 0
    peak = np.unravel_index(np.argmax(h), h.shape)
    assert abs(peak[0] - center[0]) <= 4 and abs(peak[1] - center[1]) <= 4
    box = heatmap_box(h, 0.5)
    y0, x0, y1, x1 = box
    assert y0 <= center[0] < y1 and x0 <= center[1] < x1
    assert (y1 - y0) * (x1 - x0) < 0.25 * 64 * 64          # a local box, not the whole image
    blob_box = mask_box(x[0].numpy() > 0.5)
    assert box_iou(box, blob_box) > 0.2


def test_opposite_class_has_empty_map_and_no_box(rng):
    loaded = _loaded()
    h = gradcam(loaded, _blob_image((64, 64), (30, 30), 5, rng), class_index=0)
    assert h.max() == 0 and heatmap_box(h) is None


def test_gradcam_3d_and_no_grad_callers(rng):
    loaded = _loaded(dims=3)
    x = _blob_image((32, 32, 32), (8, 20, 24), 4, rng)
    with torch.inference_mode():          # callers may be in inference mode; Grad-CAM still works
        h = gradcam(loaded, x, 1)
    z0, y0, x0, z1, y1, x1 = heatmap_box(h)
    assert z0 <= 8 < z1 and y0 <= 20 < y1 and x0 <= 24 < x1


def test_repeated_calls_do_not_stack_hooks(rng):
    loaded = _loaded()
    x = _blob_image((64, 64), (20, 20), 5, rng)
    a = gradcam(loaded, x, 1)
    for _ in range(3):
        b = gradcam(loaded, x, 1)
    assert np.allclose(a, b)
    assert len(loaded.module.features._forward_hooks) == 0


def test_same_map_as_monai_gradcam(rng):
    """Our activation-only gradient gives MONAI GradCAM's map (without its flipping normaliser)."""
    from monai.visualize import GradCAM

    from radscribe.models.registry import build_model

    torch.manual_seed(0)
    net = build_model("ct-adrenal3d", width=4, depth=3).eval()        # a real registry architecture, small
    loaded = SimpleNamespace(module=net, target_layer=net.target_layer, spec=SimpleNamespace(dims=3))
    x = torch.from_numpy(rng.random((1, 24, 24, 24)).astype(np.float32))
    ours = gradcam(loaded, x, 1)
    ref = GradCAM(nn_module=net, target_layers=net.target_layer, postprocessing=lambda m: m)(x=x[None], class_idx=1)
    ref = ref.detach().numpy()[0, 0]
    ref = np.maximum(ref, 0) / max(ref.max(), 1e-12)
    assert ours.shape == ref.shape == (24, 24, 24) and ours.max() == pytest.approx(1.0)
    assert np.abs(ours - ref).max() < 1e-4


def test_heatmap_box_picks_largest_component():
    h = np.zeros((50, 50), np.float32)
    h[5:8, 5:8] = 1.0          # small, highest
    h[20:40, 25:45] = 0.8      # large
    assert heatmap_box(h, 0.5) == (20, 25, 40, 45)
    assert heatmap_box(np.zeros((4, 4))) is None


def test_resize_and_iou():
    h = np.zeros((8, 8), np.float32)
    h[2:4, 4:6] = 1
    r = resize_heatmap(h, (32, 32))
    assert r.shape == (32, 32) and 0 <= r.min() and r.max() <= 1
    y0, x0, y1, x1 = heatmap_box(r, 0.5)
    assert 6 <= y0 <= 9 and 14 <= y1 <= 17 and 14 <= x0 <= 17 and 22 <= x1 <= 25
    assert box_iou((0, 0, 10, 10), (5, 5, 15, 15)) == pytest.approx(25 / 175)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_unknown_layer_is_refused(rng):
    loaded = SimpleNamespace(module=BlobNet().eval(), target_layer="nope", spec=SimpleNamespace(dims=2))
    with pytest.raises(ValueError, match="nope"):
        gradcam(loaded, _blob_image((32, 32), (10, 10), 3, rng), 1)


# --- classify_image: findings from a model whose answer is known --------------------------------------

class _FakeLoaded:
    """LoadedModel-like wrapper around BlobNet: labels (normal, glioma) of mri-brain-tumor's kind."""

    def __init__(self, bias=0.0, name="mri-brain-tumor"):
        from radscribe.models.registry import get_spec

        self.spec = dataclasses.replace(get_spec(name), labels=("normal", "glioma") if name == "mri-brain-tumor"
                                        else get_spec(name).labels)
        self.module = BlobNet().eval()
        with torch.no_grad():
            self.module.fc.bias.copy_(torch.tensor([bias, 0.0]))
        self.temperature = 1.0
        self.target_layer = "features"

    def preprocess(self, image):
        return torch.from_numpy(image.array[:1].astype(np.float32))

    def predict_proba(self, batch):
        with torch.no_grad():
            return torch.softmax(self.module(batch) / self.temperature, 1).numpy()


def _brain_like(center_yx, rng, shape=(96, 96)):
    """A bright disc (the 'head') spanning the image with a brighter blob (the 'tumour')."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    img = 0.2 * (((yy - 48) ** 2 + (xx - 48) ** 2) < 44 ** 2)
    img = img + ((yy - center_yx[0]) ** 2 + (xx - center_yx[1]) ** 2 < 7 ** 2) + 0.02 * rng.random(shape)
    return img.astype(np.float32)[None]


def test_classify_image_positive_with_box_and_side(rng):
    from radscribe.io.image import Image
    from radscribe.models.classify import classify_image

    # tumour on the image's right half = patient's LEFT in radiological display
    img = Image(array=_brain_like((40, 72), rng), spacing_known=False, source_format="png")
    res = classify_image(_FakeLoaded(), img)
    assert res.label == "glioma" and abs(sum(res.probs.values()) - 1) < 1e-6
    f, = res.findings
    assert f.present and f.kind == "glioma" and f.detector == "mri-brain-tumor"
    assert f.confidence == pytest.approx(res.probs["glioma"])
    z0, y0, x0, z1, y1, x1 = f.box_voxel
    assert (z0, z1) == (0, 1) and y0 <= 40 < y1 and x0 <= 72 < x1
    # a heatmap side is where the model looked (0.89 right against masks), never the finding's side
    assert f.side is None and f.location == "cerebral_hemisphere"
    assert f.attributes["attention_side"] == "left" and "0.89" in f.attributes["attention_side_note"]
    assert f.confidence_type == "calibrated_probability"
    assert "radiological" in f.attributes["side_convention"] and f.size_unit == "px"
    assert res.heatmaps["glioma"].shape == (96, 96)
    # mirrored image -> attention over the patient's right
    img_r = Image(array=_brain_like((40, 24), rng), spacing_known=False, source_format="png")
    assert classify_image(_FakeLoaded(), img_r).findings[0].attributes["attention_side"] == "right"


def test_classify_image_confident_normal_gives_pertinent_negative(rng):
    from radscribe.io.image import Image
    from radscribe.models.classify import classify_image

    flat = Image(array=np.zeros((1, 64, 64), np.float32))
    res = classify_image(_FakeLoaded(bias=5.0), flat)
    assert res.label == "normal" and res.probs["normal"] > 0.99 and res.heatmaps == {}
    f, = res.findings
    assert not f.present and f.kind == "glioma" and f.confidence == pytest.approx(1 - res.probs["glioma"])
    # normal but unsure (p < 0.9): no finding at all
    res2 = classify_image(_FakeLoaded(bias=0.5), flat)
    assert res2.label == "normal" and res2.probs["normal"] < 0.9 and res2.findings == ()


def test_fused_layers_are_the_normalised_product(rng):
    from radscribe.models.explain import CAM_LAYERS, CamSession, cam_layers
    from radscribe.models.registry import build_model, get_spec

    torch.manual_seed(1)
    net = build_model("mri-brain-tumor", pretrained=False).eval()
    loaded = SimpleNamespace(module=net, target_layer=net.target_layer, spec=get_spec("mri-brain-tumor"))
    assert cam_layers(loaded) == CAM_LAYERS["effnet-lite0"]
    x = torch.from_numpy(rng.normal(size=(3, 64, 64)).astype(np.float32))
    s = CamSession(loaded, x)
    fused = s.cam(0)
    parts = [CamSession(loaded, x, (layer,)).cam(0) for layer in s.layers]
    prod = parts[0] * parts[1]
    expect = prod / prod.max() if prod.max() > 0 else prod
    assert fused.shape == (64, 64) and np.abs(fused - expect).max() < 1e-5
