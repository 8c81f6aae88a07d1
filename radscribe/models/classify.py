"""Run one registered image classifier on one image and turn its verdict into Findings.

``classify_image(loaded, image)``:

* calibrated probabilities ``softmax(logits / T)`` per label (registry order);
* when the arg-max label is not normal: one positive :class:`Finding` (kind = label, detector =
  model name, confidence = calibrated probability) with ``box_voxel`` from the Grad-CAM heatmap
  (threshold 0.5 of its maximum, largest connected region) and, where meaningful, the side from
  the heatmap's position relative to the body's midline;
* when normal is confident (calibrated p(normal) >= ``NORMAL_CONFIDENCE``): one pertinent
  negative (``present=False``) per non-normal label, confidence = 1 - p(label);
* otherwise (normal is the arg-max but below the threshold) no finding: the model is unsure.

The heatmap is returned per positive kind, resized to the image's pixel grid ((y, x) for 2D,
(z, y, x) for 3D). The box is Grad-CAM evidence, not a segmentation: no size is reported from it.

Side convention: column index increasing towards the patient's left is the radiological display
convention (image left = patient right). For images without orientation (PNG/JPEG) it is assumed,
and the finding's attributes say so; for DICOM the direction cosines decide.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from radscribe.findings.model import Finding
from radscribe.io.image import Image
from radscribe.knowledge.ontology import ANATOMY, anatomy

#: Calibrated p(normal) at or above which a pertinent negative is reported.
NORMAL_CONFIDENCE = 0.9
#: Heatmap threshold (fraction of its maximum) for the box.
BOX_THRESHOLD = 0.5
#: Why a heatmap side is reported as where the model looked and never as the finding's side: measured
#: against hand-drawn brain tumour masks it was right for 49 of 55 slices (0.89, Wilson 95 % 0.78-0.95;
#: benchmarks/gradcam_side.py, docs/results.md), below the 0.95 a stated side needs.
ATTENTION_SIDE_NOTE = ("Grad-CAM side: right in 0.89 of brain MR slices against hand-drawn masks "
                       "(below 0.95), so it is where the model looked, not the finding's side")
#: Fraction of the heatmap mass that must lie on one side of the midline to name that side.
SIDE_FRACTION = 0.75

@dataclass(frozen=True)
class ClassifierResult:
    """Calibrated ``probs`` (label -> p), the ``label`` with the highest one, the Findings, and
    ``heatmaps`` (kind -> float32 0..1 array on the image's pixel grid). ``timings`` in seconds."""

    model: str
    label: str
    probs: dict[str, float]
    findings: tuple[Finding, ...]
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _body_midline_x(slice2d: np.ndarray) -> float:
    """Column of the body's midline: centre of the bounding box of the largest foreground region
    (above 15% of the 1-99 percentile range: body vs. black background), else the image centre."""
    from scipy import ndimage

    a = np.asarray(slice2d, dtype=np.float32)
    lo, hi = np.percentile(a, [1, 99])
    if hi <= lo:
        return (a.shape[1] - 1) / 2
    lab, n = ndimage.label(a > lo + 0.15 * (hi - lo))
    if n == 0:
        return (a.shape[1] - 1) / 2
    big = int(np.argmax(np.bincount(lab.ravel())[1:])) + 1
    cols = np.flatnonzero((lab == big).any(axis=0))
    if cols.size < 0.1 * a.shape[1]:
        return (a.shape[1] - 1) / 2
    return (cols[0] + cols[-1]) / 2


def heatmap_side(heatmap2d: np.ndarray, image2d: np.ndarray, left_is_increasing_x: bool = True,
                 threshold: float = BOX_THRESHOLD) -> tuple[str | None, float]:
    """("left"/"right"/None, fraction of heatmap mass on the patient's left) relative to the body midline."""
    h = np.where(heatmap2d >= threshold * max(float(heatmap2d.max()), 1e-12), heatmap2d, 0.0)
    total = float(h.sum())
    if total <= 0:
        return None, float("nan")
    mid = _body_midline_x(image2d)
    cols = np.arange(h.shape[1])
    right_of_mid = float(h[:, cols > mid].sum()) / total   # larger column index
    left_frac = right_of_mid if left_is_increasing_x else 1.0 - right_of_mid
    if left_frac >= SIDE_FRACTION:
        return "left", left_frac
    if left_frac <= 1 - SIDE_FRACTION:
        return "right", left_frac
    return None, left_frac


def sided_location(location: str | None, side: str | None) -> str | None:
    """The left/right anatomy id of ``location`` from the knowledge module (``lungs`` + right ->
    ``right_lung``), or ``location`` itself when it has no sided part or ``side`` is not left/right.

    A sided part is an Anatomy entry with that ``side`` whose parent is ``location``, or a sibling
    (same parent) whose label is the side plus the location's label or one of its synonyms
    (``right kidney`` beside ``kidneys``/``kidney``).
    """
    if location is None or side not in ("left", "right"):
        return location
    base = anatomy(location)
    names = {base.label, *base.synonyms}
    for a in ANATOMY.values():
        if a.side != side or a.id == location:
            continue
        if a.parent == location or (a.parent == base.parent and a.label in {f"{side} {n}" for n in names}):
            return a.id
    return location


def classify_image(loaded, image: Image, *, heatmaps: bool = True,
                   normal_confidence: float = NORMAL_CONFIDENCE) -> ClassifierResult:
    """Classify one image with a :class:`radscribe.models.registry.LoadedModel` (see module doc).

    ``heatmaps=False`` skips Grad-CAM (no box, no side). Raises RadscribeInputError when the image
    does not fit the model (e.g. a volume given to a 2D model).
    """
    from radscribe.models.explain import CamSession, heatmap_box, resize_heatmap

    spec = loaded.spec
    t0 = time.perf_counter()
    x = loaded.preprocess(image)
    session = None
    if heatmaps:  # one forward pass gives the logits and keeps what Grad-CAM needs
        import torch

        session = CamSession(loaded, x)
        p = torch.softmax(session.logits[0].double() / float(loaded.temperature), 0).numpy()
    else:
        p = np.asarray(loaded.predict_proba(x[None]))[0].astype(float)
    t1 = time.perf_counter()
    labels = tuple(spec.labels)
    probs = {lbl: float(v) for lbl, v in zip(labels, p)}
    k = int(np.argmax(p))
    label = labels[k]
    findings: list[Finding] = []
    maps: dict[str, np.ndarray] = {}
    timings = {"classify": t1 - t0}
    feats = {f"p_{lbl}": float(v) for lbl, v in probs.items()}
    evidence = (f"whole-image classifier {spec.name} (temperature-calibrated, T={loaded.temperature:.3f})")

    if label != spec.normal_label:
        attrs: dict = {"evidence": evidence}
        box_voxel = center_voxel = box_patient = center_patient = None
        side = None
        if session is not None:
            h_in = session.cam(k)
            if spec.dims == 2:
                h = resize_heatmap(h_in, image.shape[1:])
                box = heatmap_box(h, BOX_THRESHOLD)
                if box is not None:
                    y0, x0, y1, x1 = box
                    box_voxel = (0, y0, x0, 1, y1, x1)
            else:
                h = resize_heatmap(h_in, image.shape)
                box = heatmap_box(h, BOX_THRESHOLD)
                box_voxel = box
            maps[label] = h.astype(np.float32)
            timings["heatmap"] = time.perf_counter() - t1
            attrs["box_source"] = (f"Grad-CAM on {' x '.join(session.layers)}, >= {BOX_THRESHOLD:g} of max, "
                                   "largest region")
            if box_voxel is not None:
                lo, hi = np.asarray(box_voxel[:3], float), np.asarray(box_voxel[3:], float)
                center_voxel = tuple(((lo + hi - 1) / 2).tolist())
                if image.spacing_known:
                    corners = image.voxel_to_patient(np.stack([lo, hi - 1]))
                    box_patient = tuple(np.minimum(*corners).tolist()) + tuple(np.maximum(*corners).tolist())
                    center_patient = tuple(image.voxel_to_patient(np.asarray(center_voxel)).tolist())
            if spec.dims == 2 and label not in spec.unsided_labels:
                oriented = image.source_format.lower() in ("dicom", "nifti", "metaimage", "nrrd") \
                    and image.spacing_known
                side, left_frac = heatmap_side(h, image.array[0], image.patient_left_is_increasing_x()
                                               if oriented else True)
                feats["heatmap_left_fraction"] = float(left_frac)
                if side is not None:  # where the model looked, not a finding's side (see ATTENTION_SIDE_NOTE)
                    attrs["attention_side"] = side
                    attrs["attention_location"] = sided_location(spec.location_of(label), side)
                    attrs["attention_side_note"] = ATTENTION_SIDE_NOTE
                attrs["side_convention"] = (
                    "patient left/right from the image orientation" if oriented else
                    "radiological display assumed (image left = patient right); the file has no orientation")
        findings.append(Finding(
            kind=label, detector=spec.name, confidence=float(p[k]), present=True,
            confidence_type="calibrated_probability", location=spec.location_of(label), side=None,
            size_unit="mm" if image.spacing_known else "px", attributes=attrs,
            box_voxel=box_voxel, box_patient=box_patient, center_voxel=center_voxel,
            center_patient=center_patient, features=feats))
    elif p[k] >= normal_confidence:
        for lbl in spec.finding_labels:
            findings.append(Finding(
                kind=lbl, detector=spec.name, confidence=float(1.0 - probs[lbl]), present=False,
                confidence_type="calibrated_probability",
                location=spec.location_of(lbl),
                attributes={"evidence": evidence, "normal_probability": round(float(p[k]), 4)}, features=feats))
    timings["total"] = time.perf_counter() - t0
    return ClassifierResult(spec.name, label, probs, tuple(findings), maps, timings)
