"""The ``ct-chest-slice`` detector: multi-label findings on one 2D chest CT slice (COV-CTR-trained).

EfficientNet-Lite0 (ImageNet init) with a sigmoid head, one output per label of
``weights/ct-chest-slice/calibration.json`` (COVID-19 and the finding kinds the report labeler reads
off COV-CTR reports). Per label ``k`` the calibrated probability is ``sigmoid(z_k / T_k + b_k)``
fitted on val (temperature scaling, b = 0, or Platt scaling where it cross-validated better); ``threshold_k`` (chosen on val, max F1) makes a finding present.

* present (p >= threshold): one Finding (confidence_type ``calibrated_probability``) with a Grad-CAM
  heatmap and box, and the heatmap's side as an *attention* attribute (never the finding's side, as
  for the other classifiers: :data:`radscribe.models.classify.ATTENTION_SIDE_NOTE`);
* confidently absent (p <= ``ABSENT_PROBABILITY``): a pertinent negative, confidence 1 - p;
* in between: nothing (the model is unsure).

It applies to a single 2D image that routing establishes as CT of the chest (header, or the content
domain classifier for a bare PNG/JPEG), the same rule as the registry's 2D classifiers
(:func:`radscribe.models.routing.spec_reason`). A CT slice in HU is put in the lung window first:
the training JPEGs are lung-windowed 8-bit images.

Building the detector imports no torch and reads no file; the weights load on the first ``detect``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from radscribe.findings.model import Finding
from radscribe.io.image import Image
from radscribe.models import routing
from radscribe.models.classify import (
    ATTENTION_SIDE_NOTE, BOX_THRESHOLD, heatmap_side, sided_location,
)
from radscribe.models.detector import Detection, register_detector
from radscribe.models.registry import WEIGHTS_ROOT, ModelSpec

NAME = "ct-chest-slice"
WEIGHTS_DIR = WEIGHTS_ROOT / NAME
#: The labels the committed weights predict, in head order (checked against calibration.json on load).
LABELS = ("covid19_pneumonia", "ground_glass_opacity", "opacity", "consolidation", "nodule")
INPUT_SIZE = 224
#: Calibrated probability at or below which a label is reported as a pertinent negative.
ABSENT_PROBABILITY = 0.1
SPEC = ModelSpec(name=NAME, task="multilabel", modality="CT", body_region="chest", dims=2, labels=LABELS,
                 normal_label="", input_size=INPUT_SIZE, weights_dir=WEIGHTS_DIR, location="lungs",
                 description="2D chest CT slice (lung window): COVID-19, ground-glass opacity, opacity, "
                 "consolidation, nodule (EfficientNet-Lite0 multi-label, ImageNet init; COV-CTR)")




class CtChestSliceDetector:
    """Multi-label findings on a 2D chest CT slice (see module doc)."""

    name = NAME
    kinds = LABELS
    description = SPEC.description

    def __init__(self, weights_dir=None):
        self.spec = SPEC
        self.weights_dir = weights_dir or SPEC.weights_dir
        self._loaded = None

    def load(self) -> Any:
        """The :class:`radscribe.models.ct_slice_net.LoadedMultiLabel`, read once (ConfigError when missing)."""
        if self._loaded is None:
            from radscribe.models.ct_slice_net import load_multilabel

            self._loaded = load_multilabel(self.spec, self.weights_dir)
        return self._loaded

    def applies(self, image: Image, recognition: Any) -> str | None:
        d = routing.decide_cached(image, recognition)
        header_modality = routing._norm_modality(getattr(recognition, "modality", None) if recognition is not None
                                                 else image.modality)
        why = routing.spec_reason(self.spec, image, d.modality, d.region, header_modality)
        if why is not None and d.notes and (d.modality is None or d.region is None):
            return f"{why} ({'; '.join(d.notes)})"
        return why

    def detect(self, image: Image) -> Detection:
        from radscribe.models.explain import CamSession, heatmap_box, resize_heatmap

        t0 = time.perf_counter()
        loaded = self.load()
        t1 = time.perf_counter()
        session = CamSession(loaded, loaded.preprocess(image))
        probs = loaded.calibrated(session.logits.double().numpy())[0]
        t2 = time.perf_counter()
        feats = {f"p_{lbl}": float(p) for lbl, p in zip(LABELS, probs)}
        evidence = "multi-label chest CT slice classifier ct-chest-slice (per-label calibration and threshold from val)"
        oriented = image.source_format.lower() in ("dicom", "nifti", "metaimage", "nrrd") and image.spacing_known
        findings: list[Finding] = []
        heatmaps: dict[int, np.ndarray] = {}
        for k, lbl in enumerate(LABELS):
            p, thr = float(probs[k]), float(loaded.thresholds[k])
            if p >= thr:
                h = resize_heatmap(session.cam(k), image.shape[1:]).astype(np.float32)
                attrs: dict[str, Any] = {"evidence": evidence, "threshold": round(thr, 3),
                                         "box_source": f"Grad-CAM on {' x '.join(session.layers)}, >= "
                                                       f"{BOX_THRESHOLD:g} of max, largest region"}
                box = heatmap_box(h, BOX_THRESHOLD)
                box_voxel = center_voxel = None
                if box is not None:
                    y0, x0, y1, x1 = box
                    box_voxel = (0, y0, x0, 1, y1, x1)
                    center_voxel = (0.0, (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2)
                side, left_frac = heatmap_side(h, image.array[0], image.patient_left_is_increasing_x()
                                               if oriented else True)
                if side is not None:  # where the model looked, not the finding's side
                    attrs["attention_side"] = side
                    attrs["attention_location"] = sided_location(SPEC.location, side)
                    attrs["attention_side_note"] = ATTENTION_SIDE_NOTE
                attrs["side_convention"] = (
                    "patient left/right from the image orientation" if oriented else
                    "radiological display assumed (image left = patient right); the file has no orientation")
                heatmaps[len(findings)] = h
                findings.append(Finding(
                    kind=lbl, detector=NAME, confidence=p, present=True, confidence_type="calibrated_probability",
                    location=SPEC.location, size_unit="mm" if image.spacing_known else "px", attributes=attrs,
                    box_voxel=box_voxel, center_voxel=center_voxel,
                    features={**feats, "heatmap_left_fraction": float(left_frac)}))
            elif p <= ABSENT_PROBABILITY:
                findings.append(Finding(
                    kind=lbl, detector=NAME, confidence=1.0 - p, present=False,
                    confidence_type="calibrated_probability", location=SPEC.location,
                    attributes={"evidence": evidence}, features=feats))
        timings = {"load_model": t1 - t0, f"classify:{NAME}": t2 - t1,
                   "heatmap": time.perf_counter() - t2}
        recognized = None
        cached = routing.cached_decision(image)
        if cached is not None:
            recognition, d = cached
            if getattr(recognition, "recognized_from", "none") in (None, "none") and d.decided_from != "none" \
                    and d.region:  # a bare PNG/JPEG: the content-based domain classifier named what it is
                recognized = (d.modality or "OT", d.region, d.decided_from)
        notes = ()
        if image.units == "HU":
            notes = ("ct-chest-slice read the slice in the lung window (level -600, width 1500 HU), as its "
                     "COV-CTR training images were",)
        return Detection(findings=tuple(findings), heatmaps=heatmaps, notes=notes, timings=timings,
                         recognized=recognized, display_window="lung")


register_detector(NAME, CtChestSliceDetector)
