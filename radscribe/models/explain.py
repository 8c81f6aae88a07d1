"""Grad-CAM heatmaps for the image classifiers, and a box derived from a heatmap.

Grad-CAM (Selvaraju et al. 2017) on the model's ``target_layer``: the gradient of the class score
with respect to that layer's activation, averaged over space, weights its channels; the ReLU of
the weighted sum is upsampled (bi-/tri-linear) to the model input size and scaled by its maximum.
For EfficientNet-Lite0 the maps of two layers are multiplied (:data:`CAM_LAYERS`): the last feature
map is only 4x4 at a 128 px input, and the product with the 8x8 map of the last stride-16 block
localised brain tumours clearly better (measured in docs/parts/vision_eval.md).

This is the computation of ``monai.visualize.GradCAM.compute_map`` (a test checks they agree), done
here with ``torch.autograd.grad`` with respect to the activation only: no parameter gradients and
no backward pass through the backbone, so a heatmap costs little more than the forward pass that
also yields the logits (:class:`CamSession`). MONAI's GradCAM was not used directly because its
default post-processing maps the map's *minimum* to 1 (it flips the heatmap), each instance adds
permanent hooks to the module, and its full ``backward()`` triples the CPU time per image.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


#: module -> {name: submodule}; walking ~200 submodules per heatmap cost ~2 ms an image.
_NAMED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _named_modules(module: torch.nn.Module) -> dict[str, torch.nn.Module]:
    named = _NAMED.get(module)
    if named is None:
        named = _NAMED[module] = dict(module.named_modules())
    return named


def _layer(module: torch.nn.Module, name: str) -> torch.nn.Module:
    try:
        return _named_modules(module)[name]
    except KeyError:
        raise ValueError(f"target layer {name!r} is not a module of the model") from None


#: Layers whose Grad-CAMs are multiplied, per registry architecture. For EfficientNet-Lite0 the last
#: stride-16 block (8x8 at a 128 px input) sharpens the 4x4 map of the last feature layer; chosen on
#: one fixed-seed half of the brain_tumor_seg masks, reported on the other (docs/parts/vision_eval.md).
CAM_LAYERS: dict[str, tuple[str, ...]] = {"effnet-lite0": ("net._blocks.10", "features")}


def cam_layers(loaded: Any) -> tuple[str, ...]:
    """The layers whose Grad-CAMs are fused for ``loaded`` (its ``target_layer`` alone by default)."""
    arch = getattr(getattr(loaded, "spec", None), "arch", None)
    layers = CAM_LAYERS.get(arch) if arch else None
    names = _named_modules(loaded.module)
    if layers and all(n in names for n in layers):
        return layers
    return (loaded.target_layer,)


class CamSession:
    """One forward pass that keeps the activations Grad-CAM needs, so ``cam(k)`` for any class is cheap.

    ``layers`` (default :func:`cam_layers`): with several layers the heatmap is the normalised
    product of their Grad-CAMs (a region must be supported at every resolution). ``logits`` is
    (1, n_classes) (detached). Works when the caller is inside ``torch.no_grad()`` or
    ``torch.inference_mode()``.
    """

    def __init__(self, loaded: Any, x: torch.Tensor, layers: tuple[str, ...] | None = None):
        dims = int(getattr(getattr(loaded, "spec", None), "dims", x.dim() - 1))
        if x.dim() == dims + 1:
            x = x.unsqueeze(0)
        if x.dim() != dims + 2 or x.shape[0] != 1:
            raise ValueError(f"expected one {dims}D input (C, *spatial), got shape {tuple(x.shape)}")
        self.input_shape = tuple(int(s) for s in x.shape[2:])
        module = loaded.module
        self.layers = tuple(layers) if layers else cam_layers(loaded)
        store: dict[str, torch.Tensor] = {}
        handles = []
        for name in self.layers:
            handles.append(_layer(module, name).register_forward_hook(
                lambda _m, _i, out, name=name: self._keep(store, name, out)))
        try:
            with torch.inference_mode(False), torch.enable_grad():
                x = x.detach().clone().float()
                if hasattr(loaded, "as_input"):
                    x = loaded.as_input(x)
                # No input gradient is needed: activations that depend on trainable weights carry a graph
                # already, and for a frozen module the hook makes the first CAM layer the leaf.
                was_training = module.training
                if was_training:
                    module.eval()
                self._logits = module(x)
                if was_training:
                    module.train()
        finally:
            for h in handles:
                h.remove()
        missing = [n for n in self.layers if n not in store]
        if missing:
            raise ValueError(f"layer(s) {missing} were not used in the forward pass")
        self._acti = [store[n] for n in self.layers]
        self._module = module
        self.logits = self._logits.detach()

    @staticmethod
    def _keep(store: dict, name: str, out: torch.Tensor) -> torch.Tensor | None:
        """Forward hook: keep ``out``. When nothing before it is differentiable (a frozen inference
        module, as :class:`radscribe.models.registry.LoadedModel` holds), it becomes the leaf Grad-CAM
        differentiates with respect to: the graph then starts at the first CAM layer, not the input."""
        if not out.requires_grad:
            out = out.detach().requires_grad_(True)
            store[name] = out
            return out
        store[name] = out
        return None

    def cam(self, class_index: int) -> np.ndarray:
        """Grad-CAM of ``class_index`` at the input's spatial shape, float32 in [0, 1] (all zeros if empty)."""
        with torch.inference_mode(False), torch.enable_grad():
            score = self._logits[0, int(class_index)]
            grads = torch.autograd.grad(score, self._acti, retain_graph=True)
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(self.input_shape)]
        merge = getattr(self._module, "merge_cam", None)
        fused = None
        with torch.no_grad():
            for acti, grad in zip(self._acti, grads):
                spatial = tuple(range(2, acti.dim()))
                weights = grad.mean(dim=spatial, keepdim=True)
                m = F.relu((weights * acti).sum(dim=1, keepdim=True))
                if m.shape[0] > 1 and merge is not None:  # test-time copies -> one map in the input's frame
                    m = merge(m)
                m = F.interpolate(m, size=self.input_shape, mode=mode, align_corners=False)[0, 0]
                peak = float(m.max())
                m = m / peak if peak > 0 else torch.zeros_like(m)
                fused = m if fused is None else fused * m
        out = np.maximum(np.nan_to_num(fused.float().cpu().numpy()), 0.0)
        peak = float(out.max())
        return (out / peak).astype(np.float32) if peak > 0 else np.zeros_like(out, dtype=np.float32)


def gradcam(loaded, x: torch.Tensor, class_index: int, layers: tuple[str, ...] | None = None) -> np.ndarray:
    """Grad-CAM of class ``class_index`` for one model input ``x`` (no batch dim, or batch of 1).

    ``loaded`` needs ``.module``, ``.target_layer`` and ``.spec.dims``. ``layers`` defaults to
    :func:`cam_layers` (``(loaded.target_layer,)`` unless the architecture has a fused set). Returns a
    float32 array with the input's spatial shape ((H, W) for 2D, (D, H, W) for 3D) scaled to [0, 1]
    by its maximum; all zeros when no region supports the class.
    """
    return CamSession(loaded, x, layers).cam(class_index)


def heatmap_box(heatmap: np.ndarray, threshold: float = 0.5) -> tuple[int, ...] | None:
    """Box around the largest connected region where ``heatmap >= threshold * max``.

    Returns ``(y0, x0, y1, x1)`` for 2D or ``(z0, y0, x0, z1, y1, x1)`` for 3D, in the heatmap's
    pixel indices with exclusive upper bounds; ``None`` for an empty (all-zero) heatmap.
    """
    h = np.asarray(heatmap, dtype=np.float32)
    peak = float(h.max()) if h.size else 0.0
    if peak <= 0:
        return None
    lab, n = ndimage.label(h >= threshold * peak)
    if n == 0:
        return None
    sizes = np.bincount(lab.ravel())[1:]
    best = int(np.argmax(sizes)) + 1
    sl = ndimage.find_objects((lab == best).astype(np.int32))[0]
    return tuple(int(s.start) for s in sl) + tuple(int(s.stop) for s in sl)


def resize_heatmap(heatmap: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Linear resize of a heatmap to ``shape`` (same number of dims), clipped to [0, 1]."""
    h = np.asarray(heatmap, dtype=np.float32)
    if tuple(h.shape) == tuple(shape):
        return h
    t = torch.from_numpy(h)[None, None]
    mode = {2: "bilinear", 3: "trilinear"}[h.ndim]
    out = torch.nn.functional.interpolate(t, size=tuple(int(s) for s in shape), mode=mode, align_corners=False)
    return np.clip(out[0, 0].numpy(), 0.0, 1.0)


def box_iou(a, b) -> float:
    """IoU of two boxes given as (lo..., hi...) with exclusive upper bounds (any number of dims)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    k = len(a) // 2
    lo, hi = np.maximum(a[:k], b[:k]), np.minimum(a[k:], b[k:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    va, vb = float(np.prod(a[k:] - a[:k])), float(np.prod(b[k:] - b[:k]))
    union = va + vb - inter
    return inter / union if union > 0 else 0.0


def mask_box(mask: np.ndarray) -> tuple[int, ...] | None:
    """Bounding box (lo..., hi...) of a boolean mask, exclusive upper bounds; None when empty."""
    idx = np.argwhere(np.asarray(mask))
    if idx.size == 0:
        return None
    return tuple(int(v) for v in idx.min(0)) + tuple(int(v) + 1 for v in idx.max(0))
