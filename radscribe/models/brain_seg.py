"""``mri-brain-tumor-seg``: brain MR tumour segmentation as a detector (the issue-11 contract).

For an axial brain MR slice (or each axial slice of a volume) a MONAI U-Net trained on brain_tumor_seg
(:mod:`radscribe.train.segment`) gives a tumour probability map on the image's own pixel grid
(:mod:`radscribe.preprocess.brain` crops the head square and maps the output back). The mask is the map
>= :data:`MASK_THRESHOLD`, without components smaller than :data:`MIN_COMPONENT_FRACTION` of the largest.
The finding then carries:

* its type from the ``mri-brain-tumor`` classifier (glioma / meningioma / pituitary tumour), run on the
  slice (for a volume: the slice with the largest tumour area); "tumour" when it says no tumour or is absent;
* the mask (``Detection.masks``; a PNG for a slice, a NIfTI for a volume, as a side file referenced from
  ``Finding.artifacts["mask"]``), the box from the mask, area in px and in mm^2 (when the image has spacing),
  the longest diameter and the extent perpendicular to it, the fraction of the head area, the side and the
  distance of the centroid from the midline (:mod:`radscribe.findings.measure`); for a volume the volume in
  ml, the three axis extents and the slices that were read and that hold tumour;
* a calibrated presence confidence: Platt scaling of one slice feature (the logit of the largest tumour
  probability, or the log of the segmented fraction of the head: ``calibration.json`` says which), fitted on
  out-of-fold predictions off the test fold (``calibration.json`` beside the weights).

Disagreement with the classifier - a tumour type predicted but nothing segmented, or a segmented region the
classifier calls normal - is reported in the finding's attributes and in the notes, not resolved silently.

Side convention: for DICOM/NIfTI the direction cosines decide; PNG/JPEG carry no orientation, so the
radiological display is assumed (image left = patient right) and the finding says so.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radscribe.errors import ConfigError
from radscribe.findings.measure import Measurement2D, largest_component, measure_2d, measure_3d
from radscribe.findings.model import Finding
from radscribe.io.image import Image
from radscribe.io.layer_files import nifti_bytes, png_bytes

from radscribe.models.detector import Detection, register_detector

NAME = "mri-brain-tumor-seg"
CLASSIFIER = "mri-brain-tumor"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights" / NAME
MASK_THRESHOLD = 0.5
#: Components smaller than this fraction of the largest one are dropped.
MIN_COMPONENT_FRACTION = 0.2
#: Calibrated presence at or above which a tumour is reported.
PRESENCE_THRESHOLD = 0.5
#: Smallest image side (pixels) analysed.
MIN_SIDE = 32
#: For volumes: the largest number of axial slices segmented.
MAX_SLICES = 400
#: A volume is axial when its slice normal's cosine with the head-foot axis is at least this.
AXIAL_COSINE = 0.8
_ORIENTED = ("dicom", "nifti", "metaimage", "nrrd")
_LOCATION = {"pituitary_tumour": "sella", "glioma": "cerebral_hemisphere", "meningioma": "cerebral_hemisphere",
             "tumour": "brain"}


def presence_feature(kind: str, max_prob: float, area_fraction: float) -> float:
    """The 1-D presence feature Platt scaling is fitted on: ``max_prob`` -> logit of the largest tumour
    probability; ``log_area`` -> log of the segmented area as a fraction of the head area (+1e-4)."""
    if kind == "log_area":
        return math.log(max(float(area_fraction), 0.0) + 1e-4)
    s = min(max(float(max_prob), 1e-6), 1 - 1e-6)
    return math.log(s / (1 - s))


@dataclass(frozen=True)
class SegModel:
    """A loaded segmentation network, its input size and presence calibration (feature kind, Platt a, b)."""

    module: Any
    input_size: int
    config: dict
    platt: tuple[float, float] | None
    presence_score: str = "max_prob"

    def calibrate(self, max_prob: float, area_fraction: float = 0.0) -> float:
        """Calibrated P(tumour) from the slice's largest tumour probability and segmented area fraction;
        the uncalibrated largest probability when there is no calibration."""
        if self.platt is None:
            return float(max_prob)
        z = self.platt[0] * presence_feature(self.presence_score, max_prob, area_fraction) + self.platt[1]
        return 1.0 / (1.0 + math.exp(-z))


def load_seg_model(weights_dir: Path | None = None) -> SegModel:
    """Build the network from ``config.yaml`` and load ``model.safetensors`` (ConfigError when missing/mismatched)."""
    import yaml
    from safetensors.torch import load_file

    from radscribe.models.seg_networks import arch_kwargs, build_segnet

    wdir = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    wfile, cfile = wdir / "model.safetensors", wdir / "config.yaml"
    if not wfile.is_file() or not cfile.is_file():
        raise ConfigError(f"no trained weights for {NAME!r}: expected {wfile} and {cfile}; train them with "
                          "`radscribe train-seg radscribe/train/configs/segmentation/mri-brain-tumor-seg-unet.yaml --folds all`")
    try:
        cfg = yaml.safe_load(cfile.read_text())
        arch, kw = arch_kwargs(cfg["model"])
        module = build_segnet(arch, **kw)
        module.load_state_dict(load_file(str(wfile)), strict=True)
        size = int(cfg["data"]["input_size"])
    except (KeyError, TypeError, RuntimeError, OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"weights {wfile} do not match config {cfile}: {str(exc).splitlines()[0]}") from exc
    platt, kind = None, "max_prob"
    cal = wdir / "calibration.json"
    if cal.is_file():
        c = json.loads(cal.read_text())
        platt, kind = (float(c["a"]), float(c["b"])), str(c.get("score", "max_prob"))
    return SegModel(module.eval(), size, cfg, platt, kind)


def segment_slice(model: SegModel, slice2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tumour probability float32 on the slice's grid, head mask bool) for one 2D slice."""
    import torch

    from radscribe.models.seg_networks import tumour_probability
    from radscribe.preprocess.brain import prepare_slice, uncrop

    x, box, head = prepare_slice(slice2d, model.input_size)
    p = tumour_probability(model.module, torch.from_numpy(x)[None])[0].numpy()
    return np.clip(uncrop(p, box), 0, 1).astype(np.float32), head


def clean_mask(prob: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
    """prob >= MASK_THRESHOLD inside the head, components < MIN_COMPONENT_FRACTION of the largest removed."""
    from scipy import ndimage

    m = prob >= MASK_THRESHOLD
    if head is not None and head.any():
        m &= ndimage.binary_dilation(head, iterations=3)
    lab, n = ndimage.label(m, structure=np.ones((3,) * m.ndim))
    if n <= 1:
        return m
    sizes = np.bincount(lab.ravel())[1:]
    keep = np.flatnonzero(sizes >= MIN_COMPONENT_FRACTION * sizes.max()) + 1
    return np.isin(lab, keep)


class BrainTumourSegDetector:
    """The brain MR tumour segmentation detector (see module doc). Weights load on the first ``detect``."""

    name = NAME
    kinds = ("tumour", "glioma", "meningioma", "pituitary_tumour")
    #: Opt-in (``--models mri-brain-tumor-seg``), not run in ``auto`` mode: cross-validated Dice 0.64 and
    #: a 0.21 false-mask rate on tumour-free slices are below what an unasked-for finding needs
    #: (docs/results.md, brain segmentation).
    auto = False

    def __init__(self, weights_dir: Path | None = None, classifier: bool = True):
        self.weights_dir = Path(weights_dir) if weights_dir else WEIGHTS_DIR
        self.use_classifier = classifier
        self._model: SegModel | None = None
        self._classifier: Any = None
        self._classifier_error: str | None = None

    def load(self) -> SegModel:
        if self._model is None:
            self._model = load_seg_model(self.weights_dir)
        return self._model

    def _load_classifier(self) -> Any:
        if self.use_classifier and self._classifier is None and self._classifier_error is None:
            from radscribe.models.registry import load_model

            try:
                self._classifier = load_model(CLASSIFIER)
            except ConfigError as exc:
                self._classifier_error = str(exc)
        return self._classifier

    # ---- applies ---------------------------------------------------------------------------------
    def applies(self, image: Image, recognition: Any) -> str | None:
        """None for a brain MR (slice or axial volume); otherwise the reason."""
        from radscribe.models import routing

        if image.is_volume:
            mod = (getattr(recognition, "modality", None) or image.modality or "").upper()
            reg = (getattr(recognition, "body_region", None) or image.body_part or "").lower()
            if mod != "MR" or reg not in ("brain", "head"):
                return f"{NAME} reads brain MR; this volume is {mod or '?'} {reg or '?'}"
            normal = np.asarray(image.direction, float)[:, 2]  # LPS direction of the slice axis
            if image.spacing_known and abs(normal[2]) < AXIAL_COSINE:
                plane = "sagittal" if abs(normal[0]) >= abs(normal[1]) else "coronal"
                return (f"{NAME} segments axial slices; this volume's slices are {plane} (slice normal "
                        f"{', '.join(f'{v:.2f}' for v in normal)} in LPS) and radscribe does not reformat it")
            return None
        if min(image.shape[1:]) < MIN_SIDE:
            return None  # detect() explains the size in a note rather than pretending it is another domain
        decide = getattr(routing, "decide_cached", routing.decide)
        d = decide(image, recognition)
        if CLASSIFIER in d.models:
            return None
        why = next((r for r in d.skipped if r.startswith(CLASSIFIER + " ")), "")
        why = why.replace(CLASSIFIER, NAME, 1) if why else f"{NAME} reads axial brain MR slices"
        return f"{why} ({'; '.join(d.notes)})" if d.notes else why

    # ---- detect ----------------------------------------------------------------------------------
    def detect(self, image: Image) -> Detection:
        t0 = time.perf_counter()
        arr = image.array
        h, w = arr.shape[1:]
        if min(h, w) < MIN_SIDE:
            return Detection(findings=(), notes=(f"{NAME}: image {h}x{w} px is smaller than {MIN_SIDE} px a side; "
                                                 "not segmented",))
        finite = arr[np.isfinite(arr)]
        if finite.size == 0 or float(finite.max()) <= float(finite.min()):
            return Detection(findings=(), notes=(f"{NAME}: the image is constant (all pixels "
                                                 f"{float(finite.min()) if finite.size else float('nan'):g}); "
                                                 "nothing to segment",))
        model = self.load()
        t1 = time.perf_counter()
        if image.is_volume:
            return self._detect_volume(image, model, t0, t1)
        prob, head = segment_slice(model, arr[0])
        t2 = time.perf_counter()
        mask = clean_mask(prob, head)
        score = float(prob[mask].max()) if mask.any() else float(prob.max())
        presence = model.calibrate(score, float(mask.sum()) / max(float(head.sum()), 1.0))
        oriented = image.source_format.lower() in _ORIENTED and image.spacing_known
        left_inc = image.patient_left_is_increasing_x() if oriented else True
        spacing = (float(image.spacing[1]), float(image.spacing[2])) if image.spacing_known else None
        m2 = measure_2d(mask, spacing, head=head, left_is_increasing_x=left_inc) if mask.any() else None
        t3 = time.perf_counter()
        cls = self._classify(image)
        t4 = time.perf_counter()
        timings = {"load_model": t1 - t0, f"segment:{NAME}": t2 - t1, f"measure:{NAME}": t3 - t2,
                   f"classify:{NAME}": t4 - t3}
        finding, notes = self._finding(image, presence, score, m2, cls, oriented, slices_read=(0,), key_slice=0)
        if finding is None:
            return Detection(findings=(), notes=tuple(notes), timings=timings)
        masks, side, heat = {}, {}, {}
        if finding.present and m2 is not None and finding.artifacts.get("mask"):
            masks[0] = mask
            side[finding.artifacts["mask"]] = png_bytes(mask, is_mask=True)
            heat[0] = prob
        return Detection(findings=(finding,), masks=masks, heatmaps=heat, side_files=side, notes=tuple(notes),
                         timings=timings, display_window="brain")

    def _detect_volume(self, image: Image, model: SegModel, t0: float, t1: float) -> Detection:
        arr = image.array
        nz = arr.shape[0]
        notes: list[str] = []
        if nz > MAX_SLICES:
            notes.append(f"{NAME}: {nz} slices; only the middle {MAX_SLICES} were read")
        z0 = max(0, (nz - MAX_SLICES) // 2)
        read = tuple(range(z0, min(nz, z0 + MAX_SLICES)))
        probs = np.zeros(arr.shape, np.float32)
        heads = np.zeros(arr.shape, bool)
        for z in read:
            if float(arr[z].max()) > float(arr[z].min()):
                probs[z], heads[z] = segment_slice(model, arr[z])
        t2 = time.perf_counter()
        mask = clean_mask(probs, heads)
        mask = largest_component(mask) if mask.any() else mask
        score = float(probs[mask].max()) if mask.any() else float(probs.max())
        key_area = mask.sum(axis=(1, 2))
        kz = int(np.argmax(key_area))
        presence = model.calibrate(score, float(key_area[kz]) / max(float(heads[kz].sum()), 1.0))
        oriented = image.source_format.lower() in _ORIENTED and image.spacing_known
        key = int(np.argmax(mask.sum(axis=(1, 2)))) if mask.any() else nz // 2
        spacing2 = (float(image.spacing[1]), float(image.spacing[2])) if image.spacing_known else None
        left_inc = image.patient_left_is_increasing_x() if oriented else True
        m2 = measure_2d(mask[key], spacing2, head=heads[key], left_is_increasing_x=left_inc) if mask.any() else None
        m3 = measure_3d(mask, tuple(float(s) for s in image.spacing) if image.spacing_known else None)
        t3 = time.perf_counter()
        cls = self._classify(image.with_array(arr[key:key + 1]))
        t4 = time.perf_counter()
        finding, more = self._finding(image, presence, score, m2, cls, oriented, slices_read=read, key_slice=key,
                                      m3=m3)
        notes += more
        timings = {"load_model": t1 - t0, f"segment:{NAME}": t2 - t1, f"measure:{NAME}": t3 - t2,
                   f"classify:{NAME}": t4 - t3}
        if finding is None:
            return Detection(findings=(), notes=tuple(notes), timings=timings)
        masks, side = {}, {}
        if finding.present and m3 is not None and finding.artifacts.get("mask"):
            masks[0] = mask
            side[finding.artifacts["mask"]] = nifti_bytes(mask, image, is_mask=True)
        return Detection(findings=(finding,), masks=masks, side_files=side, notes=tuple(notes), timings=timings,
                         display_window="brain")

    def _classify(self, image2d: Image) -> Any:
        loaded = self._load_classifier()
        if loaded is None:
            return None
        from radscribe.models.classify import classify_image

        return classify_image(loaded, image2d, heatmaps=False)

    def _finding(self, image: Image, presence: float, score: float, m2: Measurement2D | None, cls: Any,
                 oriented: bool, *, slices_read: tuple[int, ...], key_slice: int, m3: Any = None
                 ) -> tuple[Finding | None, list[str]]:
        notes: list[str] = []
        seg_yes = presence >= PRESENCE_THRESHOLD and m2 is not None
        cls_label = None if cls is None else cls.label
        cls_tumour = cls_label is not None and cls_label != "normal"
        feats: dict[str, float] = {"max_tumour_probability": score, "presence_calibrated": presence}
        attrs: dict[str, Any] = {"evidence": f"{NAME} segmentation (MONAI U-Net) + {CLASSIFIER} classifier for the type"}
        if cls is not None:
            feats.update({f"classifier_p_{k}": v for k, v in cls.probs.items()})
            attrs["classifier"] = {"label": cls_label, "probability": round(float(cls.probs[cls_label]), 4)}
        elif self._classifier_error:
            notes.append(f"{NAME}: tumour type unknown, classifier {CLASSIFIER} unavailable ({self._classifier_error})")
        if image.is_volume:
            attrs["slices_read"] = [int(slices_read[0]), int(slices_read[-1])]
            attrs["slices_read_text"] = f"axial slices {slices_read[0] + 1}-{slices_read[-1] + 1} of {image.shape[0]}"
        if seg_yes and cls is not None and not cls_tumour:
            attrs["agreement"] = (f"disagreement: a tumour region was segmented but {CLASSIFIER} calls the slice "
                                  f"normal (p={cls.probs['normal']:.2f})")
            notes.append(f"{NAME}: {attrs['agreement']}")
        elif not seg_yes and cls_tumour:
            attrs["agreement"] = (f"disagreement: {CLASSIFIER} predicts {cls_label.replace('_', ' ')} "
                                  f"(p={cls.probs[cls_label]:.2f}) but no tumour region was segmented "
                                  f"(calibrated presence {presence:.2f})")
            notes.append(f"{NAME}: {attrs['agreement']}")
        elif cls is not None:
            attrs["agreement"] = "segmentation and classifier agree"
        if not seg_yes:
            if cls_tumour:  # reported, not hidden: the classifier's verdict without a region or size
                return Finding(kind=cls_label, detector=NAME, confidence=float(cls.probs[cls_label]), present=True,
                               location=_LOCATION.get(cls_label, "brain"), attributes=attrs, features=feats,
                               size_unit="mm" if image.spacing_known else "px"), notes
            return Finding(kind="tumour", detector=NAME, confidence=1.0 - presence, present=False, location="brain",
                           attributes=attrs, features=feats), notes
        kind = cls_label if cls_tumour else "tumour"
        mm = image.spacing_known
        y0, x0, y1, x1 = m2.box
        box_voxel = (key_slice, y0, x0, key_slice + 1, y1, x1)
        if m3 is not None:
            box_voxel = tuple(int(v) for v in m3.box)
        lo, hi = np.asarray(box_voxel[:3], float), np.asarray(box_voxel[3:], float)
        center_voxel = (float(key_slice), m2.centroid[0], m2.centroid[1])
        box_patient = center_patient = None
        if mm:
            corners = image.voxel_to_patient(np.stack([lo, hi - 1]))
            box_patient = tuple(np.minimum(*corners).tolist()) + tuple(np.maximum(*corners).tolist())
            center_patient = tuple(image.voxel_to_patient(np.asarray(center_voxel)).tolist())
        side = m2.side if m2.side in ("left", "right") else None
        if kind == "pituitary_tumour":
            side = None  # a midline structure
        attrs.update({
            "area_px": m2.area_px, "brain_fraction": round(float(m2.brain_fraction or 0.0), 4),
            "longest_diameter_px": round(m2.long_axis_px, 2), "position": m2.side,
            "distance_from_midline_px": round(float(m2.distance_from_midline_px or 0.0), 1),
            "crosses_midline": m2.crosses_midline, "box_source": "bounding box of the segmentation mask",
            "brain_fraction_definition": "tumour area / head area on the slice (head = largest bright region)",
            "side_convention": ("patient left/right from the image orientation" if oriented else
                                "radiological display assumed (image left = patient right); PNG/JPEG carry no "
                                "orientation"),
        })
        if mm:
            attrs["area_mm2"] = round(float(m2.area_mm2), 1)
            attrs["distance_from_midline_mm"] = round(float(m2.distance_from_midline_mm or 0.0), 1)
        if m3 is not None:
            attrs["slices_with_tumour"] = [m3.slices[0], m3.slices[-1]]
            attrs["extent_px_zyx"] = list(m3.extent_px)
            if m3.extent_mm is not None:
                attrs["extent_mm_zyx"] = [round(v, 1) for v in m3.extent_mm]
                attrs["volume_ml"] = round(float(m3.volume_ml), 2)
        feats.update({"area_px": float(m2.area_px), "brain_fraction": float(m2.brain_fraction or 0.0)})
        long_, short_ = (m2.long_axis_mm, m2.short_axis_mm) if mm else (m2.long_axis_px, m2.short_axis_px)
        volume = float(m3.volume_ml) * 1000.0 if (m3 is not None and m3.volume_ml is not None) else None
        artifact = "brain_tumour_mask.nii.gz" if image.is_volume else "brain_tumour_mask.png"
        return Finding(kind=kind, detector=NAME, confidence=presence, present=True,
                       location=_LOCATION.get(kind, "brain"), side=side, long_axis=long_, short_axis=short_,
                       volume=volume, size_unit="mm" if mm else "px", attributes=attrs, box_voxel=box_voxel,
                       box_patient=box_patient, center_voxel=center_voxel, center_patient=center_patient,
                       artifacts={"mask": artifact}, features=feats), notes


def register() -> None:
    """Add the detector to the contract's registry (done by :mod:`radscribe.models.builtin_detectors`)."""
    register_detector(NAME, BrainTumourSegDetector)
